// Journal append throughput against a plain memcpy of the same bytes, measured in the
// same run. For 128 B, 4 KiB and 256 KiB write payloads, with 1 and 2 threads, on both
// media (mmap, pwrite): each appender calls Journal::Append(WriteOp) (build, seal with
// CRC, copy, wait for the committed prefix); the baseline memcpy()s records of the same
// size into a pre-faulted buffer as big as the ring, cycling. The journal (256 MiB, in a
// temporary directory under /var/tmp, removed at the end) is freed like a consistency
// point would (without the sync): every 4 MiB an appender looks at the fill and, past
// half the ring, frees through the seq it last appended, so appends never wait for
// space (the run fails if one does). Each journal first takes one untimed lap of
// appends, so the rows measure the steady state. Figures are medians of 5 runs.
//
//   build/bench/bench_journal [--quick] [--medium=mmap|pwrite] [--payload=BYTES]
//
// The filters run one row or a few, for profiling.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "common/journal.h"
#include "common/journal_format.h"

using namespace mirror;
using common::Journal;
using common::JournalMediumKind;

namespace {

constexpr uint64_t kJournalBytes = 256u << 20;
constexpr int kRuns = 5;

// The scratch directory, for Die: std::exit runs no destructor of main's locals, and the
// journals in it take 512 MiB.
std::string g_scratch;

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = "/var/tmp/mirror-bench-journal-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp /var/tmp");
      std::exit(1);
    }
    path_ = tmpl;
    g_scratch = path_;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

[[noreturn]] void Die(const common::Status& s) {
  std::fprintf(stderr, "bench_journal: %s\n", s.ToString().c_str());
  std::error_code ec;
  if (!g_scratch.empty()) std::filesystem::remove_all(g_scratch, ec);
  std::exit(1);
}

// Runs `body(thread_index)` on `threads` threads started together; returns seconds.
template <class Body>
double TimeThreads(int threads, Body body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ++ready;
      while (!go.load(std::memory_order_acquire)) {
      }
      body(t);
    });
  }
  while (ready.load() < threads) {
  }
  double start = bench::Seconds();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  return bench::Seconds() - start;
}

// Appends `per_thread` writes of `payload` bytes on each thread; returns records/s.
double JournalRun(Journal& journal, int threads, uint64_t per_thread, const std::string& payload) {
  constexpr uint64_t kCheckEvery = 4u << 20;  // look at the fill every 4 MiB appended
  double secs = TimeThreads(threads, [&](int) {
    common::WriteOp op{"bench/file", 0, {1700000000, 0}, payload};
    uint64_t since_check = 0;
    for (uint64_t i = 0; i < per_thread; ++i) {
      op.offset = i * payload.size();
      auto seq = journal.Append(op);
      if (!seq.ok()) Die(seq.status());
      since_check += payload.size() + 64;
      if (since_check > kCheckEvery) {
        since_check = 0;
        common::JournalStats stats = journal.stats();
        if (stats.waiting_appenders > 0) Die(common::Status::Full(stats.full_reason));
        if (stats.used_bytes > stats.capacity_bytes / 2) {
          if (auto s = journal.Free(*seq); !s.ok()) Die(s);
        }
      }
    }
  });
  return static_cast<double>(per_thread * static_cast<uint64_t>(threads)) / secs;
}

// The baseline: the same number of records of the same size, memcpy'd into a
// pre-faulted ring-sized buffer (each thread its own part), cycling.
double MemcpyRun(std::vector<char>& ring, int threads, uint64_t per_thread,
                 const std::string& record) {
  const uint64_t part = ring.size() / static_cast<uint64_t>(threads);
  double secs = TimeThreads(threads, [&](int t) {
    char* base = ring.data() + part * static_cast<uint64_t>(t);
    uint64_t at = 0;
    for (uint64_t i = 0; i < per_thread; ++i) {
      if (at + record.size() > part) at = 0;
      std::memcpy(base + at, record.data(), record.size());
      bench::Consume(base[at]);
      at += (record.size() + 7) & ~uint64_t{7};
    }
  });
  return static_cast<double>(per_thread * static_cast<uint64_t>(threads)) / secs;
}

}  // namespace

// The value of `--name=value`, or "" when absent.
std::string FlagValue(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind(name + "=", 0) == 0) return arg.substr(name.size() + 1);
  }
  return "";
}

int main(int argc, char** argv) {
  const bool quick = bench::HasFlag(argc, argv, "--quick");
  const std::string only_medium = FlagValue(argc, argv, "--medium");
  const std::string only_payload = FlagValue(argc, argv, "--payload");
  const double bytes_per_run = quick ? 48e6 : 512e6;
  ScratchDir dir;
  std::vector<char> ring(kJournalBytes - common::kJournalDataStart);
  std::memset(ring.data(), 1, ring.size());  // pre-fault every page

  std::printf(
      "Journal append vs memcpy of the same record bytes; %llu MiB journal in %s; "
      "median of %d runs%s\n",
      static_cast<unsigned long long>(kJournalBytes >> 20), dir.path().c_str(), kRuns,
      quick ? " (--quick)" : "");
  std::printf("%-7s %8s %3s %12s %10s %12s %10s %7s\n", "medium", "payload", "thr", "journal rec/s",
              "MB/s", "memcpy rec/s", "MB/s", "ratio");
  for (JournalMediumKind kind : {JournalMediumKind::kMmap, JournalMediumKind::kPwrite}) {
    if (!only_medium.empty() && only_medium != common::JournalMediumName(kind)) continue;
    common::JournalOptions options;
    options.size_bytes = kJournalBytes;
    options.medium = kind;
    const std::string path =
        dir.path() + "/journal-" + std::string(common::JournalMediumName(kind));
    auto journal = Journal::Create(path, {"bench-source", "bench-volume", 1}, options);
    if (!journal.ok()) Die(journal.status());
    // One untimed lap first: a fresh file's first write to each page costs more (write
    // faults, unwritten extents), and a journal lives in its steady state.
    const std::string warmup(256u << 10, 'w');
    JournalRun(**journal, 1, kJournalBytes / warmup.size() + 1, warmup);
    for (size_t payload_size : {size_t{128}, size_t{4096}, size_t{256} << 10}) {
      if (!only_payload.empty() && only_payload != std::to_string(payload_size)) continue;
      const std::string payload(payload_size, 'p');
      auto record = common::EncodeRecord(
          {1, 1, 1}, common::WriteOp{"bench/file", 0, {1700000000, 0}, payload});
      if (!record.ok()) Die(record.status());
      for (int threads : {1, 2}) {
        const uint64_t total = std::max<uint64_t>(
            1000, static_cast<uint64_t>(bytes_per_run / static_cast<double>(record->size())));
        const uint64_t per_thread = total / static_cast<uint64_t>(threads);
        std::vector<double> journal_rates, memcpy_rates;
        for (int run = 0; run < kRuns; ++run) {  // interleaved: both see the same machine
          memcpy_rates.push_back(MemcpyRun(ring, threads, per_thread, *record));
          journal_rates.push_back(JournalRun(**journal, threads, per_thread, payload));
        }
        const double j = bench::Median(journal_rates), m = bench::Median(memcpy_rates);
        const double mb = static_cast<double>(record->size()) / 1e6;
        std::printf("%-7s %8zu %3d %12.0f %10.0f %12.0f %10.0f %6.2fx\n",
                    std::string(common::JournalMediumName(kind)).c_str(), payload_size, threads, j,
                    j * mb, m, m * mb, j / m);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
