// The fixture's own guarantees: a FuseMount mounts, serves, and always unmounts,
// reaps its daemon and removes its temp dir; RunAs really drops privileges and is
// bounded. Runs against the filesystem named by MIRROR_IT_FS (see fuse_mount.h).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "fuse_mount.h"
#include "run_as.h"

namespace mirror::itest {
namespace {

using Clock = std::chrono::steady_clock;

MountOptions OptionsOrSkip() {
  MountOptions options;
  std::string error;
  REQUIRE_MESSAGE(MountOptionsFromEnv(&options, &error), error);
  return options;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool ProcessGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// True once every thread of `pid` is in state T (stopped), within 2 s. Until then
// a thread may still read a request and leave its caller in an unkillable wait.
bool AllThreadsStopped(pid_t pid) {
  auto deadline = Clock::now() + std::chrono::seconds(2);
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  while (Clock::now() < deadline) {
    bool all = true;
    for (const auto& task : std::filesystem::directory_iterator(task_dir)) {
      std::ifstream in(task.path() / "stat");
      std::string line;
      std::getline(in, line);
      size_t paren = line.rfind(')');
      if (paren == std::string::npos || line.size() < paren + 3 || line[paren + 2] != 'T') all = false;
    }
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST_CASE("MountServesAndDestructorUnmountsReapsAndCleans") {
  MountOptions options = OptionsOrSkip();
  std::string error;
  std::string root, mnt;
  pid_t pid = -1;
  {
    std::unique_ptr<FuseMount> m = FuseMount::Start(options, &error);
    REQUIRE_MESSAGE(m != nullptr, error);
    root = m->root();
    mnt = m->mountpoint();
    pid = m->pid();
    CHECK(IsFuseMounted(mnt));
    CHECK(m->DaemonAlive());
    { std::ofstream(mnt + "/through_mount") << "hello"; }
    std::ifstream in(m->backing() + "/through_mount");
    std::string word;
    in >> word;
    CHECK(word == "hello");
  }
  CHECK_FALSE(IsFuseMounted(mnt));
  CHECK(ProcessGone(pid));
  CHECK_FALSE(Exists(root));
}

TEST_CASE("DestructorCleansUpWhenTheTestThrows") {
  MountOptions options = OptionsOrSkip();
  std::string error, root, mnt;
  pid_t pid = -1;
  int fd = -1;
  try {
    std::unique_ptr<FuseMount> m = FuseMount::Start(options, &error);
    REQUIRE_MESSAGE(m != nullptr, error);
    root = m->root();
    mnt = m->mountpoint();
    pid = m->pid();
    // An open file on the mount must not keep the teardown from finishing.
    fd = ::open((mnt + "/busy").c_str(), O_CREAT | O_RDWR, 0644);
    CHECK(fd >= 0);
    throw std::runtime_error("test body failed");
  } catch (const std::runtime_error&) {
  }
  CHECK_FALSE(IsFuseMounted(mnt));
  CHECK(ProcessGone(pid));
  if (fd >= 0) ::close(fd);
}

TEST_CASE("StartFailsWithTheDaemonsStderr") {
  MountOptions options = OptionsOrSkip();
  std::string error;
  options.fs_opts.push_back("no_such_option_xyz");
  auto start = Clock::now();
  std::unique_ptr<FuseMount> m = FuseMount::Start(options, &error);
  CHECK(m == nullptr);
  CHECK(error.find("before mounting") != std::string::npos);
  CHECK(error.find("no_such_option_xyz") != std::string::npos);  // the daemon's complaint
  CHECK(Clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("StartGivesUpOnADaemonThatNeverMounts") {
  char dir[] = "/tmp/mirror-it-fake-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string script = std::string(dir) + "/never_mounts";
  { std::ofstream(script) << "#!/bin/sh\necho waiting forever >&2\nexec sleep 60\n"; }
  REQUIRE(::chmod(script.c_str(), 0755) == 0);
  MountOptions options;
  options.binary = script;
  options.mount_timeout = std::chrono::milliseconds(500);
  options.stop_timeout = std::chrono::milliseconds(500);
  std::string error;
  auto start = Clock::now();
  std::unique_ptr<FuseMount> m = FuseMount::Start(options, &error);
  CHECK(m == nullptr);
  CHECK(error.find("did not mount") != std::string::npos);
  CHECK(error.find("waiting forever") != std::string::npos);
  CHECK(Clock::now() - start < std::chrono::seconds(10));
  RemoveTree(dir);
}

TEST_CASE("GuardUnmountsWhenTheProgramAborts") {
  MountOptions options = OptionsOrSkip();
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  // The daemon is our grandchild: as a subreaper we inherit it when the child
  // dies, so we can see it end (and reap it) even where PID 1 does not reap.
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    std::string error;
    std::unique_ptr<FuseMount> m = FuseMount::Start(options, &error);
    std::string msg = m ? m->root() + "\n" + std::to_string(m->pid()) + "\n" : std::string("x\n");
    if (::write(fds[1], msg.data(), msg.size()) < 0) _exit(3);
    std::abort();  // the destructor never runs: only the guard can clean up
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) msg.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  size_t nl = msg.find('\n');
  REQUIRE(nl != std::string::npos);
  std::string root = msg.substr(0, nl);
  REQUIRE_MESSAGE(root != "x", "the child could not mount");
  pid_t daemon = static_cast<pid_t>(std::stol(msg.substr(nl + 1)));
  CHECK_FALSE(IsFuseMounted(root + "/mnt"));
  auto deadline = Clock::now() + std::chrono::seconds(5);
  int daemon_status = 0;
  pid_t reaped = 0;
  while (reaped == 0 && Clock::now() < deadline) {
    reaped = ::waitpid(daemon, &daemon_status, WNOHANG);
    if (reaped == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  CHECK(reaped == daemon);  // ended by the unmount or by the guard's SIGKILL
  CHECK(ProcessGone(daemon));
  RemoveTree(root);
}

TEST_CASE("HungDaemonIsBoundedForCallersAndTeardown") {
  MountOptions options = OptionsOrSkip();
  options.stop_timeout = std::chrono::milliseconds(1000);
  std::string error, mnt;
  pid_t pid = -1;
  auto start = Clock::now();
  {
    std::unique_ptr<FuseMount> m = FuseMount::Start(options, &error);
    REQUIRE_MESSAGE(m != nullptr, error);
    mnt = m->mountpoint();
    pid = m->pid();
    REQUIRE(::kill(pid, SIGSTOP) == 0);  // our own daemon: it stops answering
    REQUIRE(AllThreadsStopped(pid));
    std::string probe = mnt + "/never_looked_up";
    ChildOutput out = RunAs(kRoot, [&probe] {
      struct stat st;
      ::lstat(probe.c_str(), &st);
      return std::string("answered");
    }, std::chrono::milliseconds(500));
    CHECK_FALSE(out.ok);
    CHECK(out.error.find("timed out") != std::string::npos);
  }  // teardown of a stopped daemon: unmount, SIGTERM is held, SIGKILL is not
  CHECK_FALSE(IsFuseMounted(mnt));
  CHECK(ProcessGone(pid));
  CHECK(Clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("RunAsDropsToNobodyAndReturnsErrno") {
  CallResult uid = RunAsCall(kNobody, [] { return static_cast<long>(::geteuid()); });
  REQUIRE_MESSAGE(uid.ok, uid.error);
  CHECK(uid.ret == 65534);
  CallResult gid = RunAsCall(kNobody, [] { return static_cast<long>(::getegid()); });
  CHECK(gid.ret == 65534);
  CallResult groups = RunAsCall(kNobody, [] { return static_cast<long>(::getgroups(0, nullptr)); });
  CHECK(groups.ret == 0);
  CallResult regain = RunAsCall(kNobody, [] { return static_cast<long>(::setuid(0)); });
  CHECK(regain.ret == -1);
  CHECK(regain.err == EPERM);
  CallResult shadow = RunAsCall(kNobody, [] { return static_cast<long>(::open("/etc/shadow", O_RDONLY)); });
  CHECK(shadow.ret == -1);
  CHECK(shadow.err == EACCES);
  CallResult as_root = RunAsCall(kRoot, [] { return static_cast<long>(::geteuid()); });
  CHECK(as_root.ret == 0);
}

TEST_CASE("RunAsIsBoundedAndKillsAHangingChild") {
  auto start = Clock::now();
  ChildOutput out = RunAs(kNobody, [] {
    ::sleep(30);
    return std::string("late");
  }, std::chrono::milliseconds(300));
  CHECK_FALSE(out.ok);
  CHECK(out.error.find("timed out") != std::string::npos);
  CHECK(Clock::now() - start < std::chrono::seconds(5));
  ChildOutput big = RunAs(kRoot, [] { return std::string(1 << 20, 'z'); });
  REQUIRE_MESSAGE(big.ok, big.error);
  CHECK(big.output.size() == (1u << 20));
}

}  // namespace
}  // namespace mirror::itest
