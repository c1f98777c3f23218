// The segment log: mirrord's per-source data container (docs/formats.md, "Segment log").
//
// mirrord appends each record it receives from a source (the record's bytes, unchanged)
// to a log in one directory (STATE_DIR/<source>/log/); at each consistency point it
// applies the log to the image and deletes the segments that are wholly applied.
//
// Layout: a directory of segment files (format in common/segment_reader.h), each named
// by its first seq. Sequence numbers across the log are gap-free and increasing. The
// last segment is the active one (appended to); the others are sealed: fsynced before
// the roll and never written again. Other files in the directory are ignored and
// reported by recovery(). Seq 0 and UINT64_MAX are never valid in a log (0 means "none"
// in the accessors below).
//
// Durability: Append/AppendBatch hand bytes to the OS (pwritev, or O_DIRECT writes when
// options.direct_io asks and the filesystem allows; see "Direct appends" below); Sync()
// fdatasyncs the active segment. durable_seq() promises: the log, reopened after a
// crash, still holds every record <= durable_seq() that DeleteThrough did not delete,
// and continues after it. A failed write or fsync is sticky (fsyncgate: the kernel may
// have dropped the dirty pages, so a later fsync that succeeds proves nothing): every
// later Append/AppendBatch/Sync/SetNextSeq/DeleteThrough returns that error until the
// log is reopened, which re-reads what is really in the file.
//
// Recovery policy (Open), as LevelDB's log reader:
//   - Sealed segments (fsynced before the roll): Open checks each header (magic,
//     version, CRC, first seq equal to the name), that the first record (by its header)
//     carries that seq, and that the file is large enough for the records up to the next
//     segment's first seq. Full validation of their records happens when they are read
//     (SegmentReader reports damage as Corruption with file and offset).
//   - The last segment: a torn header (the file is at most a header long and the header
//     does not decode) means a crash right after creating it: the file is removed.
//     Otherwise every record is decoded from the start; the scan stops at the first
//     record that fails (DecodeHeader, DecodeRecord, or a seq that is not last + 1).
//     If anything decodable with a later seq follows the bad spot (searched byte by
//     byte, cheap header checks first, then the CRC), the damage is to acknowledged
//     data: Open fails with Corruption naming the file and offset and changes nothing.
//     "Later" means above the last good seq and no further ahead than the bytes in
//     between could hold (one record header each), so a record quoted inside a torn
//     record's payload rarely passes; a whole record at the bad spot that skips seqs
//     counts. Otherwise the rest is a torn tail (a partial record, zeros, garbage, or a
//     stale copy of an older seq): the file is truncated there (ftruncate + fsync) and
//     recovery() reports the dropped bytes, where and why.
//   - Every check runs before any change, so a failed Open leaves the directory as it was.
//   The records in the last segment are reread from the page cache, which may hold
//   bytes that were never synced: Open fsyncs the last segment before it reports them
//   as durable.
//
// Direct appends (options.direct_io): the bytes go to the disk from an aligned staging
// buffer with O_DIRECT, with no page cache to fill (which on some VMs is the slowest step
// of all). Writes must be 4096-aligned, so each batch also rewrites the segment's last
// partial block (kept in memory, and byte for byte what the disk already holds) and pads
// its end with zeros, which an ftruncate to the records' end then removes. A crash
// between the two leaves zeros after the last record: a torn tail, as above. Where the
// filesystem refuses O_DIRECT (tmpfs), appends stay buffered.
//
// An empty log keeps its place in the sequence: DeleteThrough never leaves the
// directory without a segment once a record was appended. When it deletes everything,
// it first creates an empty segment (a header only) named last_seq() + 1; appends
// continue there, also after a reopen. Only a log that never held a record (or whose
// only segment had a torn header) accepts any first seq; SetNextSeq chooses one.
//
// Thread-safety: a SegmentLog is not thread-safe; one owner (the source's store, on its
// strand) calls all methods. Readers are independent objects (see SegmentReader).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/record.h"
#include "common/segment_reader.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::common {

