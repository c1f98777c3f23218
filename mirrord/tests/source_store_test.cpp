#include "mirrord/source_store.h"

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

#include "mirrord/tests/store_test_util.h"

using namespace mirror::d;
using namespace mirror::d::test;
using mirror::common::WireError;
namespace fs = std::filesystem;

TEST_CASE("StoreSyncGivesTheImageThatApplyingTheRecordsGives") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t token = Start(*store);
  std::vector<std::string> recs = SampleHistory(1, "d");
  for (uint64_t s = recs.size() + 1; s <= 200; ++s) recs.push_back(WriteRec(s, 1, 900, "d/a"));
  std::string all = Concat(recs);
  ReceiveResult res = store->Receive(token, all, static_cast<uint32_t>(recs.size()));
  REQUIRE_FALSE(res.error);
  REQUIRE(res.accepted == recs.size());
  Refusal refusal;
  auto applied = store->Sync(200, &refusal);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(*applied == 200);
  CHECK(SnapshotTree(dir / "s1/image") == DirectApply(recs));
  StoreStats st = store->Stats();
  CHECK(st.received_seq == 200);
  CHECK(st.durable_seq == 200);
  CHECK(st.applied_seq == 200);
  CHECK_FALSE(st.broken);
  // Wholly applied segments are gone; the log keeps its place in the sequence.
  CHECK(st.log_segments == 1);
  auto state = ReadStateFile(dir / "s1/state");
  REQUIRE(state.ok());
  CHECK(state->applied_seq == 200);
  CHECK(state->volume_id == "vol");
}

TEST_CASE("StoreNothingIsDurableBeforeTheFlush") {
  TempDir dir;
  StoreOptions o = SmallOptions();
  o.flush_delay = std::chrono::hours(1);
  auto store = OpenStore(dir / "s1", o);
  uint64_t token = Start(*store);
  std::vector<std::string> recs;
  for (uint64_t s = 1; s <= 10; ++s) recs.push_back(WriteRec(s));
  ReceiveResult res = store->Receive(token, Concat(recs), 10);
  REQUIRE(res.accepted == 10);
  CHECK(store->Stats().received_seq == 10);
  CHECK(store->Stats().durable_seq == 0);
  CHECK(store->Stats().memory_used_bytes > 0);
  REQUIRE(store->Flush().ok());
  CHECK(store->Stats().durable_seq == 10);
  CHECK(store->Stats().memory_used_bytes == 0);
}

TEST_CASE("StoreDurableCallbackFollowsEachFlush") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  std::promise<uint64_t> durable;
  bool set = false;
  Refusal refusal;
  auto info = store->StartSession(
      "vol", 1,
      [&](uint64_t, uint64_t d) {
        if (d == 5 && !set) {
          set = true;
          durable.set_value(d);
        }
      },
      &refusal);
  REQUIRE(info.ok());
  std::vector<std::string> recs;
  for (uint64_t s = 1; s <= 5; ++s) recs.push_back(WriteRec(s));
  REQUIRE(store->Receive(info->token, Concat(recs), 5).accepted == 5);
  auto f = durable.get_future();
  REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(f.get() == 5);
}

