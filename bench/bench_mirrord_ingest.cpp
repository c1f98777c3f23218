// mirrord ingest benchmark (issue 4, "Benchmark"): a real mirrord process on loopback
// and clients built from common/, each figure beside a baseline measured in the same run:
//   - ingest of 64 KiB records from 1 and from 4 sources, until mirrord acknowledged them
//     as received and as durable, beside a plain TCP send of the same bytes to a receiver
//     that discards them;
//   - acknowledgement round trip (received) of single 4 KiB records: p50 and p99;
//   - image apply (SYNC of 64 KiB writes) beside plain pwrite + fsync of the same bytes.
//
//   bench_mirrord_ingest [--mirrord PATH] [--quick]
// PATH defaults to ../mirrord/mirrord next to this program's directory.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "common/frame.h"
#include "common/handshake.h"
#include "common/record.h"

namespace {

namespace c = mirror::common;
using mirror::bench::Median;
using mirror::bench::Seconds;

pid_t g_mirrord_pid = -1;  // the mirrord we started: killed by its PID, also on failure

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_mirrord_ingest: %s\n", what.c_str());
  if (g_mirrord_pid > 0) {
    ::kill(g_mirrord_pid, SIGKILL);
    ::waitpid(g_mirrord_pid, nullptr, 0);
  }
  std::exit(1);
}

int Dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Die("connect: " + std::string(std::strerror(errno)));
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Die("send: " + std::string(std::strerror(errno)));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void RecvAll(int fd, char* out, size_t n) {
  while (n > 0) {
    ssize_t got = ::recv(fd, out, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) Die("recv: connection closed");
    out += got;
    n -= static_cast<size_t>(got);
  }
}

c::Message ReadFrame(int fd) {
  std::string frame(c::kFrameHeaderSize, '\0');
  RecvAll(fd, frame.data(), frame.size());
  auto h = c::DecodeFrameHeader(frame);
  if (!h.ok()) Die(h.status().ToString());
  frame.resize(c::kFrameHeaderSize + h->length);
  RecvAll(fd, frame.data() + c::kFrameHeaderSize, h->length);
  auto msg = c::DecodeFrame(frame);
  if (!msg.ok()) Die(msg.status().ToString());
  if (const auto* err = std::get_if<c::ErrorMsg>(&*msg)) Die("mirrord: " + err->message);
  return *msg;
}

int Connect(uint16_t port, const std::string& source, const std::string& secret) {
  int fd = Dial(port);
  c::ClientHandshake hs(source, "vol", 1, secret);
  auto hello = hs.Start();
  if (!hello.ok()) Die(hello.status().ToString());
  SendAll(fd, *hello);
  while (hs.state() == c::HandshakeState::kAwaitReply) {
    std::string reply = hs.OnFrame(ReadFrame(fd));
    if (!reply.empty()) SendAll(fd, reply);
  }
  if (hs.state() != c::HandshakeState::kDone) Die(hs.error().ToString());
  return fd;
}

// Records seq first.. of `bytes` each: a create, then writes to one file.
std::vector<std::string> MakeRecords(uint64_t count, size_t bytes) {
  std::vector<std::string> out;
  const std::string data(bytes, 'x');
  out.push_back(
      c::EncodeRecord({1, 1, 1}, c::CreateOp{"f", 0100644, 0, 0, {1, 0}, {1, 0}}).value());
  for (uint64_t s = 2; s <= count; ++s) {
    out.push_back(
        c::EncodeRecord({s, 1, 1}, c::WriteOp{"f", (s - 2) * bytes, {1, 0}, data}).value());
  }
  return out;
}

std::vector<std::string> MakeFrames(const std::vector<std::string>& recs, size_t per_frame) {
  std::vector<std::string> frames;
  for (size_t i = 0; i < recs.size(); i += per_frame) {
    std::vector<std::string_view> views(recs.begin() + i,
                                        recs.begin() + std::min(recs.size(), i + per_frame));
    c::EncodedFrame f;
    if (!f.BuildRecords(i + 1, views).ok()) Die("build frame");
    frames.push_back(f.ToBytes());
  }
  return frames;
}

