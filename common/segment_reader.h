// The segment log's file format and its reader (docs/formats.md, "Segment log").
//
// A segment file is a fixed header followed by whole records (common/record.h bytes,
// unchanged) back to back, with no padding:
//
//   offset size field
//   0      8    magic         "MFSSEG01"
//   8      4    version       kSegmentFormatVersion
//   12     4    flags         0 in format version 1
//   16     8    first_seq     seq of the first record the segment holds (or will hold)
//   24     4    reserved      0
//   28     4    masked crc    CRC32C of bytes [0, 28), masked (crc32c::Mask)
//   32     ...  records       seq first_seq, first_seq + 1, ... with no gap
//
// The file is named by first_seq: 20 zero-padded decimal digits + ".seg", so that names
// sort in sequence order. SegmentLog (common/segment_log.h) writes and recovers a
// directory of segments; SegmentReader reads records out of one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/record.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::common {

inline constexpr std::string_view kSegmentMagic = "MFSSEG01";
inline constexpr uint32_t kSegmentFormatVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 32;
inline constexpr size_t kSegmentHeaderCrcOffset = 28;  // the CRC covers [0, 28)
inline constexpr size_t kSegmentNameDigits = 20;
inline constexpr std::string_view kSegmentSuffix = ".seg";

// The kSegmentHeaderSize bytes of a segment header.
std::string EncodeSegmentHeader(uint64_t first_seq);
// Checks size, magic, version, flags, reserved and CRC; returns first_seq. Errors name
// the byte offset inside the header.
Result<uint64_t> DecodeSegmentHeader(std::string_view bytes);

// "00000000000000000042.seg" for 42.
std::string SegmentFileName(uint64_t first_seq);
// first_seq for a name of exactly that form (a value that fits in 64 bits); nullopt else.
std::optional<uint64_t> ParseSegmentFileName(std::string_view name);

namespace segment_internal {

// Reads a file through one reusable buffer with pread(2). Read(off, n) returns a view
// of [off, off + n), or fewer bytes at the end of the file; the view stays valid until
// the next Read. Sequential reads of small pieces cost one pread per chunk.
// Does not own the fd. Thread-compatible (one thread at a time).
class PreadWindow {
 public:
  PreadWindow(int fd, uint64_t file_size, std::string name);
  uint64_t file_size() const { return file_size_; }
  Result<std::string_view> Read(uint64_t off, size_t n);

 private:
  int fd_;
  uint64_t file_size_;
  std::string name_;  // for error messages
  std::vector<char> buf_;
  uint64_t buf_off_ = 0;  // file offset of buf_[0]
  size_t buf_len_ = 0;    // valid bytes in buf_
};

// "segment <name> at byte <offset>: <what>" as a Corruption status.
Status SegmentCorruption(std::string_view name, uint64_t offset, std::string_view what);

// Recovery checks (SegmentLog::Open). Both read only.

// Checks a sealed segment cheaply: a header naming first_seq, a first record (by its
// header) of that seq, and a size that can hold the next_first_seq - first_seq records
// that the next segment's name implies. Its records are validated when read.
Status CheckSealedSegment(PreadWindow& file, std::string_view name, uint64_t first_seq,
                          uint64_t next_first_seq, const DecodeLimits& limits);

// The good prefix of the last segment.
struct TailScan {
  uint64_t good_end = 0;    // offset after the last good record
  uint64_t records = 0;     // good records
  std::string stop_reason;  // why the bytes at good_end are not a good record
};

// Decodes the records of the last segment (header already checked) from the start and
// stops at the first that fails or breaks the sequence. If a record that decodes and
// has a later seq lies after that spot, returns Corruption naming both offsets:
// damage inside the log, not a torn tail.
Result<TailScan> ScanLastSegment(PreadWindow& file, std::string_view name, uint64_t first_seq,
                                 const DecodeLimits& limits);

}  // namespace segment_internal

// Iterates over the records of a segment log from one seq through another, crossing
// segment boundaries:
//
//   MIRROR_ASSIGN_OR_RETURN(auto reader, log.NewReader(from));
//   while (reader->Next()) Apply(reader->record());
//   MIRROR_RETURN_IF_ERROR(reader->status());
//
// Every record handed out is fully validated (DecodeRecord: length, CRC, fields) and
// has the next seq; records before from_seq in its segment are skipped by their
// headers only. Damage is reported as Corruption naming the segment file and the byte
// offset, and ends the iteration; nothing is skipped silently.
//
// Reading uses pread into a buffer, not mmap: an I/O error or a file that shrinks
// under us becomes a Status instead of SIGBUS, the active segment may grow while we
// read, and a window of one chunk (or one record) bounds memory per reader.
//
// Lifetime and threads: the reader owns its fds and a copy of the segment list; it does
// not touch the SegmentLog after creation, so it may run on another thread while the
// log appends (it reads only records that were written before it was created). A
// segment deleted (DeleteThrough) before the reader opens it ends it with NotFound.
// One reader is used by one thread at a time.
class SegmentReader {
 public:
  // Use SegmentLog::NewReader. `segment_firsts` are the first seqs of the log's
  // segments, ascending; from_seq <= through_seq both lie inside the log.
  SegmentReader(std::string dir, std::vector<uint64_t> segment_firsts, uint64_t from_seq,
                uint64_t through_seq, DecodeLimits limits);
  SegmentReader(const SegmentReader&) = delete;
  SegmentReader& operator=(const SegmentReader&) = delete;

  // Moves to the next record. False at the end (through_seq passed) or on an error;
  // status() tells which.
  bool Next();
  const Status& status() const { return status_; }

  // The current record (valid after Next() returned true, until the next call).
  uint64_t seq() const { return record_.meta.seq; }
  std::string_view bytes() const { return bytes_; }  // the raw record bytes
  const Record& record() const { return record_; }   // views point into bytes()
  // Where the current record lies: its segment's file name and byte offset there.
  const std::string& segment_name() const { return name_; }
  uint64_t offset() const { return record_offset_; }

 private:
  bool Fail(Status status);
  Status OpenSegment();
  Status CheckSegmentEnd();  // at the switch to the next segment: no trailing bytes
  // Reads the header of the record at offset_ and checks its seq; sets *length.
  Status ReadHeader(uint32_t* length);

  std::string dir_;
  std::vector<uint64_t> firsts_;
  uint64_t from_seq_;
  uint64_t through_seq_;
  DecodeLimits limits_;

  size_t index_ = 0;       // segment being read
  uint64_t next_seq_ = 0;  // seq expected at offset_
  UniqueFd fd_;
  std::optional<segment_internal::PreadWindow> window_;
  std::string name_;
  uint64_t offset_ = 0;

  std::string_view bytes_;
  Record record_;
  uint64_t record_offset_ = 0;
  Status status_;
  bool done_ = false;
};

}  // namespace mirror::common
