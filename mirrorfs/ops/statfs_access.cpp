// statfs, access.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>

#include "mirrorfs/creds.h"
#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

void Statfs(fuse_req_t req, fuse_ino_t ino) {
  struct statvfs st;
  if (fstatvfs(FsOf(req).inodes().Get(ino).fd.get(), &st) != 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_statfs(req, &st);
  }
}

// With default_permissions the kernel checks access itself; this answers the rare caller
// that still asks, as that caller (AT_EACCESS: effective ids, i.e. our fsuid/fsgid).
void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
  Inode& inode = FsOf(req).inodes().Get(ino);
  CallerCreds creds(req, false);
  int err = creds.error();
  if (err == 0) {
    ProcPath p(inode.fd.get());
    err = faccessat(AT_FDCWD, p.path, mask, AT_EACCESS) == 0 ? 0 : errno;
  }
  fuse_reply_err(req, err);
}

}  // namespace

void AddStatfsAccessOps(fuse_lowlevel_ops& ops) {
  ops.statfs = Statfs;
  ops.access = Access;
}

}  // namespace mirror::fs
