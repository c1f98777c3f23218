#include "common/beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "common/record.h"
#include "common/quote.h"

namespace mirror::common {
namespace {

std::atomic<bool> g_openat2_missing{false};

std::string Quote(std::string_view s) { return QuoteForMessage(s, '\''); }

// What the walk compares to stay on the root's mount: the device, and the mount id
// where the kernel reports one (STATX_MNT_ID, Linux >= 5.8), which also tells a bind
// mount of the same filesystem apart.
struct MountKey {
  uint64_t dev = 0;
  uint64_t mnt_id = 0;
  bool has_mnt_id = false;
};

Result<MountKey> MountOf(int fd) {
  struct statx sx {};
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) == 0) {
    MountKey key;
    key.dev = (static_cast<uint64_t>(sx.stx_dev_major) << 32) | sx.stx_dev_minor;
    key.has_mnt_id = (sx.stx_mask & STATX_MNT_ID) != 0;
    key.mnt_id = key.has_mnt_id ? sx.stx_mnt_id : 0;
    return key;
  }
  if (errno != ENOSYS) return Status::IOError("statx", errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) return Status::IOError("fstat", errno);
  MountKey key;
  key.dev = static_cast<uint64_t>(st.st_dev);
  return key;
}

bool SameMount(const MountKey& a, const MountKey& b) {
  if (a.dev != b.dev) return false;
  return !(a.has_mnt_id && b.has_mnt_id) || a.mnt_id == b.mnt_id;
}

// Turns a failed openat of `name` in `dir_fd` into the error the header promises.
// O_NOFOLLOW | O_DIRECTORY answers ENOTDIR (or ELOOP) for a symlink, so look.
Status ClassifyOpenError(int dir_fd, const std::string& name, int err) {
  if (err == ENOTDIR || err == ELOOP) {
    struct stat st {};
    if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISLNK(st.st_mode)) {
        return Status::PermissionDenied("component " + Quote(name) + " is a symlink; refused");
      }
      if (!S_ISDIR(st.st_mode)) {
        return Status::IOError("component " + Quote(name) + " is not a directory", ENOTDIR);
      }
    }
  }
  return Status::FromErrno("component " + Quote(name), err);
}

int RetryOpenat(int dir_fd, const char* name, int flags) {
  int fd;
  do {
    fd = openat(dir_fd, name, flags);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// The portable resolver: one component at a time, each opened with O_NOFOLLOW (a
// symlink fails the open) and checked to be on the root's mount. The path rules
// already exclude "..", so the walk can only go down.
Result<UniqueFd> WalkBeneath(int root_fd, std::string_view dir_path) {
  MIRROR_ASSIGN_OR_RETURN(MountKey root_mount, MountOf(root_fd));
  // Intermediate directories only need to be walked through: O_PATH. The last one
  // is opened for real so the caller can futimens it.
  constexpr int kThrough = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  constexpr int kLast = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  if (dir_path == ".") {
    UniqueFd fd(RetryOpenat(root_fd, ".", kLast));
    if (!fd) return Status::FromErrno("open root", errno);
    return fd;
  }
  UniqueFd cur;
  size_t start = 0;
  while (start < dir_path.size()) {
    size_t end = dir_path.find('/', start);
    if (end == std::string_view::npos) end = dir_path.size();
    std::string name(dir_path.substr(start, end - start));
    bool last = end == dir_path.size();
    int parent = cur ? cur.get() : root_fd;
    UniqueFd next(RetryOpenat(parent, name.c_str(), last ? kLast : kThrough));
    if (!next) return ClassifyOpenError(parent, name, errno);
    MIRROR_ASSIGN_OR_RETURN(MountKey mount, MountOf(next.get()));
    if (!SameMount(mount, root_mount)) {
      return Status::PermissionDenied("escape attempt: component " + Quote(name) +
                                      " crosses a mount point");
    }
    cur = std::move(next);
    start = end + 1;
  }
  return cur;
}

// The kernel resolver. On failure the walk runs once more to name the component
// that broke the rule; openat2 itself only says ELOOP or EXDEV.
Result<UniqueFd> Openat2Beneath(int root_fd, std::string_view dir_path, bool* unavailable) {
  struct open_how how {};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  std::string path(dir_path);
  long fd = -1;
  // EAGAIN means a concurrent rename or mount raced the lookup; retrying is the
  // documented answer (there is no ".." here, so it should not happen at all).
  for (int attempt = 0; attempt < 8; ++attempt) {
    fd = syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
    if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) break;
  }
  if (fd >= 0) return UniqueFd(static_cast<int>(fd));
  int err = errno;
  // ENOSYS: a kernel before 5.6. EPERM: a seccomp filter that predates openat2 (older
  // container runtimes answer EPERM, not ENOSYS, for syscalls they do not know).
  if (err == ENOSYS || err == EPERM) {
    *unavailable = true;
    return Status::IOError("openat2", err);
  }
  Result<UniqueFd> walked = WalkBeneath(root_fd, dir_path);
  if (!walked.ok()) return walked.status();
  if (err == EXDEV) {
    return Status::PermissionDenied("escape attempt: " + Quote(path) +
                                    " leaves the root or crosses a mount point");
  }
  if (err == ELOOP) {
    return Status::PermissionDenied("a component of " + Quote(path) + " is a symlink; refused");
  }
  return Status::FromErrno("openat2 " + Quote(path), err);
}

}  // namespace

Result<UniqueFd> OpenDirBeneath(int root_fd, std::string_view dir_path, ResolveMethod method) {
  // The caller checked the path already; this is the second line of defence, so the
  // resolvers below can rely on "no '..', not absolute, no empty component".
  if (Status st = CheckNodePath(dir_path); !st.ok()) {
    return Status::PermissionDenied("escape attempt: " + Quote(dir_path) + ": " + st.message());
  }
  if (method == ResolveMethod::kWalk ||
      (method == ResolveMethod::kAuto && g_openat2_missing.load(std::memory_order_relaxed))) {
    return WalkBeneath(root_fd, dir_path);
  }
  bool unavailable = false;
  Result<UniqueFd> fd = Openat2Beneath(root_fd, dir_path, &unavailable);
  if (unavailable && method == ResolveMethod::kAuto) {
    g_openat2_missing.store(true, std::memory_order_relaxed);
    return WalkBeneath(root_fd, dir_path);
  }
  return fd;
}

SplitPath SplitEntryPath(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {".", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

bool Openat2Unavailable() { return g_openat2_missing.load(std::memory_order_relaxed); }

}  // namespace mirror::common
