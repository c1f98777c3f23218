// MirrorRig: the end-to-end setup of issue 5 for integration tests: a real mirrord on
// 127.0.0.1 (quick start, its state dir in the mount's temp dir) and a mirrorfs mount
// over a fresh BACKING that ships to it. Everything is torn down by the destructors
// (FuseMount unmounts and kills the daemon by PID; MirrordProcess SIGKILLs mirrord),
// also when a check fails.
//
// Thread-safety: one owner (the test's main thread).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fuse_mount.h"
#include "mirrord/tests/integration/test_client.h"
#include "tcp_relay.h"
#include "tree_compare.h"
#include "workload.h"

namespace mirror::itest {

inline constexpr const char* kRigSource = "itsrc";
inline constexpr const char* kRigSecret = "end-to-end test secret";

struct RigOptions {
  std::string mode = "sync";  // mode=
  std::string on_disconnect;  // on_disconnect= (empty: the default)
  std::string journal_size = "64M";
  std::string cp_interval = "1s";
  std::vector<std::string> extra;  // more -o options
  bool via_relay = false;          // mirror= points at a TcpRelay in front of mirrord
  std::string flush_delay;         // mirrord's limits.flush_delay (empty: its default)
  std::string lazy_flush_delay;    // mirrord's limits.lazy_flush_delay (empty: its default)
};

class MirrorRig {
 public:
  MirrorRig() = default;
  ~MirrorRig();  // unmounts, kills both daemons by PID, removes the temp dir
  MirrorRig(const MirrorRig&) = delete;
  MirrorRig& operator=(const MirrorRig&) = delete;

  // Starts mirrord and the mount; false with *error on failure (what started is kept
  // for the destructor).
  bool Start(const RigOptions& options, std::string* error);

  FuseMount& mount() { return *mount_; }
  d::test::MirrordProcess& mirrord() { return *mirrord_; }
  TcpRelay& relay() { return *relay_; }  // with via_relay only
  std::string state_dir() const { return dir_ + "/state"; }
  std::string image() const { return state_dir() + "/" + kRigSource + "/image"; }
  std::string mirrord_log() const { return dir_ + "/mirrord.log"; }
  std::string secret_file() const { return dir_ + "/secret"; }
  // BACKING's volume id (trusted.mirrorfs.volume_id), "" without one.
  std::string VolumeId() const;
  uint16_t port() const { return port_; }

  // Restarts mirrord on the same port and state dir (after Kill9 or Terminate).
  bool RestartMirrord(std::string* error);
  // Stops the mount and mirrord, lets `fill` put data into BACKING, forgets both sides'
  // state (the journal, mirrord's state dir), and starts both again: the first mirrored
  // mount of a BACKING that already holds data (a baseline).
  bool RestartAsNewVolume(const std::function<void(const std::string& backing)>& fill,
                          std::string* error);
  // `mirrorfs verify MNT`: its exit code; its output in *out.
  int Verify(std::string* out);
  // RunWorkload, bounded: if it is not done 60 s after its own time bound (writers
  // blocked in the kernel), the mount's daemon is SIGKILLed and hung() turns true.
  WorkloadResult RunWorkloadGuarded(const WorkloadOptions& options);
  bool hung() const { return hung_; }
  // `mirrorfs checkpoint MNT`: its exit code; its output in *out.
  int Checkpoint(std::string* out);
  // `mirrorfs status MNT --json` parsed into *json text; exit code.
  int StatusJson(std::string* out);
  // Differences between BACKING/sub and image/sub (content, metadata, links, xattrs,
  // mtimes); empty when equal. A failed snapshot is one difference.
  std::vector<std::string> Differences(const std::string& sub);

 private:
  std::string dir_;  // the mount's temp root (holds state/, secret, mirrord.log)
  std::string mirrorfs_binary_;
  std::unique_ptr<FuseMount> mount_;
  std::unique_ptr<d::test::MirrordProcess> mirrord_;
  std::unique_ptr<TcpRelay> relay_;
  bool StartMirrord(uint16_t port, std::string* error);

  std::string flush_delay_;       // RigOptions::flush_delay, kept for restarts
  std::string lazy_flush_delay_;  // RigOptions::lazy_flush_delay, likewise
  uint16_t port_ = 0;
  bool hung_ = false;
};

// Runs argv (no shell), returns the exit code (-1 if it could not run) and its stdout
// and stderr, merged, in *out. Bounded by `timeout_s` (then SIGKILL, returns -2).
int RunCommand(const std::vector<std::string>& argv, std::string* out, int timeout_s = 120);

}  // namespace mirror::itest
