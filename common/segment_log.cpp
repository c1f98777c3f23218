// SegmentLog: appending, syncing, deleting and handing out readers. Open and recovery
// live in segment_log_recovery.cpp.
#include "common/segment_log.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/endian.h"

namespace mirror::common {

namespace {

// Direct appends: O_DIRECT needs offsets, lengths and buffers aligned to the device's
// logical block size; 4096 covers 512- and 4096-byte sectors alike.
constexpr size_t kDirectAlign = 4096;
constexpr size_t kStagingBytes = 4u << 20;

Status PwriteAll(int fd, std::string_view bytes, uint64_t off, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IOError("pwrite " + path, n < 0 ? errno : EIO);
    bytes.remove_prefix(static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

// Writes all of iov[0, count) at `off`, resuming after short writes. Modifies iov.
Status PwritevAll(int fd, iovec* iov, size_t count, uint64_t off, const std::string& path) {
  while (count > 0) {
    ssize_t n = pwritev(fd, iov, static_cast<int>(count), static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IOError("pwritev " + path, n < 0 ? errno : EIO);
    off += static_cast<uint64_t>(n);
    auto left = static_cast<size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return Status::Ok();
}

}  // namespace

uint64_t SegmentLog::first_seq() const {
  if (segments_.empty() || (segments_.size() == 1 && active_records_ == 0)) return 0;
  return segments_.front().first_seq;
}

uint64_t SegmentLog::last_seq() const {
  return segments_.empty() ? 0 : segments_.back().first_seq + active_records_ - 1;
}

// ---- Appending ------------------------------------------------------------------------

Status SegmentLog::Sticky(Status status) {
  if (!status.ok() && error_.ok()) error_ = status;
  return status;
}

Status SegmentLog::SyncDir() {
  if (fsync(dir_fd_.get()) != 0) return Sticky(Status::IOError("fsync " + dir_, errno));
  return Status::Ok();
}

Status SegmentLog::CreateSegment(uint64_t first_seq) {
  std::string path = dir_ + "/" + SegmentFileName(first_seq);
  UniqueFd fd(openat(dir_fd_.get(), SegmentFileName(first_seq).c_str(),
                     O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) return Sticky(Status::IOError("create " + path, errno));
  std::string header = EncodeSegmentHeader(first_seq);
  if (Status s = PwriteAll(fd.get(), header, 0, path); !s.ok()) return Sticky(s);
  if (fsync(fd.get()) != 0) return Sticky(Status::IOError("fsync " + path, errno));
  MIRROR_RETURN_IF_ERROR(SyncDir());
  segments_.push_back({first_seq, header.size()});
  total_bytes_ += header.size();
  active_fd_ = std::move(fd);
  active_records_ = 0;
  dirty_ = false;
  return StartDirect();
}

Status SegmentLog::StartDirect() {
  direct_fd_.reset();
  tail_len_ = 0;
  if (!options_.direct_io || direct_refused_ || segments_.empty() || !active_fd_) {
    return Status::Ok();
  }
  const Segment& active = segments_.back();
  const std::string name = SegmentFileName(active.first_seq);
  const std::string path = dir_ + "/" + name;
  UniqueFd fd(openat(dir_fd_.get(), name.c_str(), O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno != EINVAL) return Sticky(Status::IOError("open O_DIRECT " + path, errno));
    direct_refused_ = true;  // e.g. tmpfs: buffered appends, as without direct_io
    return Status::Ok();
  }
  if (!staging_) {
    staging_.reset(static_cast<char*>(std::aligned_alloc(kDirectAlign, kStagingBytes)));
    if (!staging_) return Sticky(Status::IOError("staging buffer for " + dir_, ENOMEM));
  }
  const size_t tail = active.bytes % kDirectAlign;
  segment_internal::PreadWindow file(active_fd_.get(), active.bytes, path);
  Result<std::string_view> bytes = file.Read(active.bytes - tail, tail);
  if (!bytes.ok()) return Sticky(bytes.status());
  if (bytes->size() != tail) return Sticky(Status::IOError("short read of " + path, EIO));
  std::memcpy(staging_.get(), bytes->data(), tail);
  tail_len_ = tail;
  direct_fd_ = std::move(fd);
  return Status::Ok();
}

// Seals the active segment (fdatasync: recovery trusts sealed segments to be whole)
// and starts the next one.
Status SegmentLog::Roll(uint64_t next_first_seq) {
  if (dirty_ && fdatasync(write_fd()) != 0) {
    return Sticky(Status::IOError(
        "fdatasync " + dir_ + "/" + SegmentFileName(segments_.back().first_seq), errno));
  }
  dirty_ = false;
  durable_seq_ = last_seq();
  direct_fd_.reset();
  active_fd_.reset();
  return CreateSegment(next_first_seq);
}

Status SegmentLog::CheckRecords(std::span<const std::string_view> records, bool decode,
                                std::vector<uint64_t>* seqs) const {
  uint64_t expect = next_seq();
  for (size_t i = 0; i < records.size(); ++i) {
    auto where = [&] {
      return records.size() == 1 ? "" : "batch item " + std::to_string(i) + ": ";
    };
    if (decode) {
      auto rec = DecodeRecord(records[i], options_.limits);
      if (!rec.ok()) return Status::Corruption(where() + rec.status().message());
    } else if (records[i].size() < kRecordHeaderSize) {
      return Status::InvalidArgument(where() + "shorter than a record header");
    }
    uint64_t length = LoadLE<uint32_t>(records[i].data());
    if (length != records[i].size()) {
      return Status::InvalidArgument(where() + std::to_string(records[i].size()) +
                                     " bytes given for a record of " + std::to_string(length));
    }
    uint64_t seq = LoadLE<uint64_t>(records[i].data() + 16);
    if (seq == 0 || seq == UINT64_MAX) {
      return Status::InvalidArgument(where() + "seq " + std::to_string(seq) +
                                     " is reserved and never valid in a log");
    }
    if (expect != 0 && seq != expect) {
      return Status::InvalidArgument(where() + "record seq " + std::to_string(seq) +
                                     " does not follow the last seq " + std::to_string(expect - 1) +
                                     " (expected " + std::to_string(expect) + ")");
    }
    seqs->push_back(seq);
    expect = seq + 1;
  }
  return Status::Ok();
}

Status SegmentLog::Append(std::string_view record_bytes) {
  return AppendBatch(std::span<const std::string_view>(&record_bytes, 1));
}

Status SegmentLog::AppendBatch(std::span<const std::string_view> records) {
  return AppendChecked(records, /*decode=*/true);
}

Status SegmentLog::AppendDecodedBatch(std::span<const std::string_view> records) {
  return AppendChecked(records, /*decode=*/false);
}

Status SegmentLog::AppendChecked(std::span<const std::string_view> records, bool decode) {
  MIRROR_RETURN_IF_ERROR(error_);
  std::vector<uint64_t> seqs;
  seqs.reserve(records.size());
  MIRROR_RETURN_IF_ERROR(CheckRecords(records, decode, &seqs));
  size_t i = 0;
  while (i < records.size()) {
    if (segments_.empty()) {
      MIRROR_RETURN_IF_ERROR(CreateSegment(seqs[i]));
    } else if (active_records_ > 0 &&
               segments_.back().bytes + records[i].size() > options_.segment_bytes) {
      MIRROR_RETURN_IF_ERROR(Roll(seqs[i]));
    }
    // Take what fits in the active segment; an empty one takes at least one record.
    size_t j = i;
    uint64_t bytes = segments_.back().bytes;
    while (j < records.size() && ((j == i && active_records_ == 0) ||
                                  bytes + records[j].size() <= options_.segment_bytes)) {
      bytes += records[j].size();
      ++j;
    }
    MIRROR_RETURN_IF_ERROR(WriteRecords(records.subspan(i, j - i)));
    i = j;
  }
  return Status::Ok();
}

Status SegmentLog::WriteRecords(std::span<const std::string_view> records) {
  if (direct_fd_) return WriteRecordsDirect(records);
  Segment& active = segments_.back();
  std::string path = dir_ + "/" + SegmentFileName(active.first_seq);
  std::vector<iovec> iov;
  for (size_t i = 0; i < records.size();) {
    iov.clear();
    uint64_t bytes = 0;
    for (; i < records.size() && iov.size() < IOV_MAX; ++i) {
      iov.push_back({const_cast<char*>(records[i].data()), records[i].size()});
      bytes += records[i].size();
    }
    dirty_ = true;
    if (Status s = PwritevAll(active_fd_.get(), iov.data(), iov.size(), active.bytes, path);
        !s.ok()) {
      return Sticky(s);
    }
    active.bytes += bytes;
    total_bytes_ += bytes;
    active_records_ += iov.size();
  }
  return Status::Ok();
}

// The records go through the staging buffer, after the segment's last partial block,
// in aligned writes; the last one is padded with zeros, then cut off by ftruncate.
Status SegmentLog::WriteRecordsDirect(std::span<const std::string_view> records) {
  Segment& active = segments_.back();
  const std::string path = dir_ + "/" + SegmentFileName(active.first_seq);
  char* buf = staging_.get();
  uint64_t base = active.bytes - tail_len_;  // file offset of buf[0]: aligned
  size_t fill = tail_len_;
  uint64_t bytes = 0;
  dirty_ = true;
  for (std::string_view rec : records) {
    bytes += rec.size();
    while (!rec.empty()) {
      const size_t n = std::min(rec.size(), kStagingBytes - fill);
      std::memcpy(buf + fill, rec.data(), n);
      fill += n;
      rec.remove_prefix(n);
      if (fill == kStagingBytes) {
        MIRROR_RETURN_IF_ERROR(Sticky(PwriteAll(direct_fd_.get(), {buf, fill}, base, path)));
        base += fill;
        fill = 0;
      }
    }
  }
  const uint64_t end = base + fill;
  const size_t padded = (fill + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  if (padded > 0) {
    std::memset(buf + fill, 0, padded - fill);
    MIRROR_RETURN_IF_ERROR(Sticky(PwriteAll(direct_fd_.get(), {buf, padded}, base, path)));
    if (padded > fill && ftruncate(active_fd_.get(), static_cast<off_t>(end)) != 0) {
      return Sticky(Status::IOError("ftruncate " + path, errno));
    }
  }
  tail_len_ = fill % kDirectAlign;
  std::memmove(buf, buf + fill - tail_len_, tail_len_);
  active.bytes = end;
  total_bytes_ += bytes;
  active_records_ += records.size();
  return Status::Ok();
}

Status SegmentLog::Sync() {
  MIRROR_RETURN_IF_ERROR(error_);
  if (!dirty_) return Status::Ok();
  if (fdatasync(write_fd()) != 0) {
    return Sticky(Status::IOError(
        "fdatasync " + dir_ + "/" + SegmentFileName(segments_.back().first_seq), errno));
  }
  dirty_ = false;
  durable_seq_ = last_seq();
  return Status::Ok();
}

// ---- Sequence start and deletion ------------------------------------------------------

Status SegmentLog::RemoveSegment(uint64_t first_seq) {
  std::string name = SegmentFileName(first_seq);
  if (unlinkat(dir_fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
    return Status::IOError("unlink " + dir_ + "/" + name, errno);
  }
  return Status::Ok();
}

Status SegmentLog::SetNextSeq(uint64_t next_seq) {
  MIRROR_RETURN_IF_ERROR(error_);
  if (next_seq == 0 || next_seq == UINT64_MAX) {
    return Status::InvalidArgument("seq " + std::to_string(next_seq) + " is never valid in a log");
  }
  if (!empty()) {
    return Status::InvalidArgument("the log holds seqs " + std::to_string(first_seq()) + ".." +
                                   std::to_string(last_seq()) + "; SetNextSeq needs an empty log");
  }
  if (!segments_.empty()) {
    if (segments_.back().first_seq == next_seq) return Status::Ok();
    // Remove the old empty segment first: were both on disk at a crash, the older name
    // would look like a sealed segment without records.
    direct_fd_.reset();
    active_fd_.reset();
    MIRROR_RETURN_IF_ERROR(Sticky(RemoveSegment(segments_.back().first_seq)));
    total_bytes_ -= segments_.back().bytes;
    segments_.clear();
    MIRROR_RETURN_IF_ERROR(SyncDir());
  }
  MIRROR_RETURN_IF_ERROR(CreateSegment(next_seq));
  durable_seq_ = next_seq - 1;
  return Status::Ok();
}

Status SegmentLog::DeleteThrough(uint64_t seq) {
  MIRROR_RETURN_IF_ERROR(error_);
  if (empty() || seq < first_seq()) return Status::Ok();
  if (active_records_ > 0 && last_seq() <= seq) {
    // The new empty segment exists (durably) before any old one goes, so a crash in
    // between leaves a continuous log.
    MIRROR_RETURN_IF_ERROR(Roll(last_seq() + 1));
  }
  // Oldest first, so that a crash midway leaves a continuous suffix.
  size_t removed = 0;
  Status status;
  while (removed + 1 < segments_.size() && segments_[removed + 1].first_seq - 1 <= seq) {
    status = RemoveSegment(segments_[removed].first_seq);
    if (!status.ok()) break;
    total_bytes_ -= segments_[removed].bytes;
    ++removed;
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<ptrdiff_t>(removed));
  if (removed > 0) {
    Status synced = SyncDir();
    if (status.ok()) status = synced;
  }
  return status;
}

Result<std::unique_ptr<SegmentReader>> SegmentLog::NewReader(uint64_t from_seq,
                                                             uint64_t through_seq) const {
  if (empty() || from_seq < first_seq() || from_seq > last_seq()) {
    std::string range = empty() ? "the log is empty"
                                : "the log holds " + std::to_string(first_seq()) + ".." +
                                      std::to_string(last_seq());
    return Status::NotFound("seq " + std::to_string(from_seq) + " is not in the log " + dir_ +
                            " (" + range + ")");
  }
  through_seq = std::min(through_seq, last_seq());
  if (through_seq < from_seq) {
    return Status::InvalidArgument("read through seq " + std::to_string(through_seq) +
                                   " before from seq " + std::to_string(from_seq));
  }
  std::vector<uint64_t> firsts;
  for (const Segment& s : segments_) firsts.push_back(s.first_seq);
  return std::make_unique<SegmentReader>(dir_, std::move(firsts), from_seq, through_seq,
                                         options_.limits);
}

}  // namespace mirror::common