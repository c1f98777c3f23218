// mirrord ingest benchmark (issue 4, "Benchmark"): a real mirrord process on loopback
// and clients built from common/, each figure beside baselines measured in the same run:
//   - ingest of 64 KiB records from 1 and from 4 sources, until mirrord acknowledged them
//     as received (sources that say in HELLO they do not wait for durability, as
//     mode=sync and async do: mirrord flushes them lazily) and, in a second pass, as
//     durable (sources that wait for it, as mode=durable: flushed at once), beside a
//     plain TCP send of the same bytes to a receiver that discards them, and to one that
//     writes them to a file with an fdatasync per memory half. Two sizes: a burst that
//     fits in a memory half (acknowledged from memory, the patent's point) and a sustained
//     stream of several times the memory (bounded by the log's disk, so compared with the
//     writing receiver);
//   - acknowledgement round trip (received) of single 4 KiB records: p50 and p99;
//   - image apply (SYNC of 64 KiB writes) beside plain pwrite + fsync of the same bytes.
// Every figure is the median of 3 runs (1 with --quick); scratch space is under /var/tmp.
//
//   bench_mirrord_ingest [--mirrord PATH] [--quick] [--keep]
// PATH defaults to ../mirrord/mirrord next to this program's directory. --keep leaves the
// scratch directory (state, logs, mirrord.log) in place.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

