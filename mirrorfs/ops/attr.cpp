// getattr, setattr (chmod, chown, truncate, utimens), readlink.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "mirrorfs/creds.h"
#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  Filesystem& fs = FsOf(req);
  struct stat st;
  int err = fs.Stat(fs.inodes().Get(ino), &st);
  if (err != 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_attr(req, &st, fs.params().attr_timeout);
  }
}

int Chmod(fuse_req_t req, Inode& inode, fuse_file_info* fi, mode_t mode) {
  ProcPath p(inode.fd.get());
  int rc = fi != nullptr ? fchmod(static_cast<int>(fi->fh), mode) : chmod(p.path, mode);
  if (rc == 0) return 0;
  int err = errno;
  // The kernel asks to drop suid/sgid after a write or truncate by someone who is not the
  // owner (no FUSE_CAP_HANDLE_KILLPRIV). BACKING would do that itself; as the caller we may
  // not chmod, so do exactly that change as root.
  struct stat st;
  if (err == EPERM && fstatat(inode.fd.get(), "", &st, AT_EMPTY_PATH) == 0 &&
      (st.st_mode & ~(S_ISUID | S_ISGID)) == (mode & ~(S_ISUID | S_ISGID)) &&
      (mode & ~st.st_mode) == 0 && fuse_req_ctx(req)->uid != 0) {
    RootCreds root;
    rc = fi != nullptr ? fchmod(static_cast<int>(fi->fh), mode) : chmod(p.path, mode);
    return rc == 0 ? 0 : errno;
  }
  return err;
}

int Utimens(Inode& inode, fuse_file_info* fi, const struct stat* attr, int to_set) {
  struct timespec tv[2];
  tv[0].tv_nsec = UTIME_OMIT;
  tv[1].tv_nsec = UTIME_OMIT;
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    tv[0].tv_nsec = UTIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    tv[0] = attr->st_atim;
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    tv[1].tv_nsec = UTIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    tv[1] = attr->st_mtim;
  }
  int rc = fi != nullptr ? futimens(static_cast<int>(fi->fh), tv)
                         : utimensat(inode.fd.get(), "", tv, AT_EMPTY_PATH);
  return rc == 0 ? 0 : errno;
}

// One step of a setattr: its own Mutation (and record), run as the caller.
template <class Syscall>
int SetAttrStep(fuse_req_t req, Inode& inode, fuse_ino_t ino, MutationKind kind,
                const struct stat* attr, int to_set, Syscall syscall) {
  Filesystem& fs = FsOf(req);
  Mutation m = fs.BeginMutation(kind, &inode);
  MutationInfo& info = m.info();
  info.ino = ino;
  info.attr = attr;
  info.flags = static_cast<uint32_t>(to_set);
  info.mode = attr->st_mode & 07777;
  info.length = static_cast<uint64_t>(attr->st_size);
  if (int err = m.Start()) return err;
  int err;
  {
    CallerCreds creds(req, false);
    err = creds.error() != 0 ? creds.error() : syscall();
  }
  return m.Finish(err);
}

constexpr int kTimeBits =
    FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW;

// The kernel's setattr is one call; here each attribute is its own step and record, in
// the order mode, owner, size, times. A failing step ends the request with its error.
int DoSetAttr(fuse_req_t req, Inode& inode, fuse_ino_t ino, struct stat* attr, int to_set,
              fuse_file_info* fi) {
  if (to_set & FUSE_SET_ATTR_MODE) {
    int err = SetAttrStep(req, inode, ino, MutationKind::kChmod, attr, to_set,
                          [&] { return Chmod(req, inode, fi, attr->st_mode); });
    if (err != 0) return err;
  }
  if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    if (!(to_set & FUSE_SET_ATTR_UID)) attr->st_uid = static_cast<uid_t>(-1);
    if (!(to_set & FUSE_SET_ATTR_GID)) attr->st_gid = static_cast<gid_t>(-1);
    int err = SetAttrStep(req, inode, ino, MutationKind::kChown, attr, to_set, [&] {
      int rc = fchownat(inode.fd.get(), "", attr->st_uid, attr->st_gid,
                        AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
      return rc == 0 ? 0 : errno;
    });
    if (err != 0) return err;
  }
  if (to_set & FUSE_SET_ATTR_SIZE) {
    int err = SetAttrStep(req, inode, ino, MutationKind::kTruncate, attr, to_set, [&] {
      ProcPath p(inode.fd.get());
      int rc = fi != nullptr ? ftruncate(static_cast<int>(fi->fh), attr->st_size)
                             : truncate(p.path, attr->st_size);
      return rc == 0 ? 0 : errno;
    });
    if (err != 0) return err;
  }
  if (to_set & kTimeBits) {
    int err = SetAttrStep(req, inode, ino, MutationKind::kUtimens, attr, to_set,
                          [&] { return Utimens(inode, fi, attr, to_set); });
    if (err != 0) return err;
  }
  return 0;
}

void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  Filesystem& fs = FsOf(req);
  Inode& inode = fs.inodes().Get(ino);
  int err = DoSetAttr(req, inode, ino, attr, to_set, fi);
  struct stat st;
  if (err == 0) err = fs.Stat(inode, &st);
  if (err != 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_attr(req, &st, fs.params().attr_timeout);
  }
}

void ReadLink(fuse_req_t req, fuse_ino_t ino) {
  Inode& inode = FsOf(req).inodes().Get(ino);
  char buf[PATH_MAX + 1];
  ssize_t n = readlinkat(inode.fd.get(), "", buf, sizeof(buf));
  if (n < 0) {
    fuse_reply_err(req, errno);
  } else if (static_cast<size_t>(n) >= sizeof(buf)) {
    fuse_reply_err(req, ENAMETOOLONG);
  } else {
    buf[n] = '\0';
    fuse_reply_readlink(req, buf);
  }
}

}  // namespace

void AddAttrOps(fuse_lowlevel_ops& ops) {
  ops.getattr = GetAttr;
  ops.setattr = SetAttr;
  ops.readlink = ReadLink;
}

}  // namespace mirror::fs
