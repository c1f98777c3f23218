// Apply of the data records: write, truncate, fallocate.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/apply_internal.h"

namespace mirror::common::apply_internal {
namespace {

// Opens the regular file at `e` for writing. The type is looked at first so that a
// record naming a FIFO or a device never opens it (an open alone may block, or act on
// hardware); O_NOFOLLOW still guards the open itself.
Result<UniqueFd> OpenRegularForWrite(const Entry& e, std::string_view what) {
  struct stat st {};
  if (fstatat(e.dir.get(), e.leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno(what, e.path, errno);
  }
  auto refused = [&] {
    return Status::PermissionDenied("path '" + e.path + "' is a symlink; " + std::string(what) +
                                    " refused");
  };
  if (S_ISLNK(st.st_mode)) return refused();
  if (S_ISDIR(st.st_mode)) return Errno(what, e.path, EISDIR);
  if (!S_ISREG(st.st_mode)) {
    return Status::IOError(std::string(what) + " '" + e.path + "': not a regular file", EINVAL);
  }
  UniqueFd fd(openat(e.dir.get(), e.leaf.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errno == ELOOP ? refused() : Errno(what, e.path, errno);
  return fd;
}

// Resolves `path`, opens it, runs `change` on the fd and sets the recorded mtime.
// In replay mode a missing file (or parent) means a later record removed it.
template <class Change>
Status ApplyData(const Ctx& ctx, std::string_view path, const Timespec& mtime,
                 std::string_view what, Change&& change) {
  Result<Entry> e = ResolveEntry(ctx, path);
  if (!e.ok()) return SkipMissing(ctx, e.status()) ? Status() : e.status();
  Result<UniqueFd> fd = OpenRegularForWrite(*e, what);
  if (!fd.ok()) return SkipMissing(ctx, fd.status()) ? Status() : fd.status();
  MIRROR_RETURN_IF_ERROR(change(fd->get(), *e));
  // The data change itself moved mtime to "now"; put the source's back.
  const struct timespec times[2] = {{0, UTIME_OMIT}, ToTimespec(mtime)};
  if (futimens(fd->get(), times) != 0) return Errno("set mtime of", e->path, errno);
  return {};
}

}  // namespace

Status ApplyOp(const Ctx& ctx, const WriteOp& op) {
  return ApplyData(ctx, op.path, op.mtime, "write", [&op](int fd, const Entry& e) -> Status {
    size_t done = 0;
    while (done < op.data.size()) {
      ssize_t n = pwrite(fd, op.data.data() + done, op.data.size() - done,
                         static_cast<off_t>(op.offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("write", e.path, errno);
      if (n == 0) return Errno("write", e.path, EIO);  // no progress: do not spin
      done += static_cast<size_t>(n);
    }
    return {};
  });
}

Status ApplyOp(const Ctx& ctx, const TruncateOp& op) {
  return ApplyData(ctx, op.path, op.mtime, "truncate", [&op](int fd, const Entry& e) -> Status {
    if (ftruncate(fd, static_cast<off_t>(op.size)) != 0) return Errno("truncate", e.path, errno);
    return {};
  });
}

Status ApplyOp(const Ctx& ctx, const FallocateOp& op) {
  return ApplyData(ctx, op.path, op.mtime, "fallocate", [&op](int fd, const Entry& e) -> Status {
    int rc;
    do {
      rc = fallocate(fd, static_cast<int>(op.mode), static_cast<off_t>(op.offset),
                     static_cast<off_t>(op.length));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return Errno("fallocate", e.path, errno);
    return {};
  });
}

}  // namespace mirror::common::apply_internal
