#include "control/control_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <exception>
#include <system_error>
#include <utility>

#include "control/control_io.h"

namespace mirror::control {
namespace {

using common::Result;
using common::Status;
using common::UniqueFd;
using nlohmann::json;

// A client gets this long to send its request line, and we this long to send the reply.
constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr auto kReplyTimeout = std::chrono::seconds(5);
constexpr int kListenBacklog = 16;

json ErrorReply(const std::string& message) { return {{"ok", false}, {"error", message}}; }

// mkdir -p for the directory that holds `path`; directories we create get mode 0700.
Status MakeParentDirs(const std::string& path) {
  std::size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return Status::Ok();  // cwd or /
  const std::string parent = path.substr(0, slash);
  // Each prefix ending before a '/', then the whole: bounded by the number of '/'.
  for (std::size_t pos = parent.find('/', 1);; pos = parent.find('/', pos + 1)) {
    std::string prefix = parent.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      // Exactly 0700 whatever the umask.
      if (::chmod(prefix.c_str(), 0700) != 0) return Status::IOError("chmod " + prefix, errno);
    } else if (errno != EEXIST) {
      return Status::FromErrno("mkdir " + prefix, errno);
    }
    if (pos == std::string::npos) break;
  }
  struct stat st;
  if (::stat(parent.c_str(), &st) != 0) return Status::FromErrno("stat " + parent, errno);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(parent + " is not a directory");
  return Status::Ok();
}

// Whether a server answers at `addr`: a refused connection means a stale socket.
Result<bool> AnswersAt(const std::string& path, const sockaddr_un& addr, socklen_t len) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Status::IOError("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0) return true;
  if (errno == EAGAIN) return true;  // a full backlog: alive, just busy
  if (errno == ECONNREFUSED) return false;
  return Status::FromErrno("connect " + path, errno);
}

// Binds `fd` at `path`, replacing a stale socket file, never a live one or a non-socket.
Status BindReplacingStale(int fd, const std::string& path, const sockaddr_un& addr, socklen_t len) {
  // Two attempts: the second runs only after a stale socket was removed.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) return Status::Ok();
    if (errno != EADDRINUSE) return Status::FromErrno("bind " + path, errno);
    if (attempt == 1) break;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      return Status::FromErrno("lstat " + path, errno);
    }
    if (!S_ISSOCK(st.st_mode)) return Status::AlreadyExists(path + " exists and is not a socket");
    MIRROR_ASSIGN_OR_RETURN(bool live, AnswersAt(path, addr, len));
    if (live) return Status::AlreadyExists("a server already answers at " + path);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno("unlink stale socket " + path, errno);
    }
  }
  return Status::AlreadyExists("another server took " + path + " while starting");
}

