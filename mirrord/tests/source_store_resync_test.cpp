// SourceStore's resync (RESYNC, RESYNC_DONE) and image queries (MANIFEST_REQUEST,
// SUMS_REQUEST), below the wire.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/frame.h"
#include "common/manifest.h"
#include "common/segment_log.h"
#include "mirrord/source_store.h"
#include "mirrord/tests/store_test_util.h"

using namespace mirror::d;
using namespace mirror::d::test;
using mirror::common::WireError;
namespace fs = std::filesystem;

namespace {

// Records 1..n: the sample history in "d", then writes to d/a.
std::vector<std::string> History(uint64_t n) {
  std::vector<std::string> recs = SampleHistory(1, "d");
  for (uint64_t s = recs.size() + 1; s <= n; ++s) recs.push_back(WriteRec(s, 1, 300, "d/a"));
  recs.resize(n);
  return recs;
}

std::vector<std::string> Slice(const std::vector<std::string>& recs, uint64_t from,
                               uint64_t through) {  // seqs, 1-based, inclusive
  return std::vector<std::string>(recs.begin() + (from - 1), recs.begin() + through);
}

void ReceiveSeqs(SourceStore& store, uint64_t token, const std::vector<std::string>& recs) {
  ReceiveResult res = store.Receive(token, Concat(recs), static_cast<uint32_t>(recs.size()));
  REQUIRE_MESSAGE(!res.error, (res.error ? res.error->message : ""));
  REQUIRE(res.accepted == recs.size());
}

uint64_t SyncOk(SourceStore& store, uint64_t cp, bool* ended = nullptr) {
  Refusal refusal;
  auto applied = store.Sync(cp, &refusal, ended);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  return *applied;
}

ResyncInfo ResyncOk(SourceStore& store, uint64_t token, uint64_t next) {
  Refusal refusal;
  auto info = store.Resync(token, next, &refusal);
  REQUIRE_MESSAGE(info.ok(), info.status().ToString());
  return *info;
}

SourceState StateOf(const std::string& dir) {
  auto state = ReadStateFile(dir + "/state");
  REQUIRE_MESSAGE(state.ok(), state.status().ToString());
  return *state;
}

// A record of the stream after a resync: a write into d/c (History writes to d/a, so the
// images tell the streams apart).
std::string NewStreamRec(uint64_t seq) { return WriteRec(seq, 1, 100, "d/c"); }

}  // namespace

TEST_CASE("ResyncDropsUnappliedRecordsFromMemoryAndLogAndRestartsTheSequence") {
  TempDir dir;
  StoreOptions o = SmallOptions();
  o.flush_delay = std::chrono::hours(1);  // records stay in memory until a flush is asked
  auto store = OpenStore(dir / "s1", o);
  uint64_t token = Start(*store);
  const std::vector<std::string> recs = History(60);
  ReceiveSeqs(*store, token, Slice(recs, 1, 50));
  REQUIRE(SyncOk(*store, 30) == 30);  // 1..50 durable (the sync flushed), 1..30 applied
  ReceiveSeqs(*store, token, Slice(recs, 51, 60));  // only in memory
  REQUIRE(store->Stats().memory_used_bytes > 0);
  REQUIRE(store->Stats().durable_seq == 50);

  const ResyncInfo info = ResyncOk(*store, token, 100);
  CHECK(info.applied_seq == 30);
  CHECK(info.received_seq == 60);
  CHECK(info.next_seq == 100);
  StoreStats st = store->Stats();
  CHECK(st.received_seq == 99);
  CHECK(st.durable_seq == 99);
  CHECK(st.applied_seq == 99);
  CHECK(st.memory_used_bytes == 0);
  CHECK(st.resync_active);
  CHECK(st.resync_until == 0);
  CHECK_FALSE(st.broken);
  const SourceState state = StateOf(dir / "s1");
  CHECK(state.applied_seq == 99);
  CHECK(state.replay_through == 99);
  CHECK(state.resync_active);
  CHECK(state.resync_until == 0);
  // Nothing was applied: the image is what seqs 1..30 gave.
  CHECK(SnapshotTree(dir / "s1/image") == DirectApply(Slice(recs, 1, 30)));
  // The log holds none of the dropped records and continues at 100.
  CHECK_FALSE(fs::exists(dir / "s1/log.dropped"));
  {
    auto log = c::SegmentLog::Open(dir / "s1/log");
    REQUIRE(log.ok());
    CHECK((*log)->empty());
    CHECK((*log)->next_seq() == 100);
  }

  // The old stream's next record is a gap now; the new stream starts at 100.
  CHECK(ReceiveRefused(*store, token, recs[60 - 1]).code == WireError::kSequenceGap);
  CHECK(ReceiveRefused(*store, token, NewStreamRec(101)).code == WireError::kSequenceGap);
  ReceiveSeqs(*store, token, {NewStreamRec(100), NewStreamRec(101)});
  CHECK(SyncOk(*store, 101) == 101);
  std::vector<std::string> want = Slice(recs, 1, 30);
  want.push_back(NewStreamRec(100));
  want.push_back(NewStreamRec(101));
  CHECK(SnapshotTree(dir / "s1/image") == DirectApply(want));
  CHECK(store->Stats().resync_active);  // no RESYNC_DONE yet
}

