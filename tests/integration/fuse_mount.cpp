// FuseMount: start, wait for and always tear down a FUSE daemon under test.
#include "fuse_mount.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>

namespace mirror::itest {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(20);

// ---- Process-wide guard -----------------------------------------------------
// Fixed slots so the signal handler needs no allocation or locks: each holds the
// PID and mountpoint of one live FuseMount. Only the process that registered a
// slot acts on it, so forked test children that die never unmount anything.
constexpr int kGuardSlots = 16;
struct GuardSlot {
  std::atomic<pid_t> child{-1};
  char mountpoint[PATH_MAX] = {};
};
GuardSlot g_slots[kGuardSlots];
std::atomic<pid_t> g_owner{-1};

void GuardCleanupAll() {
  if (g_owner.load() != getpid()) return;
  for (GuardSlot& slot : g_slots) {
    pid_t child = slot.child.exchange(-1);
    if (child <= 0) continue;
    umount2(slot.mountpoint, MNT_DETACH);  // async-signal-safe syscalls only
    kill(child, SIGKILL);
  }
}

void GuardSignalHandler(int sig) {
  GuardCleanupAll();
  signal(sig, SIG_DFL);
  raise(sig);
}

// Also called in a forked child that mounts on its own: the slots it inherited
// belong to its parent, so it forgets them and becomes the owner.
void InstallGuardOnce() {
  static bool atexit_done = false;
  if (g_owner.load() == getpid()) return;
  for (GuardSlot& slot : g_slots) slot.child.store(-1);
  g_owner.store(getpid());
  if (!atexit_done) atexit(GuardCleanupAll);
  atexit_done = true;
  // A closed stdout (ctest killed, `| head`) must not end us before the
  // destructors run: writes fail with EPIPE instead and the teardown completes.
  signal(SIGPIPE, SIG_IGN);
  for (int sig : {SIGINT, SIGTERM, SIGABRT, SIGHUP, SIGQUIT}) {
    struct sigaction sa = {};
    sa.sa_handler = GuardSignalHandler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(sig, &sa, nullptr);
  }
}

int GuardRegister(pid_t child, const std::string& mountpoint) {
  InstallGuardOnce();
  for (int i = 0; i < kGuardSlots; ++i) {
    if (g_slots[i].child.load() != -1) continue;
    snprintf(g_slots[i].mountpoint, sizeof(g_slots[i].mountpoint), "%s", mountpoint.c_str());
    g_slots[i].child.store(child);
    return i;
  }
  return -1;  // more live mounts than slots: the destructor still cleans up
}

void GuardRelease(int slot) {
  if (slot >= 0) g_slots[slot].child.store(-1);
}

// ---- Helpers ------------------------------------------------------------------

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Waits for `pid` until `deadline`; returns true and sets *status once reaped.
bool WaitPidUntil(pid_t pid, Clock::time_point deadline, int* status) {
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return true;  // not our child any more
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollInterval);
  }
}

// Runs fusermount3 -u -z as a bounded fallback when umount2 fails.
void FusermountUnmount(const std::string& mountpoint) {
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    execlp("fusermount3", "fusermount3", "-u", "-z", mountpoint.c_str(), (char*)nullptr);
    _exit(127);
  }
  int status = 0;
  if (!WaitPidUntil(pid, Clock::now() + std::chrono::seconds(5), &status)) {
    kill(pid, SIGKILL);
    WaitPidUntil(pid, Clock::now() + std::chrono::seconds(5), &status);
  }
}

std::string JoinOpts(const std::vector<std::string>& opts) {
  std::string joined;
  for (const std::string& o : opts) {
    if (o.empty()) continue;
    if (!joined.empty()) joined += ',';
    joined += o;
  }
  return joined;
}

