// ControlServer: the Unix stream socket a daemon answers control requests on
// (`mirrorfs status MNT`, `mirrord promote`, ...). Protocol and socket locations:
// docs/control.md.
//
// One request per connection: the client sends one line of JSON (an object with "cmd",
// at most kMaxRequestBytes), the server replies with one line of JSON and closes. Every
// reply has "ok"; when false, "error". The server itself answers malformed, oversized and
// unauthorized requests; the handler sees only well-formed requests from authorized peers.
//
// Threads: one accept thread, plus one thread per connection, at most
// kMaxConcurrentConnections at once (further connections wait in the listen backlog), so a
// long handler (a checkpoint) does not hold up `status`.
// Lock order: mu_ is a leaf; it is never held while the handler runs or across I/O.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::control {

// Maps a request (a JSON object with a string "cmd") to its reply (a JSON object with a
// bool "ok"). Runs on a server thread, concurrently with other calls: it must be
// thread-safe, must not throw (an exception becomes {"ok":false,"error":"internal
// error"}) and must return in bounded time (~ControlServer waits for it). A reply that is
// not an object with a bool "ok" is replaced by an error reply.
using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

inline constexpr std::size_t kMaxConcurrentConnections = 8;

class ControlServer {
 public:
  // Creates the parent directory (mode 0700, with missing ancestors) if missing; an
  // existing directory is left as it is. Removes a stale socket (one nobody answers on);
  // AlreadyExists if a live server answers at `path` or `path` is not a socket. Binds with
  // mode 0600 and starts serving. Peers are served only if their uid (SO_PEERCRED) is 0 or
  // the server's own effective uid; others get {"ok":false,"error":"permission denied"}.
  static common::Result<std::unique_ptr<ControlServer>> Start(const std::string& path,
                                                              Handler handler);

  // Stops accepting, waits for running handlers (connections still reading or writing are
  // cut short), and unlinks the socket if it is still ours (a newer server's is left alone).
  ~ControlServer();

  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const { return path_; }

 private:
  struct Connection {
    std::thread thread;
    bool done = false;  // guarded by mu_
  };

  ControlServer(std::string path, Handler handler, common::UniqueFd listen_fd,
                common::UniqueFd wake_fd, dev_t dev, ino_t ino);

  void AcceptLoop();
  // Starts a thread for `fd`; closes it (unanswered) if no thread can be started.
  void Spawn(common::UniqueFd fd);
  void Serve(Connection* connection, common::UniqueFd fd);
  // The reply to one request line; never throws.
  nlohmann::json Answer(int fd, const std::string& line);
  // Joins connection threads that have finished.
  void ReapFinished();

  const std::string path_;
  const Handler handler_;
  common::UniqueFd listen_fd_;
  const common::UniqueFd wake_fd_;  // eventfd, readable once shutdown begins
  const dev_t dev_;                 // identity of the socket file we bound
  const ino_t ino_;
  std::thread accept_thread_;

  std::mutex mu_;
  std::condition_variable slot_freed_;  // signalled when a connection finishes or on stop
  bool stopping_ = false;               // guarded by mu_
  std::size_t active_ = 0;              // connections not yet done; guarded by mu_
  std::list<Connection> connections_;   // guarded by mu_ (entries' addresses are stable)
};

}  // namespace mirror::control
