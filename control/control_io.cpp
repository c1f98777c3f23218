#include "control/control_io.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

namespace mirror::control {
namespace {

// Waits until `fd` is ready for `events`, the deadline passes or `wake_fd` fires.
// Returns kOk when fd is ready (or has an error/hangup for the next call to report).
IoOutcome WaitFor(int fd, short events, Clock::time_point deadline, int wake_fd, int* err) {
  // Bounded: every pass either returns or lets time run towards the deadline (EINTR).
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return IoOutcome::kTimeout;
    struct pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    int n = ::poll(fds, wake_fd >= 0 ? 2 : 1,
                   static_cast<int>(std::min<long long>(left.count(), 60'000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return IoOutcome::kError;
    }
    if (wake_fd >= 0 && (fds[1].revents & POLLIN)) return IoOutcome::kWoken;
    if (fds[0].revents != 0) return IoOutcome::kOk;
  }
}

}  // namespace

bool MakeUnixAddress(const std::string& path, sockaddr_un* addr, socklen_t* len) {
  std::memset(addr, 0, sizeof(*addr));
  // Room for the terminating NUL, so the kernel and every tool see the same name.
  if (path.empty() || path.size() >= sizeof(addr->sun_path)) return false;
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

IoOutcome ReadLine(int fd, std::size_t limit, Clock::time_point deadline, int wake_fd,
                   std::string* line, int* err) {
  line->clear();
  char buf[4096];
  // Bounded: each pass reads at least one byte towards `limit`, or waits towards the deadline.
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      std::string_view chunk(buf, static_cast<std::size_t>(n));
      std::size_t nl = chunk.find('\n');
      line->append(chunk.substr(0, nl));
      if (line->size() > limit) return IoOutcome::kTooLarge;
      if (nl != std::string_view::npos) return IoOutcome::kOk;
      continue;
    }
    if (n == 0) return line->empty() ? IoOutcome::kEof : IoOutcome::kOk;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      *err = errno;
      return IoOutcome::kError;
    }
    IoOutcome waited = WaitFor(fd, POLLIN, deadline, wake_fd, err);
    if (waited != IoOutcome::kOk) return waited;
  }
}

IoOutcome WriteAll(int fd, std::string_view data, Clock::time_point deadline, int wake_fd,
                   int* err) {
  // Bounded: each pass sends at least one byte, or waits towards the deadline.
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      *err = errno;
      return IoOutcome::kError;
    }
    IoOutcome waited = WaitFor(fd, POLLOUT, deadline, wake_fd, err);
    if (waited != IoOutcome::kOk) return waited;
  }
  return IoOutcome::kOk;
}

}  // namespace mirror::control