bool HasOpt(const std::vector<std::string>& opts, const std::string& prefix) {
  for (const std::string& o : opts) {
    if (o.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// argv for the daemon. Each kind has its own calling convention.
std::vector<std::string> BuildArgv(const MountOptions& options, const std::string& root,
                                   const std::string& backing, const std::string& mnt) {
  std::vector<std::string> opts = options.fs_opts;
  std::vector<std::string> argv = {options.binary};
  if (options.kind == FsKind::kPassthroughLl) {
    opts.insert(opts.begin(), "source=" + backing);
    argv.insert(argv.end(), {"-f", "-o", JoinOpts(opts), mnt});
    return argv;
  }
  // mirrorfs: keep its journal inside our temp dir, never in /var/lib.
  if (!HasOpt(opts, "journal=")) opts.push_back("journal=" + root + "/journal");
  if (!HasOpt(opts, "source_id=")) opts.push_back("source_id=itest");
  argv.insert(argv.end(), {backing, mnt, "-f", "-o", JoinOpts(opts)});
  return argv;
}

// The journal= value from a mirrorfs argv (BuildArgv's layout: BINARY BACKING MNT -f
// -o LIST, so the -o list is the last argument).
std::string JournalOpt(const std::vector<std::string>& argv) {
  if (argv.size() < 2) return "";
  std::stringstream in(argv[argv.size() - 1]);
  std::string item, found;
  while (std::getline(in, item, ',')) {
    if (item.rfind("journal=", 0) == 0) found = item.substr(8);
  }
  return found;
}

[[noreturn]] void ExecDaemon(const std::vector<std::string>& argv, const std::string& err_path,
                             pid_t parent, FsKind kind) {
  if (kind == FsKind::kPassthroughLl) {
    // Third-party example code that never frees its inode table at exit: under
    // the sanitizer build its leak report is not ours to judge.
    const char* asan = getenv("ASAN_OPTIONS");
    std::string opts = std::string(asan != nullptr ? asan : "") + ":detect_leaks=0";
    setenv("ASAN_OPTIONS", opts.c_str(), 1);
  }
  // Die with the test program even if it is SIGKILLed (libfuse unmounts on SIGTERM).
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(126);
  int devnull = open("/dev/null", O_RDONLY);
  int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (devnull < 0 || err < 0) _exit(126);
  dup2(devnull, 0);
  dup2(err, 1);
  dup2(err, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  dprintf(2, "execv %s: %s\n", args[0], strerror(errno));
  _exit(127);
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

void RemoveTreeAt(int parent_fd, const char* name, dev_t dev, int depth) {
  struct stat st;
  if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev || depth > 64) return;  // never cross into a mount
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      fchmod(fd, 0700);
      if (DIR* dir = fdopendir(fd)) {
        std::vector<std::string> names;
        while (struct dirent* e = readdir(dir)) {
          if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
        }
        for (const std::string& child : names) RemoveTreeAt(dirfd(dir), child.c_str(), dev, depth + 1);
        closedir(dir);
      } else {
        close(fd);
      }
    }
    unlinkat(parent_fd, name, AT_REMOVEDIR);
  } else {
    unlinkat(parent_fd, name, 0);
  }
}

}  // namespace

const char* FsKindName(FsKind kind) {
  return kind == FsKind::kMirrorfs ? "mirrorfs" : "passthrough_ll";
}

bool ParseFsKind(const std::string& name, FsKind* kind) {
  if (name == "passthrough_ll") {
    *kind = FsKind::kPassthroughLl;
  } else if (name == "mirrorfs") {
    *kind = FsKind::kMirrorfs;
  } else {
    return false;
  }
  return true;
}

bool MountOptionsFromEnv(MountOptions* out, std::string* error) {
  if (geteuid() != 0) {
    *error = "integration tests mount, chown and switch uids: run them as root";
    return false;
  }
  const char* binary = getenv("MIRROR_IT_FS");
  if (binary == nullptr || *binary == '\0') {
    *error = "MIRROR_IT_FS is not set (path of the FUSE binary under test)";
    return false;
  }
  out->binary = binary;
  const char* kind = getenv("MIRROR_IT_FS_KIND");
  if (kind != nullptr && *kind != '\0' && !ParseFsKind(kind, &out->kind)) {
    *error = std::string("MIRROR_IT_FS_KIND is not passthrough_ll or mirrorfs: ") + kind;
    return false;
  }
  out->fs_opts.clear();
  if (const char* opts = getenv("MIRROR_IT_FS_OPTS")) {
    std::stringstream in(opts);
    std::string item;
    while (std::getline(in, item, ',')) {
      if (!item.empty()) out->fs_opts.push_back(item);
    }
  }
  return true;
}

bool IsFuseMounted(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint options [optional...] - fstype source super
    std::istringstream fields(line);
    std::string id, parent, devno, root, mountpoint;
    fields >> id >> parent >> devno >> root >> mountpoint;
    if (mountpoint != path) continue;  // our paths never need \040 escapes
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    if (line.compare(sep + 3, 4, "fuse") == 0) return true;
  }
  return false;
}

void RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  RemoveTreeAt(AT_FDCWD, path.c_str(), st.st_dev, 0);
}

