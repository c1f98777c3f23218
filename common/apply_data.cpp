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

// The fd of the regular file at `path`: one kept open by an earlier data record, or
// resolved and opened now (and kept). -1 with an OK status: replay mode and the file (or
// its parent) is gone, so a later record removed it and there is nothing to do.
Result<int> FileForData(const Ctx& ctx, std::string_view path, std::string_view what) {
  if (int kept = ctx.open_files.Find(path); kept >= 0) return kept;
  Result<Entry> e = ResolveEntry(ctx, path);
  if (!e.ok()) return SkipMissing(ctx, e.status()) ? Result<int>(-1) : e.status();
  Result<UniqueFd> fd = OpenRegularForWrite(*e, what);
  if (!fd.ok()) return SkipMissing(ctx, fd.status()) ? Result<int>(-1) : fd.status();
  const int raw = fd->get();
  ctx.open_files.Keep(std::string(path), std::move(fd).value());
  return raw;
}

// Runs `change` on the file at `path` and sets the recorded mtime.
template <class Change>
Status ApplyData(const Ctx& ctx, std::string_view path, const Timespec& mtime,
                 std::string_view what, Change&& change) {
  MIRROR_ASSIGN_OR_RETURN(int fd, FileForData(ctx, path, what));
  if (fd < 0) return {};
  MIRROR_RETURN_IF_ERROR(change(fd));
  // The data change itself moved mtime to "now"; put the source's back.
  const struct timespec times[2] = {{0, UTIME_OMIT}, ToTimespec(mtime)};
  if (futimens(fd, times) != 0) return Errno("set mtime of", path, errno);
  return {};
}

}  // namespace

Status ApplyOp(const Ctx& ctx, const WriteOp& op) {
  return ApplyData(ctx, op.path, op.mtime, "write", [&op](int fd) -> Status {
    size_t done = 0;
    while (done < op.data.size()) {
      ssize_t n = pwrite(fd, op.data.data() + done, op.data.size() - done,
                         static_cast<off_t>(op.offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("write", op.path, errno);
      if (n == 0) return Errno("write", op.path, EIO);  // no progress: do not spin
      done += static_cast<size_t>(n);
    }
    return {};
  });
}

Status ApplyOp(const Ctx& ctx, const TruncateOp& op) {
  return ApplyData(ctx, op.path, op.mtime, "truncate", [&op](int fd) -> Status {
    if (ftruncate(fd, static_cast<off_t>(op.size)) != 0) return Errno("truncate", op.path, errno);
    return {};
  });
}

Status ApplyOp(const Ctx& ctx, const FallocateOp& op) {
  return ApplyData(ctx, op.path, op.mtime, "fallocate", [&op](int fd) -> Status {
    int rc;
    do {
      rc = fallocate(fd, static_cast<int>(op.mode), static_cast<off_t>(op.offset),
                     static_cast<off_t>(op.length));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return Errno("fallocate", op.path, errno);
    return {};
  });
}

}  // namespace mirror::common::apply_internal
