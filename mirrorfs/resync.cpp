#include "mirrorfs/resync.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"
#include "mirrorfs/name_scan.h"
#include "mirrorfs/resync_plan.h"

namespace mirror::fs {
namespace {

using common::Status;
constexpr common::Timespec kOmit{0, common::kTimeOmit};

common::Timespec MtimeOf(const struct stat& st) {
  return {static_cast<int64_t>(st.st_mtim.tv_sec), static_cast<uint32_t>(st.st_mtim.tv_nsec)};
}

// True when [offset, offset + length) of `fd` holds no data (a hole, or past the data).
bool IsHole(int fd, uint64_t offset, uint64_t length) {
  off_t data = lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) return errno == ENXIO;
  return static_cast<uint64_t>(data) >= offset + length;
}

Status PreadAll(int fd, char* buf, size_t n, uint64_t offset, size_t* got) {
  *got = 0;
  while (*got < n) {
    ssize_t r = pread(fd, buf + *got, n - *got, static_cast<off_t>(offset + *got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::IOError("read", errno);
    if (r == 0) break;
    *got += static_cast<size_t>(r);
  }
  return Status::Ok();
}

// The file's current path, under the freeze: the planned one if it still names the
// inode, else wherever a client moved it; empty if it is gone.
common::Result<std::string> CurrentPath(int root, const DataTask& task) {
  struct stat st;
  if (fstatat(root, task.path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == task.dev &&
      st.st_ino == task.ino) {
    return task.path;
  }
  struct stat target {};
  target.st_dev = task.dev;
  target.st_ino = task.ino;
  target.st_mode = S_IFREG;
  auto found = ScanForPath(root, target);
  if (!found.ok() && found.status().code() == common::Code::kNotFound) return std::string();
  return found;
}

}  // namespace

Resyncer::Resyncer(common::Journal& journal, const std::string& backing, Freeze freeze,
                   ResyncLink& link)
    : journal_(journal), backing_(backing), freeze_(std::move(freeze)), link_(link) {}

ResyncProgress Resyncer::progress() const {
  std::lock_guard lock(mu_);
  return progress_;
}

void Resyncer::Step(const std::function<void(ResyncProgress&)>& change) {
  ResyncProgress copy;
  {
    std::lock_guard lock(mu_);
    change(progress_);
    progress_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    copy = progress_;
  }
  if (report_) report_(copy);
}

Status Resyncer::Append(const common::Op& op) {
  auto seq = journal_.Append(op);
  return seq.ok() ? Status::Ok() : seq.status().Annotate("resync: journal");
}

Status Resyncer::Run() {
  start_ = std::chrono::steady_clock::now();
  common::UniqueFd root(open(backing_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Status::IOError("open " + backing_, errno);
  backing_fd_ = root.get();
  std::vector<DataTask> tasks;
  MIRROR_RETURN_IF_ERROR(NamespacePhase(&tasks));
  for (const DataTask& task : tasks) {
    MIRROR_RETURN_IF_ERROR(SyncFile(task).Annotate("resync of " + task.path));
    Step([](ResyncProgress& p) { ++p.files_done; });
  }
  MIRROR_RETURN_IF_ERROR(link_.FinishResync(journal_.released_seq()));
  link_.Notify();
  Step([](ResyncProgress& p) { p.phase = "done"; });
  return Status::Ok();
}

// Everything frozen: one point P of the stream, at which the image is compared.
Status Resyncer::NamespacePhase(std::vector<DataTask>* tasks) {
  Step([](ResyncProgress& p) { p.phase = "namespace"; });
  auto frozen = freeze_();
  const uint64_t p = journal_.released_seq();
  MIRROR_RETURN_IF_ERROR(link_.RestartStream(p + 1));
  MIRROR_ASSIGN_OR_RETURN(common::Manifest image, link_.FetchManifest(false));
  MIRROR_ASSIGN_OR_RETURN(common::Manifest source,
                          common::BuildManifest(backing_, common::ManifestOptions{}));
  struct stat root;
  if (fstat(backing_fd_, &root) != 0) return Status::IOError("fstat " + backing_, errno);
  ResyncPlan plan =
      PlanResync(source, image, int64_t{root.st_mtim.tv_sec} * 1000000000 + root.st_mtim.tv_nsec);
  for (const common::Op& op : plan.ops) MIRROR_RETURN_IF_ERROR(Append(op));
  link_.Notify();
  uint64_t bytes = 0;
  for (DataTask& t : plan.data) {
    // The inode, to find the file again if a client renames it before its data is sent.
    struct stat st;
    if (fstatat(backing_fd_, t.path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      t.dev = st.st_dev;
      t.ino = st.st_ino;
    }
    bytes += t.size;
  }
  *tasks = std::move(plan.data);
  Step([&](ResyncProgress& pr) {
    pr.baseline = image.empty();
    pr.entries = source.size();
    pr.files_total = tasks->size();
    pr.bytes_total = bytes;
    pr.phase = "data";
  });
  return Status::Ok();
}

Status Resyncer::SyncFile(const DataTask& task) {
  // 64 KiB blocks, larger for files so big that their sums would not fit in one answer.
  uint32_t block_size = kBlockSize;
  while (task.size / block_size >= kMaxBlocksPerFile && block_size < (16u << 20)) block_size *= 2;
  const uint64_t range_bytes = std::max<uint64_t>(kRangeBytes, block_size);
  ResyncLink::Sums image;
  if (task.image_has_it) {
    MIRROR_ASSIGN_OR_RETURN(image, link_.FetchSums(task.path, block_size));
  }
  common::UniqueFd fd;
  std::string block(block_size, '\0');
  const common::BlockSum zero_sum = common::SumOfBlock(std::string(block_size, '\0'));
  for (uint64_t offset = 0;;) {
    auto frozen = freeze_();
    MIRROR_ASSIGN_OR_RETURN(std::string path, CurrentPath(backing_fd_, task));
    if (path.empty()) return Status::Ok();  // removed since the plan: nothing to send
    if (!fd) {
      fd.reset(openat(backing_fd_, path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) return Status::IOError("open " + path, errno);
    }
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return Status::IOError("fstat " + path, errno);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (offset == 0 && (!image.found || image.size != size)) {
      MIRROR_RETURN_IF_ERROR(Append(common::TruncateOp{path, size, MtimeOf(st)}));
    }
    const uint64_t end = std::min(size, offset + range_bytes);
    uint64_t sent = 0;
    for (uint64_t at = offset; at < end; at += block_size) {
      const uint64_t len = std::min<uint64_t>(block_size, size - at);
      const size_t index = at / block_size;
      const bool image_block = image.found && index < image.sums.size() && at < image.size;
      if (IsHole(fd.get(), at, len)) {
        // Zeros in BACKING: the image needs a hole only where it has something else.
        const common::BlockSum zeros =
            len == block_size ? zero_sum : common::SumOfBlock(std::string(len, '\0'));
        if (image_block && image.sums[index] != zeros) {
          MIRROR_RETURN_IF_ERROR(Append(common::FallocateOp{
              path, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, len, MtimeOf(st)}));
        }
        continue;
      }
      size_t got = 0;
      MIRROR_RETURN_IF_ERROR(PreadAll(fd.get(), block.data(), len, at, &got));
      std::string_view data(block.data(), got);
      if (image_block && image.sums[index] == common::SumOfBlock(data)) continue;
      MIRROR_RETURN_IF_ERROR(Append(common::WriteOp{path, at, MtimeOf(st), data}));
      sent += got;
    }
    const bool last = end >= size;
    if (last) MIRROR_RETURN_IF_ERROR(Append(common::UtimensOp{path, kOmit, MtimeOf(st)}));
    frozen.unlock();
    link_.Notify();
    Step([&](ResyncProgress& p) {
      p.bytes_done += end - offset;
      p.bytes_sent += sent;
    });
    if (last) return Status::Ok();
    offset = end;
  }
}

}  // namespace mirror::fs
