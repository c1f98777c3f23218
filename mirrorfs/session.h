// Session: a mounted FUSE session serving a Filesystem. Create mounts; Run serves until
// unmount (fusermount3 -u / umount) or SIGTERM/SIGINT/SIGHUP; the destructor removes the
// signal handlers, unmounts (if still mounted) and destroys the session.
//
// Thread-safety: one owner; Run starts the worker threads (call it after daemonizing).
#pragma once

#include <fuse_lowlevel.h>

#include <memory>

#include "common/status.h"
#include "mirrorfs/fs.h"
#include "mirrorfs/options.h"

namespace mirror::fs {

class Session {
 public:
  // kInvalidArgument: libfuse rejected the options (usage error); other codes: the mount failed.
  static common::Result<std::unique_ptr<Session>> Create(Filesystem& fs, const MountOptions& options);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Serves requests; returns 0 on a clean end (unmount or signal), else an error code.
  int Run(bool single_thread);

 private:
  explicit Session(fuse_session* se) : se_(se) {}
  fuse_session* se_;
  bool handlers_set_ = false;
  bool mounted_ = false;
};

}  // namespace mirror::fs