TEST_CASE("ResyncToALowerSeqSurvivesARestartAndEndsAfterResyncDone") {
  TempDir dir;
  const std::vector<std::string> recs = History(40);
  {
    auto store = OpenStore(dir / "s1", SmallOptions());
    uint64_t token = Start(*store);
    ReceiveSeqs(*store, token, recs);
    REQUIRE(SyncOk(*store, 40) == 40);
    // The source lost its journal and restarts at seq 5: below what was applied.
    ResyncOk(*store, token, 5);
    CHECK(store->Stats().applied_seq == 4);
    ReceiveSeqs(*store, token, {NewStreamRec(5), NewStreamRec(6), NewStreamRec(7)});
    REQUIRE(store->Flush().ok());
  }
  // A restart keeps the resync, the new seqs and the records received after it.
  auto store = OpenStore(dir / "s1", SmallOptions());
  StoreStats st = store->Stats();
  CHECK(st.resync_active);
  CHECK(st.applied_seq == 4);
  CHECK(st.received_seq == 7);
  CHECK(st.durable_seq == 7);
  uint64_t token = Start(*store);

  Refusal refusal;
  CHECK_FALSE(store->ResyncDone(8, &refusal).ok());  // beyond what was received
  CHECK(refusal.code == WireError::kProtocol);
  auto ended = store->ResyncDone(7, &refusal);
  REQUIRE(ended.ok());
  CHECK_FALSE(*ended);  // 5..7 are not applied yet
  CHECK(store->Stats().resync_until == 7);
  CHECK(StateOf(dir / "s1").resync_until == 7);
  ReceiveSeqs(*store, token, {NewStreamRec(8)});
  bool sync_ended = true;
  CHECK(SyncOk(*store, 6, &sync_ended) == 6);
  CHECK_FALSE(sync_ended);
  CHECK(store->Stats().resync_active);
  CHECK(SyncOk(*store, 8, &sync_ended) == 8);
  CHECK(sync_ended);
  st = store->Stats();
  CHECK_FALSE(st.resync_active);
  CHECK(st.resync_until == 0);
  const SourceState state = StateOf(dir / "s1");
  CHECK_FALSE(state.resync_active);
  // Not resyncing: the state file is the one earlier versions wrote.
  CHECK(mirror::test::ReadFileBytes(dir / "s1/state").find("resync") == std::string::npos);
  std::vector<std::string> want = recs;
  for (uint64_t s = 5; s <= 8; ++s) want.push_back(NewStreamRec(s));
  CHECK(SnapshotTree(dir / "s1/image") == DirectApply(want));
  // Without an active resync, RESYNC_DONE changes nothing.
  ended = store->ResyncDone(8, &refusal);
  REQUIRE(ended.ok());
  CHECK_FALSE(*ended);
  CHECK_FALSE(store->Stats().resync_active);
}

