// The per-source memory file: mirrord's "memory" of the patent, an mmap'd file in two
// halves (mirrord/README.md; format in the report for docs/formats.md, "Memory file").
//
//   offset            size        content
//   0                 4096        header (below)
//   4096              half_bytes  half 0: whole records (common/record.h bytes) back to back
//   4096 + half_bytes half_bytes  half 1: likewise
//
//   header: 0 magic "MFSMEM01" | 8 version u32 (1) | 12 flags u32 (0) | 16 file size u64 |
//           24 half_bytes u64 | 32..60 reserved (0) | 60 masked CRC32C of [0, 60)
//
// Records arrive into the *active* half. When it is full (or the store wants its records
// on disk), the halves switch: the active half becomes *sealed*, the store's flusher
// appends its records to the segment log and fsyncs, then clears it. A half is cleared by
// zeroing its first 4 bytes (a record length of 0 reads as "end"); after each append the
// 4 bytes after the record are zeroed too, so a half always ends explicitly.
//
// Nothing here is fsynced: the memory file survives a crash of the process (the page
// cache keeps every store into a shared mapping), not a crash of the machine. Records
// count as durable only once they are in the fsynced log.
//
// Recovery (Open): each half is decoded from its start until a record fails to decode
// (torn tail, zeros, stale bytes) or breaks the run of consecutive seqs. Both runs are
// returned; MergeRuns() orders them by seq and keeps the records after the log's
// durable seq, so nothing is appended to the log twice.
//
// Thread-safety: not thread-safe; the owner (SourceStore) serialises calls with its
// mutex. The one exception: the bytes of the sealed half (SealedRecords()) stay valid
// and unchanged until ClearSealed(), so a flusher may read them without the lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/record.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::d {

inline constexpr char kMemoryMagic[8] = {'M', 'F', 'S', 'M', 'E', 'M', '0', '1'};
inline constexpr uint32_t kMemoryFormatVersion = 1;
inline constexpr size_t kMemoryHeaderSize = 4096;
inline constexpr size_t kMemoryHeaderCrcOffset = 60;  // the CRC covers [0, 60)
inline constexpr uint64_t kMinMemoryHalfBytes = 64 * 1024;

// The good prefix of one half, as found by Open.
struct MemoryRun {
  std::vector<std::string> records;  // copies, consecutive seqs
  uint64_t first_seq = 0;            // 0 when the half held no record
  uint64_t stop_offset = 0;          // offset in the half where decoding stopped
  std::string stop_reason;           // why the bytes there are not the next record
};

struct MemoryRecovery {
  MemoryRun halves[2];
  bool created = false;  // no (valid) file was there: a new one was made
  std::string ToString() const;
};

// Records of both runs with seq > durable_seq, in seq order, each once. Stops at the
// first gap (seq != durable_seq + 1, + 2, ...): `*gap` (when given) describes it.
std::vector<std::string> MergeRuns(const MemoryRecovery& recovery, uint64_t durable_seq,
                                   std::string* gap = nullptr);

class MemoryFile {
 public:
  // Opens the memory file at `path`, or creates it (preallocated) with two halves of
  // `half_bytes` (a multiple of 4096, at least kMinMemoryHalfBytes). An existing valid
  // file keeps its own geometry (see half_bytes()); a file whose header is damaged is
  // Corruption (never overwritten silently). Fills *recovery with what the halves hold.
  // The file starts with half 0 active and both halves as found: call Reset() once
  // the recovered records are safe elsewhere.
  static common::Result<std::unique_ptr<MemoryFile>> Open(const std::string& path,
                                                          uint64_t half_bytes,
                                                          const common::DecodeLimits& limits,
                                                          MemoryRecovery* recovery);
  // Replaces the file at `path` by a fresh one (tmp, fsync, rename): used when the
  // configured size changed. The old mapping, if any, must be gone.
  static common::Status Create(const std::string& path, uint64_t half_bytes);

  ~MemoryFile();
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  uint64_t half_bytes() const { return half_bytes_; }

  // Empties both halves (after recovery), zeroing and touching every page; half 0 becomes active.
  void Reset();

  // Copies one whole record into the active half. False (nothing written) if it does
  // not fit in what is left; a record larger than a half never fits.
  bool TryAppend(std::string_view record);

  // Active half: records and bytes not yet switched out.
  size_t active_records() const { return index_[active_].size(); }
  uint64_t active_bytes() const { return used_[active_]; }
  // The active half becomes sealed; the other half (which must be empty: !has_sealed())
  // becomes active.
  void Switch();
  bool has_sealed() const { return sealed_; }
  // Views of the sealed half's records, valid until ClearSealed().
  const std::vector<std::string_view>& SealedRecords() const { return index_[1 - active_]; }
  uint64_t sealed_bytes() const { return sealed_ ? used_[1 - active_] : 0; }
  void ClearSealed();

 private:
  MemoryFile(common::UniqueFd fd, char* base, uint64_t file_bytes, uint64_t half_bytes);
  char* Half(int h) const { return base_ + kMemoryHeaderSize + h * half_bytes_; }
  void ClearHalf(int h);

  common::UniqueFd fd_;
  char* base_;  // the whole file, mapped shared
  uint64_t file_bytes_;
  uint64_t half_bytes_;
  int active_ = 0;
  bool sealed_ = false;  // the other half holds records waiting for the flusher
  uint64_t used_[2] = {0, 0};
  std::vector<std::string_view> index_[2];  // records of each half, views into base_
};

}  // namespace mirror::d
