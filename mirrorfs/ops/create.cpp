// create, mknod, mkdir, symlink: new entries, made as the caller (owner, group, umask,
// setgid directories and default ACLs come from BACKING itself).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mirrorfs/creds.h"
#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

struct MakeRequest {
  MutationKind kind;
  fuse_ino_t parent;
  const char* name;
  mode_t mode = 0;
  dev_t rdev = 0;
  const char* link = nullptr;  // symlink target
  int open_flags = 0;          // create
};

// Runs the creating syscall as the caller; returns 0 or errno. For create, *fd is the open file.
int MakeOnBacking(fuse_req_t req, Inode& dir, const MakeRequest& r, int* fd) {
  CallerCreds creds(req, r.kind != MutationKind::kSymlink);
  if (creds.error() != 0) return creds.error();
  int rc = 0;
  switch (r.kind) {
    case MutationKind::kCreate:
      // Always O_EXCL: the record says "created", so it must be a creation (see Create).
      rc = *fd = openat(dir.fd.get(), r.name,
                        (r.open_flags | O_CREAT | O_EXCL | O_CLOEXEC) & ~O_NOFOLLOW, r.mode);
      break;
    case MutationKind::kMkdir:
      rc = mkdirat(dir.fd.get(), r.name, r.mode);
      break;
    case MutationKind::kSymlink:
      rc = symlinkat(r.link, dir.fd.get(), r.name);
      break;
    default:
      rc = mknodat(dir.fd.get(), r.name, r.mode, r.rdev);
      break;
  }
  return rc < 0 ? errno : 0;
}

int DoMake(fuse_req_t req, const MakeRequest& r, fuse_entry_param* e, int* fd) {
  Filesystem& fs = FsOf(req);
  Inode& dir = fs.inodes().Get(r.parent);
  Mutation m = fs.BeginMutation(r.kind, nullptr);
  MutationInfo& info = m.info();
  const fuse_ctx* ctx = fuse_req_ctx(req);
  info.parent = r.parent;
  info.name = r.name;
  info.mode = r.mode;
  info.rdev = r.rdev;
  info.data = r.link;
  info.flags = static_cast<uint32_t>(r.open_flags);
  info.uid = ctx->uid;
  info.gid = ctx->gid;
  info.umask = ctx->umask;
  if (int err = m.Start()) return err;
  if (int err = MakeOnBacking(req, dir, r, fd)) return m.Finish(err);
  // BACKING changed: the mutation commits even if the lookup below fails. Commit first:
  // the sink sets the recorded times, which the reply's attributes must show.
  m.Commit();
  int err = fs.Lookup(r.parent, r.name, e);
  info.result_ino = e->ino;
  return err;
}

void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  MakeRequest r{MutationKind::kMknod, parent, name, mode, rdev};
  fuse_entry_param e;
  int fd = -1;
  ReplyEntry(req, DoMake(req, r, &e, &fd), e);
}

void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  MakeRequest r{MutationKind::kMkdir, parent, name, mode};
  fuse_entry_param e;
  int fd = -1;
  ReplyEntry(req, DoMake(req, r, &e, &fd), e);
}

void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  MakeRequest r{MutationKind::kSymlink, parent, name};
  r.link = link;
  fuse_entry_param e;
  int fd = -1;
  ReplyEntry(req, DoMake(req, r, &e, &fd), e);
}

// The kernel sends create only for a name it believes absent; if the name appeared since
// (another client), open(2) without O_EXCL opens the existing file instead: so does this,
// as a plain open (with its own journaled truncation for O_TRUNC). Bounded retries cover a
// name that comes and goes in between.
int CreateOrOpen(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                 fuse_file_info* fi, fuse_entry_param* e) {
  MakeRequest r{MutationKind::kCreate, parent, name, mode};
  r.open_flags = fi->flags;
  constexpr int kAttempts = 3;
  int err = 0;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    int fd = -1;
    err = DoMake(req, r, e, &fd);
    if (err == 0) {
      fi->fh = static_cast<uint64_t>(fd);
      return 0;
    }
    if (fd >= 0) close(fd);
    if (err != EEXIST || (fi->flags & O_EXCL)) return err;
    Filesystem& fs = FsOf(req);
    err = fs.Lookup(parent, name, e);
    if (err == ENOENT) continue;
    if (err != 0) return err;
    err = S_ISDIR(e->attr.st_mode) ? EISDIR : OpenExisting(req, e->ino, fi);
    if (err == 0) return 0;
    fs.inodes().Forget(e->ino, 1);  // undo the lookup the reply would have handed over
    return err;
  }
  return err;
}

void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  fuse_entry_param e;
  int err = CreateOrOpen(req, parent, name, mode, fi, &e);
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  int fd = static_cast<int>(fi->fh);
  DropDirect(fd, fi->flags);
  if (fuse_reply_create(req, &e, fi) != 0) {
    close(fd);  // the kernel will send forget for the entry
  }
}

}  // namespace

void AddCreateOps(fuse_lowlevel_ops& ops) {
  ops.mknod = Mknod;
  ops.mkdir = Mkdir;
  ops.symlink = Symlink;
  ops.create = Create;
}

}  // namespace mirror::fs
