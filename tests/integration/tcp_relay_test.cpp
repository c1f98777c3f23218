// TcpRelay's guarantees, with real sockets on loopback: bytes pass both ways
// unchanged, a blackhole holds them and Forward() delivers exactly them, a cut resets
// both sides and refuses new connections, SetTarget redirects new connections, the
// counters count, and destruction is quick even with connections open.
// Every blocking socket call here is bounded (SO_RCVTIMEO/SO_SNDTIMEO, poll timeouts).
#include "tcp_relay.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "common/unique_fd.h"

namespace mirror::itest {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kIoTimeoutMs = 5000;  // any single wait on a socket
constexpr int kQuietMs = 300;       // "nothing arrives" means nothing for this long
constexpr int kSmallBufferBytes = 64 << 10;

using Fd = common::UniqueFd;

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

void SetIoTimeouts(int fd) {
  timeval tv{};
  tv.tv_sec = kIoTimeoutMs / 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// The target of the relay: a listening socket the test accepts from itself.
struct Server {
  Fd fd;
  uint16_t port = 0;
};

// rcvbuf > 0 fixes the receive buffer of accepted sockets (no autotuning), so that
// little is in flight when the test does not read.
Server Listen(int rcvbuf = 0) {
  Server server;
  server.fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(server.fd);
  if (rcvbuf > 0) {
    REQUIRE(::setsockopt(server.fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0);
  }
  sockaddr_in addr = Loopback(0);
  REQUIRE(::bind(server.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(server.fd.get(), 16) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(server.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  server.port = ntohs(addr.sin_port);
  return server;
}

// An empty Fd when no connection arrives within timeout_ms.
Fd AcceptWithin(const Server& server, int timeout_ms) {
  pollfd pfd{server.fd.get(), POLLIN, 0};
  if (::poll(&pfd, 1, timeout_ms) != 1) return Fd();
  Fd fd(::accept4(server.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (fd) SetIoTimeouts(fd.get());
  return fd;
}

Fd Connect(uint16_t port, int sndbuf = 0) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  if (sndbuf > 0) {
    REQUIRE(::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);
  }
  SetIoTimeouts(fd.get());
  sockaddr_in addr = Loopback(port);
  REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct Received {
  std::string data;
  bool eof = false;  // the peer's EOF came right after `data`
};

// Reads until `limit` bytes, EOF, an error, or no byte for quiet_ms.
Received RecvUpTo(int fd, size_t limit, int quiet_ms = kIoTimeoutMs) {
  Received got;
  char buf[64 << 10];
  while (got.data.size() < limit) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, quiet_ms) != 1) break;
    ssize_t n = ::recv(fd, buf, std::min(sizeof buf, limit - got.data.size()), 0);
    if (n == 0) got.eof = true;
    if (n <= 0) break;
    got.data.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// What one read sees: 0 for EOF, the errno for an error, -1 if a byte arrived.
int ReadOutcome(int fd) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, 0);
  if (n < 0) return errno;
  return n == 0 ? 0 : -1;
}

// True when neither a byte nor an EOF nor an error arrives within ms.
bool QuietFor(int fd, int ms) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, ms) == 0;
}

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = rng();
    std::memcpy(bytes.data() + i, &v, std::min<size_t>(8, size - i));
  }
  return bytes;
}

bool WaitUntil(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::unique_ptr<TcpRelay> StartRelay(uint16_t target_port) {
  std::string error;
  std::unique_ptr<TcpRelay> relay = TcpRelay::Start(target_port, &error);
  REQUIRE_MESSAGE(relay != nullptr, error);
  CHECK(relay->port() != 0);
  CHECK(relay->port() != target_port);
  return relay;
}

// A client connected through the relay and the target's end of that connection.
struct Link {
  Fd client;
  Fd server;
};

Link Open(const TcpRelay& relay, const Server& target, int sndbuf = 0) {
  Link link;
  link.client = Connect(relay.port(), sndbuf);
  link.server = AcceptWithin(target, kIoTimeoutMs);
  REQUIRE(link.server);
  return link;
}

// Sends `bytes` from `fd` in a thread (the peer may not read yet), then shuts down
// the write side so the receiver can check that nothing follows.
std::thread SendAndShut(int fd, const std::string& bytes, std::atomic<bool>* ok,
                        std::atomic<bool>* done = nullptr) {
  return std::thread([fd, &bytes, ok, done] {
    ok->store(SendAll(fd, bytes));
    if (done != nullptr) done->store(true);
    ::shutdown(fd, SHUT_WR);
  });
}

TEST_CASE("BytesPassBothWaysUnchangedAndEofIsPassedOn") {
  Server target = Listen();
  auto relay = StartRelay(target.port);
  Link link = Open(*relay, target);
  const std::string up = RandomBytes(6 << 20, 1);
  const std::string down = RandomBytes(5 << 20, 2);
  std::atomic<bool> up_ok{false};
  std::atomic<bool> down_ok{false};
  std::thread up_writer = SendAndShut(link.client.get(), up, &up_ok);
  std::thread down_writer = SendAndShut(link.server.get(), down, &down_ok);
  Received at_target;
  std::thread up_reader([&] { at_target = RecvUpTo(link.server.get(), up.size() + 1); });
  Received at_client = RecvUpTo(link.client.get(), down.size() + 1);
  up_reader.join();
  up_writer.join();
  down_writer.join();

  CHECK(up_ok.load());
  CHECK(down_ok.load());
  CHECK(at_target.data.size() == up.size());
  CHECK((at_target.data == up));
  CHECK(at_target.eof);
  CHECK(at_client.data.size() == down.size());
  CHECK((at_client.data == down));
  CHECK(at_client.eof);
  CHECK(relay->bytes_to_target() == up.size());
  CHECK(relay->bytes_from_target() == down.size());
  CHECK(relay->connections_accepted() == 1);
  CHECK(relay->connections_refused() == 0);
  // Both EOFs passed on: the relay closes its sockets on its own.
  CHECK(WaitUntil([&] { return relay->open_connections() == 0; }, kIoTimeoutMs));
}

TEST_CASE("BlackholeHoldsBytesBothWaysAndForwardDeliversExactlyThem") {
  Server target = Listen();
  auto relay = StartRelay(target.port);
  Link link = Open(*relay, target);
  REQUIRE(SendAll(link.client.get(), "hi"));
  REQUIRE(RecvUpTo(link.server.get(), 2).data == "hi");

  relay->Blackhole();
  CHECK(relay->mode() == LinkMode::kBlackhole);
  const uint64_t to_target = relay->bytes_to_target();
  const uint64_t from_target = relay->bytes_from_target();
  const std::string up = RandomBytes(256 << 10, 3);
  const std::string down = RandomBytes(128 << 10, 4);
  std::atomic<bool> up_ok{false};
  std::atomic<bool> down_ok{false};
  std::thread up_writer = SendAndShut(link.client.get(), up, &up_ok);
  std::thread down_writer = SendAndShut(link.server.get(), down, &down_ok);
  CHECK(QuietFor(link.server.get(), kQuietMs));
  CHECK(QuietFor(link.client.get(), 50));
  CHECK(relay->bytes_to_target() == to_target);
  CHECK(relay->bytes_from_target() == from_target);
  CHECK(relay->open_connections() == 1);

  relay->Forward();
  Received at_target = RecvUpTo(link.server.get(), up.size() + 1);
  Received at_client = RecvUpTo(link.client.get(), down.size() + 1);
  up_writer.join();
  down_writer.join();
  CHECK(up_ok.load());
  CHECK(down_ok.load());
  CHECK(at_target.data.size() == up.size());
  CHECK((at_target.data == up));
  CHECK(at_target.eof);
  CHECK(at_client.data.size() == down.size());
  CHECK((at_client.data == down));
  CHECK(at_client.eof);
}

TEST_CASE("BlackholeKeepsBytesQueuedInTheRelayAndBackpressureHoldsTheSender") {
  // Small fixed buffers at both ends, so the relay's own buffering shows.
  Server target = Listen(kSmallBufferBytes);
  auto relay = StartRelay(target.port);
  Link link = Open(*relay, target, kSmallBufferBytes);
  const std::string up = RandomBytes(24 << 20, 5);
  std::atomic<bool> ok{false};
  std::atomic<bool> done{false};
  std::thread writer = SendAndShut(link.client.get(), up, &ok, &done);

  // The target reads nothing: the flow stops once the buffers are full.
  uint64_t last = ~uint64_t{0};
  CHECK(WaitUntil(
      [&] {
        uint64_t now = relay->bytes_to_target();
        bool still = now == last && now > 0;
        last = now;
        if (!still) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return still;
      },
      kIoTimeoutMs));
  CHECK_FALSE(done.load());  // the relay stopped reading instead of queueing all of it

  relay->Blackhole();
  const uint64_t sent = relay->bytes_to_target();
  CHECK(sent < up.size());
  // The target drains what reached it before the blackhole, and nothing more comes.
  Received before = RecvUpTo(link.server.get(), up.size(), kQuietMs);
  CHECK(before.data.size() == sent);
  CHECK(relay->bytes_to_target() == sent);

  relay->Forward();
  Received after = RecvUpTo(link.server.get(), up.size() - before.data.size() + 1);
  writer.join();
  CHECK(ok.load());
  std::string all = before.data + after.data;
  CHECK(all.size() == up.size());
  CHECK((all == up));
  CHECK(after.eof);
  CHECK(relay->bytes_to_target() == up.size());
}

TEST_CASE("CutResetsBothSidesAndRefusesNewConnectionsUntilForward") {
  Server target = Listen();
  auto relay = StartRelay(target.port);
  Link link = Open(*relay, target);
  REQUIRE(SendAll(link.client.get(), "x"));
  REQUIRE(RecvUpTo(link.server.get(), 1).data == "x");
  REQUIRE(SendAll(link.server.get(), "y"));
  REQUIRE(RecvUpTo(link.client.get(), 1).data == "y");

  relay->Cut();
  CHECK(relay->mode() == LinkMode::kCut);
  CHECK(relay->open_connections() == 0);
  CHECK(ReadOutcome(link.client.get()) == ECONNRESET);
  CHECK(ReadOutcome(link.server.get()) == ECONNRESET);

  // The kernel completes the handshake; the relay resets the connection at once.
  Fd refused = Connect(relay->port());
  CHECK(ReadOutcome(refused.get()) == ECONNRESET);
  CHECK_FALSE(static_cast<bool>(AcceptWithin(target, kQuietMs)));
  CHECK(relay->connections_refused() == 1);
  CHECK(relay->connections_accepted() == 1);

  relay->Forward();
  Link again = Open(*relay, target);
  REQUIRE(SendAll(again.client.get(), "back"));
  CHECK(RecvUpTo(again.server.get(), 4).data == "back");
  CHECK(relay->connections_accepted() == 2);
  CHECK(relay->connections_refused() == 1);
}

TEST_CASE("SetTargetSendsNewConnectionsToTheNewPortAndKeepsOpenOnes") {
  Server old_target = Listen();
  Server new_target = Listen();
  auto relay = StartRelay(old_target.port);
  Link first = Open(*relay, old_target);

  relay->SetTarget(new_target.port);
  Link second = Open(*relay, new_target);
  CHECK_FALSE(static_cast<bool>(AcceptWithin(old_target, 100)));
  REQUIRE(SendAll(first.client.get(), "one"));
  CHECK(RecvUpTo(first.server.get(), 3).data == "one");
  REQUIRE(SendAll(second.client.get(), "two"));
  CHECK(RecvUpTo(second.server.get(), 3).data == "two");
  CHECK(relay->connections_accepted() == 2);
  CHECK(relay->open_connections() == 2);
}

TEST_CASE("ConnectionsAcceptedDuringBlackholeReachTheCurrentTargetAfterForward") {
  Server old_target = Listen();
  Server new_target = Listen();
  auto relay = StartRelay(old_target.port);
  relay->Blackhole();
  Fd client = Connect(relay->port());
  REQUIRE(SendAll(client.get(), "early"));
  CHECK(WaitUntil([&] { return relay->connections_accepted() == 1; }, kIoTimeoutMs));
  CHECK(relay->open_connections() == 1);
  CHECK_FALSE(static_cast<bool>(AcceptWithin(old_target, kQuietMs)));

  // mirrord came back on another port while the link was down.
  relay->SetTarget(new_target.port);
  relay->Forward();
  Fd server = AcceptWithin(new_target, kIoTimeoutMs);
  REQUIRE(server);
  CHECK(RecvUpTo(server.get(), 5).data == "early");
  CHECK_FALSE(static_cast<bool>(AcceptWithin(old_target, 0)));
}

TEST_CASE("UnreachableTargetResetsTheClient") {
  uint16_t dead_port = 0;
  {
    Server gone = Listen();
    dead_port = gone.port;
  }  // closed: nothing listens there any more
  auto relay = StartRelay(dead_port);
  Fd client = Connect(relay->port());
  CHECK(ReadOutcome(client.get()) == ECONNRESET);
  CHECK(WaitUntil([&] { return relay->open_connections() == 0; }, kIoTimeoutMs));
  CHECK(relay->connections_accepted() == 1);
}

TEST_CASE("DestructionWithOpenConnectionsIsQuickAndResetsThem") {
  Server target = Listen(kSmallBufferBytes);
  auto relay = StartRelay(target.port);
  // One connection stuck with full buffers (the target reads nothing) ...
  Link busy = Open(*relay, target, kSmallBufferBytes);
  const std::string up = RandomBytes(16 << 20, 6);
  std::atomic<bool> ok{true};
  std::thread writer = SendAndShut(busy.client.get(), up, &ok);
  CHECK(WaitUntil([&] { return relay->bytes_to_target() > 0; }, kIoTimeoutMs));
  // ... and one held by a blackhole.
  relay->Blackhole();
  Fd held = Connect(relay->port());
  CHECK(WaitUntil([&] { return relay->open_connections() == 2; }, kIoTimeoutMs));
  const uint16_t port = relay->port();

  const auto start = Clock::now();
  relay.reset();
  CHECK(Clock::now() - start < std::chrono::seconds(1));

  writer.join();
  CHECK_FALSE(ok.load());  // its connection was reset under it
  CHECK(ReadOutcome(held.get()) == ECONNRESET);
  Fd late(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = Loopback(port);
  int rc = ::connect(late.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  int err = errno;
  CHECK(rc != 0);
  CHECK(err == ECONNREFUSED);
}

}  // namespace
}  // namespace mirror::itest
