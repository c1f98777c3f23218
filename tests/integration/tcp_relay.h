// TcpRelay: a TCP relay on loopback that an integration test controls, to make link
// loss real between mirrorfs and mirrord (issue 5).
//
// The relay listens on 127.0.0.1:<ephemeral> and forwards every accepted connection
// to 127.0.0.1:<target>. The test switches the link between three modes:
//   kForward    bytes flow both ways; EOF (shutdown) and resets are passed on.
//   kBlackhole  a pulled cable: every connection stays open and nothing moves in
//               either direction (bytes already in the relay stay queued, bytes in
//               the kernels stay there); new connections are accepted and held,
//               not connected to the target yet. Back to kForward, the same
//               connections resume with no byte lost or duplicated, and the held
//               ones are connected to the target then.
//   kCut        a loud break: every open connection is reset (SO_LINGER 0, close) on
//               both sides, and new connections are accepted and reset at once
//               (counted by connections_refused()) until Forward().
// The mode setters are synchronous: when they return, the poll thread has applied
// the mode (after Blackhole() no further byte moves; after Cut() every reset is sent).
//
// A connection the relay cannot connect to its target (ECONNREFUSED: mirrord down)
// is reset on the client side, as a direct connect would have failed. Each direction
// of each connection buffers at most kBufferBytes in the relay: when that is full
// the relay stops reading from the sending side (TCP backpressure), never grows.
// Both relay-side sockets use TCP_NODELAY, so the relay adds no Nagle delay.
//
// Threads: one poll thread owns every socket and connection; it is woken through an
// eventfd and polls with a bounded timeout. The destructor stops and joins it and
// resets every connection still open (an abrupt end must not look like a clean EOF).
//
// Thread-safety: all public methods may be called from any thread, concurrently.
// Lock order: mu_ is the only lock; it is never held across a blocking call.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace mirror::itest {

enum class LinkMode { kForward, kBlackhole, kCut };

// "forward" / "blackhole" / "cut".
const char* LinkModeName(LinkMode mode);

class TcpRelay {
 public:
  // Per direction of each connection.
  static constexpr size_t kBufferBytes = size_t{1} << 20;

  // Listens on 127.0.0.1:0 and starts in kForward towards 127.0.0.1:target_port
  // (nothing connects to the target before a client arrives). Returns nullptr and
  // sets *error on failure.
  static std::unique_ptr<TcpRelay> Start(uint16_t target_port, std::string* error);
  ~TcpRelay();  // bounded: wakes and joins the poll thread, resets every connection
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  uint16_t port() const { return port_; }  // where clients connect

  // The target of every connection the relay connects from now on: those accepted
  // from now on, and those held by Blackhole() that Forward() has not released yet.
  void SetTarget(uint16_t target_port);

  void Forward();
  void Blackhole();
  void Cut();
  LinkMode mode() const;

  // Bytes the relay wrote to target sockets / to client sockets (from the target).
  // Written is not yet read: the receiving kernel may still hold them.
  uint64_t bytes_to_target() const { return bytes_to_target_.load(); }
  uint64_t bytes_from_target() const { return bytes_from_target_.load(); }
  // Connections accepted to be forwarded (now or after a blackhole); those reset at
  // once during kCut are counted by connections_refused() only.
  int connections_accepted() const { return connections_accepted_.load(); }
  int connections_refused() const { return connections_refused_.load(); }
  // Client connections the relay holds now (held, connecting or forwarding).
  int open_connections() const { return open_connections_.load(); }

 private:
  class Loop;  // the poll thread's side: sockets and connections (tcp_relay.cpp)

  TcpRelay();  // defined in the .cpp, where Loop is complete
  void SetMode(LinkMode mode);

  uint16_t port_ = 0;

  mutable std::mutex mu_;
  std::condition_variable applied_cv_;  // signalled when applied_ advances
  LinkMode mode_ = LinkMode::kForward;  // guarded by mu_
  uint16_t target_port_ = 0;            // guarded by mu_
  uint64_t requested_ = 0;              // guarded by mu_: mode changes asked for
  uint64_t applied_ = 0;                // guarded by mu_: ... and applied by Loop
  bool stop_ = false;                   // guarded by mu_

  std::atomic<uint64_t> bytes_to_target_{0};
  std::atomic<uint64_t> bytes_from_target_{0};
  std::atomic<int> connections_accepted_{0};
  std::atomic<int> connections_refused_{0};
  std::atomic<int> open_connections_{0};

  std::unique_ptr<Loop> loop_;  // used only by thread_ (Wake() from anywhere)
  std::thread thread_;
};

}  // namespace mirror::itest
