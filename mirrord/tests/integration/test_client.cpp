#include "mirrord/tests/integration/test_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/endian.h"

namespace mirror::d::test {

using common::Result;
using common::Status;
using Clock = std::chrono::steady_clock;

Result<std::unique_ptr<TestClient>> TestClient::Dial(uint16_t port) {
  common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Status::IOError("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::IOError("connect 127.0.0.1:" + std::to_string(port), errno);
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return std::unique_ptr<TestClient>(new TestClient(std::move(fd)));
}

Result<std::unique_ptr<TestClient>> TestClient::Connect(uint16_t port, const std::string& source,
                                                        const std::string& secret, uint64_t epoch,
                                                        const std::string& volume) {
  MIRROR_ASSIGN_OR_RETURN(std::unique_ptr<TestClient> c, Dial(port));
  common::ClientHandshake hs(source, volume, epoch, secret);
  MIRROR_ASSIGN_OR_RETURN(std::string hello, hs.Start());
  MIRROR_RETURN_IF_ERROR(c->SendRaw(hello));
  while (hs.state() == common::HandshakeState::kAwaitReply) {
    MIRROR_ASSIGN_OR_RETURN(common::Message msg, c->Read());
    std::string reply = hs.OnFrame(msg);
    if (!reply.empty()) MIRROR_RETURN_IF_ERROR(c->SendRaw(reply));
  }
  if (hs.state() != common::HandshakeState::kDone) {
    return Status::Aborted(std::string(common::WireErrorName(hs.error_code())) + ": " +
                           hs.error().message());
  }
  c->welcome_ = hs.welcome();
  return c;
}

Status TestClient::SendRaw(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IOError("send", n < 0 ? errno : EIO);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status TestClient::Send(const common::Message& msg) {
  MIRROR_ASSIGN_OR_RETURN(std::string bytes, common::EncodeFrame(msg));
  return SendRaw(bytes);
}

Status TestClient::SendRecords(const std::vector<std::string>& records, size_t from, size_t count) {
  std::vector<std::string_view> views(records.begin() + from, records.begin() + from + count);
  common::EncodedFrame frame;
  MIRROR_RETURN_IF_ERROR(
      frame.BuildRecords(common::LoadLE<uint64_t>(views.front().data() + 16), views));
  return SendRaw(frame.ToBytes());
}

Status TestClient::ReadExact(char* out, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    if (left <= 0) return Status::DeadlineExceeded("no frame from mirrord in time");
    pollfd p{fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::IOError("poll", errno);
    if (r == 0) continue;
    ssize_t got = ::recv(fd_.get(), out, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == ECONNRESET) return Status::Unavailable("connection reset");
    if (got < 0) return Status::IOError("recv", errno);
    if (got == 0) return Status::Unavailable("mirrord closed the connection");
    out += got;
    n -= static_cast<size_t>(got);
  }
  return Status::Ok();
}

Result<common::Message> TestClient::Read(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string frame(common::kFrameHeaderSize, '\0');
  MIRROR_RETURN_IF_ERROR(ReadExact(frame.data(), frame.size(), deadline));
  MIRROR_ASSIGN_OR_RETURN(common::FrameHeader h, common::DecodeFrameHeader(frame));
  frame.resize(common::kFrameHeaderSize + h.length);
  MIRROR_RETURN_IF_ERROR(ReadExact(frame.data() + common::kFrameHeaderSize, h.length, deadline));
  return common::DecodeFrame(frame);
}

Result<common::AckMsg> TestClient::WaitAck(uint64_t seq, bool durable, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left.count() <= 0) return Status::DeadlineExceeded("no ACK for seq " + std::to_string(seq));
    MIRROR_ASSIGN_OR_RETURN(common::Message msg, Read(left));
    if (const auto* err = std::get_if<common::ErrorMsg>(&msg)) {
      return Status::Aborted(std::string(common::WireErrorName(err->code)) + ": " + err->message);
    }
    const auto* ack = std::get_if<common::AckMsg>(&msg);
    if (ack && (durable ? ack->durable_seq : ack->received_seq) >= seq) return *ack;
  }
}

Result<uint64_t> TestClient::Sync(uint64_t cp, Millis timeout) {
  MIRROR_RETURN_IF_ERROR(Send(common::SyncMsg{cp}));
  const auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left.count() <= 0) return Status::DeadlineExceeded("no SYNC_DONE");
    MIRROR_ASSIGN_OR_RETURN(common::Message msg, Read(left));
    if (const auto* err = std::get_if<common::ErrorMsg>(&msg)) {
      return Status::Aborted(std::string(common::WireErrorName(err->code)) + ": " + err->message);
    }
    if (const auto* done = std::get_if<common::SyncDoneMsg>(&msg)) return done->applied_seq;
  }
}

Result<common::ErrorMsg> TestClient::ExpectError(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left.count() <= 0) return Status::DeadlineExceeded("no ERROR");
    MIRROR_ASSIGN_OR_RETURN(common::Message msg, Read(left));
    if (const auto* err = std::get_if<common::ErrorMsg>(&msg)) return *err;
  }
}

