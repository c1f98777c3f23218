// lookup, forget, forget_multi.
#include <cerrno>

#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_entry_param e;
  int err = FsOf(req).Lookup(parent, name, &e);
  ReplyEntry(req, err, e);
}

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  FsOf(req).inodes().Forget(ino, nlookup);
  fuse_reply_none(req);
}

void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  InodeTable& table = FsOf(req).inodes();
  for (size_t i = 0; i < count; ++i) table.Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

}  // namespace

void AddLookupOps(fuse_lowlevel_ops& ops) {
  ops.lookup = Lookup;
  ops.forget = Forget;
  ops.forget_multi = ForgetMulti;
}

}  // namespace mirror::fs
