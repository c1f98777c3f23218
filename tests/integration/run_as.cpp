// RunAs: fork, drop to an identity, run, return bytes through a pipe.
#include "run_as.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <thread>

namespace mirror::itest {
namespace {

using Clock = std::chrono::steady_clock;

bool WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

[[noreturn]] void ChildMain(const Identity& who, const std::function<std::string()>& fn, int out) {
  if (setgroups(0, nullptr) != 0 || setresgid(who.gid, who.gid, who.gid) != 0 ||
      setresuid(who.uid, who.uid, who.uid) != 0) {
    dprintf(out, "identity switch failed: %s", strerror(errno));
    _exit(2);
  }
  std::string result;
  try {
    result = fn();
  } catch (...) {
    WriteAll(out, "exception in child");
    _exit(3);
  }
  _exit(WriteAll(out, result) ? 0 : 4);
}

// Reads everything from `fd` until EOF or `deadline`; false on timeout.
bool ReadUntilEof(int fd, Clock::time_point deadline, std::string* out) {
  char buf[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

bool ReapUntil(pid_t pid, Clock::time_point deadline, int* status) {
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

ChildOutput RunAs(const Identity& who, const std::function<std::string()>& fn,
                  std::chrono::milliseconds timeout) {
  ChildOutput result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + strerror(errno);
    return result;
  }
  pid_t pid = fork();
  if (pid < 0) {
    result.error = std::string("fork: ") + strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return result;
  }
  if (pid == 0) {
    close(fds[0]);
    ChildMain(who, fn, fds[1]);
  }
  close(fds[1]);
  auto deadline = Clock::now() + timeout;
  bool complete = ReadUntilEof(fds[0], deadline, &result.output);
  close(fds[0]);
  int status = 0;
  bool reaped = complete && ReapUntil(pid, deadline + std::chrono::seconds(2), &status);
  if (!reaped) {
    kill(pid, SIGKILL);  // our own child, by PID
    ReapUntil(pid, Clock::now() + std::chrono::seconds(5), &status);
    result.error = "child as " + std::string(who.name) + " timed out after " +
                   std::to_string(timeout.count()) + " ms";
    return result;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    result.error = "child as " + std::string(who.name) + " failed (status " +
                   std::to_string(status) + "): " + result.output;
    return result;
  }
  result.ok = true;
  return result;
}

CallResult RunAsCall(const Identity& who, const std::function<long()>& fn,
                     std::chrono::milliseconds timeout) {
  ChildOutput out = RunAs(
      who,
      [&fn] {
        errno = 0;
        long ret = fn();
        int err = ret < 0 ? errno : 0;
        return std::to_string(ret) + " " + std::to_string(err);
      },
      timeout);
  CallResult result;
  if (!out.ok) {
    result.error = out.error;
    return result;
  }
  if (sscanf(out.output.c_str(), "%ld %d", &result.ret, &result.err) != 2) {
    result.error = "unparsable child output: " + out.output;
    return result;
  }
  result.ok = true;
  return result;
}

}  // namespace mirror::itest