// A source that does not wait for durable ACKs (sync, async) has its records flushed
// after lazy_flush_delay, or at once when it asks (a SYNC is a Flush); one that does
// (durable) after flush_delay.
TEST_CASE("StoreFlushesLazilyForSourcesThatDoNotWaitForDurability") {
  TempDir dir;
  StoreOptions o = SmallOptions();
  o.flush_delay = std::chrono::milliseconds(0);
  o.lazy_flush_delay = std::chrono::hours(1);
  auto store = OpenStore(dir / "s1", o);
  auto start = [&](bool wants_durable) { return Start(*store, 1, "vol", wants_durable); };

  uint64_t token = start(false);
  for (uint64_t s = 1; s <= 5; ++s) REQUIRE(store->Receive(token, WriteRec(s), 1).accepted == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(store->Stats().received_seq == 5);
  CHECK(store->Stats().durable_seq == 0);  // flush_delay (0) is not this source's
  REQUIRE(store->Flush().ok());
  CHECK(store->Stats().durable_seq == 5);

  token = start(true);
  for (uint64_t s = 6; s <= 10; ++s) REQUIRE(store->Receive(token, WriteRec(s), 1).accepted == 1);
  CHECK(WaitDurable(*store, 10) == 10);

  // The lazy delay alone flushes too, never before it ran out.
  store.reset();
  o.lazy_flush_delay = std::chrono::milliseconds(300);
  store = OpenStore(dir / "s1", o);
  token = start(false);
  const auto sent = std::chrono::steady_clock::now();
  REQUIRE(store->Receive(token, WriteRec(11), 1).accepted == 1);
  CHECK(WaitDurable(*store, 11) == 11);
  CHECK(std::chrono::steady_clock::now() - sent >= std::chrono::milliseconds(290));
}

// Nothing asks for a flush here (no Flush, Sync or full half): the flush_delay alone
// makes records durable, whether frames keep coming or stop.
TEST_CASE("StoreFlushesEachHalfWithinTheFlushDelayWhileFramesKeepComingAndAfter") {
  TempDir dir;
  StoreOptions o = SmallOptions();
  o.flush_delay = std::chrono::milliseconds(300);
  auto store = OpenStore(dir / "s1", o);
  uint64_t token = Start(*store);
  // A frame every 20 ms for 1.2 s: the frames after a half's first record do not put
  // its flush off.
  for (uint64_t s = 1; s <= 60; ++s) {
    REQUIRE(store->Receive(token, WriteRec(s), 1).accepted == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(store->Stats().durable_seq > 0);
  // Then silence: the last half is flushed on its own.
  CHECK(WaitDurable(*store, 60) == 60);
  // A record into the empty store starts a new half, flushed on its own too.
  REQUIRE(store->Receive(token, WriteRec(61), 1).accepted == 1);
  CHECK(WaitDurable(*store, 61) == 61);
}

TEST_CASE("StoreRefusesBadRecordsWithTheirCodeAndKeepsEarlierData") {
  TempDir dir;
  StoreOptions o = SmallOptions();
  auto store = OpenStore(dir / "s1", o);
  uint64_t token = Start(*store, 2);
  std::vector<std::string> good = SampleHistory(1, "d", 2);
  REQUIRE(store->Receive(token, Concat(good), static_cast<uint32_t>(good.size())).accepted ==
          good.size());
  const uint64_t next = good.size() + 1;

  CHECK(ReceiveRefused(*store, token, WriteRec(next + 1, 2)).code == WireError::kSequenceGap);
  CHECK(ReceiveRefused(*store, token, WriteRec(next - 1, 2)).code == WireError::kSequenceGap);
  CHECK(ReceiveRefused(*store, token, WriteRec(next, 1)).code == WireError::kStaleEpoch);
  CHECK(ReceiveRefused(*store, token, WriteRec(next, 3)).code == WireError::kProtocol);
  std::string bad_crc = WriteRec(next, 2);
  bad_crc[50] ^= 1;
  CHECK(ReceiveRefused(*store, token, bad_crc).code == WireError::kBadCrc);
  CHECK(ReceiveRefused(*store, token, WriteRec(next, 2, 200 * 1024)).code == WireError::kOversized);
  std::string unknown = WriteRec(next, 2);
  c::StoreLE<uint16_t>(unknown.data() + 8, 99);
  CHECK(ReceiveRefused(*store, token, WithSeq(unknown, next)).code == WireError::kUnknownType);
  // A path with "..": encode a valid record, then rewrite its path bytes and CRC.
  std::string escape = OpRec(next, c::UnlinkOp{"ab/cd", {1, 0}}, 2);
  std::memcpy(escape.data() + 44, "../x/", 5);
  CHECK(ReceiveRefused(*store, token, WithSeq(escape, next)).code == WireError::kEscape);
  std::string rename_escape = OpRec(next, c::RenameOp{"a", "zzzzz", 0, {1, 0}, {1, 0}}, 2);
  std::memcpy(rename_escape.data() + 49, "/etc/", 5);
  CHECK(ReceiveRefused(*store, token, WithSeq(rename_escape, next)).code == WireError::kEscape);
  std::string dev =
      OpRec(next, c::MknodOp{"d/dev", S_IFCHR | 0600, 0x0103, 0, 0, {1, 0}, {1, 0}}, 2);
  CHECK(ReceiveRefused(*store, token, dev).code == WireError::kDeviceRefused);
  // A batch with a bad record in the middle keeps the good ones before it.
  std::string batch = WriteRec(next, 2, 0, "d/a") + WriteRec(next + 2, 2, 0, "d/a");
  ReceiveResult res = store->Receive(token, batch, 2);
  CHECK(res.accepted == 1);
  REQUIRE(res.error);
  CHECK(res.error->code == WireError::kSequenceGap);

  CHECK(store->Stats().received_seq == next);
  Refusal refusal;
  auto applied = store->Sync(next, &refusal);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  good.push_back(WriteRec(next, 2, 0, "d/a"));
  // Epoch differs per record but apply ignores it.
  CHECK(SnapshotTree(dir / "s1/image") == DirectApply(good));
}

TEST_CASE("StoreAllowsDevicesWhenConfigured") {
  TempDir dir;
  StoreOptions o = SmallOptions();
  o.allow_devices = true;
  auto store = OpenStore(dir / "s1", o);
  uint64_t token = Start(*store);
  std::string dev =
      OpRec(1, c::MknodOp{"null2", S_IFCHR | 0600, makedev(1, 3), 0, 0, {1, 0}, {1, 0}});
  REQUIRE(store->Receive(token, dev, 1).accepted == 1);
  Refusal refusal;
  REQUIRE(store->Sync(1, &refusal).ok());
  struct stat st {};
  REQUIRE(lstat((dir / "s1/image/null2").c_str(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
}

TEST_CASE("StoreSyncBeyondReceivedIsRefused") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  Start(*store);
  Refusal refusal;
  auto r = store->Sync(5, &refusal);
  CHECK_FALSE(r.ok());
  CHECK(refusal.code == WireError::kProtocol);
}

TEST_CASE("StoreApplyEscapeThroughSymlinkBreaksTheSourceNotTheImage") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t token = Start(*store);
  std::vector<std::string> recs = {
      OpRec(1, c::SymlinkOp{"out", 0, 0, {1, 0}, {1, 0}, "/tmp"}),
      OpRec(2, c::CreateOp{"out/evil", S_IFREG | 0644, 0, 0, {1, 0}, {1, 0}}),
  };
  REQUIRE(store->Receive(token, Concat(recs), 2).accepted == 2);
  Refusal refusal;
  auto r = store->Sync(2, &refusal);
  CHECK_FALSE(r.ok());
  CHECK(refusal.code == WireError::kEscape);
  CHECK(store->Stats().applied_seq == 1);
  CHECK(store->Stats().broken);
  CHECK_FALSE(fs::exists("/tmp/evil"));
  // It stays refused: the image does not move past the bad record.
  CHECK_FALSE(store->Sync(2, &refusal).ok());
}

TEST_CASE("StoreSessionReplacementRefusesTheOldConnection") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t old_token = Start(*store);
  REQUIRE(store->Receive(old_token, WriteRec(1), 1).accepted == 1);
  uint64_t new_token = Start(*store);
  CHECK(new_token != old_token);
  CHECK(store->Stats().durable_seq == 1);  // a new session starts with all flushed
  CHECK(ReceiveRefused(*store, old_token, WriteRec(2)).code == WireError::kProtocol);
  CHECK(store->Receive(new_token, WriteRec(2), 1).accepted == 1);
}

TEST_CASE("StoreRefusesOtherVolumeAndOlderEpochAtSessionStart") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  Start(*store, 5, "vol");
  Refusal refusal;
  CHECK_FALSE(store->StartSession("other", 5, nullptr, &refusal).ok());
  CHECK(refusal.code == WireError::kProtocol);
  CHECK_FALSE(store->StartSession("vol", 4, nullptr, &refusal).ok());
  CHECK(refusal.code == WireError::kStaleEpoch);
  store.reset();
  // The raised epoch was stored.
  auto state = ReadStateFile(dir / "s1/state");
  REQUIRE(state.ok());
  CHECK(state->epoch == 5);
}