struct SegmentLogOptions {
  // A segment rolls to a new file when the next record would take it past this size
  // (header included). A record larger than this gets a segment of its own.
  uint64_t segment_bytes = 64ull << 20;
  // Applied to every appended and every read record. Must not shrink between runs:
  // recovery would read larger records as damage.
  DecodeLimits limits;
  // Append with O_DIRECT where the filesystem allows it (see "Direct appends").
  bool direct_io = false;
};

// What Open found and did.
struct SegmentLogRecovery {
  std::vector<std::string> segments;  // file names kept, oldest first
  uint64_t last_segment_records = 0;  // records found in the last of them
  // A torn tail cut from the last segment: its offset there, its size, and why the
  // first dropped byte did not start a good record. dropped_bytes == 0: none.
  uint64_t truncated_at = 0;
  uint64_t dropped_bytes = 0;
  std::string dropped_reason;
  std::string removed_segment;           // a last segment with a torn header, removed
  std::vector<std::string> stray_files;  // directory entries that are not segments

  // True when Open changed nothing and found nothing unexpected.
  bool clean() const {
    return dropped_bytes == 0 && removed_segment.empty() && stray_files.empty();
  }
  // One line for the log.
  std::string ToString() const;
};

class SegmentLog {
 public:
  // Opens the log in `dir` (created, with missing parents, if it does not exist) and
  // recovers it as described above.
  static Result<std::unique_ptr<SegmentLog>> Open(const std::string& dir,
                                                  const SegmentLogOptions& options = {});
  SegmentLog(const SegmentLog&) = delete;
  SegmentLog& operator=(const SegmentLog&) = delete;
  ~SegmentLog() = default;

  // Appends one record: exactly one encoded record (common/record.h). It must decode
  // (DecodeRecord with options.limits; else Corruption) and its seq must be
  // last_seq() + 1 (else InvalidArgument naming both), unless the log accepts any seq
  // (next_seq() == 0). A refused record changes nothing.
  Status Append(std::string_view record_bytes);
  // Appends many records with one pwritev per segment touched. The whole batch is
  // checked first; if any record is refused, none is written.
  Status AppendBatch(std::span<const std::string_view> records);
  // As AppendBatch, for records the caller has already decoded with limits at least as
  // strict (mirrord's memory holds only records it checked on receipt): only each
  // length field and the seq order are checked, not the CRC and fields again.
  Status AppendDecodedBatch(std::span<const std::string_view> records);
  // Makes every appended record durable (fdatasync). durable_seq() == last_seq() after OK.
  Status Sync();

  // Only while the log holds no record: the next append must carry `next_seq`. The
  // choice is durable (an empty segment named next_seq) when this returns OK.
  Status SetNextSeq(uint64_t next_seq);

  // Deletes the segments whose records are all <= seq and fsyncs the directory. The
  // active segment goes only if all its records are <= seq; it is replaced first by an
  // empty segment named last_seq() + 1, so the sequence continues. A seq below
  // first_seq() deletes nothing, one at or above last_seq() deletes every record;
  // readers of deleted seqs get NotFound. Segments go oldest first, so a crash midway
  // leaves a continuous log.
  Status DeleteThrough(uint64_t seq);

  // A reader of the records [from_seq, min(through_seq, last_seq())]. NotFound when
  // from_seq is not in the log (below first_seq(), above last_seq(), or the log is empty).
  Result<std::unique_ptr<SegmentReader>> NewReader(uint64_t from_seq,
                                                   uint64_t through_seq = UINT64_MAX) const;

