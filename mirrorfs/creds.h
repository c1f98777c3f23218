// CallerCreds: runs the current thread's file-system syscalls as the FUSE caller.
//
// Switches this thread's fsuid, fsgid and supplementary groups (all per-thread syscalls;
// glibc's setgroups would change every thread, so the raw syscall is used) and, if asked,
// its umask (the thread unshares CLONE_FS once, so umask is per-thread too). BACKING then
// assigns owner, group (setgid directories), default ACLs and permission errors natively.
// The destructor restores root's credentials and umask 0.
//
// Thread-safety: affects only the calling thread; do not nest.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/types.h>

namespace mirror::fs {

// Call once at start-up, before any thread: remembers the daemon's own groups.
void InitCallerCreds();

class CallerCreds {
 public:
  // with_umask: apply the request's umask (create ops; needs FUSE_CAP_DONT_MASK).
  CallerCreds(fuse_req_t req, bool with_umask);
  CallerCreds(const CallerCreds&) = delete;
  CallerCreds& operator=(const CallerCreds&) = delete;
  ~CallerCreds();

  // 0, or the errno with which switching failed (the op must then fail with it).
  int error() const { return error_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }
  mode_t umask() const { return umask_; }

 private:
  uid_t uid_;
  gid_t gid_;
  mode_t umask_ = 0;
  bool ids_set_ = false;
  bool groups_set_ = false;
  bool umask_set_ = false;
  int error_ = 0;
};

// The cheap variant for data writes (write, fallocate, copy_file_range): only fsuid/fsgid,
// and only for non-root callers. Enough for BACKING to drop suid/sgid and file capabilities
// on write exactly as natively (it tests CAP_FSETID, which a non-zero fsuid drops). Gap:
// the thread keeps the daemon's supplementary groups, which matters only for an sgid file
// without group-exec whose group the writer has as a supplementary group.
class CallerFsIds {
 public:
  explicit CallerFsIds(fuse_req_t req);
  CallerFsIds(const CallerFsIds&) = delete;
  CallerFsIds& operator=(const CallerFsIds&) = delete;
  ~CallerFsIds();

 private:
  bool switched_ = false;
};

// Runs as root with the daemon's own groups (undoes CallerCreds for a retry).
class RootCreds {
 public:
  RootCreds();
  RootCreds(const RootCreds&) = delete;
  RootCreds& operator=(const RootCreds&) = delete;
  ~RootCreds() = default;
};

}  // namespace mirror::fs
