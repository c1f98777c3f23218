#include "mirrorfs/daemon.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "mirrorfs/log.h"

namespace mirror::fs {
namespace {

// Message on the pipe: "<exit code> <reason>". EOF without a message means the child died.
void WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

[[noreturn]] void RunParent(int read_fd, pid_t child) {
  std::string msg;
  char buf[512];
  while (true) {
    ssize_t n = ::read(read_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<size_t>(n));
  }
  if (msg.empty()) {
    int status = 0;
    waitpid(child, &status, 0);
    Log(LogLevel::kError, "the daemon died during start-up");
    _exit(kExitMountFailure);
  }
  int code = std::atoi(msg.c_str());
  size_t space = msg.find(' ');
  if (code != 0) {
    // The child has exited or is exiting: reap it so no zombie is left to the caller.
    waitpid(child, nullptr, 0);
    if (space != std::string::npos) Log(LogLevel::kError, msg.substr(space + 1));
  }
  _exit(code);
}

}  // namespace

StartupReporter StartupReporter::Begin(bool foreground) {
  if (foreground) return StartupReporter(-1);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    Log(LogLevel::kError, std::string("pipe: ") + std::strerror(errno));
    std::exit(kExitMountFailure);
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    Log(LogLevel::kError, std::string("fork: ") + std::strerror(errno));
    std::exit(kExitMountFailure);
  }
  if (pid > 0) {
    close(fds[1]);
    RunParent(fds[0], pid);
  }
  close(fds[0]);
  setsid();
  return StartupReporter(fds[1]);
}

StartupReporter::StartupReporter(StartupReporter&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

StartupReporter::~StartupReporter() {
  if (fd_ >= 0) close(fd_);  // the parent sees EOF: "died during start-up"
}

void StartupReporter::Ready() {
  if (fd_ < 0) return;
  WriteAll(fd_, "0 ok");
  close(fd_);
  fd_ = -1;
  if (chdir("/") != 0) {
    // Not fatal: we hold fds, never paths relative to the working directory.
  }
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO) close(null);
  }
}

int StartupReporter::Fail(int exit_code, const std::string& reason) {
  if (fd_ < 0) {
    Log(LogLevel::kError, reason);
  } else {
    WriteAll(fd_, std::to_string(exit_code) + " " + reason);
    close(fd_);
    fd_ = -1;
  }
  return exit_code;
}

}  // namespace mirror::fs
