// rename with RENAME_NOREPLACE and RENAME_EXCHANGE.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "mirrorfs/creds.h"
#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

// Moves the recorded names the way the rename moved them on BACKING.
void UpdateNames(InodeTable& table, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
                 const char* new_name, unsigned flags, const struct stat* src,
                 const struct stat* dst) {
  if (dst != nullptr && src->st_dev == dst->st_dev && src->st_ino == dst->st_ino) {
    return;  // two links to one inode: rename does nothing
  }
  if (dst != nullptr) table.RemoveName(dst->st_dev, dst->st_ino, new_parent, new_name);
  table.RemoveName(src->st_dev, src->st_ino, parent, name);
  table.AddName(src->st_dev, src->st_ino, new_parent, new_name);
  if (dst != nullptr && (flags & RENAME_EXCHANGE)) {
    table.AddName(dst->st_dev, dst->st_ino, parent, name);
  }
}

int DoRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
             const char* new_name, unsigned flags) {
  Filesystem& fs = FsOf(req);
  Inode& from = fs.inodes().Get(parent);
  Inode& to = fs.inodes().Get(new_parent);
  Mutation m = fs.BeginMutation(MutationKind::kRename, nullptr);
  m.info().parent = parent;
  m.info().name = name;
  m.info().new_parent = new_parent;
  m.info().new_name = new_name;
  m.info().flags = flags;
  struct stat src, dst;
  bool have_src = fstatat(from.fd.get(), name, &src, AT_SYMLINK_NOFOLLOW) == 0;
  bool have_dst = fstatat(to.fd.get(), new_name, &dst, AT_SYMLINK_NOFOLLOW) == 0;
  if (int err = m.Start()) return err;
  int rc;
  {
    CallerCreds creds(req, false);
    if (creds.error() != 0) return m.Finish(creds.error());
    rc = renameat2(from.fd.get(), name, to.fd.get(), new_name, flags);
  }
  if (rc != 0) return m.Finish(errno);
  if (have_src) {
    UpdateNames(fs.inodes(), parent, name, new_parent, new_name, flags, &src,
                have_dst ? &dst : nullptr);
  }
  return m.Finish(0);
}

void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
            const char* new_name, unsigned int flags) {
  fuse_reply_err(req, DoRename(req, parent, name, new_parent, new_name, flags));
}

}  // namespace

void AddRenameOps(fuse_lowlevel_ops& ops) { ops.rename = Rename; }

}  // namespace mirror::fs
