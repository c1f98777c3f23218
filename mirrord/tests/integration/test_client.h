// A blocking test client of mirrord's wire protocol, built from common/ only (frames,
// handshake, records) and plain POSIX sockets, plus a handle on a mirrord process.
// Every wait is bounded in time; every process is killed by its PID, also on failure.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/frame.h"
#include "common/handshake.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::d::test {

using Millis = std::chrono::milliseconds;
inline constexpr Millis kWait{20000};

class TestClient {
 public:
  // A TCP connection to 127.0.0.1:port (no handshake yet).
  static common::Result<std::unique_ptr<TestClient>> Dial(uint16_t port);
  // Dial and authenticate. On a refusal, the Status message names the wire error.
  static common::Result<std::unique_ptr<TestClient>> Connect(uint16_t port,
                                                             const std::string& source,
                                                             const std::string& secret,
                                                             uint64_t epoch = 1,
                                                             const std::string& volume = "vol");

  common::Status SendRaw(std::string_view bytes);
  common::Status Send(const common::Message& msg);
  common::Status SendRecords(const std::vector<std::string>& records, size_t from, size_t count);
  // The next frame; DeadlineExceeded after `timeout`, Unavailable when the peer closed.
  common::Result<common::Message> Read(Millis timeout = kWait);
  // Reads until an ACK with durable_seq >= seq (or received_seq >= seq when !durable).
  common::Result<common::AckMsg> WaitAck(uint64_t seq, bool durable, Millis timeout = kWait);
  // SYNC(cp) and the SYNC_DONE (ACKs skipped); an ERROR is returned as its Status.
  common::Result<uint64_t> Sync(uint64_t cp, Millis timeout = kWait);
  // Reads until an ERROR frame (skipping ACKs) and returns it.
  common::Result<common::ErrorMsg> ExpectError(Millis timeout = kWait);
  // True when the peer closed the connection within `timeout`.
  bool WaitClosed(Millis timeout = kWait);

  const common::WelcomeMsg& welcome() const { return welcome_; }

 private:
  explicit TestClient(common::UniqueFd fd) : fd_(std::move(fd)) {}
  common::Status ReadExact(char* out, size_t n, std::chrono::steady_clock::time_point deadline);

  common::UniqueFd fd_;
  common::WelcomeMsg welcome_;
};

// A mirrord process: started with `args` after "serve", stderr to `log_path`; the bound
// port is read from its "listening on" line. The destructor SIGKILLs it if it still runs.
class MirrordProcess {
 public:
  static common::Result<std::unique_ptr<MirrordProcess>> Start(const std::vector<std::string>& args,
                                                               const std::string& log_path);
  ~MirrordProcess();

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  void Kill9();
  // SIGTERM and wait (bounded); returns the exit status, or -1.
  int Terminate();
  std::string LogText() const;

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_path_;
};

// Runs `mirrord status ARGS`, returns its exit code and puts stdout in *out.
int RunStatus(const std::vector<std::string>& args, std::string* out);

}  // namespace mirror::d::test
