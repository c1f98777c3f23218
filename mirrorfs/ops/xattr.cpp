// getxattr, listxattr, setxattr, removexattr (POSIX ACLs are xattrs too). The reserved
// namespace trusted.mirrorfs. is invisible and immutable to clients.
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "mirrorfs/creds.h"
#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

// The file capabilities xattr: the kernel asks for it before every write by a FUSE client.
constexpr char kFileCapsXattr[] = "security.capability";

// A path naming the inode itself. Regular files and directories: /proc/self/fd/N (the
// magic link is followed). Symlinks cannot be reached that way without following them, so
// they are named through their parent's fd and a recorded name, used with l*xattr calls.
struct XattrTarget {
  std::string path;
  bool symlink = false;
};

int TargetOf(Filesystem& fs, fuse_ino_t ino, XattrTarget* t) {
  Inode& inode = fs.inodes().Get(ino);
  if (inode.type != S_IFLNK) {
    t->path = ProcPath(inode.fd.get()).path;
    return 0;
  }
  auto name = fs.inodes().AnyNameOf(ino);
  if (!name.ok()) return ESTALE;
  t->path = std::string(ProcPath(fs.inodes().Get(name->first).fd.get()).path) + "/" + name->second;
  t->symlink = true;
  return 0;
}

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (IsReservedXattr(name)) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  Filesystem& fs = FsOf(req);
  Inode& inode = fs.inodes().Get(ino);
  std::unique_lock<std::mutex> caps_lock;
  if (std::strcmp(name, kFileCapsXattr) == 0) {
    // Answered before the path is built: this is asked before every write.
    caps_lock = std::unique_lock<std::mutex>(inode.mu);
    if (inode.no_file_caps.load(std::memory_order_relaxed)) {
      fuse_reply_err(req, ENODATA);
      return;
    }
  }
  XattrTarget t;
  if (int err = TargetOf(fs, ino, &t)) {
    fuse_reply_err(req, err);
    return;
  }
  std::vector<char> buf(size);
  ssize_t n = t.symlink ? lgetxattr(t.path.c_str(), name, buf.data(), size)
                        : getxattr(t.path.c_str(), name, buf.data(), size);
  if (n < 0) {
    if (errno == ENODATA && caps_lock.owns_lock()) {
      inode.no_file_caps.store(true, std::memory_order_relaxed);
    }
    fuse_reply_err(req, errno);
  } else if (size == 0) {
    fuse_reply_xattr(req, static_cast<size_t>(n));
  } else {
    fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
  }
}

// The full name list without reserved names, or -errno.
ssize_t VisibleNames(const XattrTarget& t, std::vector<char>* out) {
  std::vector<char> all;
  while (true) {
    ssize_t need = t.symlink ? llistxattr(t.path.c_str(), nullptr, 0) : listxattr(t.path.c_str(), nullptr, 0);
    if (need < 0) return -errno;
    all.resize(static_cast<size_t>(need));
    ssize_t n = t.symlink ? llistxattr(t.path.c_str(), all.data(), all.size())
                          : listxattr(t.path.c_str(), all.data(), all.size());
    if (n >= 0) {
      all.resize(static_cast<size_t>(n));
      break;
    }
    if (errno != ERANGE) return -errno;  // ERANGE: the list grew in between; ask again
  }
  out->clear();
  for (size_t i = 0; i < all.size();) {
    const char* name = all.data() + i;
    size_t len = std::char_traits<char>::length(name) + 1;
    if (!IsReservedXattr(name)) out->insert(out->end(), name, name + len);
    i += len;
  }
  return static_cast<ssize_t>(out->size());
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  XattrTarget t;
  std::vector<char> names;
  int err = TargetOf(FsOf(req), ino, &t);
  ssize_t n = err != 0 ? -err : VisibleNames(t, &names);
  if (n < 0) {
    fuse_reply_err(req, static_cast<int>(-n));
  } else if (size == 0) {
    fuse_reply_xattr(req, static_cast<size_t>(n));
  } else if (static_cast<size_t>(n) > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, names.data(), static_cast<size_t>(n));
  }
}

int DoChangeXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                  size_t size, int flags, bool remove) {
  if (IsReservedXattr(name)) return EPERM;
  Filesystem& fs = FsOf(req);
  XattrTarget t;
  if (int err = TargetOf(fs, ino, &t)) return err;
  Mutation m = fs.BeginMutation(remove ? MutationKind::kRemovexattr : MutationKind::kSetxattr,
                                &fs.inodes().Get(ino));
  m.info().ino = ino;
  m.info().name = name;
  m.info().data = value;
  m.info().length = size;
  m.info().flags = static_cast<uint32_t>(flags);
  if (int err = m.Start()) return err;
  fs.inodes().Get(ino).no_file_caps.store(false, std::memory_order_relaxed);
  CallerCreds creds(req, false);
  if (creds.error() != 0) return m.Finish(creds.error());
  int rc;
  if (remove) {
    rc = t.symlink ? lremovexattr(t.path.c_str(), name) : removexattr(t.path.c_str(), name);
  } else {
    rc = t.symlink ? lsetxattr(t.path.c_str(), name, value, size, flags)
                   : setxattr(t.path.c_str(), name, value, size, flags);
  }
  return m.Finish(rc == 0 ? 0 : errno);
}

void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) {
  fuse_reply_err(req, DoChangeXattr(req, ino, name, value, size, flags, false));
}

void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  fuse_reply_err(req, DoChangeXattr(req, ino, name, nullptr, 0, 0, true));
}

}  // namespace

void AddXattrOps(fuse_lowlevel_ops& ops) {
  ops.getxattr = GetXattr;
  ops.listxattr = ListXattr;
  ops.setxattr = SetXattr;
  ops.removexattr = RemoveXattr;
}

}  // namespace mirror::fs
