// Internals of workload.h: one Worker per thread, its RNG stream and its ops.
// Only workload.cpp and workload_ops.cpp include this.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "workload.h"

namespace mirror::itest::workload_internal {

using Clock = std::chrono::steady_clock;

// The thread's stream: splitmix64 of (seed, thread) seeds an mt19937_64, whose output
// is the same on every platform (unlike the std distributions, which we avoid).
class Rng {
 public:
  Rng(uint64_t seed, int thread);
  uint64_t Next() { return gen_(); }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : gen_() % n; }
  bool Percent(unsigned p) { return Below(100) < p; }
  template <class T, size_t N>
  const T& Pick(const T (&items)[N]) {
    return items[Below(N)];
  }
  std::string Bytes(size_t n);

 private:
  std::mt19937_64 gen_;
};

// Switches the calling thread's effective uid and gid (and so its fsuid/fsgid) to `id`
// and back on destruction, with the raw syscalls: glibc's setresuid would switch every
// thread of the process. The saved ids stay 0, so returning to root always works.
class ThreadCreds {
 public:
  explicit ThreadCreds(uint32_t id);
  ~ThreadCreds();
  ThreadCreds(const ThreadCreds&) = delete;
  ThreadCreds& operator=(const ThreadCreds&) = delete;
  int error() const { return error_; }  // 0, or why the switch failed (creds unchanged)

 private:
  int error_ = 0;
};

// What all workers share.
struct Shared {
  const WorkloadOptions* options = nullptr;
  Clock::time_point deadline;
  std::atomic<bool> lost{false};  // the mount answered ENOTCONN/ECONNABORTED
  std::atomic<bool> timed_out{false};
};

// One op's outcome: 0 or the first errno, and which step failed.
struct Outcome {
  int err = 0;
  const char* step = "";
};

class Worker {
 public:
  Worker(Shared* shared, int thread);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Run();

  std::array<OpCounts, kWorkOpCount> counts;
  std::vector<std::string> trace;
  std::vector<std::string> violations;
  uint64_t ops = 0;

 private:
  struct KeptFd {
    int fd = -1;
    std::string opened_as;
  };

  WorkOp PickOp();
  Outcome Do(WorkOp op, std::string* what);
  void Count(WorkOp op, uint64_t index, const std::string& what, const Outcome& out);
  void Violation(const char* scenario, const std::string& text);

  std::string Abs(const std::string& rel) const { return root_ + "/" + rel; }
  std::string PickDir();
  std::string PickSubdir();
  std::string PickFile();
  std::string PickNode();  // a file name, a subdir or a top dir
  std::string PickXattrNode();
  std::string SymlinkTarget(const std::string& link_rel);
  uint64_t Offset();
  size_t Length();

  // Data ops (workload_ops.cpp).
  Outcome Create(std::string* what);
  Outcome Write(std::string* what);
  Outcome Append(std::string* what);
  Outcome Truncate(std::string* what);
  Outcome Fallocate(WorkOp op, std::string* what);
  Outcome CopyRange(std::string* what);
  Outcome SharedWrite(std::string* what);
  Outcome KeepOpen(std::string* what);
  Outcome KeptWrite(std::string* what);
  Outcome KeptClose(std::string* what);
  Outcome CreateAsUser(std::string* what);
  Outcome MmapWrite(std::string* what);
  Outcome Acl(std::string* what);
  // Namespace and attribute ops (workload_ns_ops.cpp).
  Outcome Rename(WorkOp op, std::string* what);
  Outcome Link(std::string* what);
  Outcome Symlink(std::string* what);
  Outcome MakeOrRemove(WorkOp op, std::string* what);  // unlink mkdir rmdir mkfifo mknod
  Outcome Chmod(std::string* what);
  Outcome Chown(std::string* what);
  Outcome Utimens(std::string* what);
  Outcome Xattr(WorkOp op, std::string* what);
  // Checked scenarios (workload_checks.cpp).
  Outcome FdAfterRename(std::string* what);
  Outcome FdAfterReuse(std::string* what);

  Shared* shared_;
  const int thread_;
  const std::string root_;
  Rng rng_;
  uint64_t index_ = 0;  // the op being run
  int shared_fd_ = -1;  // s/shared, opened O_RDWR at start
  std::vector<KeptFd> kept_;
};

inline constexpr uint32_t kOtherUsers[] = {1000, 65534};

// Helpers shared by the op files.
Outcome Fail(const char* step);  // errno -> Outcome
bool IsMountGone(int err);       // ENOTCONN / ECONNABORTED
// Creates (O_TRUNC) `path` holding `bytes`.
Outcome PutFile(const std::string& path, const std::string& bytes, mode_t mode = 0644);
// Whole content of `path`; false with errno set on failure.
bool GetFile(const std::string& path, std::string* out);
std::string Hex(uint64_t v);

}  // namespace mirror::itest::workload_internal
