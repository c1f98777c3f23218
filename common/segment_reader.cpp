#include "common/segment_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/crc32c.h"
#include "common/endian.h"

namespace mirror::common {

namespace {

// Large enough that a scan of small records costs few syscalls, small enough that an
// idle reader per source is cheap. A record larger than this grows the buffer.
constexpr size_t kReadChunk = 256 * 1024;

}  // namespace

std::string EncodeSegmentHeader(uint64_t first_seq) {
  std::string out(kSegmentMagic);
  AppendLE(out, kSegmentFormatVersion);
  AppendLE(out, uint32_t{0});  // flags
  AppendLE(out, first_seq);
  AppendLE(out, uint32_t{0});  // reserved
  AppendLE(out, crc32c::Mask(crc32c::Value(out.data(), out.size())));
  return out;
}

Result<uint64_t> DecodeSegmentHeader(std::string_view bytes) {
  if (bytes.size() < kSegmentHeaderSize) {
    return Status::Corruption("segment header truncated: " + std::to_string(bytes.size()) + " of " +
                              std::to_string(kSegmentHeaderSize) + " bytes");
  }
  if (bytes.substr(0, kSegmentMagic.size()) != kSegmentMagic) {
    return Status::Corruption("bad segment magic at byte 0");
  }
  uint32_t stored = crc32c::Unmask(LoadLE<uint32_t>(bytes.data() + kSegmentHeaderCrcOffset));
  uint32_t actual = crc32c::Value(bytes.data(), kSegmentHeaderCrcOffset);
  if (stored != actual) {
    return Status::Corruption("segment header CRC mismatch at byte " +
                              std::to_string(kSegmentHeaderCrcOffset));
  }
  auto version = LoadLE<uint32_t>(bytes.data() + 8);
  if (version != kSegmentFormatVersion) {
    return Status::Corruption("unsupported segment format version " + std::to_string(version) +
                              " at byte 8");
  }
  if (LoadLE<uint32_t>(bytes.data() + 12) != 0 || LoadLE<uint32_t>(bytes.data() + 24) != 0) {
    return Status::Corruption("unknown segment header flags or reserved bits at byte 12");
  }
  return LoadLE<uint64_t>(bytes.data() + 16);
}

std::string SegmentFileName(uint64_t first_seq) {
  std::string digits = std::to_string(first_seq);
  std::string name(kSegmentNameDigits - digits.size(), '0');
  name += digits;
  name += kSegmentSuffix;
  return name;
}

std::optional<uint64_t> ParseSegmentFileName(std::string_view name) {
  if (name.size() != kSegmentNameDigits + kSegmentSuffix.size() ||
      name.substr(kSegmentNameDigits) != kSegmentSuffix) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : name.substr(0, kSegmentNameDigits)) {
    if (c < '0' || c > '9') return std::nullopt;
    auto digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;  // would not fit
    value = value * 10 + digit;
  }
  return value;
}

