// TcpRelay: one poll thread that forwards, holds or resets loopback connections.
#include "tcp_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <utility>
#include <vector>

#include "common/unique_fd.h"

namespace mirror::itest {
namespace {

// The eventfd wakes the loop for every mode change; the timeout only bounds the
// wait should a wake-up ever be lost.
constexpr int kPollTimeoutMs = 200;
// A mode setter waits at most this long for the loop (which never blocks) to apply it.
constexpr auto kApplyTimeout = std::chrono::seconds(5);
// Accepts per loop round, so a connect storm cannot starve the open connections.
constexpr int kAcceptsPerRound = 64;

using Fd = common::UniqueFd;

// Closes with an RST instead of a FIN: the peer's next read fails with ECONNRESET,
// and bytes still unsent are dropped, as when a link or a host dies.
void ResetSocket(Fd& fd) {
  if (!fd) return;
  linger lg{};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  fd.reset();
}

// The relay must not add latency of its own to the small frames of the protocol.
void SetNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

// One direction of a connection: bytes read from the sender, not yet written to the
// receiver, in buf[begin, end). At most TcpRelay::kBufferBytes; a full buffer stops
// reading (backpressure).
struct Direction {
  std::vector<char> buf;
  size_t begin = 0;
  size_t end = 0;
  bool eof = false;   // the sender shut down its side
  bool shut = false;  // ... and the receiver was told (shutdown SHUT_WR)

  bool WantsRead() const { return !eof && end - begin < buf.size(); }
  bool WantsWrite() const { return begin < end; }

  // False when the socket broke (reset, error).
  bool Read(int from) {
    if (end == buf.size()) {  // room only at the front: compact
      std::memmove(buf.data(), buf.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    ssize_t n = ::recv(from, buf.data() + end, buf.size() - end, 0);
    if (n > 0) {
      end += static_cast<size_t>(n);
    } else if (n == 0) {
      eof = true;
    } else if (!WouldBlock(errno)) {
      return false;
    }
    return true;
  }

  // Writes what it can without blocking; passes EOF on once everything is written.
  bool Flush(int to, std::atomic<uint64_t>* counter) {
    while (begin < end) {
      ssize_t n = ::send(to, buf.data() + begin, end - begin, MSG_NOSIGNAL);
      if (n < 0) {
        if (WouldBlock(errno)) break;
        return false;
      }
      begin += static_cast<size_t>(n);
      counter->fetch_add(static_cast<uint64_t>(n));
    }
    if (begin == end) begin = end = 0;
    if (eof && begin == end && !shut) {
      if (::shutdown(to, SHUT_WR) != 0) return false;
      shut = true;
    }
    return true;
  }
};

struct Conn {
  enum class Phase { kHeld, kConnecting, kForwarding };
  Fd client;
  Fd target;
  Phase phase = Phase::kHeld;
  Direction up;    // client -> target
  Direction down;  // target -> client
  bool dead = false;
};

}  // namespace

const char* LinkModeName(LinkMode mode) {
  switch (mode) {
    case LinkMode::kForward:
      return "forward";
    case LinkMode::kBlackhole:
      return "blackhole";
    case LinkMode::kCut:
      return "cut";
  }
  return "?";
}

// Owns the listener, the wake eventfd and every connection; all of it is touched only
// by the poll thread (Run), except Wake().
class TcpRelay::Loop {
 public:
  Loop(TcpRelay* relay, Fd listener, Fd wake)
      : relay_(relay), listener_(std::move(listener)), wake_(std::move(wake)) {}

  void Run();
  // Any thread: makes the current or next poll() return.
  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
  }

 private:
  bool Sync();
  void BuildPollSet();
  void AcceptNew();
  void Connect(Conn& conn);
  void FinishConnect(Conn& conn);
  void Pump(Conn& conn, short client_revents, short target_revents);
  void Drop(Conn& conn, bool reset);
  void Sweep();
  uint16_t Target() const {
    std::lock_guard lock(relay_->mu_);
    return relay_->target_port_;
  }