// Reads ACKs until durable (or received) reaches `seq`.
void WaitAck(int fd, uint64_t seq, bool durable) {
  while (true) {
    c::Message msg = ReadFrame(fd);
    const auto* ack = std::get_if<c::AckMsg>(&msg);
    if (ack && (durable ? ack->durable_seq : ack->received_seq) >= seq) return;
  }
}

struct Mirrord {
  pid_t pid = -1;
  uint16_t port = 0;
  ~Mirrord() { Stop(); }
  void Stop() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    pid = -1;
    g_mirrord_pid = -1;
  }
};

void StartMirrord(Mirrord& m, const std::string& binary, const std::string& dir) {
  const std::string log = dir + "/mirrord.log";
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, STDERR_FILENO);
    std::string config = dir + "/mirrord.json";
    ::execl(binary.c_str(), binary.c_str(), "serve", "--config", config.c_str(), nullptr);
    _exit(127);
  }
  m.pid = pid;
  g_mirrord_pid = pid;
  for (int i = 0; i < 500; ++i) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const std::string marker = "listening on 127.0.0.1:";
    size_t at = text.find(marker);
    if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
      m.port = static_cast<uint16_t>(std::stoi(text.substr(at + marker.size())));
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Die("mirrord did not start: see " + log);
}

// Plain TCP: `clients` senders of `bytes` each to a receiver that discards. Bytes/s.
double PlainTcp(int clients, size_t bytes_each) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 16) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("plain listener");
  }
  std::vector<std::thread> sinks;
  std::thread acceptor([&] {
    for (int i = 0; i < clients; ++i) {
      int fd = ::accept(lfd, nullptr, nullptr);
      sinks.emplace_back([fd, bytes_each] {
        std::vector<char> buf(1 << 20);
        size_t got = 0;
        while (got < bytes_each) {
          ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
          if (n <= 0) break;
          got += static_cast<size_t>(n);
        }
        ::send(fd, "k", 1, MSG_NOSIGNAL);  // like an ACK: the sender waits for it
        ::close(fd);
      });
    }
  });
  const std::string chunk(1 << 20, 'x');
  const double start = Seconds();
  std::vector<std::thread> senders;
  for (int i = 0; i < clients; ++i) {
    senders.emplace_back([&] {
      int fd = Dial(ntohs(addr.sin_port));
      for (size_t sent = 0; sent < bytes_each; sent += chunk.size()) {
        SendAll(fd, std::string_view(chunk).substr(0, std::min(chunk.size(), bytes_each - sent)));
      }
      char k;
      RecvAll(fd, &k, 1);
      ::close(fd);
    });
  }
  for (auto& t : senders) t.join();
  const double secs = Seconds() - start;
  acceptor.join();
  for (auto& t : sinks) t.join();
  ::close(lfd);
  return static_cast<double>(bytes_each) * clients / secs;
}