namespace segment_internal {

PreadWindow::PreadWindow(int fd, uint64_t file_size, std::string name)
    : fd_(fd), file_size_(file_size), name_(std::move(name)) {}

Result<std::string_view> PreadWindow::Read(uint64_t off, size_t n) {
  if (off >= file_size_) return std::string_view();
  n = static_cast<size_t>(std::min<uint64_t>(n, file_size_ - off));
  if (off >= buf_off_ && off + n <= buf_off_ + buf_len_) {
    return std::string_view(buf_.data() + (off - buf_off_), n);
  }
  size_t want = static_cast<size_t>(std::min<uint64_t>(std::max(n, kReadChunk), file_size_ - off));
  if (buf_.size() < want) buf_.resize(want);
  buf_off_ = off;
  buf_len_ = 0;
  while (buf_len_ < want) {
    ssize_t got =
        pread(fd_, buf_.data() + buf_len_, want - buf_len_, static_cast<off_t>(off + buf_len_));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Status::IOError("pread " + name_, errno);
    if (got == 0) break;  // the file shrank since its size was taken: fewer bytes
    buf_len_ += static_cast<size_t>(got);
  }
  return std::string_view(buf_.data(), std::min(n, buf_len_));
}

Status SegmentCorruption(std::string_view name, uint64_t offset, std::string_view what) {
  std::string msg = "segment ";
  msg += name;
  msg += " at byte " + std::to_string(offset) + ": ";
  msg += what;
  return Status::Corruption(std::move(msg));
}

Status CheckSealedSegment(PreadWindow& file, std::string_view name, uint64_t first_seq,
                          uint64_t next_first_seq, const DecodeLimits& limits) {
  MIRROR_ASSIGN_OR_RETURN(std::string_view head,
                          file.Read(0, kSegmentHeaderSize + kRecordHeaderSize));
  auto first = DecodeSegmentHeader(head);
  if (!first.ok()) return SegmentCorruption(name, 0, first.status().message());
  if (*first != first_seq) {
    return SegmentCorruption(name, 16,
                             "header says first seq " + std::to_string(*first) +
                                 ", the name says " + std::to_string(first_seq));
  }
  if (head.size() == kSegmentHeaderSize) {
    return SegmentCorruption(name, kSegmentHeaderSize, "a sealed segment holds no record");
  }
  auto record = DecodeHeader(head.substr(kSegmentHeaderSize), limits);
  if (!record.ok()) return SegmentCorruption(name, kSegmentHeaderSize, record.status().message());
  if (record->meta.seq != first_seq) {
    return SegmentCorruption(name, kSegmentHeaderSize,
                             "first record has seq " + std::to_string(record->meta.seq) +
                                 ", expected " + std::to_string(first_seq));
  }
  // Each record takes at least a record header, so the size bounds the count.
  uint64_t count = next_first_seq - first_seq;
  if ((file.file_size() - kSegmentHeaderSize) / kRecordHeaderSize < count) {
    return SegmentCorruption(name, file.file_size(),
                             "the segment is too short to hold seqs " + std::to_string(first_seq) +
                                 ".." + std::to_string(next_first_seq - 1) +
                                 " (the next segment starts at " + std::to_string(next_first_seq) +
                                 ")");
  }
  return Status::Ok();
}

namespace {

// Looks for a record that decodes and whose seq is later than last_good, at any byte
// offset from `from` on. Records between `from` and a real one take at least a header
// each, which bounds the seq a real record at offset p can carry (and keeps a record
// that a torn write's payload happens to contain from passing for one); cheap checks on
// the header reject almost every offset before the CRC is computed.
Result<std::optional<uint64_t>> FindLaterRecord(PreadWindow& file, uint64_t from,
                                                uint64_t last_good, const DecodeLimits& limits) {
  for (uint64_t p = from; p + kRecordHeaderSize <= file.file_size(); ++p) {
    MIRROR_ASSIGN_OR_RETURN(std::string_view h, file.Read(p, kRecordHeaderSize));
    if (h.size() < kRecordHeaderSize) break;  // the file shrank under us
    auto length = LoadLE<uint32_t>(h.data());
    if (length < kRecordHeaderSize || length > limits.max_record_bytes ||
        length > file.file_size() - p) {
      continue;
    }
    auto type = LoadLE<uint16_t>(h.data() + 8);
    if (type == 0 || type > kMaxRecordType || LoadLE<uint16_t>(h.data() + 10) != 0 ||
        LoadLE<uint32_t>(h.data() + 12) != 0) {
      continue;
    }
    auto seq = LoadLE<uint64_t>(h.data() + 16);
    // At `from` itself a whole record with a gap in the sequence counts as well.
    uint64_t max_step = p == from ? UINT64_MAX : 1 + (p - from) / kRecordHeaderSize;
    if (seq <= last_good || seq - last_good > max_step) continue;
    MIRROR_ASSIGN_OR_RETURN(std::string_view bytes, file.Read(p, length));
    if (DecodeRecord(bytes, limits).ok()) return std::optional<uint64_t>(p);
  }
  return std::optional<uint64_t>();
}

}  // namespace

Result<TailScan> ScanLastSegment(PreadWindow& file, std::string_view name, uint64_t first_seq,
                                 const DecodeLimits& limits) {
  TailScan scan;
  scan.good_end = kSegmentHeaderSize;
  uint64_t next = first_seq;
  while (scan.good_end < file.file_size()) {
    MIRROR_ASSIGN_OR_RETURN(std::string_view head, file.Read(scan.good_end, kRecordHeaderSize));
    auto header = DecodeHeader(head, limits);
    if (!header.ok()) {
      scan.stop_reason = header.status().message();
      break;
    }
    if (header->meta.seq != next) {
      scan.stop_reason = "record has seq " + std::to_string(header->meta.seq) + ", expected " +
                         std::to_string(next);
      break;
    }
    MIRROR_ASSIGN_OR_RETURN(std::string_view bytes, file.Read(scan.good_end, header->length));
    if (auto rec = DecodeRecord(bytes, limits); !rec.ok()) {
      scan.stop_reason = rec.status().message();
      break;
    }
    scan.good_end += header->length;
    ++scan.records;
    ++next;
  }
  if (scan.good_end == file.file_size()) return scan;
  MIRROR_ASSIGN_OR_RETURN(std::string_view rest, file.Read(scan.good_end, 4));
  if (IsEndMarker(rest)) scan.stop_reason = "zeroed space (" + scan.stop_reason + ")";
  MIRROR_ASSIGN_OR_RETURN(auto later, FindLaterRecord(file, scan.good_end, next - 1, limits));
  if (later) {
    return SegmentCorruption(name, scan.good_end,
                             scan.stop_reason + "; a valid record of a later seq follows at byte " +
                                 std::to_string(*later) +
                                 ", so this is damage inside the log, not a torn tail");
  }
  return scan;
}

}  // namespace segment_internal

