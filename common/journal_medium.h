// JournalMedium: the bytes under the journal, behind a small interface so that a
// write()-based store can replace the mmap one (as LevelDB's log did in 1.15) and both
// can be measured (bench/bench_journal.cpp).
//
// Two implementations:
//   MmapMedium   maps the file MAP_SHARED | MAP_POPULATE; Write is memcpy into the
//                mapping, Read is zero-copy, Sync is msync(MS_SYNC) of the page range.
//   PwriteMedium Write is pwritev, Read is pread into the caller's scratch string,
//                Sync is fdatasync (of the whole file; the range is a hint),
//                WriteDurably is pwritev2(RWF_DSYNC) (just that range).
//
// A medium never changes the file's size. Tests wrap a medium to inject failures.
//
// Thread-safety: Write, Read and Sync may be called from many threads at once as long
// as concurrent Writes touch disjoint ranges and nobody reads a range while it is
// being written (the journal guarantees both).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::common {

enum class JournalMediumKind { kMmap, kPwrite };

std::string_view JournalMediumName(JournalMediumKind kind);  // "mmap" or "pwrite"

class JournalMedium {
 public:
  virtual ~JournalMedium() = default;

  // Size in bytes; fixed for the medium's life.
  virtual uint64_t size() const = 0;
  // The file's path, for messages.
  virtual const std::string& name() const = 0;

  // Copies `pieces` one after another to [offset, offset + total size).
  virtual Status Write(uint64_t offset, std::span<const std::string_view> pieces) = 0;

  // Returns [offset, offset + n). The view points into the mapping (mmap: valid for the
  // medium's life) or into `*scratch` (valid until scratch changes). `scratch` must not
  // be null.
  virtual Result<std::string_view> Read(uint64_t offset, uint64_t n,
                                        std::string* scratch) const = 0;

  // Makes [offset, offset + length) durable.
  virtual Status Sync(uint64_t offset, uint64_t length) = 0;

  // Write, then make just those bytes durable. The default is Write + Sync; the pwrite
  // medium overrides it with pwritev2(RWF_DSYNC), which flushes only this range where
  // its Sync (fdatasync) would flush every dirty page of the file. The journal writes
  // its header slots this way, so a Free does not wait for the whole ring to reach disk.
  virtual Status WriteDurably(uint64_t offset, std::span<const std::string_view> pieces);
};

// Both take ownership of `fd` (open O_RDWR) and use [0, size) of the file, which must
// be at least `size` bytes long. `name` is the path, for messages.
Result<std::unique_ptr<JournalMedium>> NewMmapMedium(UniqueFd fd, uint64_t size, std::string name);
Result<std::unique_ptr<JournalMedium>> NewPwriteMedium(UniqueFd fd, uint64_t size,
                                                       std::string name);

// Opens `path` O_RDWR and returns a medium of the given kind over the whole file.
Result<std::unique_ptr<JournalMedium>> OpenJournalMedium(const std::string& path,
                                                         JournalMediumKind kind);
// As above, over the first `size` bytes of an already open file.
Result<std::unique_ptr<JournalMedium>> NewJournalMedium(JournalMediumKind kind, UniqueFd fd,
                                                        uint64_t size, std::string name);

}  // namespace mirror::common
