#include "control/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "common/unique_fd.h"
#include "control/control_io.h"

namespace mirror::control {
namespace {

using common::Result;
using common::Status;
using common::UniqueFd;
using nlohmann::json;

// Replies are small (a status is ~1 KiB); this only stops a broken peer.
constexpr std::size_t kMaxReplyBytes = 1 << 20;
// How often to retry a connection the server's full backlog turned away.
constexpr auto kBusyRetry = std::chrono::milliseconds(10);

std::string Millis(std::chrono::milliseconds timeout) {
  return std::to_string(timeout.count()) + " ms";
}

// Connects `fd`, retrying while the server's backlog is full, until `deadline`.
Status Connect(int fd, const std::string& path, const sockaddr_un& addr, socklen_t len,
               Clock::time_point deadline, std::chrono::milliseconds timeout) {
  // Bounded by the deadline: each retry sleeps kBusyRetry (or what is left).
  for (;;) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) return Status::Ok();
    int err = errno;
    if (err == EINTR) continue;
    if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR) {
      return Status::Unavailable("no daemon at " + path);
    }
    if (err == EACCES || err == EPERM) {
      return Status::PermissionDenied("permission denied connecting to " + path);
    }
    if (err != EAGAIN) return Status::IOError("connect " + path, err);
    auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      return Status::DeadlineExceeded("the daemon at " + path + " did not accept within " +
                                      Millis(timeout));
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(left, kBusyRetry));
  }
}

}  // namespace

Result<json> Request(const std::string& path, const json& request,
                     std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  sockaddr_un addr;
  socklen_t len;
  if (!MakeUnixAddress(path, &addr, &len)) {
    return Status::InvalidArgument("control socket path \"" + path +
                                   "\" is empty or longer than 107 bytes");
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Status::IOError("socket", errno);
  MIRROR_RETURN_IF_ERROR(Connect(fd.get(), path, addr, len, deadline, timeout));

  const std::string line = request.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  int err = 0;
  IoOutcome sent = WriteAll(fd.get(), line, deadline, -1, &err);
  if (sent == IoOutcome::kTimeout) {
    return Status::DeadlineExceeded("the daemon at " + path + " did not take the request within " +
                                    Millis(timeout));
  }
  // EPIPE/ECONNRESET: the server may have refused the request early (too large) and
  // replied before closing; the reply, if any, is still ours to read.
  if (sent == IoOutcome::kError && err != EPIPE && err != ECONNRESET) {
    return Status::IOError("send to " + path, err);
  }

  std::string reply_line;
  IoOutcome got = ReadLine(fd.get(), kMaxReplyBytes, deadline, -1, &reply_line, &err);
  switch (got) {
    case IoOutcome::kOk:
      break;
    case IoOutcome::kEof:
      return Status::Unavailable("the daemon at " + path +
                                 " closed the connection without a reply");
    case IoOutcome::kTimeout:
    case IoOutcome::kWoken:
      return Status::DeadlineExceeded("no reply from the daemon at " + path + " within " +
                                      Millis(timeout));
    case IoOutcome::kTooLarge:
      return Status::Corruption("reply from " + path + " is larger than 1 MiB");
    case IoOutcome::kError:
      if (err == ECONNRESET) {
        return Status::Unavailable("the daemon at " + path + " reset the connection");
      }
      return Status::IOError("receive from " + path, err);
  }
  json reply = json::parse(reply_line, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded() || !reply.is_object()) {
    return Status::Corruption("reply from " + path + " is not a JSON object");
  }
  return reply;
}

}  // namespace mirror::control
