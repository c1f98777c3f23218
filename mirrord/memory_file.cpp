#include "mirrord/memory_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/crc32c.h"
#include "common/endian.h"

namespace mirror::d {
namespace {

using common::DecodeLimits;
using common::Result;
using common::Status;
using common::UniqueFd;

std::string EncodeHeader(uint64_t file_bytes, uint64_t half_bytes) {
  std::string h(kMemoryHeaderSize, '\0');
  std::memcpy(h.data(), kMemoryMagic, 8);
  common::StoreLE<uint32_t>(h.data() + 8, kMemoryFormatVersion);
  common::StoreLE<uint64_t>(h.data() + 16, file_bytes);
  common::StoreLE<uint64_t>(h.data() + 24, half_bytes);
  uint32_t crc = common::crc32c::Mask(common::crc32c::Value(h.data(), kMemoryHeaderCrcOffset));
  common::StoreLE<uint32_t>(h.data() + kMemoryHeaderCrcOffset, crc);
  return h;
}

// Returns half_bytes after checking the header against the file size.
Result<uint64_t> DecodeHeader(const char* h, uint64_t file_bytes, const std::string& path) {
  auto bad = [&](const std::string& what) {
    return Status::Corruption("memory file " + path + ": header: " + what);
  };
  if (std::memcmp(h, kMemoryMagic, 8) != 0) return bad("bad magic at byte 0");
  uint32_t crc = common::crc32c::Mask(common::crc32c::Value(h, kMemoryHeaderCrcOffset));
  if (common::LoadLE<uint32_t>(h + kMemoryHeaderCrcOffset) != crc) return bad("bad CRC at byte 60");
  if (common::LoadLE<uint32_t>(h + 8) != kMemoryFormatVersion) {
    return Status::Mismatch("memory file " + path + ": version " +
                            std::to_string(common::LoadLE<uint32_t>(h + 8)) + " is not supported");
  }
  const uint64_t size = common::LoadLE<uint64_t>(h + 16);
  const uint64_t half = common::LoadLE<uint64_t>(h + 24);
  if (common::LoadLE<uint32_t>(h + 12) != 0) return bad("flags at byte 12 are not 0");
  if (half < kMinMemoryHalfBytes || half % 4096 != 0 || size != kMemoryHeaderSize + 2 * half) {
    return bad("geometry: file size " + std::to_string(size) + ", half " + std::to_string(half));
  }
  if (size != file_bytes) {
    return bad("says " + std::to_string(size) + " bytes, the file has " +
               std::to_string(file_bytes));
  }
  return half;
}

Status CheckHalfBytes(uint64_t half_bytes) {
  if (half_bytes < kMinMemoryHalfBytes || half_bytes % 4096 != 0) {
    return Status::InvalidArgument("memory half size " + std::to_string(half_bytes) +
                                   " must be a multiple of 4096 and at least " +
                                   std::to_string(kMinMemoryHalfBytes));
  }
  return Status::Ok();
}

// The consecutive records at the start of one half.
MemoryRun ScanHalf(const char* half, uint64_t half_bytes, const DecodeLimits& limits) {
  MemoryRun run;
  uint64_t off = 0;
  uint64_t next_seq = 0;
  while (true) {
    std::string_view rest(half + off, half_bytes - off);
    if (rest.size() < 4 || common::IsEndMarker(rest.substr(0, 4))) {
      run.stop_reason = "end of data";
      break;
    }
    Result<common::Record> rec = common::DecodeRecord(rest, limits);
    if (!rec.ok()) {
      run.stop_reason = rec.status().message();
      break;
    }
    if (next_seq != 0 && rec->meta.seq != next_seq) {
      run.stop_reason = "seq " + std::to_string(rec->meta.seq) + " where " +
                        std::to_string(next_seq) + " was next (stale bytes)";
      break;
    }
    const uint32_t length = common::LoadLE<uint32_t>(rest.data());
    if (run.records.empty()) run.first_seq = rec->meta.seq;
    run.records.emplace_back(rest.substr(0, length));
    next_seq = rec->meta.seq + 1;
    off += length;
  }
  run.stop_offset = off;
  return run;
}

}  // namespace

std::string MemoryRecovery::ToString() const {
  std::string out = created ? "memory file created" : "memory file recovered";
  for (int h = 0; h < 2; ++h) {
    const MemoryRun& r = halves[h];
    out += "; half " + std::to_string(h) + ": " + std::to_string(r.records.size()) + " records";
    if (!r.records.empty()) {
      out += " (seq " + std::to_string(r.first_seq) + ".." +
             std::to_string(r.first_seq + r.records.size() - 1) + ")";
    }
    out += ", stopped at byte " + std::to_string(r.stop_offset) + ": " + r.stop_reason;
  }
  return out;
}

std::vector<std::string> MergeRuns(const MemoryRecovery& recovery, uint64_t durable_seq,
                                   std::string* gap) {
  const MemoryRun* runs[2] = {&recovery.halves[0], &recovery.halves[1]};
  if (runs[0]->first_seq > runs[1]->first_seq) std::swap(runs[0], runs[1]);
  std::vector<std::string> out;
  uint64_t next = durable_seq + 1;
  for (const MemoryRun* run : runs) {
    if (run->records.empty()) continue;
    const uint64_t last = run->first_seq + run->records.size() - 1;
    if (last < next) continue;  // all already in the log
    if (run->first_seq > next) {
      if (gap != nullptr) {
        *gap = "memory holds seq " + std::to_string(run->first_seq) + ".." + std::to_string(last) +
               " but seq " + std::to_string(next) + " is missing; those records are dropped";
      }
      break;
    }
    for (uint64_t s = next; s <= last; ++s) out.push_back(run->records[s - run->first_seq]);
    next = last + 1;
  }
  return out;
}

Status MemoryFile::Create(const std::string& path, uint64_t half_bytes) {
  MIRROR_RETURN_IF_ERROR(CheckHalfBytes(half_bytes));
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Status::IOError("create " + tmp, errno);
  const uint64_t size = kMemoryHeaderSize + 2 * half_bytes;
  // Preallocated, so a store into the mapping never meets ENOSPC (SIGBUS).
  if (int err = posix_fallocate(fd.get(), 0, static_cast<off_t>(size)); err != 0) {
    ::unlink(tmp.c_str());
    return Status::IOError("preallocate " + tmp, err);
  }
  const std::string header = EncodeHeader(size, half_bytes);
  if (::pwrite(fd.get(), header.data(), header.size(), 0) != static_cast<ssize_t>(header.size())) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::IOError("write header of " + tmp, err);
  }
  if (::fsync(fd.get()) != 0) return Status::IOError("fsync " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::IOError("rename " + tmp, errno);
  const std::string dir = path.substr(0, path.find_last_of('/') + 1);
  UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd || ::fsync(dfd.get()) != 0) return Status::IOError("fsync directory " + dir, errno);
  return Status::Ok();
}