using segment_internal::SegmentCorruption;

SegmentReader::SegmentReader(std::string dir, std::vector<uint64_t> segment_firsts,
                             uint64_t from_seq, uint64_t through_seq, DecodeLimits limits)
    : dir_(std::move(dir)),
      firsts_(std::move(segment_firsts)),
      from_seq_(from_seq),
      through_seq_(through_seq),
      limits_(limits) {
  // Start in the last segment whose first seq is <= from_seq.
  auto it = std::upper_bound(firsts_.begin(), firsts_.end(), from_seq_);
  index_ = it == firsts_.begin() ? 0 : static_cast<size_t>(it - firsts_.begin()) - 1;
  done_ = firsts_.empty() || from_seq_ > through_seq_;
}

bool SegmentReader::Fail(Status status) {
  status_ = std::move(status);
  done_ = true;
  bytes_ = {};
  return false;
}

Status SegmentReader::OpenSegment() {
  name_ = SegmentFileName(firsts_[index_]);
  std::string path = dir_ + "/" + name_;
  fd_.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd_) {
    if (errno == ENOENT) return Status::NotFound("segment " + path + " was deleted");
    return Status::IOError("open " + path, errno);
  }
  struct stat st {};
  if (fstat(fd_.get(), &st) != 0) return Status::IOError("fstat " + path, errno);
  window_.emplace(fd_.get(), static_cast<uint64_t>(st.st_size), path);
  MIRROR_ASSIGN_OR_RETURN(std::string_view head, window_->Read(0, kSegmentHeaderSize));
  auto first = DecodeSegmentHeader(head);
  if (!first.ok()) return SegmentCorruption(name_, 0, first.status().message());
  if (*first != firsts_[index_]) {
    return SegmentCorruption(name_, 16,
                             "header says first seq " + std::to_string(*first) +
                                 ", the name says " + std::to_string(firsts_[index_]));
  }
  next_seq_ = *first;
  offset_ = kSegmentHeaderSize;
  return Status::Ok();
}

Status SegmentReader::CheckSegmentEnd() {
  if (offset_ != window_->file_size()) {
    return SegmentCorruption(name_, offset_,
                             std::to_string(window_->file_size() - offset_) +
                                 " unexpected bytes after the last record (seq " +
                                 std::to_string(next_seq_ - 1) + ") of a sealed segment");
  }
  return Status::Ok();
}

Status SegmentReader::ReadHeader(uint32_t* length) {
  MIRROR_ASSIGN_OR_RETURN(std::string_view head, window_->Read(offset_, kRecordHeaderSize));
  if (head.empty()) {
    return SegmentCorruption(name_, offset_,
                             "segment ends before seq " + std::to_string(next_seq_));
  }
  auto header = DecodeHeader(head, limits_);
  if (!header.ok()) return SegmentCorruption(name_, offset_, header.status().message());
  if (header->meta.seq != next_seq_) {
    return SegmentCorruption(name_, offset_,
                             "record has seq " + std::to_string(header->meta.seq) + ", expected " +
                                 std::to_string(next_seq_));
  }
  *length = header->length;
  return Status::Ok();
}

bool SegmentReader::Next() {
  bytes_ = {};
  while (!done_) {
    if (next_seq_ > through_seq_ && window_) {
      done_ = true;
      return false;
    }
    if (!window_) {
      if (Status s = OpenSegment(); !s.ok()) return Fail(std::move(s));
      continue;
    }
    if (index_ + 1 < firsts_.size() && next_seq_ == firsts_[index_ + 1]) {
      if (Status s = CheckSegmentEnd(); !s.ok()) return Fail(std::move(s));
      ++index_;
      window_.reset();
      fd_.reset();
      continue;
    }
    uint32_t length = 0;
    if (Status s = ReadHeader(&length); !s.ok()) return Fail(std::move(s));
    if (next_seq_ < from_seq_) {  // skipping to from_seq: the header is enough
      offset_ += length;
      ++next_seq_;
      continue;
    }
    auto bytes = window_->Read(offset_, length);
    if (!bytes.ok()) return Fail(bytes.status());
    auto rec = DecodeRecord(*bytes, limits_);
    if (!rec.ok()) return Fail(SegmentCorruption(name_, offset_, rec.status().message()));
    bytes_ = *bytes;
    record_ = std::move(*rec);
    record_offset_ = offset_;
    offset_ += length;
    ++next_seq_;
    return true;
  }
  return false;
}

}  // namespace mirror::common
