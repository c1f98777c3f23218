#include "mirrorfs/session.h"

#include <string>
#include <vector>

#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

// Enough for every request the kernel keeps in flight (max_background is 12 by default)
// plus synchronous ones from many processes; each thread costs a stack and a 1 MiB buffer.
constexpr unsigned kMaxWorkerThreads = 64;

}  // namespace

common::Result<std::unique_ptr<Session>> Session::Create(Filesystem& fs, const MountOptions& options) {
  std::vector<std::string> strings = FuseArguments(options);
  std::vector<char*> argv;
  for (std::string& s : strings) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = MakeOperations();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), &fs);
  fuse_opt_free_args(&args);
  if (se == nullptr) return common::Status::InvalidArgument("invalid mount options");
  std::unique_ptr<Session> session(new Session(se));
  if (fuse_set_signal_handlers(se) != 0) return common::Status::IOError("signal handlers", 0);
  session->handlers_set_ = true;
  if (fuse_session_mount(se, options.mountpoint.c_str()) != 0) {
    return common::Status::IOError("mount " + options.mountpoint + " failed", 0);
  }
  session->mounted_ = true;
  return session;
}

Session::~Session() {
  if (handlers_set_) fuse_remove_signal_handlers(se_);
  if (mounted_) fuse_session_unmount(se_);
  fuse_session_destroy(se_);
}

int Session::Run(bool single_thread) {
  if (single_thread) return fuse_session_loop(se_);
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(config, 0);
  fuse_loop_cfg_set_max_threads(config, kMaxWorkerThreads);
  // Idle workers are kept (as many as there may be workers): with a lower cap on idle
  // threads the loop spawns a thread whenever all are busy and ends one whenever more
  // than the cap are idle, which under 4 concurrent writers meant ~700 thread creations
  // a second and a quarter of the random-write throughput (bench/fs_bench.sh,
  // randwrite-4j). (UINT_MAX, "unlimited", is refused by libfuse 3.14 with a log line.)
  fuse_loop_cfg_set_idle_threads(config, kMaxWorkerThreads);
  int rc = fuse_session_loop_mt(se_, config);
  fuse_loop_cfg_destroy(config);
  return rc;
}

}  // namespace mirror::fs
