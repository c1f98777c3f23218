// MountRuntime: everything a mount owns besides the FUSE session, set up in order before
// anyone is served and torn down in reverse after the kernel unmounted:
//   volume id -> journal (created or recovered) -> crash recovery of BACKING -> a
//   consistency point -> the journaling Filesystem -> the checkpointer thread -> the
//   replication client (with mirror=) -> the control socket (`mirrorfs status|checkpoint MNT`).
// Start must run after the daemon forked (it starts threads).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/journal.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "control/control_server.h"
#include "mirrorfs/checkpointer.h"
#include "mirrorfs/fs.h"
#include "mirrorfs/journal_sink.h"
#include "mirrorfs/mount_config.h"
#include "mirrorfs/options.h"
#include "mirrorfs/recovery.h"
#include "mirrorfs/replication_client.h"

namespace mirror::fs {

class MountRuntime {
 public:
  // Errors are one line for the admin (the mount fails with exit code 32).
  static common::Result<std::unique_ptr<MountRuntime>> Start(const MountOptions& options,
                                                             const MountConfig& config);
  ~MountRuntime();
  MountRuntime(const MountRuntime&) = delete;
  MountRuntime& operator=(const MountRuntime&) = delete;

  Filesystem& fs() { return *fs_; }
  // Begins the background work (checkpointer, control socket); call once the FUSE
  // session exists.
  common::Status Serve();
  // After the session ended: stops the background work and takes a last consistency
  // point, so that the journal is empty after a clean unmount.
  common::Status Shutdown();

 private:
  MountRuntime() = default;
  nlohmann::json HandleControl(const nlohmann::json& request);
  nlohmann::json Verify();

  MountOptions options_;
  MountConfig config_;
  std::string volume_id_;
  common::UniqueFd backing_fd_;  // for syncfs
  std::unique_ptr<common::Journal> journal_;
  std::unique_ptr<ReplicationClient> mirror_;  // with mirror= only
  RecoveryReport recovery_;
  std::unique_ptr<Checkpointer> checkpointer_;
  JournalSink* sink_ = nullptr;  // owned by fs_
  std::unique_ptr<Filesystem> fs_;
  std::unique_ptr<control::ControlServer> control_;
  std::chrono::steady_clock::time_point started_;
  bool shut_down_ = false;
};

}  // namespace mirror::fs