  TcpRelay* const relay_;
  Fd listener_;
  Fd wake_;
  LinkMode mode_ = LinkMode::kForward;  // the mode as applied
  uint64_t applied_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<pollfd> pfds_;  // [wake, listener, then client+target per polled conn]
  size_t polled_ = 0;         // conns_[0, polled_) have entries in pfds_
};

void TcpRelay::Loop::Run() {
  while (Sync()) {
    BuildPollSet();
    int n = ::poll(pfds_.data(), pfds_.size(), kPollTimeoutMs);
    if (n <= 0) continue;  // timeout, EINTR: Sync() again
    if (pfds_[0].revents != 0) {
      uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(wake_.get(), &count, sizeof count);
    }
    if (pfds_[1].revents != 0) AcceptNew();
    for (size_t i = 0; i < polled_; ++i) {
      Conn& conn = *conns_[i];
      short crev = pfds_[2 + 2 * i].revents;
      short trev = pfds_[3 + 2 * i].revents;
      if (crev == 0 && trev == 0) continue;
      if (conn.phase == Conn::Phase::kConnecting) {
        FinishConnect(conn);
      } else if (conn.phase == Conn::Phase::kForwarding) {
        Pump(conn, crev, trev);
      }
    }
    Sweep();
  }
  // The relay goes away: whatever is still open ends abruptly, not with a clean EOF.
  for (auto& conn : conns_) Drop(*conn, /*reset=*/true);
  Sweep();
}

// Applies the requested mode before any I/O of this round, then acknowledges it: a
// mode setter returns only once no byte moves under the old mode any more.
bool TcpRelay::Loop::Sync() {
  LinkMode mode;
  uint64_t requested;
  {
    std::lock_guard lock(relay_->mu_);
    if (relay_->stop_) return false;
    mode = relay_->mode_;
    requested = relay_->requested_;
  }
  mode_ = mode;
  if (mode_ == LinkMode::kCut) {
    for (auto& conn : conns_) Drop(*conn, /*reset=*/true);
  } else if (mode_ == LinkMode::kForward) {
    for (auto& conn : conns_) {
      if (conn->phase == Conn::Phase::kHeld && !conn->dead) Connect(*conn);
    }
  }
  Sweep();
  if (requested != applied_) {
    applied_ = requested;
    {
      std::lock_guard lock(relay_->mu_);
      relay_->applied_ = requested;
    }
    relay_->applied_cv_.notify_all();
  }
  return true;
}

// In kBlackhole no connection is polled at all: nothing is read, written or noticed
// (not even a peer's reset), as over a dead link.
void TcpRelay::Loop::BuildPollSet() {
  pfds_.clear();
  pfds_.push_back({wake_.get(), POLLIN, 0});
  pfds_.push_back({listener_.get(), POLLIN, 0});
  polled_ = mode_ == LinkMode::kForward ? conns_.size() : 0;
  for (size_t i = 0; i < polled_; ++i) {
    const Conn& conn = *conns_[i];
    short cev = 0;
    short tev = 0;
    if (conn.phase == Conn::Phase::kConnecting) {
      tev = POLLOUT;
    } else if (conn.phase == Conn::Phase::kForwarding) {
      cev = static_cast<short>((conn.up.WantsRead() ? POLLIN : 0) |
                               (conn.down.WantsWrite() ? POLLOUT : 0));
      tev = static_cast<short>((conn.down.WantsRead() ? POLLIN : 0) |
                               (conn.up.WantsWrite() ? POLLOUT : 0));
    }
    // fd -1 when nothing is wanted: poll() would otherwise report POLLHUP on a
    // half-closed socket over and over and spin the loop.
    pfds_.push_back({cev != 0 ? conn.client.get() : -1, cev, 0});
    pfds_.push_back({tev != 0 ? conn.target.get() : -1, tev, 0});
  }
}

void TcpRelay::Loop::AcceptNew() {
  for (int i = 0; i < kAcceptsPerRound; ++i) {
    Fd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client) return;  // EAGAIN, or an aborted handshake: next round
    if (mode_ == LinkMode::kCut) {
      relay_->connections_refused_.fetch_add(1);  // counted before the peer can see it
      ResetSocket(client);
      continue;
    }
    relay_->connections_accepted_.fetch_add(1);
    SetNoDelay(client.get());
    auto conn = std::make_unique<Conn>();
    conn->client = std::move(client);
    if (mode_ == LinkMode::kForward) Connect(*conn);
    conns_.push_back(std::move(conn));
  }
}

// Target refused or unreachable: the client is reset, as its own connect would
// have failed.
void TcpRelay::Loop::Connect(Conn& conn) {
  conn.target.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!conn.target) return Drop(conn, /*reset=*/true);
  sockaddr_in addr = Loopback(Target());
  if (::connect(conn.target.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    conn.phase = Conn::Phase::kConnecting;
    return FinishConnect(conn);
  }
  if (errno != EINPROGRESS) return Drop(conn, /*reset=*/true);
  conn.phase = Conn::Phase::kConnecting;
}

void TcpRelay::Loop::FinishConnect(Conn& conn) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(conn.target.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == EINPROGRESS || err == EALREADY) return;  // not yet
  if (err != 0) return Drop(conn, /*reset=*/true);
  SetNoDelay(conn.target.get());
  conn.up.buf.resize(kBufferBytes);
  conn.down.buf.resize(kBufferBytes);
  conn.phase = Conn::Phase::kForwarding;
}