bool TestClient::WaitClosed(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    Result<common::Message> msg = Read(left);
    if (!msg.ok()) return msg.status().code() == common::Code::kUnavailable;
  }
  return false;
}

Result<common::Message> TestClient::ReadUntil(
    const std::function<bool(const common::Message&)>& want, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left.count() <= 0) return Status::DeadlineExceeded("not the frame we wait for, in time");
    MIRROR_ASSIGN_OR_RETURN(common::Message msg, Read(left));
    if (const auto* err = std::get_if<common::ErrorMsg>(&msg)) {
      return Status::Aborted(std::string(common::WireErrorName(err->code)) + ": " + err->message);
    }
    if (want(msg)) return msg;
  }
}

Status TestClient::Resync(uint64_t next, Millis timeout) {
  MIRROR_RETURN_IF_ERROR(Send(common::ResyncMsg{next}));
  // ACKs read before the RESYNC may still come; the answer is the one about next - 1.
  return ReadUntil(
             [next](const common::Message& m) {
               const auto* ack = std::get_if<common::AckMsg>(&m);
               return ack != nullptr && ack->received_seq == next - 1 &&
                      ack->durable_seq == next - 1;
             },
             timeout)
      .status();
}

Result<common::Manifest> TestClient::Manifest(uint64_t token, uint32_t flags,
                                              std::vector<size_t>* frame_bytes, Millis timeout) {
  MIRROR_RETURN_IF_ERROR(Send(common::ManifestRequestMsg{token, flags}));
  return ReadManifest(token, frame_bytes, timeout);
}

Result<common::Manifest> TestClient::ReadManifest(uint64_t token, std::vector<size_t>* frame_bytes,
                                                  Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  common::Manifest out;
  while (true) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    MIRROR_ASSIGN_OR_RETURN(common::Message msg,
                            ReadUntil(
                                [token](const common::Message& m) {
                                  const auto* part = std::get_if<common::ManifestMsg>(&m);
                                  return part != nullptr && part->token == token;
                                },
                                std::max(left, Millis(1))));
    const auto& part = std::get<common::ManifestMsg>(msg);
    if (!part.error.empty()) return Status::Aborted("manifest: " + part.error);
    if (frame_bytes != nullptr) frame_bytes->push_back(part.entries.size());
    MIRROR_ASSIGN_OR_RETURN(common::Manifest entries, common::DecodeManifestEntries(part.entries));
    for (auto& e : entries) out.push_back(std::move(e));
    if (part.last == 1) return out;
  }
}

Result<common::SumsMsg> TestClient::Sums(uint64_t token, const std::string& path,
                                         uint32_t block_size, Millis timeout) {
  MIRROR_RETURN_IF_ERROR(Send(common::SumsRequestMsg{token, path, block_size}));
  MIRROR_ASSIGN_OR_RETURN(common::Message msg, ReadUntil(
                                                   [token](const common::Message& m) {
                                                     const auto* s =
                                                         std::get_if<common::SumsMsg>(&m);
                                                     return s != nullptr && s->token == token;
                                                   },
                                                   timeout));
  return std::get<common::SumsMsg>(msg);
}

// ---- MirrordProcess

Result<std::unique_ptr<MirrordProcess>> MirrordProcess::Start(const std::vector<std::string>& args,
                                                              const std::string& log_path) {
  auto p = std::unique_ptr<MirrordProcess>(new MirrordProcess());
  p->log_path_ = log_path;
  const std::string marker = "listening on 127.0.0.1:";
  // Only lines written by this run count: remember where the log ends now.
  std::ifstream before(log_path, std::ios::binary | std::ios::ate);
  const std::streamoff start = before ? static_cast<std::streamoff>(before.tellg()) : 0;
  std::vector<std::string> argv_s = {MIRRORD_BINARY, "serve"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return Status::IOError("fork", errno);
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) ::dup2(fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  p->pid_ = pid;
  // At most 30 s: it normally takes 50 ms, also under ASan, but once took over 10 s on a
  // loaded 2-core VM (the error carries the log to tell why next time).
  for (int i = 0; i < 1500; ++i) {
    std::ifstream in(log_path, std::ios::binary);
    in.seekg(start);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    size_t at = text.find(marker);
    if (at != std::string::npos) {
      size_t end = text.find('\n', at);
      if (end != std::string::npos) {
        p->port_ = static_cast<uint16_t>(std::stoi(text.substr(at + marker.size())));
        return p;
      }
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      p->pid_ = -1;
      return Status::Aborted("mirrord exited at start: " + text);
    }
    std::this_thread::sleep_for(Millis(20));
  }
  return Status::DeadlineExceeded("mirrord did not report its port");
}

MirrordProcess::~MirrordProcess() { Kill9(); }

void MirrordProcess::Kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

int MirrordProcess::Terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 1000; ++i) {  // at most 20 s
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(Millis(20));
  }
  Kill9();
  return -1;
}

std::string MirrordProcess::LogText() const {
  std::ifstream in(log_path_, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RunStatus(const std::vector<std::string>& args, std::string* out) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  std::vector<std::string> argv_s = {MIRRORD_BINARY, "status"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], STDOUT_FILENO);
    int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(pipefd[1]);
  out->clear();
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace mirror::d::test
