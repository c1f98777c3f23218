// Start-up reporting and daemonizing. mirrorfs forks EARLY (before any thread and before
// mounting): the child does all the work and reports success or the failure reason through
// a pipe; the parent waits for that report and exits with the code the child chose, so that
// `mount` and scripts see start-up failures (CONVENTIONS 6, 11).
#pragma once

#include <string>

namespace mirror::fs {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;
inline constexpr int kExitMountFailure = 32;

class StartupReporter {
 public:
  // Foreground: no fork; failures are logged by the caller of Fail.
  // Background: forks; the parent never returns from this call (it exits with the child's
  // report), the child returns with a new session (setsid) and the pipe's write end.
  static StartupReporter Begin(bool foreground);

  StartupReporter(StartupReporter&& other) noexcept;
  StartupReporter& operator=(StartupReporter&&) = delete;
  StartupReporter(const StartupReporter&) = delete;
  ~StartupReporter();

  // Reports success. Background child: detaches (chdir /, stdio to /dev/null).
  void Ready();
  // Reports a failure: logs the reason (foreground) or sends it to the parent, which prints
  // it. Returns `exit_code` for the caller to exit with.
  int Fail(int exit_code, const std::string& reason);

 private:
  explicit StartupReporter(int fd) : fd_(fd) {}
  int fd_ = -1;  // the pipe to the parent; -1 in the foreground or once reported
};

}  // namespace mirror::fs