Result<std::unique_ptr<MemoryFile>> MemoryFile::Open(const std::string& path, uint64_t half_bytes,
                                                     const DecodeLimits& limits,
                                                     MemoryRecovery* recovery) {
  *recovery = MemoryRecovery{};
  MIRROR_RETURN_IF_ERROR(CheckHalfBytes(half_bytes));
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!fd && errno == ENOENT) {
    MIRROR_RETURN_IF_ERROR(Create(path, half_bytes));
    recovery->created = true;
    fd.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  }
  if (!fd) return Status::IOError("open " + path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::IOError("fstat " + path, errno);
  if (!S_ISREG(st.st_mode)) return Status::Corruption("memory file " + path + " is not a file");
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < kMemoryHeaderSize) {
    return Status::Corruption("memory file " + path + ": " + std::to_string(file_bytes) +
                              " bytes, shorter than its header");
  }
  void* map = ::mmap(nullptr, file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return Status::IOError("mmap " + path, errno);
  char* base = static_cast<char*>(map);
  Result<uint64_t> half = DecodeHeader(base, file_bytes, path);
  if (!half.ok()) {
    ::munmap(map, file_bytes);
    return half.status();
  }
  std::unique_ptr<MemoryFile> file(new MemoryFile(std::move(fd), base, file_bytes, *half));
  for (int h = 0; h < 2; ++h) recovery->halves[h] = ScanHalf(file->Half(h), *half, limits);
  return file;
}

MemoryFile::MemoryFile(UniqueFd fd, char* base, uint64_t file_bytes, uint64_t half_bytes)
    : fd_(std::move(fd)), base_(base), file_bytes_(file_bytes), half_bytes_(half_bytes) {}

MemoryFile::~MemoryFile() { ::munmap(base_, file_bytes_); }

void MemoryFile::ClearHalf(int h) {
  // One aligned 4-byte store: a half is either cleared or not, whatever the crash.
  common::StoreLE<uint32_t>(Half(h), 0);
  used_[h] = 0;
  index_[h].clear();
}

void MemoryFile::Reset() {
  // Zeroing every byte, not just each half's first record length, also faults in and
  // dirties every page now: the first records of a session then cost a copy, not a page
  // fault each (a new, preallocated file reads back zeros through the filesystem first).
  // The price: the whole file is dirty once, and the next syncfs writes it. Prefaulting
  // read-only (MADV_POPULATE_READ) dirties nothing but leaves a fault per page on the
  // first store: one-source bursts ran at 0.43-0.49x of plain TCP that way, 0.55-0.73x
  // with this (bench_mirrord_ingest).
  std::memset(Half(0), 0, 2 * half_bytes_);
  ClearHalf(0);
  ClearHalf(1);
  active_ = 0;
  sealed_ = false;
}

bool MemoryFile::TryAppend(std::string_view record) {
  const uint64_t used = used_[active_];
  if (record.size() > half_bytes_ - used) return false;
  char* at = Half(active_) + used;
  std::memcpy(at, record.data(), record.size());
  const uint64_t end = used + record.size();
  // An explicit end after the record, so stale bytes of an earlier fill never follow it.
  if (half_bytes_ - end >= 4) common::StoreLE<uint32_t>(Half(active_) + end, 0);
  used_[active_] = end;
  index_[active_].emplace_back(at, record.size());
  return true;
}

void MemoryFile::Switch() {
  // The caller checks !has_sealed(); a switch over a sealed half would lose its records.
  if (sealed_) std::abort();
  active_ = 1 - active_;
  sealed_ = true;
}

void MemoryFile::ClearSealed() {
  if (!sealed_) return;
  ClearHalf(1 - active_);
  sealed_ = false;
}

}  // namespace mirror::d