  bool empty() const { return first_seq() == 0; }
  uint64_t first_seq() const;  // 0 when the log holds no record
  // The last record's seq; kept when DeleteThrough empties the log (then first_seq() is
  // 0 and last_seq() is the last seq that was ever appended). 0 if there never was one.
  uint64_t last_seq() const;
  // The seq the next append must carry; 0 when any seq is accepted.
  uint64_t next_seq() const { return segments_.empty() ? 0 : last_seq() + 1; }
  uint64_t durable_seq() const { return durable_seq_; }
  size_t segment_count() const { return segments_.size(); }
  uint64_t total_bytes() const { return total_bytes_; }  // all segment files, headers included
  const std::string& dir() const { return dir_; }
  const SegmentLogRecovery& recovery() const { return recovery_; }
  const Status& sticky_error() const { return error_; }  // OK unless a write or fsync failed

  // For tests only: the fd that appends and syncs use (-1 if none), so a test can swap a
  // failing fd in with dup2 and check that errors stick.
  int TEST_active_fd() const { return write_fd(); }
  // True while appends go to the disk with O_DIRECT (options.direct_io, and allowed).
  bool direct_appends() const { return static_cast<bool>(direct_fd_); }

 private:
  struct PrivateTag {};
  struct Segment {
    uint64_t first_seq;
    uint64_t bytes;  // file size, header included
  };

 public:
  SegmentLog(PrivateTag, std::string dir, const SegmentLogOptions& options);  // use Open

 private:
  // Recovery (Open): everything is checked before anything changes.
  Status Recover();
  Status ListSegments(std::vector<uint64_t>* firsts);  // sorted; strays into recovery_
  Result<UniqueFd> OpenSegmentFile(uint64_t first_seq, int flags) const;
  Result<uint64_t> FileSize(int fd, uint64_t first_seq) const;
  Result<bool> IsTornEmptySegment(uint64_t first_seq) const;
  Status ApplyRecovery(std::optional<uint64_t> torn, std::vector<Segment> segments,
                       UniqueFd last_fd, uint64_t last_size,
                       const segment_internal::TailScan& scan);

  Status CheckRecords(std::span<const std::string_view> records, bool decode,
                      std::vector<uint64_t>* seqs) const;
  Status AppendChecked(std::span<const std::string_view> records, bool decode);
  Status CreateSegment(uint64_t first_seq);  // header, fsync file, fsync directory
  Status Roll(uint64_t next_first_seq);
  Status WriteRecords(std::span<const std::string_view> records);  // into the active segment
  Status WriteRecordsDirect(std::span<const std::string_view> records);
  Status StartDirect();  // after the active segment changed: O_DIRECT fd and tail block
  Status RemoveSegment(uint64_t first_seq);  // unlinks; the caller fsyncs the directory
  Status SyncDir();
  Status Sticky(Status status);  // remembers a write/fsync failure and returns it
  // The active segment's fd for writes and fdatasync: the O_DIRECT one when in use.
  int write_fd() const { return direct_fd_ ? direct_fd_.get() : active_fd_.get(); }

  std::string dir_;
  SegmentLogOptions options_;
  UniqueFd dir_fd_;
  UniqueFd active_fd_;             // the last segment, when there is one
  UniqueFd direct_fd_;             // the last segment opened O_DIRECT, for direct appends
  bool direct_refused_ = false;    // the filesystem refused O_DIRECT: buffered from now on
  // Direct appends: an aligned buffer whose first tail_len_ bytes are the active
  // segment's last partial block (its bytes from the last 4096 boundary to its end).
  std::unique_ptr<char, void (*)(void*)> staging_{nullptr, &std::free};
  size_t tail_len_ = 0;
  std::vector<Segment> segments_;  // oldest first; the last is active
  uint64_t active_records_ = 0;    // records in the last segment
  uint64_t total_bytes_ = 0;
  uint64_t durable_seq_ = 0;
  bool dirty_ = false;  // bytes written since the last fdatasync
  Status error_;        // sticky
  SegmentLogRecovery recovery_;
};

}  // namespace mirror::common
