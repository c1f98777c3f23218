// A blocking test client of mirrord's wire protocol, built from common/ only (frames,
// handshake, records) and plain POSIX sockets, plus a handle on a mirrord process.
// Every wait is bounded in time; every process is killed by its PID, also on failure.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/frame.h"
#include "common/handshake.h"
#include "common/manifest.h"
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
  // Reads until `want` accepts a frame (others are skipped); an ERROR is returned as its
  // Status (Aborted, "code-name: message").
  common::Result<common::Message> ReadUntil(const std::function<bool(const common::Message&)>& want,
                                            Millis timeout = kWait);
  // RESYNC(next) and its answer: the ACK(next - 1, next - 1) (earlier ACKs skipped).
  common::Status Resync(uint64_t next, Millis timeout = kWait);
  // MANIFEST_REQUEST and every MANIFEST of its answer, decoded and joined. `*frame_bytes`
  // (when given) gets the size of each frame's entries. An answer with an error is
  // Aborted("manifest: ...").
  common::Result<common::Manifest> Manifest(uint64_t token, uint32_t flags,
                                            std::vector<size_t>* frame_bytes = nullptr,
                                            Millis timeout = kWait);
  // The MANIFEST frames answering `token` (a request sent before), as Manifest() reads them.
  common::Result<common::Manifest> ReadManifest(uint64_t token,
                                                std::vector<size_t>* frame_bytes = nullptr,
                                                Millis timeout = kWait);
  // SUMS_REQUEST and its SUMS.
  common::Result<common::SumsMsg> Sums(uint64_t token, const std::string& path, uint32_t block_size,
                                       Millis timeout = kWait);

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