// `hello_flags`: 0 for a source that waits for received ACKs at most (mode=sync, async),
// c::kHelloWantsDurable for one that waits for durable ones (mode=durable).
int Connect(uint16_t port, const std::string& source, const std::string& secret,
            uint32_t hello_flags) {
  int fd = Dial(port);
  c::ClientHandshake hs(source, "vol", 1, secret, hello_flags);
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

// Records `first`..`first + count - 1` of `bytes` each, for source files named `file`:
// a create when `first` is 1, then writes.
std::vector<std::string> MakeRecords(uint64_t first, uint64_t count, size_t bytes,
                                     const std::string& file = "f") {
  std::vector<std::string> out;
  const std::string data(bytes, 'x');
  for (uint64_t s = first; s < first + count; ++s) {
    if (s == 1) {
      out.push_back(
          c::EncodeRecord({1, 1, 1}, c::CreateOp{file, 0100644, 0, 0, {1, 0}, {1, 0}}).value());
      continue;
    }
    out.push_back(
        c::EncodeRecord({s, 1, 1}, c::WriteOp{file, (s - 2) * bytes, {1, 0}, data}).value());
  }
  return out;
}

std::vector<std::string> MakeFrames(const std::vector<std::string>& recs, uint64_t first_seq,
                                    size_t per_frame) {
  std::vector<std::string> frames;
  for (size_t i = 0; i < recs.size(); i += per_frame) {
    std::vector<std::string_view> views(recs.begin() + i,
                                        recs.begin() + std::min(recs.size(), i + per_frame));
    c::EncodedFrame f;
    if (!f.BuildRecords(first_seq + i, views).ok()) Die("build frame");
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

// The baselines: `clients` senders of `bytes_each` to receivers that discard the bytes
// or, given `sink_dir`, write() them to a new file each and fdatasync every `sync_every`
// bytes and at the end (a durable receiver with no checks and no memory). The files are
// kept, as mirrord keeps its log segments until a SYNC: both write into page cache never
// used before, which on some VMs costs far more than reusing freed pages. Bytes/s, counted
// until every receiver answered after its last byte (and its last fdatasync).
double PlainTcp(int clients, size_t bytes_each, const std::string& sink_dir = "",
                size_t sync_every = 0) {
  static int sink_files = 0;
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
      const int file_no = sink_files++;
      sinks.emplace_back([fd, file_no, bytes_each, &sink_dir, sync_every] {
        int out = -1;
        if (!sink_dir.empty()) {
          const std::string path = sink_dir + "/sink" + std::to_string(file_no);
          out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
          if (out < 0) Die("open " + path + ": " + std::strerror(errno));
        }
        std::vector<char> buf(1 << 20);
        size_t got = 0, unsynced = 0;
        while (got < bytes_each) {
          ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
          if (n <= 0) break;
          got += static_cast<size_t>(n);
          if (out < 0) continue;
          if (::write(out, buf.data(), static_cast<size_t>(n)) != n) Die("sink write");
          unsynced += static_cast<size_t>(n);
          if (unsynced >= sync_every) {
            if (::fdatasync(out) != 0) Die("sink fdatasync");
            unsynced = 0;
          }
        }
        if (out >= 0) {
          if (::fdatasync(out) != 0) Die("sink fdatasync");
          ::close(out);
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

// A source of the benchmark: its id and the seq its next record takes.
struct Source {
  std::string id;
  uint64_t next_seq = 1;
};

struct IngestRates {
  double received = 0;  // bytes/s until the last record was acknowledged as received
  double durable = 0;   // ... as durable
};

// Each source sends `records` more 64 KiB records (frames of 16) over a new connection
// with `hello_flags`; the clock runs from the first send until the last acknowledgement.
IngestRates Ingest(uint16_t port, std::vector<Source>& sources, uint64_t records, size_t rec_bytes,
                   uint32_t hello_flags) {
  const size_t n = sources.size();
  std::vector<std::vector<std::string>> frames(n);
  size_t bytes_each = 0;
  for (size_t i = 0; i < n; ++i) {
    frames[i] =
        MakeFrames(MakeRecords(sources[i].next_seq, records, rec_bytes), sources[i].next_seq, 16);
    bytes_each = 0;
    for (const auto& f : frames[i]) bytes_each += f.size();
  }
  std::vector<int> fds(n);
  for (size_t i = 0; i < n; ++i) {
    fds[i] = Connect(port, sources[i].id, "benchsecret", hello_flags);
  }
  std::vector<double> received(n), durable(n);
  const double start = Seconds();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t last = sources[i].next_seq + records - 1;
    threads.emplace_back([&, i, last] {
      // ACKs are read on a second thread so that the socket never blocks both ways.
      std::thread reader([&, i, last] {
        WaitAck(fds[i], last, false);
        received[i] = Seconds();
        WaitAck(fds[i], last, true);
        durable[i] = Seconds();
      });
      for (const auto& f : frames[i]) SendAll(fds[i], f);
      reader.join();
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < n; ++i) {
    ::close(fds[i]);
    sources[i].next_seq += records;
  }
  const double total = static_cast<double>(bytes_each) * n;
  return {total / (*std::max_element(received.begin(), received.end()) - start),
          total / (*std::max_element(durable.begin(), durable.end()) - start)};
}

struct Phase {
  const char* name;
  int sources;
  uint64_t records_each;
};

}  // namespace

int main(int argc, char** argv) {
  const bool quick = mirror::bench::HasFlag(argc, argv, "--quick");
  std::string binary =
      (std::filesystem::path(argv[0]).parent_path() / "../mirrord/mirrord").lexically_normal();
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--mirrord") binary = argv[i + 1];
  }
  char tmpl[] = "/var/tmp/bench-mirrord-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) Die("mkdtemp");
  const std::string dir = tmpl;
  // Memory of each source: two halves of kHalf. A burst fits in one half, so mirrord
  // acknowledges it from memory; a sustained stream is several times the memory, so
  // it runs at the speed of the log's disk.
  const size_t kHalf = 128ull << 20;
  const size_t kRec = 64 * 1024;
  {
    std::ofstream(dir + "/secret") << "benchsecret\n";
    ::chmod((dir + "/secret").c_str(), 0600);
    std::ofstream(dir + "/mirrord.json")
        << "{\"listen\":[\"127.0.0.1:0\"],\"state_dir\":\"" << dir << "/state\",\"secret_file\":\""
        << dir << "/secret\",\"io_threads\":2,\"limits\":{\"memory_size\":\"" << (2 * kHalf >> 20)
        << "M\"}}";
  }
  ::mkdir((dir + "/sink").c_str(), 0700);
  Mirrord m;
  StartMirrord(m, binary, dir);

  const int runs = quick ? 1 : 3;
  const uint64_t burst = quick ? 256 : 1536;        // 16 / 96 MiB per source
  const uint64_t sustained = quick ? 1024 : 12288;  // 64 / 768 MiB per source
  const Phase phases[] = {{"burst", 1, burst},
                          {"burst", 4, burst},
                          {"sustained", 1, sustained},
                          {"sustained", 4, sustained / 3}};
  std::vector<Source> one = {{"one"}};
  std::vector<Source> four = {{"four0"}, {"four1"}, {"four2"}, {"four3"}};

  std::printf(
      "mirrord ingest: 64 KiB records in frames of 16, loopback; memory %zu MiB per "
      "source (halves of %zu MiB); medians of %d runs\n",
      2 * kHalf >> 20, kHalf >> 20, runs);
  std::printf(
      "  plain: TCP to a receiver that discards; plain+fsync: that receiver writes to a "
      "file and fdatasyncs every %zu MiB\n"
      "  received: sources in mode=sync/async (flushed lazily); durable: a second pass, "
      "sources in mode=durable (flushed at once)\n",
      kHalf >> 20);
  std::printf("%-10s %7s %9s %10s %12s %13s %12s %10s %15s\n", "phase", "sources", "MiB/src",
              "plain MB/s", "+fsync MB/s", "received MB/s", "durable MB/s", "recv/plain",
              "durable/+fsync");
  for (const Phase& p : phases) {
    std::vector<Source>& srcs = p.sources == 1 ? one : four;
    const size_t bytes_each = p.records_each * kRec;
    std::vector<double> plain, synced, recv, dur;
    for (int r = 0; r < runs; ++r) {
      plain.push_back(PlainTcp(p.sources, bytes_each));
      synced.push_back(PlainTcp(p.sources, bytes_each, dir + "/sink", kHalf));
      recv.push_back(Ingest(m.port, srcs, p.records_each, kRec, 0).received);
      dur.push_back(Ingest(m.port, srcs, p.records_each, kRec, c::kHelloWantsDurable).durable);
    }
    std::printf("%-10s %7d %9zu %10.0f %12.0f %13.0f %12.0f %9.2fx %14.2fx\n", p.name, p.sources,
                bytes_each >> 20, Median(plain) / 1e6, Median(synced) / 1e6, Median(recv) / 1e6,
                Median(dur) / 1e6, Median(recv) / Median(plain), Median(dur) / Median(synced));
  }

  // Acknowledgement round trip of 4 KiB records, one at a time.
  {
    const uint64_t n = quick ? 500 : 3000;
    const std::vector<std::string> small = MakeRecords(1, n, 4096);
    const std::vector<std::string> single = MakeFrames(small, 1, 1);
    int fd = Connect(m.port, "rtt", "benchsecret", 0);
    std::vector<double> rtt;
    for (uint64_t i = 0; i < n; ++i) {
      const double t0 = Seconds();
      SendAll(fd, single[i]);
      WaitAck(fd, i + 1, false);
      rtt.push_back((Seconds() - t0) * 1e6);
    }
    ::close(fd);
    std::sort(rtt.begin(), rtt.end());
    std::printf(
        "ack round trip, 4 KiB records (received): p50 %.0f us, p99 %.0f us (%llu records)\n",
        Median(rtt), rtt[rtt.size() * 99 / 100], static_cast<unsigned long long>(n));
  }

  // Image apply: SYNC of 64 KiB writes to one file, beside pwrite + fsync of the same bytes.
  {
    const uint64_t count = quick ? 256 : 2048;  // 16 / 128 MiB
    std::vector<double> apply_rate, plain_rate;
    for (int r = 0; r < runs; ++r) {
      std::vector<Source> src = {{"apply" + std::to_string(r)}};
      Ingest(m.port, src, count, kRec, 0);
      int fd = Connect(m.port, src[0].id, "benchsecret", 0);
      const double t0 = Seconds();
      SendAll(fd, c::EncodeFrame(c::SyncMsg{count}).value());
      while (!std::holds_alternative<c::SyncDoneMsg>(ReadFrame(fd))) {
      }
      const double apply = Seconds() - t0;
      ::close(fd);
      const std::string path = dir + "/plain" + std::to_string(r);
      int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const std::string data(kRec, 'x');
      const double t1 = Seconds();
      for (uint64_t s = 0; s + 1 < count; ++s) {
        if (::pwrite(out, data.data(), data.size(), static_cast<off_t>(s * kRec)) < 0) {
          Die("pwrite");
        }
      }
      ::fsync(out);
      const double plain = Seconds() - t1;
      ::close(out);
      const double bytes = static_cast<double>((count - 1) * kRec);
      apply_rate.push_back(bytes / apply);
      plain_rate.push_back(bytes / plain);
    }
    std::printf("image apply, 64 KiB writes: %.0f MB/s, plain pwrite+fsync %.0f MB/s (%.2fx)\n",
                Median(apply_rate) / 1e6, Median(plain_rate) / 1e6,
                Median(apply_rate) / Median(plain_rate));
  }
  m.Stop();
  if (mirror::bench::HasFlag(argc, argv, "--keep")) {
    std::printf("scratch kept: %s (mirrord's log: mirrord.log)\n", dir.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return 0;
}
