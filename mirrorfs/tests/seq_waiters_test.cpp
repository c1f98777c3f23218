// Writers waiting for an acknowledgement: an ACK wakes only the writers it covers, and
// no wakeup is lost between a writer's check and its wait.
#include "mirrorfs/seq_waiters.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

namespace {

using mirror::fs::SeqWaiters;
using namespace std::chrono_literals;

void WaitUntilWaiting(const SeqWaiters& w, size_t n) {
  for (int i = 0; i < 500 && w.size() < n; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(w.size() == n);
}

}  // namespace

TEST_CASE("AnAcknowledgementWakesOnlyTheWritersItCovers") {
  SeqWaiters waiters;
  std::atomic<uint64_t> acked{0};
  std::atomic<int> checks_of_10{0};
  std::thread five([&] { waiters.Wait(5, [&] { return acked.load() >= 5; }); });
  std::thread ten([&] {
    waiters.Wait(10, [&] {
      ++checks_of_10;
      return acked.load() >= 10;
    });
  });
  WaitUntilWaiting(waiters, 2);
  const int before = checks_of_10.load();
  acked = 5;
  waiters.Advance(5);
  five.join();
  std::this_thread::sleep_for(50ms);
  CHECK(checks_of_10.load() == before);  // the writer of seq 10 slept on
  CHECK(waiters.size() == 1);
  acked = 10;
  waiters.Advance(10);
  ten.join();
  CHECK(waiters.size() == 0);
}

TEST_CASE("WakeAllMakesEveryWriterCheckAgain") {
  SeqWaiters waiters;
  std::atomic<bool> give_up{false};
  std::vector<std::thread> writers;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    writers.emplace_back([&, seq] { waiters.Wait(seq, [&] { return give_up.load(); }); });
  }
  WaitUntilWaiting(waiters, 3);
  give_up = true;
  waiters.WakeAll();
  for (auto& t : writers) t.join();
  CHECK(waiters.size() == 0);
}

TEST_CASE("NoWakeupIsLostWhenAcknowledgementsRace") {
  constexpr uint64_t kSeqs = 20000;
  constexpr int kWriters = 4;
  SeqWaiters waiters;
  std::atomic<uint64_t> acked{0};
  auto writer = [&](int id) {
    for (uint64_t seq = static_cast<uint64_t>(id) + 1; seq <= kSeqs; seq += kWriters) {
      waiters.Wait(seq, [&] { return acked.load() >= seq; });
    }
  };
  std::vector<std::future<void>> done;
  for (int i = 0; i < kWriters; ++i) done.push_back(std::async(std::launch::async, writer, i));
  for (uint64_t seq = 1; seq <= kSeqs; ++seq) {
    acked = seq;
    waiters.Advance(seq);
  }
  for (auto& f : done) CHECK(f.wait_for(10s) == std::future_status::ready);
}