// `clients` sources each sending `frames`; returns {received bytes/s, durable bytes/s}.
std::pair<double, double> Ingest(uint16_t port, int clients, int round,
                                 const std::vector<std::string>& frames, uint64_t last_seq,
                                 size_t bytes_each) {
  std::vector<double> received(clients), durable(clients);
  const double start = Seconds();
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      int fd =
          Connect(port, "src" + std::to_string(round) + "_" + std::to_string(i), "benchsecret");
      // Read ACKs on a second thread so the socket never blocks both ways.
      std::thread reader([&] {
        WaitAck(fd, last_seq, false);
        received[i] = Seconds();
        WaitAck(fd, last_seq, true);
        durable[i] = Seconds();
      });
      for (const auto& f : frames) SendAll(fd, f);
      reader.join();
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  double r = 0, d = 0;
  for (int i = 0; i < clients; ++i) {
    r = std::max(r, received[i] - start);
    d = std::max(d, durable[i] - start);
  }
  const double total = static_cast<double>(bytes_each) * clients;
  return {total / r, total / d};
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = mirror::bench::HasFlag(argc, argv, "--quick");
  std::string binary =
      (std::filesystem::path(argv[0]).parent_path() / "../mirrord/mirrord").lexically_normal();
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--mirrord") binary = argv[i + 1];
  }
  char tmpl[] = "/tmp/bench-mirrord-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) Die("mkdtemp");
  const std::string dir = tmpl;
  {
    std::ofstream(dir + "/secret") << "benchsecret\n";
    ::chmod((dir + "/secret").c_str(), 0600);
    std::ofstream(dir + "/mirrord.json")
        << "{\"listen\":[\"127.0.0.1:0\"],\"state_dir\":\"" << dir << "/state\",\"secret_file\":\""
        << dir << "/secret\",\"io_threads\":2,\"limits\":{\"memory_size\":\"64M\"}}";
  }
  Mirrord m;
  StartMirrord(m, binary, dir);

  const size_t kRec = 64 * 1024;
  const uint64_t count = quick ? 800 : 4000;  // 50 MiB / 250 MiB per source
  const std::vector<std::string> recs = MakeRecords(count, kRec);
  const std::vector<std::string> frames = MakeFrames(recs, 16);
  size_t bytes = 0;
  for (const auto& f : frames) bytes += f.size();

  std::printf("mirrord ingest, 64 KiB records, %zu MiB per source, loopback\n", bytes >> 20);
  std::printf("%-10s %14s %14s %14s %10s\n", "sources", "plain MB/s", "received MB/s",
              "durable MB/s", "recv/plain");
  int round = 0;
  for (int clients : {1, 4}) {
    const size_t each = clients == 1 ? bytes : bytes / 2;
    const std::vector<std::string> f =
        clients == 1
            ? frames
            : MakeFrames(std::vector<std::string>(recs.begin(), recs.begin() + count / 2), 16);
    const double plain = PlainTcp(clients, each);
    auto [recv, dur] = Ingest(m.port, clients, round++, f, clients == 1 ? count : count / 2, each);
    std::printf("%-10d %14.0f %14.0f %14.0f %9.2fx\n", clients, plain / 1e6, recv / 1e6, dur / 1e6,
                recv / plain);
  }

  // Acknowledgement round trip of 4 KiB records, one at a time.
  {
    const uint64_t n = quick ? 500 : 3000;
    const std::vector<std::string> small = MakeRecords(n, 4096);
    const std::vector<std::string> one = MakeFrames(small, 1);
    int fd = Connect(m.port, "rtt", "benchsecret");
    std::vector<double> rtt;
    for (uint64_t i = 0; i < n; ++i) {
      const double t0 = Seconds();
      SendAll(fd, one[i]);
      WaitAck(fd, i + 1, false);
      rtt.push_back((Seconds() - t0) * 1e6);
    }
    std::sort(rtt.begin(), rtt.end());
    std::printf(
        "ack round trip, 4 KiB records (received): p50 %.0f us, p99 %.0f us (%llu records)\n",
        Median(rtt), rtt[rtt.size() * 99 / 100], static_cast<unsigned long long>(n));
    // Image apply: SYNC of what the source sent, beside pwrite + fsync of the same bytes.
    ::close(fd);
  }
  {
    int fd = Connect(m.port, "src0_0", "benchsecret");  // already holds `count` records
    const double t0 = Seconds();
    SendAll(fd, c::EncodeFrame(c::SyncMsg{count}).value());
    while (!std::holds_alternative<c::SyncDoneMsg>(ReadFrame(fd))) {
    }
    const double apply = Seconds() - t0;
    ::close(fd);
    const std::string path = dir + "/plain";
    int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const std::string data(kRec, 'x');
    const double t1 = Seconds();
    for (uint64_t s = 0; s + 1 < count; ++s) {
      if (::pwrite(out, data.data(), data.size(), static_cast<off_t>(s * kRec)) < 0) Die("pwrite");
    }
    ::fsync(out);
    const double plain = Seconds() - t1;
    ::close(out);
    const double mb = static_cast<double>(count * kRec) / 1e6;
    std::printf("image apply, 64 KiB writes: %.0f MB/s, plain pwrite+fsync %.0f MB/s (%.2fx)\n",
                mb / apply, mb / plain, plain / apply);
  }
  m.Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