std::unique_ptr<FuseMount> FuseMount::Start(const MountOptions& options, std::string* error) {
  std::unique_ptr<FuseMount> m(new FuseMount());
  m->kind_ = options.kind;
  m->binary_ = options.binary;
  m->mount_timeout_ = options.mount_timeout;
  m->stop_timeout_ = options.stop_timeout;
  const char* tmp = getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/mirror-it-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    *error = "mkdtemp: " + std::string(strerror(errno));
    return nullptr;
  }
  m->root_ = tmpl;
  m->backing_ = options.backing.empty() ? m->root_ + "/backing" : options.backing;
  m->mountpoint_ = m->root_ + "/mnt";
  m->stderr_path_ = m->root_ + "/daemon.stderr";
  // Other uids (65534) must be able to reach the mountpoint and its siblings.
  if (chmod(m->root_.c_str(), 0755) != 0 ||
      (options.backing.empty() && mkdir(m->backing_.c_str(), 0755) != 0) ||
      mkdir(m->mountpoint_.c_str(), 0755) != 0) {
    *error = "preparing " + m->root_ + ": " + strerror(errno);
    return nullptr;  // destructor removes the temp dir
  }
  m->argv_ = BuildArgv(options, m->root_, m->backing_, m->mountpoint_);
  if (options.kind == FsKind::kMirrorfs) m->journal_path_ = JournalOpt(m->argv_);
  if (!m->Spawn(error)) return nullptr;  // destructor stops the child
  return m;
}

bool FuseMount::Restart(std::string* error) {
  if (pid_ > 0 || IsFuseMounted(mountpoint_)) {
    *error = "Restart: " + mountpoint_ + " is still served; Stop() it first";
    return false;
  }
  stderr_path_ = root_ + "/daemon." + std::to_string(starts_) + ".stderr";
  return Spawn(error);
}

bool FuseMount::Spawn(std::string* error) {
  ++starts_;
  pid_t parent = getpid();
  InstallGuardOnce();
  pid_t pid = fork();
  if (pid < 0) {
    *error = "fork: " + std::string(strerror(errno));
    return false;
  }
  if (pid == 0) ExecDaemon(argv_, stderr_path_, parent, kind_);
  pid_ = pid;
  guard_slot_ = GuardRegister(pid, mountpoint_);

  auto deadline = Clock::now() + mount_timeout_;
  for (;;) {
    if (IsFuseMounted(mountpoint_)) return true;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid_ = -1;
      GuardRelease(guard_slot_);
      guard_slot_ = -1;
      *error = binary_ + " " + DescribeStatus(status) + " before mounting; stderr:\n" +
               DaemonStderr();
      return false;
    }
    if (Clock::now() >= deadline) {
      *error = binary_ + " did not mount " + mountpoint_ + " within " +
               std::to_string(mount_timeout_.count()) + " ms; stderr:\n" + DaemonStderr();
      return false;  // Stop() (or the destructor) ends the child
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string FuseMount::DaemonStderr() const { return ReadWholeFile(stderr_path_); }

bool FuseMount::DaemonAlive() const {
  if (pid_ <= 0) return false;
  siginfo_t info = {};
  return waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == 0;
}

int FuseMount::Stop() {
  if (!mountpoint_.empty() && IsFuseMounted(mountpoint_)) {
    if (umount2(mountpoint_.c_str(), MNT_DETACH) != 0) FusermountUnmount(mountpoint_);
  }
  if (pid_ <= 0) {
    GuardRelease(guard_slot_);
    guard_slot_ = -1;
    return -1;
  }
  int status = 0;
  // After the unmount the daemon normally leaves on its own (its /dev/fuse read
  // fails); give it a moment, then ask, then insist.
  bool reaped = WaitPidUntil(pid_, Clock::now() + std::chrono::milliseconds(1000), &status);
  if (!reaped) {
    kill(pid_, SIGTERM);
    reaped = WaitPidUntil(pid_, Clock::now() + stop_timeout_, &status);
  }
  if (!reaped) {
    kill(pid_, SIGKILL);
    reaped = WaitPidUntil(pid_, Clock::now() + stop_timeout_, &status);
  }
  if (!reaped) fprintf(stderr, "FuseMount: daemon %d did not die after SIGKILL\n", pid_);
  pid_ = -1;
  GuardRelease(guard_slot_);
  guard_slot_ = -1;
  return reaped ? status : -1;
}

FuseMount::~FuseMount() {
  Stop();
  if (!root_.empty() && !IsFuseMounted(mountpoint_)) RemoveTree(root_);
}

}  // namespace mirror::itest
