#include "mirrorfs/creds.h"

#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace mirror::fs {
namespace {

std::vector<gid_t>& DaemonGroups() {
  static std::vector<gid_t> groups;
  return groups;
}

int SetThreadGroups(const gid_t* groups, size_t count) {
  // The raw syscall changes only this thread; glibc's wrapper broadcasts to all threads.
  return syscall(SYS_setgroups, count, groups) == 0 ? 0 : errno;
}

void RestoreRoot() {
  syscall(SYS_setfsuid, 0);
  syscall(SYS_setfsgid, 0);
}

// umask is per fs_struct, shared by all threads until a thread unshares it.
int EnsurePrivateUmask() {
  thread_local bool unshared = false;
  if (!unshared) {
    if (unshare(CLONE_FS) != 0) return errno;
    unshared = true;
  }
  return 0;
}

}  // namespace

void InitCallerCreds() {
  int n = getgroups(0, nullptr);
  if (n > 0) {
    DaemonGroups().resize(static_cast<size_t>(n));
    n = getgroups(n, DaemonGroups().data());
    DaemonGroups().resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  umask(0);
}

CallerCreds::CallerCreds(fuse_req_t req, bool with_umask) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  uid_ = ctx->uid;
  gid_ = ctx->gid;
  if (with_umask) {
    umask_ = ctx->umask;
    error_ = EnsurePrivateUmask();
    if (error_ != 0) return;
    ::umask(umask_);
    umask_set_ = true;
  }
  if (uid_ != 0) {
    // Root callers keep the daemon's capabilities, so their groups do not matter; for
    // others the groups decide chown/chmod rules and the group of new files.
    gid_t groups[256];
    int n = fuse_req_getgroups(req, 256, groups);
    if (n < 0) n = 0;  // the caller is gone; act with its primary group only
    if (n > 256) n = 256;
    error_ = SetThreadGroups(groups, static_cast<size_t>(n));
    if (error_ != 0) return;
    groups_set_ = true;
  }
  if (uid_ == 0 && gid_ == 0) return;  // already the daemon's ids
  syscall(SYS_setfsgid, gid_);
  syscall(SYS_setfsuid, uid_);
  ids_set_ = true;
}

CallerCreds::~CallerCreds() {
  if (ids_set_) RestoreRoot();
  if (groups_set_) SetThreadGroups(DaemonGroups().data(), DaemonGroups().size());
  if (umask_set_) ::umask(0);
}

CallerFsIds::CallerFsIds(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (ctx->uid == 0) return;
  syscall(SYS_setfsgid, ctx->gid);
  syscall(SYS_setfsuid, ctx->uid);
  switched_ = true;
}

CallerFsIds::~CallerFsIds() {
  if (switched_) RestoreRoot();
}

RootCreds::RootCreds() {
  RestoreRoot();
  SetThreadGroups(DaemonGroups().data(), DaemonGroups().size());
}

}  // namespace mirror::fs
