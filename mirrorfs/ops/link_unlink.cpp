// link, unlink, rmdir.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "mirrorfs/creds.h"
#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

int DoLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name,
           fuse_entry_param* e) {
  Filesystem& fs = FsOf(req);
  Inode& inode = fs.inodes().Get(ino);
  Inode& dir = fs.inodes().Get(new_parent);
  Mutation m = fs.BeginMutation(MutationKind::kLink, nullptr);
  m.info().ino = ino;
  m.info().new_parent = new_parent;
  m.info().new_name = new_name;
  if (int err = m.Start()) return err;
  {
    // Through /proc with AT_SYMLINK_FOLLOW: linkat(AT_EMPTY_PATH) would need
    // CAP_DAC_READ_SEARCH, and as the caller protected_hardlinks applies natively.
    CallerCreds creds(req, false);
    if (creds.error() != 0) return m.Finish(creds.error());
    ProcPath p(inode.fd.get());
    if (linkat(AT_FDCWD, p.path, dir.fd.get(), new_name, AT_SYMLINK_FOLLOW) != 0) {
      return m.Finish(errno);
    }
  }
  m.Commit();  // before the lookup, which must see the recorded times
  int err = fs.Lookup(new_parent, new_name, e);
  m.info().result_ino = e->ino;
  return err;
}

void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  fuse_entry_param e;
  ReplyEntry(req, DoLink(req, ino, new_parent, new_name, &e), e);
}

int DoRemove(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir) {
  Filesystem& fs = FsOf(req);
  Inode& parent_inode = fs.inodes().Get(parent);
  Mutation m = fs.BeginMutation(dir ? MutationKind::kRmdir : MutationKind::kUnlink, nullptr);
  m.info().parent = parent;
  m.info().name = name;
  // Which inode loses the name (for the name bookkeeping); under the exclusive lock it
  // cannot change before the unlink.
  struct stat st;
  bool known = fstatat(parent_inode.fd.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (int err = m.Start()) return err;
  int rc;
  {
    CallerCreds creds(req, false);
    if (creds.error() != 0) return m.Finish(creds.error());
    rc = unlinkat(parent_inode.fd.get(), name, dir ? AT_REMOVEDIR : 0);
  }
  if (rc != 0) return m.Finish(errno);
  if (known) fs.inodes().RemoveName(st.st_dev, st.st_ino, parent, name);
  return m.Finish(0);
}

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, DoRemove(req, parent, name, false));
}

void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, DoRemove(req, parent, name, true));
}

}  // namespace

void AddLinkUnlinkOps(fuse_lowlevel_ops& ops) {
  ops.link = Link;
  ops.unlink = Unlink;
  ops.rmdir = Rmdir;
}

}  // namespace mirror::fs
