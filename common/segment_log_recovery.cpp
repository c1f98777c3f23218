// SegmentLog::Open and recovery: what a crash can leave in the log directory, and
// what to do with it (the policy is written down in segment_log.h).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <utility>

#include "common/segment_log.h"

namespace mirror::common {

using segment_internal::PreadWindow;
using segment_internal::SegmentCorruption;

namespace {

Status SyncFd(int fd, const std::string& what) {
  if (fsync(fd) != 0) return Status::IOError("fsync " + what, errno);
  return Status::Ok();
}

std::string ParentOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// mkdir -p, fsyncing the parent of each directory it creates so the new entry survives
// a crash (the log's first segment would otherwise be durable in a directory that is not).
Status MakeDirs(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::InvalidArgument(dir + " exists and is not a directory");
  }
  if (errno != ENOENT) return Status::IOError("stat " + dir, errno);
  std::string parent = ParentOf(dir);
  if (parent != dir) MIRROR_RETURN_IF_ERROR(MakeDirs(parent));
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::IOError("mkdir " + dir, errno);
  }
  UniqueFd parent_fd(open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd) return Status::IOError("open " + parent, errno);
  return SyncFd(parent_fd.get(), parent);
}

}  // namespace

std::string SegmentLogRecovery::ToString() const {
  std::string s = std::to_string(segments.size()) + " segments, " +
                  std::to_string(last_segment_records) + " records in the last";
  if (dropped_bytes > 0) {
    s += "; dropped a torn tail of " + std::to_string(dropped_bytes) + " bytes at " +
         segments.back() + ":" + std::to_string(truncated_at) + " (" + dropped_reason + ")";
  }
  if (!removed_segment.empty()) s += "; removed " + removed_segment + " (torn header)";
  for (const auto& name : stray_files) s += "; ignored stray file " + name;
  return s;
}

SegmentLog::SegmentLog(PrivateTag, std::string dir, const SegmentLogOptions& options)
    : dir_(std::move(dir)), options_(options) {}

Result<std::unique_ptr<SegmentLog>> SegmentLog::Open(const std::string& dir,
                                                     const SegmentLogOptions& options) {
  MIRROR_RETURN_IF_ERROR(MakeDirs(dir));
  auto log = std::make_unique<SegmentLog>(PrivateTag{}, dir, options);
  log->dir_fd_.reset(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!log->dir_fd_) return Status::IOError("open " + dir, errno);
  MIRROR_RETURN_IF_ERROR(log->Recover());
  return log;
}

Status SegmentLog::ListSegments(std::vector<uint64_t>* firsts) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir_.c_str()), closedir);
  if (!d) return Status::IOError("opendir " + dir_, errno);
  while (true) {
    errno = 0;
    dirent* e = readdir(d.get());
    if (e == nullptr) break;
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    auto first = ParseSegmentFileName(name);
    struct stat st {};
    // Seq 0 and UINT64_MAX never start a segment; a non-file cannot be one.
    if (!first || *first == 0 || *first == UINT64_MAX ||
        fstatat(dir_fd_.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      recovery_.stray_files.emplace_back(name);
      continue;
    }
    firsts->push_back(*first);
  }
  if (errno != 0) return Status::IOError("readdir " + dir_, errno);
  std::sort(firsts->begin(), firsts->end());
  std::sort(recovery_.stray_files.begin(), recovery_.stray_files.end());
  return Status::Ok();
}