bool PeerAllowed(int fd) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == 0 || cred.uid == ::geteuid();
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& path,
                                                            Handler handler) {
  sockaddr_un addr;
  socklen_t len;
  if (!MakeUnixAddress(path, &addr, &len)) {
    return Status::InvalidArgument("control socket path \"" + path +
                                   "\" is empty or longer than 107 bytes");
  }
  if (!handler) return Status::InvalidArgument("control server without a handler");
  MIRROR_RETURN_IF_ERROR(MakeParentDirs(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Status::IOError("socket", errno);
  // Linux gives the socket file the socket inode's mode (minus umask): 0600 from its birth.
  // The chmod below makes it so everywhere; SO_PEERCRED is the real gate either way.
  (void)::fchmod(fd.get(), 0600);
  MIRROR_RETURN_IF_ERROR(BindReplacingStale(fd.get(), path, addr, len));
  auto fail = [&path](Status s) {
    ::unlink(path.c_str());
    return s;
  };
  if (::chmod(path.c_str(), 0600) != 0) return fail(Status::IOError("chmod " + path, errno));
  if (::listen(fd.get(), kListenBacklog) != 0)
    return fail(Status::IOError("listen " + path, errno));
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return fail(Status::IOError("lstat " + path, errno));
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return fail(Status::IOError("eventfd", errno));

  std::unique_ptr<ControlServer> server(new ControlServer(path, std::move(handler), std::move(fd),
                                                          std::move(wake), st.st_dev, st.st_ino));
  try {
    server->accept_thread_ = std::thread(&ControlServer::AcceptLoop, server.get());
  } catch (const std::system_error& e) {
    return Status::IOError("start control thread", e.code().value());  // ~ControlServer unlinks
  }
  return server;
}

ControlServer::ControlServer(std::string path, Handler handler, UniqueFd listen_fd,
                             UniqueFd wake_fd, dev_t dev, ino_t ino)
    : path_(std::move(path)),
      handler_(std::move(handler)),
      listen_fd_(std::move(listen_fd)),
      wake_fd_(std::move(wake_fd)),
      dev_(dev),
      ino_(ino) {}

ControlServer::~ControlServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  slot_freed_.notify_all();
  // The eventfd stays readable: every poll of the accept loop and of connections waiting
  // for bytes returns at once.
  const std::uint64_t one = 1;
  if (::write(wake_fd_.get(), &one, sizeof(one)) != sizeof(one)) {
    // Cannot happen for an eventfd far below its maximum; the waits are bounded anyway.
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  listen_fd_.reset();  // from here on, clients are refused (ECONNREFUSED)
  // Only connection threads touch the list now, and only their own `done` (under mu_).
  for (Connection& c : connections_) {
    if (c.thread.joinable()) c.thread.join();
  }
  struct stat st;
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
    ::unlink(path_.c_str());
  }
}

void ControlServer::AcceptLoop() {
  // Waits on the eventfd when accept keeps failing (fd exhaustion), instead of spinning.
  auto pause = [this] {
    struct pollfd wake = {wake_fd_.get(), POLLIN, 0};
    (void)::poll(&wake, 1, 100);
  };
  // Runs until shutdown; every wait in it ends when the eventfd fires.
  for (;;) {
    ReapFinished();
    {
      std::unique_lock<std::mutex> lock(mu_);
      slot_freed_.wait(lock, [this] { return stopping_ || active_ < kMaxConcurrentConnections; });
      if (stopping_) return;
    }
    struct pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno != EINTR) pause();
      continue;
    }
    if (fds[1].revents & POLLIN) return;
    if (!(fds[0].revents & POLLIN)) {
      pause();
      continue;
    }
    int client = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (client < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause();
      continue;
    }
    Spawn(UniqueFd(client));
  }
}

void ControlServer::Spawn(UniqueFd fd) {
  std::lock_guard<std::mutex> lock(mu_);
  Connection& connection = connections_.emplace_back();
  ++active_;
  try {
    // The new thread marks itself done under mu_, i.e. only after this assignment.
    connection.thread = std::thread(&ControlServer::Serve, this, &connection, std::move(fd));
  } catch (const std::system_error&) {
    --active_;  // the fd went with the failed thread's arguments: the client sees EOF
    connections_.pop_back();
  }
}

void ControlServer::ReapFinished() {
  std::list<Connection> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      auto next = std::next(it);
      if (it->done) finished.splice(finished.end(), connections_, it);
      it = next;
    }
  }
  for (Connection& c : finished) c.thread.join();
}

void ControlServer::Serve(Connection* connection, UniqueFd fd) {
  try {
    std::string line;
    int err = 0;
    IoOutcome got = ReadLine(fd.get(), kMaxRequestBytes, Clock::now() + kRequestTimeout,
                             wake_fd_.get(), &line, &err);
    json reply;
    if (got == IoOutcome::kOk) {
      reply = Answer(fd.get(), line);
    } else if (got == IoOutcome::kTooLarge) {
      reply = ErrorReply("request larger than " + std::to_string(kMaxRequestBytes) + " bytes");
    }
    // kEof (a liveness probe), kTimeout, kWoken, kError: nobody to answer.
    if (!reply.is_null()) {
      std::string out = reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      (void)WriteAll(fd.get(), out, Clock::now() + kReplyTimeout, wake_fd_.get(), &err);
    }
  } catch (...) {
    // Only allocation can throw here; the client sees the connection close.
  }
  fd.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    connection->done = true;
    --active_;
  }
  slot_freed_.notify_all();
}

json ControlServer::Answer(int fd, const std::string& line) {
  if (!PeerAllowed(fd)) return ErrorReply("permission denied");
  json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return ErrorReply("malformed request: not JSON");
  auto cmd = request.is_object() ? request.find("cmd") : request.end();
  if (!request.is_object() || cmd == request.end() || !cmd->is_string()) {
    return ErrorReply("malformed request: expected a JSON object with a string \"cmd\"");
  }
  json reply;
  try {
    reply = handler_(request);
  } catch (...) {
    return ErrorReply("internal error");
  }
  auto ok = reply.is_object() ? reply.find("ok") : reply.end();
  if (!reply.is_object() || ok == reply.end() || !ok->is_boolean()) {
    return ErrorReply("internal error: malformed reply");
  }
  return reply;
}

}  // namespace mirror::control
