// The mirrord server: listeners, connections, the stores of all sources, the blocking
// pool for flush-waits and applies, the control socket, and a clean stop.
//
//   Server server(config);
//   MIRROR_RETURN_IF_ERROR(server.Start());   // stores recovered, sockets bound
//   server.Run();                             // until SIGTERM/SIGINT or Stop()
//
// Stop: the listeners close, every connection is sent ERROR(shutting-down) and closed,
// running syncs finish, then every store flushes its memory to its log and stops.
//
// Thread-safety: Start and Run from one thread; Stop from any thread (also a signal
// handler's Asio completion). Destruction order matters: the io_context outlives the
// registry's stores, whose flusher threads may post to connection strands.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "mirrord/asio.h"
#include "mirrord/config.h"
#include "mirrord/connection.h"
#include "mirrord/store_registry.h"

#ifdef MIRRORD_HAVE_CONTROL
#include "control/control_server.h"
#endif

namespace mirror::d {

class Server {
 public:
  explicit Server(MirrordConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Recovers every store, binds every listen address and the control socket
  // (STATE_DIR/mirrord.sock), and logs "listening on ADDR:PORT" for each.
  common::Status Start();
  // The bound addresses (a port 0 in the config is the real port here).
  std::vector<boost::asio::ip::tcp::endpoint> endpoints() const;
  // Serves until Stop() or SIGTERM/SIGINT; returns after the stores are flushed.
  void Run();
  void Stop();

  StoreRegistry& registry() { return registry_; }

 private:
  void Accept(boost::asio::ip::tcp::acceptor& acceptor);
  void OnAccepted(boost::asio::ip::tcp::socket socket);
  void StopOnStrand();
  void WaitDrained(std::chrono::steady_clock::time_point deadline);
  nlohmann::json Control(const nlohmann::json& request);
  nlohmann::json ControlPromote(const nlohmann::json& request);
  nlohmann::json ControlAdopt(const nlohmann::json& request);
  // Sends `refusal` to every connection of `source_id` and closes them.
  void RefuseSource(const std::string& source_id, const Refusal& refusal);
  std::vector<std::shared_ptr<Connection>> LiveConnections();

  const MirrordConfig config_;
  boost::asio::io_context io_;  // declared first: destroyed last
  // One loop per io_thread, each run by one thread; a connection lives on one of them
  // (round-robin at accept), so its reads, receive and ACKs never hop threads: a shared
  // multi-threaded loop woke a second thread for most handlers, a context switch per frame.
  std::vector<std::unique_ptr<boost::asio::io_context>> conn_io_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> conn_work_;
  size_t next_conn_io_ = 0;  // used where Accept runs: Run(), then strand_
  // Serialises the listeners, the signal set and the stop sequence (acceptors and timers
  // are not thread-safe) on io_, which the thread calling Run() runs; connections have
  // strands of their own.
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::thread_pool blocking_;
  StoreRegistry registry_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer grace_;
  std::mutex conns_mu_;
  std::vector<std::weak_ptr<Connection>> conns_;  // guarded by conns_mu_
  std::atomic<bool> stopping_{false};
#ifdef MIRRORD_HAVE_CONTROL
  std::unique_ptr<control::ControlServer> control_;
#endif
};

}  // namespace mirror::d