TEST_CASE("ResyncDoneAtOrBelowTheAppliedSeqEndsAtOnce") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t token = Start(*store);
  ResyncOk(*store, token, 10);  // nothing differed: the source sends no record
  CHECK(store->Stats().resync_active);
  Refusal refusal;
  auto ended = store->ResyncDone(9, &refusal);
  REQUIRE(ended.ok());
  CHECK(*ended);
  CHECK_FALSE(store->Stats().resync_active);
  CHECK_FALSE(StateOf(dir / "s1").resync_active);
}

TEST_CASE("ResyncFromAReplacedSessionIsRefused") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t old_token = Start(*store);
  ReceiveSeqs(*store, old_token, History(3));
  Start(*store);
  Refusal refusal;
  CHECK_FALSE(store->Resync(old_token, 10, &refusal).ok());
  CHECK(refusal.code == WireError::kProtocol);
  CHECK(store->Stats().received_seq == 3);
  CHECK_FALSE(store->Stats().resync_active);
  CHECK_FALSE(store->Resync(old_token, 0, &refusal).ok());
}

TEST_CASE("ResyncClearsAnApplyFailureCausedByTheDroppedRecords") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t token = Start(*store);
  ReceiveSeqs(*store, token,
              {OpRec(1, c::SymlinkOp{"out", 0, 0, {1, 0}, {1, 0}, "/tmp"}),
               OpRec(2, c::CreateOp{"out/evil", S_IFREG | 0644, 0, 0, {1, 0}, {1, 0}})});
  Refusal refusal;
  REQUIRE_FALSE(store->Sync(2, &refusal).ok());
  REQUIRE(store->Stats().broken);
  const ResyncInfo info = ResyncOk(*store, token, 3);
  CHECK(info.applied_seq == 1);
  CHECK(info.received_seq == 2);
  CHECK(info.cleared_error.find("symlink") != std::string::npos);
  CHECK_FALSE(store->Stats().broken);
  ReceiveSeqs(*store, token, {OpRec(3, c::UnlinkOp{"out", {1, 0}})});
  CHECK(SyncOk(*store, 3) == 3);
  CHECK_FALSE(fs::is_symlink(dir / "s1/image/out"));
}

TEST_CASE("ACrashAfterTheLogWasDroppedRestartsAfterTheAppliedSeq") {
  TempDir dir;
  const std::vector<std::string> recs = History(20);
  {
    auto store = OpenStore(dir / "s1", SmallOptions());
    uint64_t token = Start(*store);
    ReceiveSeqs(*store, token, recs);
    REQUIRE(SyncOk(*store, 10) == 10);
    REQUIRE(store->Flush().ok());
  }
  // Resync's first step done, the state not written yet: the log is moved aside.
  fs::rename(dir / "s1/log", dir / "s1/log.dropped");
  {
    auto store = OpenStore(dir / "s1", SmallOptions());
    CHECK_FALSE(fs::exists(dir / "s1/log.dropped"));
    StoreStats st = store->Stats();
    CHECK(st.received_seq == 10);  // the unapplied records are gone, as RESYNC wanted
    CHECK(st.applied_seq == 10);
    CHECK_FALSE(st.resync_active);  // but no resync began: the source asks again
    uint64_t token = Start(*store);
    ReceiveSeqs(*store, token, Slice(recs, 11, 12));
  }
  // The state written, the new log not yet made.
  SourceState state = StateOf(dir / "s1");
  state.applied_seq = state.replay_through = 99;
  state.resync_active = true;
  REQUIRE(WriteStateFile(dir / "s1/state", state).ok());
  fs::rename(dir / "s1/log", dir / "s1/log.dropped");
  auto store = OpenStore(dir / "s1", SmallOptions());
  StoreStats st = store->Stats();
  CHECK(st.received_seq == 99);
  CHECK(st.applied_seq == 99);
  CHECK(st.resync_active);
  uint64_t token = Start(*store);
  ReceiveSeqs(*store, token, {NewStreamRec(100)});
  CHECK(SyncOk(*store, 100) == 100);
}