Result<UniqueFd> SegmentLog::OpenSegmentFile(uint64_t first_seq, int flags) const {
  std::string name = SegmentFileName(first_seq);
  UniqueFd fd(openat(dir_fd_.get(), name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Status::IOError("open " + dir_ + "/" + name, errno);
  return fd;
}

Result<uint64_t> SegmentLog::FileSize(int fd, uint64_t first_seq) const {
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    return Status::IOError("fstat " + dir_ + "/" + SegmentFileName(first_seq), errno);
  }
  return static_cast<uint64_t>(st.st_size);
}

// A crash between creating a segment and fsyncing its header leaves a file no longer
// than a header whose header does not decode. No record can be in it.
Result<bool> SegmentLog::IsTornEmptySegment(uint64_t first_seq) const {
  MIRROR_ASSIGN_OR_RETURN(UniqueFd fd, OpenSegmentFile(first_seq, O_RDONLY));
  MIRROR_ASSIGN_OR_RETURN(uint64_t size, FileSize(fd.get(), first_seq));
  if (size > kSegmentHeaderSize) return false;
  PreadWindow file(fd.get(), size, SegmentFileName(first_seq));
  MIRROR_ASSIGN_OR_RETURN(std::string_view head, file.Read(0, kSegmentHeaderSize));
  return !DecodeSegmentHeader(head).ok();
}

Status SegmentLog::Recover() {
  std::vector<uint64_t> firsts;
  MIRROR_RETURN_IF_ERROR(ListSegments(&firsts));
  std::optional<uint64_t> torn;
  if (!firsts.empty()) {
    MIRROR_ASSIGN_OR_RETURN(bool is_torn, IsTornEmptySegment(firsts.back()));
    if (is_torn) {
      torn = firsts.back();
      firsts.pop_back();
    }
  }
  // Check everything before changing anything, so a failed Open leaves the files alone.
  std::vector<Segment> segments;
  for (size_t i = 0; i + 1 < firsts.size(); ++i) {
    MIRROR_ASSIGN_OR_RETURN(UniqueFd fd, OpenSegmentFile(firsts[i], O_RDONLY));
    MIRROR_ASSIGN_OR_RETURN(uint64_t size, FileSize(fd.get(), firsts[i]));
    PreadWindow file(fd.get(), size, SegmentFileName(firsts[i]));
    MIRROR_RETURN_IF_ERROR(segment_internal::CheckSealedSegment(
        file, SegmentFileName(firsts[i]), firsts[i], firsts[i + 1], options_.limits));
    segments.push_back({firsts[i], size});
  }
  UniqueFd last_fd;
  uint64_t last_size = 0;
  segment_internal::TailScan scan;
  if (!firsts.empty()) {
    uint64_t first = firsts.back();
    std::string name = SegmentFileName(first);
    MIRROR_ASSIGN_OR_RETURN(last_fd, OpenSegmentFile(first, O_RDWR));
    MIRROR_ASSIGN_OR_RETURN(last_size, FileSize(last_fd.get(), first));
    PreadWindow file(last_fd.get(), last_size, name);
    MIRROR_ASSIGN_OR_RETURN(std::string_view head, file.Read(0, kSegmentHeaderSize));
    auto header_first = DecodeSegmentHeader(head);
    if (!header_first.ok()) return SegmentCorruption(name, 0, header_first.status().message());
    if (*header_first != first) {
      return SegmentCorruption(name, 16,
                               "header says first seq " + std::to_string(*header_first) +
                                   ", the name says " + std::to_string(first));
    }
    MIRROR_ASSIGN_OR_RETURN(scan,
                            segment_internal::ScanLastSegment(file, name, first, options_.limits));
    segments.push_back({first, scan.good_end});
  }
  return ApplyRecovery(torn, std::move(segments), std::move(last_fd), last_size, scan);
}

Status SegmentLog::ApplyRecovery(std::optional<uint64_t> torn, std::vector<Segment> segments,
                                 UniqueFd last_fd, uint64_t last_size,
                                 const segment_internal::TailScan& scan) {
  if (torn) {
    MIRROR_RETURN_IF_ERROR(RemoveSegment(*torn));
    recovery_.removed_segment = SegmentFileName(*torn);
  }
  if (last_fd) {
    std::string path = dir_ + "/" + SegmentFileName(segments.back().first_seq);
    if (scan.good_end < last_size) {
      if (ftruncate(last_fd.get(), static_cast<off_t>(scan.good_end)) != 0) {
        return Status::IOError("ftruncate " + path, errno);
      }
      recovery_.truncated_at = scan.good_end;
      recovery_.dropped_bytes = last_size - scan.good_end;
      recovery_.dropped_reason = scan.stop_reason;
    }
    // Also when nothing was cut: the records may be in the page cache only.
    MIRROR_RETURN_IF_ERROR(SyncFd(last_fd.get(), path));
  }
  if (torn) MIRROR_RETURN_IF_ERROR(SyncFd(dir_fd_.get(), dir_));
  segments_ = std::move(segments);
  for (const Segment& s : segments_) {
    total_bytes_ += s.bytes;
    recovery_.segments.push_back(SegmentFileName(s.first_seq));
  }
  active_fd_ = std::move(last_fd);
  active_records_ = scan.records;
  recovery_.last_segment_records = scan.records;
  durable_seq_ = last_seq();
  return StartDirect();
}

}  // namespace mirror::common
