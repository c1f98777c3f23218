#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "mirrord/source_store.h"
#include "mirrord/tests/store_test_util.h"

using namespace mirror::d;
using namespace mirror::d::test;
using mirror::common::WireError;
namespace fs = std::filesystem;

TEST_CASE("StoreBackpressureLosesNothing") {
  TempDir dir;
  StoreOptions o = SmallOptions();
  o.memory_half_bytes = 64 * 1024;
  o.limits.max_record_bytes = 32 * 1024;
  auto store = OpenStore(dir / "s1", o);
  uint64_t token = Start(*store);
  std::vector<std::string> recs;
  for (uint64_t s = 1; s <= 600; ++s) recs.push_back(WriteRec(s, 1, 3000 + s % 500, "f"));
  recs.insert(recs.begin(), OpRec(0, c::CreateOp{"f", S_IFREG | 0644, 0, 0, {1, 0}, {1, 0}}));
  for (size_t i = 0; i < recs.size(); ++i) recs[i] = WithSeq(recs[i], i + 1);
  ReceiveAll(*store, token, recs);
  Refusal refusal;
  auto applied = store->Sync(recs.size(), &refusal);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(SnapshotTree(dir / "s1/image") == DirectApply(recs));
}

TEST_CASE("StoreRecoversMemoryAfterKillAndAppliesOnce") {
  TempDir dir;
  std::vector<std::string> recs = SampleHistory(1, "d");
  for (uint64_t s = recs.size() + 1; s <= 60; ++s) recs.push_back(WriteRec(s, 1, 500, "d/c"));
  const uint64_t half = 30;
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child receives everything, makes the first half durable and applied, and
    // dies without any cleanup, like kill -9: the rest is only in the memory file.
    StoreOptions o = SmallOptions();
    o.flush_delay = std::chrono::hours(1);
    auto store = SourceStore::Open(dir / "s1", "s1", o);
    if (!store.ok()) _exit(2);
    Refusal refusal;
    auto info = (*store)->StartSession("vol", 1, nullptr, &refusal);
    if (!info.ok()) _exit(3);
    std::vector<std::string> first(recs.begin(), recs.begin() + half);
    std::vector<std::string> rest(recs.begin() + half, recs.end());
    if ((*store)->Receive(info->token, Concat(first), half).accepted != half) _exit(4);
    if (!(*store)->Sync(half, &refusal).ok()) _exit(5);
    if ((*store)->Receive(info->token, Concat(rest), static_cast<uint32_t>(rest.size())).accepted !=
        rest.size()) {
      _exit(6);
    }
    if ((*store)->Stats().durable_seq != half) _exit(7);
    _exit(0);
  }
  int wstatus = 0;
  REQUIRE(waitpid(pid, &wstatus, 0) == pid);
  REQUIRE(WIFEXITED(wstatus));
  REQUIRE(WEXITSTATUS(wstatus) == 0);

  std::string note;
  auto store = OpenStore(dir / "s1", SmallOptions(), &note);
  CHECK(note.find("moved from memory") != std::string::npos);
  StoreStats st = store->Stats();
  CHECK(st.received_seq == 60);
  CHECK(st.durable_seq == 60);
  CHECK(st.applied_seq == half);
  Refusal refusal;
  auto applied = store->Sync(60, &refusal);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(SnapshotTree(dir / "s1/image") == DirectApply(recs));
}

TEST_CASE("StoreReplaysTheCrashWindowHarmlessly") {
  TempDir dir;
  std::vector<std::string> recs = SampleHistory(1, "d");
  const uint64_t n = recs.size();
  {
    auto store = OpenStore(dir / "s1", SmallOptions());
    uint64_t token = Start(*store);
    REQUIRE(store->Receive(token, Concat(recs), static_cast<uint32_t>(n)).accepted == n);
    Refusal refusal;
    REQUIRE(store->Sync(n, &refusal).ok());
  }
  // As if the crash came after the image had every change but before the state said
  // so: applied_seq 1, the batch through n in flight.
  auto state = ReadStateFile(dir / "s1/state");
  REQUIRE(state.ok());
  SourceState crashed = *state;
  crashed.applied_seq = 1;
  crashed.replay_through = n;
  // The log must still hold the records: the store deleted them, so rebuild the log.
  fs::remove_all(dir / "s1/log");
  {
    c::SegmentLogOptions lo;
    auto log = c::SegmentLog::Open(dir / "s1/log", lo);
    REQUIRE(log.ok());
    for (const auto& r : recs) REQUIRE((*log)->Append(r).ok());
    REQUIRE((*log)->Sync().ok());
  }
  REQUIRE(WriteStateFile(dir / "s1/state", crashed).ok());
  auto store = OpenStore(dir / "s1", SmallOptions());
  Refusal refusal;
  auto applied = store->Sync(n, &refusal);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(SnapshotTree(dir / "s1/image") == DirectApply(recs));
}

TEST_CASE("StoreRetentionKeepsAppliedSegments") {
  TempDir dir;
  StoreOptions o = SmallOptions();
  o.retention = std::chrono::hours(1);
  auto store = OpenStore(dir / "s1", o);
  uint64_t token = Start(*store);
  std::vector<std::string> recs;
  recs.push_back(OpRec(1, c::CreateOp{"f", S_IFREG | 0644, 0, 0, {1, 0}, {1, 0}}));
  for (uint64_t s = 2; s <= 100; ++s) recs.push_back(WriteRec(s, 1, 2000, "f"));
  REQUIRE(store->Receive(token, Concat(recs), 100).accepted == 100);
  Refusal refusal;
  REQUIRE(store->Sync(100, &refusal).ok());
  CHECK(store->Stats().log_segments > 2);  // 200 KB in 64 KiB segments, all kept
}

TEST_CASE("StoreLagSecondsCountsUntilTheRecordsAreApplied") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t token = Start(*store);
  CHECK(store->Stats().lag_seconds == 0);
  std::vector<std::string> recs = {
      OpRec(1, c::CreateOp{"f", S_IFREG | 0644, 0, 0, {1, 0}, {1, 0}})};
  REQUIRE(store->Receive(token, recs[0], 1).accepted == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  CHECK(store->Stats().lag_seconds >= 0.15);
  Refusal refusal;
  REQUIRE(store->Sync(1, &refusal).ok());
  CHECK(store->Stats().lag_seconds == 0);
}
