#include <fcntl.h>

#include <cerrno>

#include "mirrorfs/ops/ops.h"

namespace mirror::fs {

fuse_lowlevel_ops MakeOperations() {
  fuse_lowlevel_ops ops{};
  AddInitOps(ops);
  AddLookupOps(ops);
  AddAttrOps(ops);
  AddCreateOps(ops);
  AddLinkUnlinkOps(ops);
  AddRenameOps(ops);
  AddOpenRwOps(ops);
  AddRangeOps(ops);
  AddDirOps(ops);
  AddXattrOps(ops);
  AddStatfsAccessOps(ops);
  return ops;
}

int ReopenInode(Inode& inode, int flags) {
  ProcPath p(inode.fd.get());
  int fd = ::open(p.path, (flags & ~O_NOFOLLOW) | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

void ReplyEntry(fuse_req_t req, int err, const fuse_entry_param& e) {
  if (err != 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_entry(req, &e);
  }
}

}  // namespace mirror::fs