// A broken side (reset, error) resets the other one too: over one TCP connection
// the peer would have seen the reset.
void TcpRelay::Loop::Pump(Conn& conn, short client_revents, short target_revents) {
  constexpr short kReadable = POLLIN | POLLHUP | POLLERR;
  Direction& up = conn.up;
  Direction& down = conn.down;
  bool ok = true;
  if ((client_revents & kReadable) != 0 && up.WantsRead()) ok = up.Read(conn.client.get());
  if (ok) ok = up.Flush(conn.target.get(), &relay_->bytes_to_target_);
  if (ok && (target_revents & kReadable) != 0 && down.WantsRead()) {
    ok = down.Read(conn.target.get());
  }
  if (ok) ok = down.Flush(conn.client.get(), &relay_->bytes_from_target_);
  if (!ok) return Drop(conn, /*reset=*/true);
  // Both EOFs passed on and nothing left to read: an orderly close, which lets the
  // kernels deliver whatever they still hold.
  if (up.shut && down.shut) Drop(conn, /*reset=*/false);
}

void TcpRelay::Loop::Drop(Conn& conn, bool reset) {
  if (reset) {
    ResetSocket(conn.client);
    ResetSocket(conn.target);
  } else {
    conn.client.reset();
    conn.target.reset();
  }
  conn.dead = true;
}

void TcpRelay::Loop::Sweep() {
  std::erase_if(conns_, [](const std::unique_ptr<Conn>& conn) { return conn->dead; });
  relay_->open_connections_.store(static_cast<int>(conns_.size()));
}

// ---- TcpRelay ---------------------------------------------------------------

TcpRelay::TcpRelay() = default;

std::unique_ptr<TcpRelay> TcpRelay::Start(uint16_t target_port, std::string* error) {
  auto fail = [error](const char* what, int err) -> std::unique_ptr<TcpRelay> {
    if (error != nullptr) *error = std::string(what) + ": " + std::system_category().message(err);
    return nullptr;
  };
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener) return fail("socket", errno);
  sockaddr_in addr = Loopback(0);
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return fail("bind 127.0.0.1:0", errno);
  }
  if (::listen(listener.get(), 128) != 0) return fail("listen", errno);
  socklen_t len = sizeof addr;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return fail("getsockname", errno);
  }
  Fd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake) return fail("eventfd", errno);

  std::unique_ptr<TcpRelay> relay(new TcpRelay());
  relay->port_ = ntohs(addr.sin_port);
  relay->target_port_ = target_port;
  relay->loop_ = std::make_unique<Loop>(relay.get(), std::move(listener), std::move(wake));
  try {
    relay->thread_ = std::thread([r = relay.get()] { r->loop_->Run(); });
  } catch (const std::system_error& e) {
    if (error != nullptr) *error = std::string("start the relay thread: ") + e.what();
    return nullptr;
  }
  return relay;
}

TcpRelay::~TcpRelay() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  if (loop_) loop_->Wake();
  if (thread_.joinable()) thread_.join();
}

void TcpRelay::SetTarget(uint16_t target_port) {
  std::lock_guard lock(mu_);
  target_port_ = target_port;
}

void TcpRelay::Forward() { SetMode(LinkMode::kForward); }
void TcpRelay::Blackhole() { SetMode(LinkMode::kBlackhole); }
void TcpRelay::Cut() { SetMode(LinkMode::kCut); }

LinkMode TcpRelay::mode() const {
  std::lock_guard lock(mu_);
  return mode_;
}

void TcpRelay::SetMode(LinkMode mode) {
  std::unique_lock lock(mu_);
  mode_ = mode;
  uint64_t ticket = ++requested_;
  loop_->Wake();  // a non-blocking eventfd write
  applied_cv_.wait_for(lock, kApplyTimeout, [&] { return applied_ >= ticket; });
}

}  // namespace mirror::itest
