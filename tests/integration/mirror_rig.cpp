#include "mirror_rig.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace mirror::itest {

int RunCommand(const std::vector<std::string>& argv, std::string* out, int timeout_s) {
  out->clear();
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(pipefd[1], STDOUT_FILENO);
    dup2(pipefd[1], STDERR_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(pipefd[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool timed_out = false;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    struct pollfd p = {pipefd[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000))) <= 0) continue;
    ssize_t n = read(pipefd[0], buf, sizeof(buf));
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (timed_out) return -2;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string MirrorRig::VolumeId() const {
  char volume[128] = {};
  ssize_t n =
      getxattr(mount_->backing().c_str(), "trusted.mirrorfs.volume_id", volume, sizeof(volume) - 1);
  return n > 0 ? std::string(volume, static_cast<size_t>(n)) : "";
}

bool MirrorRig::Start(const RigOptions& o, std::string* error) {
  MountOptions mo;
  if (!MountOptionsFromEnv(&mo, error)) return false;
  mirrorfs_binary_ = mo.binary;
  char tmpl[] = "/tmp/mirror-rig-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    *error = "mkdtemp failed";
    return false;
  }
  dir_ = tmpl;
  const std::string secret = dir_ + "/secret";
  {
    std::ofstream f(secret);
    f << kRigSecret << "\n";
  }
  chmod(secret.c_str(), 0600);
  flush_delay_ = o.flush_delay;
  lazy_flush_delay_ = o.lazy_flush_delay;
  if (!StartMirrord(0, error)) return false;
  port_ = mirrord_->port();
  mo.fs_opts.push_back(std::string("source_id=") + kRigSource);
  uint16_t ship_to = port_;
  if (o.via_relay) {
    relay_ = TcpRelay::Start(port_, error);
    if (relay_ == nullptr) return false;
    ship_to = relay_->port();
  }
  mo.fs_opts.push_back("mirror=127.0.0.1:" + std::to_string(ship_to));
  mo.fs_opts.push_back("secret_file=" + secret);
  mo.fs_opts.push_back("mode=" + o.mode);
  if (!o.on_disconnect.empty()) mo.fs_opts.push_back("on_disconnect=" + o.on_disconnect);
  mo.fs_opts.push_back("journal_size=" + o.journal_size);
  mo.fs_opts.push_back("cp_interval=" + o.cp_interval);
  for (const std::string& e : o.extra) mo.fs_opts.push_back(e);
  mount_ = FuseMount::Start(mo, error);
  return mount_ != nullptr;
}

// A config, not the quick start: the workloads make device nodes, which a source may
// only send with allow_devices.
bool MirrorRig::StartMirrord(uint16_t port, std::string* error) {
  const std::string config = dir_ + "/mirrord.json";
  {
    std::ofstream f(config, std::ios::trunc);
    f << "{\"listen\":[\"127.0.0.1:" << port << "\"],\"state_dir\":\"" << state_dir()
      << "\",\"sources\":[{\"id\":\"" << kRigSource << "\",\"secret_file\":\"" << dir_
      << "/secret\",\"allow_devices\":true}]";
    std::string limits;
    if (!flush_delay_.empty()) limits += "\"flush_delay\":\"" + flush_delay_ + "\"";
    if (!lazy_flush_delay_.empty()) {
      limits += std::string(limits.empty() ? "" : ",") + "\"lazy_flush_delay\":\"" +
                lazy_flush_delay_ + "\"";
    }
    if (!limits.empty()) f << ",\"limits\":{" << limits << "}";
    f << "}";
  }
  auto md = d::test::MirrordProcess::Start({"--config", config}, mirrord_log());
  if (!md.ok()) {
    std::ifstream log(mirrord_log());
    std::stringstream text;
    text << log.rdbuf();
    *error = "mirrord: " + md.status().ToString() + "; its log:\n" + text.str();
    return false;
  }
  mirrord_ = std::move(md).value();
  return true;
}

bool MirrorRig::RestartMirrord(std::string* error) {
  mirrord_.reset();  // SIGKILLs it if it still runs
  return StartMirrord(port_, error);
}

WorkloadResult MirrorRig::RunWorkloadGuarded(const WorkloadOptions& o) {
  std::atomic<bool> done{false};
  WorkloadResult r;
  std::thread work([&] {
    r = RunWorkload(o);
    done = true;
  });
  // Ops block in the kernel when the mount hangs: SIGKILL the daemon so they return.
  const auto deadline = std::chrono::steady_clock::now() + o.max_time + std::chrono::seconds(60);
  while (!done.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!done.load()) {
    hung_ = true;
    kill(mount_->pid(), SIGKILL);
  }
  work.join();
  return r;
}

bool MirrorRig::RestartAsNewVolume(const std::function<void(const std::string&)>& fill,
                                   std::string* error) {
  mount_->Stop();
  mirrord_.reset();
  fill(mount_->backing());
  const std::string journal = mount_->journal_path();
  for (const char* suffix : {"", ".boot", ".out-of-sync"}) unlink((journal + suffix).c_str());
  RemoveTree(state_dir());
  if (!StartMirrord(port_, error)) return false;
  return mount_->Restart(error);
}

int MirrorRig::Verify(std::string* out) {
  return RunCommand({mirrorfs_binary_, "verify", mount_->mountpoint()}, out);
}

int MirrorRig::Checkpoint(std::string* out) {
  return RunCommand({mirrorfs_binary_, "checkpoint", mount_->mountpoint()}, out);
}

int MirrorRig::StatusJson(std::string* out) {
  return RunCommand({mirrorfs_binary_, "status", mount_->mountpoint(), "--json"}, out, 30);
}

std::vector<std::string> MirrorRig::Differences(const std::string& sub) {
  TreeSnapshot want, got;
  std::string error;
  if (!SnapshotTree(mount_->backing() + "/" + sub, &want, &error) ||
      !SnapshotTree(image() + "/" + sub, &got, &error)) {
    return {"snapshot: " + error};
  }
  return CompareTrees(want, got, CompareOptions{.mtime = true});
}

MirrorRig::~MirrorRig() {
  mount_.reset();
  relay_.reset();
  mirrord_.reset();
  if (!dir_.empty()) RemoveTree(dir_);
}

}  // namespace mirror::itest