TEST_CASE("ImageManifestAppliesFirstAndListsTheImage") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t token = Start(*store);
  const std::vector<std::string> recs = History(20);
  ReceiveSeqs(*store, token, recs);
  c::ManifestOptions options;
  options.content_hashes = true;
  ManifestAnswer answer = store->ImageManifest(18, options);
  REQUIRE_FALSE(answer.refusal);
  REQUIRE_MESSAGE(answer.error.empty(), answer.error);
  CHECK(store->Stats().applied_seq == 18);
  auto direct = c::BuildManifest(dir / "s1/image", options);
  REQUIRE(direct.ok());
  CHECK(answer.manifest == *direct);
  CHECK(answer.manifest.size() >= 5);
  CHECK(answer.manifest[0].path == "d");
  CHECK_FALSE(answer.manifest[1].content_hash.empty());
  // A query beyond what was received is refused, as a SYNC would be.
  answer = store->ImageManifest(21, options);
  REQUIRE(answer.refusal);
  CHECK(answer.refusal->code == WireError::kProtocol);
}

TEST_CASE("ImageSumsOfAFileAMissingPathADirectoryAndASymlink") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t token = Start(*store);
  const c::Timespec t{1700000000, 0};
  const std::string data(10000, 'q');
  ReceiveSeqs(
      *store, token,
      {OpRec(1, c::MkdirOp{"d", S_IFDIR | 0755, 0, 0, t, t}),
       OpRec(2, c::CreateOp{"d/f", S_IFREG | 0644, 0, 0, t, t}),
       OpRec(3, c::WriteOp{"d/f", 0, t, data}), OpRec(4, c::SymlinkOp{"d/ln", 0, 0, t, t, "f"}),
       OpRec(5, c::SymlinkOp{"sl", 0, 0, t, t, "d"}), OpRec(6, c::TruncateOp{"d/f", 0, t}),
       OpRec(7, c::WriteOp{"d/f", 0, t, data})});

  SumsAnswer a = store->ImageSums(7, "d/f", 4096);
  REQUIRE_FALSE(a.refusal);
  REQUIRE_MESSAGE(a.error.empty(), a.error);
  CHECK(store->Stats().applied_seq == 7);
  CHECK(a.size == data.size());
  std::string want;
  for (size_t off = 0; off < data.size(); off += 4096) {
    const c::BlockSum b = c::SumOfBlock(std::string_view(data).substr(off, 4096));
    want.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  CHECK(a.sums == want);
  CHECK(a.sums.size() == 3 * c::kBlockSumBytes);

  CHECK(store->ImageSums(7, "d/missing", 4096).error == "not found");
  CHECK(store->ImageSums(7, "nodir/f", 4096).error == "not found");
  CHECK(store->ImageSums(7, "d/f/under", 4096).error == "not found");
  CHECK(store->ImageSums(7, "d", 4096).error == "not a regular file");
  CHECK(store->ImageSums(7, "d/ln", 4096).error == "not a regular file");  // not followed
  const std::string through_symlink = store->ImageSums(7, "sl/f", 4096).error;
  CHECK(through_symlink.find("symlink") != std::string::npos);
  // Path rules hold here too (the connection refuses such a request before).
  CHECK(store->ImageSums(7, "../etc/passwd", 4096).error.find("path") != std::string::npos);
}

TEST_CASE("ImageSumsRefuseMoreBlocksThanOneFrameHolds") {
  TempDir dir;
  auto store = OpenStore(dir / "s1", SmallOptions());
  uint64_t token = Start(*store);
  const c::Timespec t{1700000000, 0};
  const uint64_t big = (uint64_t{c::kMaxBlockSumsBytes} / c::kBlockSumBytes) * 4096 + 1;
  ReceiveSeqs(*store, token,
              {OpRec(1, c::CreateOp{"sparse", S_IFREG | 0644, 0, 0, t, t}),
               OpRec(2, c::TruncateOp{"sparse", big, t})});
  SumsAnswer a = store->ImageSums(2, "sparse", 4096);
  CHECK(a.error.find("larger block size") != std::string::npos);
  CHECK(a.sums.empty());
}
