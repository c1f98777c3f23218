// FuseMount: a throwaway FUSE mount for integration tests.
//
// Start() makes a fresh temporary directory holding backing/ and mnt/, runs the
// filesystem binary in the foreground (-f) as a child process, and waits (bounded)
// until mnt/ shows up in /proc/self/mountinfo with an fstype of fuse.*.
// The destructor ALWAYS tears down what Start() set up, in this order: lazy unmount
// (umount2 MNT_DETACH, falling back to fusermount3 -u -z), up to 1 s for the daemon
// to leave on its own, SIGTERM to the child by its PID, SIGKILL after stop_timeout,
// waitpid, then removal of the temp dir (skipped if the mount could not be undone).
// A process-wide guard (atexit plus SIGINT/SIGTERM/SIGABRT/SIGHUP/SIGQUIT handlers;
// SIGPIPE is ignored so a closed stdout cannot skip the teardown) unmounts and kills whatever is still live if the program dies before
// the destructors run; the daemon also gets PR_SET_PDEATHSIG(SIGTERM), so even a
// SIGKILLed test program leaves no mount behind (only its temp dir).
// Only mounts and processes started here are ever touched.
//
// Thread-safety: one owner; Start/destroy from the main thread. Forked children
// must leave via _exit (the guard ignores them: it only acts in the starting PID).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace mirror::itest {

// Which program serves the mount; decides the command line.
enum class FsKind { kPassthroughLl, kMirrorfs };

// "passthrough_ll" / "mirrorfs"; ParseFsKind accepts the same names.
const char* FsKindName(FsKind kind);
bool ParseFsKind(const std::string& name, FsKind* kind);

struct MountOptions {
  std::string binary;                  // path of the FUSE program
  FsKind kind = FsKind::kPassthroughLl;
  std::vector<std::string> fs_opts;    // joined into one -o list, e.g. {"allow_other"}
  std::string backing;  // BACKING to serve; empty: a fresh root()/backing (never removed else)
  std::chrono::milliseconds mount_timeout{10000};
  std::chrono::milliseconds stop_timeout{5000};  // SIGTERM -> SIGKILL grace
};

// Options from the environment, used by every integration program so CTest picks
// the filesystem under test: MIRROR_IT_FS (binary), MIRROR_IT_FS_KIND (kind name),
// MIRROR_IT_FS_OPTS (comma-separated -o list). Returns false with *error set when
// MIRROR_IT_FS is missing, the kind is unknown, or we are not root.
bool MountOptionsFromEnv(MountOptions* out, std::string* error);

class FuseMount {
 public:
  // Returns nullptr and sets *error (including the child's stderr) on failure;
  // everything half set up is torn down before returning.
  static std::unique_ptr<FuseMount> Start(const MountOptions& options, std::string* error);
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  const std::string& root() const { return root_; }          // temp dir (mode 0755)
  const std::string& backing() const { return backing_; }    // root()/backing, or options'
  const std::string& mountpoint() const { return mountpoint_; }  // root()/mnt
  pid_t pid() const { return pid_; }
  FsKind kind() const { return kind_; }
  // What the daemon wrote to stderr so far (captured in a file under root()).
  std::string DaemonStderr() const;
  // True while the daemon has not exited (never reaps it).
  bool DaemonAlive() const;
  // Unmounts, stops the child and reaps it; idempotent. Returns the child's wait
  // status (or -1 if it was already reaped). The temp dir stays until destruction.
  int Stop();
  // Starts the same program again over the same backing/ and mnt/ with the same
  // command line (journal included), after Stop() (e.g. once the test SIGKILLed the
  // daemon and Stop() detached the dead mount and reaped it). Waits for the mount as
  // Start() does; on failure returns false with *error (incl. the daemon's stderr),
  // and the object is left stopped (the destructor still cleans up). Its stderr goes
  // to a fresh file (daemon.<n>.stderr); DaemonStderr() then reads that one.
  bool Restart(std::string* error);
  // mirrorfs only: the journal file the daemon was given (journal= in fs_opts, or the
  // default root()/journal that Start() adds); empty for other kinds.
  const std::string& journal_path() const { return journal_path_; }

 private:
  FuseMount() = default;
  // Forks and execs argv_, then waits (mount_timeout_) until mnt/ is a FUSE mount.
  bool Spawn(std::string* error);

  std::string root_;
  std::string backing_;
  std::string mountpoint_;
  std::string stderr_path_;
  std::string journal_path_;
  std::string binary_;
  std::vector<std::string> argv_;
  int starts_ = 0;
  FsKind kind_ = FsKind::kPassthroughLl;
  std::chrono::milliseconds mount_timeout_{10000};
  std::chrono::milliseconds stop_timeout_{5000};
  pid_t pid_ = -1;
  int guard_slot_ = -1;
};

// True if `path` is a mount point in /proc/self/mountinfo whose fstype starts with
// "fuse" (fuse, fuse.<subtype>, fuseblk).
bool IsFuseMounted(const std::string& path);

// rm -rf that never crosses into another filesystem (skips mount points). Bounded
// by the tree's size; errors are ignored (best effort cleanup).
void RemoveTree(const std::string& path);

}  // namespace mirror::itest
