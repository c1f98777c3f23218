// SourceStore's promote (DESIGN invariant 7): everything received is applied, the epoch
// raised and stored, every later session, record and sync refused as fenced; refused
// while the image cannot be consistent unless forced; a second promote changes nothing.
// Also the store lock that keeps a promote on a stopped mirrord off a running one.
#include <doctest/doctest.h>
#include <sys/xattr.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/volume_attrs.h"
#include "mirrord/source_store.h"
#include "mirrord/tests/store_test_util.h"

using namespace mirror::d;
using namespace mirror::d::test;
using mirror::common::WireError;

namespace {

std::vector<std::string> Writes(uint64_t from, uint64_t through) {
  std::vector<std::string> recs;
  for (uint64_t s = from; s <= through; ++s) recs.push_back(WriteRec(s, 1, 100, "f"));
  return recs;
}

PromoteResult PromoteOk(SourceStore& store, bool force = false) {
  auto r = store.Promote(force);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return *r;
}

SourceState StateOf(const std::string& dir) {
  auto state = ReadStateFile(dir + "/state");
  REQUIRE_MESSAGE(state.ok(), state.status().ToString());
  return *state;
}

// Records 1..n received, the first `applied` of them applied by a consistency point.
std::unique_ptr<SourceStore> StoreWith(const std::string& dir, uint64_t n, uint64_t applied,
                                       uint64_t* token) {
  auto store = OpenStore(dir, SmallOptions());
  *token = Start(*store);
  const mirror::common::Timespec t{1700000000, 1};
  std::vector<std::string> recs = {
      OpRec(1, mirror::common::CreateOp{"f", S_IFREG | 0644, 0, 0, t, t})};
  for (const auto& r : Writes(2, n)) recs.push_back(r);
  ReceiveAll(*store, *token, recs);
  if (applied > 0) {
    Refusal refusal;
    REQUIRE(store->Sync(applied, &refusal).ok());
  }
  return store;
}

}  // namespace

TEST_CASE("PromoteAppliesEverythingReceivedRaisesTheEpochAndFencesTheSource") {
  TempDir dir;
  uint64_t token = 0;
  auto store = StoreWith(dir.path(), 40, 10, &token);
  // A store marks the image it writes, so that mirrorfs refuses to mount it.
  auto mark = mirror::common::ReadImageMark(dir.path() + "/image");
  REQUIRE(mark.ok());
  CHECK(mark->value_or("") == dir.path());

  PromoteResult r = PromoteOk(*store);
  CHECK(r.refused.empty());
  CHECK_FALSE(r.already);
  CHECK(r.epoch == 2);
  CHECK(r.promoted_seq == 40);
  CHECK(r.received_seq == 40);
  CHECK(r.warnings.empty());
  CHECK(store->Stats().applied_seq == 40);
  CHECK(std::filesystem::file_size(dir.path() + "/image/f") == 40 * 10 + 100);

  const SourceState state = StateOf(dir.path());
  CHECK(state.promoted);
  CHECK(state.promoted_seq == 40);
  CHECK(state.epoch == 2);
  CHECK(state.applied_seq == 40);

  // The image continues the volume at the new epoch.
  auto epoch = mirror::common::ReadVolumeEpoch(dir.path() + "/image");
  REQUIRE(epoch.ok());
  CHECK(epoch->value_or(0) == 2);
  auto volume = mirror::common::ReadVolumeId(dir.path() + "/image");
  REQUIRE(volume.ok());
  CHECK(volume->value_or("") == "vol");
  // A primary now: the mark is gone, a mirrorfs may serve it.
  mark = mirror::common::ReadImageMark(dir.path() + "/image");
  REQUIRE(mark.ok());
  CHECK_FALSE(mark->has_value());

  const std::string fenced = "fenced: promoted at epoch 2 (image at seq 40)";
  CHECK(store->FencedMessage() == fenced);
  // The old session's next record, a new session of any epoch, and a sync: refused.
  ReceiveResult res = store->Receive(token, WriteRec(41, 1, 10, "f"), 1);
  REQUIRE(res.error);
  CHECK(res.error->code == WireError::kStaleEpoch);
  CHECK(res.error->message == fenced);
  for (uint64_t epoch_of_session : {1, 2, 3}) {
    Refusal refusal;
    CHECK_FALSE(store->StartSession("vol", epoch_of_session, nullptr, &refusal).ok());
    CHECK(refusal.code == WireError::kStaleEpoch);
    CHECK(refusal.message == fenced);
  }
  Refusal refusal;
  CHECK_FALSE(store->Sync(40, &refusal).ok());
  CHECK(refusal.code == WireError::kStaleEpoch);
  CHECK(store->Stats().promoted);
}

TEST_CASE("ASecondPromoteIsANoOpAndAReopenedStoreStaysFenced") {
  TempDir dir;
  uint64_t token = 0;
  {
    auto store = StoreWith(dir.path(), 5, 0, &token);
    CHECK(PromoteOk(*store).epoch == 2);
    PromoteResult again = PromoteOk(*store);
    CHECK(again.already);
    CHECK(again.epoch == 2);
    CHECK(again.promoted_seq == 5);
    CHECK(StateOf(dir.path()).epoch == 2);  // not raised twice
  }
  auto store = OpenStore(dir.path(), SmallOptions());
  CHECK(store->FencedMessage() == "fenced: promoted at epoch 2 (image at seq 5)");
  CHECK(PromoteOk(*store).already);
  Refusal refusal;
  CHECK_FALSE(store->StartSession("vol", 1, nullptr, &refusal).ok());
  CHECK(refusal.code == WireError::kStaleEpoch);
}

TEST_CASE("PromoteRefusesAnImageNoSourceEverFilledUnlessForced") {
  TempDir dir;
  auto store = OpenStore(dir.path(), SmallOptions());
  PromoteResult r = PromoteOk(*store);
  CHECK(r.refused.find("no source has ever connected") != std::string::npos);
  CHECK_FALSE(StateOf(dir.path()).promoted);
  // Refused: nothing changed, so a source can still connect.
  Refusal refusal;
  CHECK(store->StartSession("vol", 1, nullptr, &refusal).ok());
}

TEST_CASE("PromoteRefusesDuringAResyncAndForcedSaysWhatMayBeMissing") {
  TempDir dir;
  uint64_t token = 0;
  auto store = StoreWith(dir.path(), 10, 10, &token);
  Refusal refusal;
  REQUIRE(store->Resync(token, 11, &refusal).ok());
  ReceiveAll(*store, token, Writes(11, 14));

  PromoteResult refused = PromoteOk(*store);
  CHECK(refused.refused.find("resync") != std::string::npos);
  CHECK(refused.refused.find("not consistent") != std::string::npos);
  CHECK_FALSE(StateOf(dir.path()).promoted);
  CHECK(store->FencedMessage().empty());

  PromoteResult forced = PromoteOk(*store, /*force=*/true);
  CHECK(forced.refused.empty());
  CHECK(forced.promoted_seq == 14);
  REQUIRE(forced.warnings.size() == 1);
  CHECK(forced.warnings[0].find("resync") != std::string::npos);
  const SourceState state = StateOf(dir.path());
  CHECK(state.promoted);
  CHECK_FALSE(state.resync_active);
}

TEST_CASE("AStoreIsOpenInOneProcessAtATime") {
  TempDir dir;
  auto store = OpenStore(dir.path(), SmallOptions());
  auto second = SourceStore::Open(dir.path(), "s1", SmallOptions());
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == mirror::common::Code::kUnavailable);
  CHECK(second.status().message().find("in use by another process") != std::string::npos);
  store.reset();
  CHECK(SourceStore::Open(dir.path(), "s1", SmallOptions()).ok());
}

TEST_CASE("APromoteThatCannotApplyFencesNothingUnlessForced") {
  TempDir dir;
  uint64_t token = 0;
  auto store = StoreWith(dir.path(), 5, 0, &token);
  // Record 6 cannot apply: its parent directory does not exist in the image.
  ReceiveAll(*store, token, {WriteRec(6, 1, 10, "no-such-dir/x"), WriteRec(7, 1, 10, "f")});

  PromoteResult refused = PromoteOk(*store);
  CHECK(refused.refused.find("applying failed") != std::string::npos);
  CHECK_FALSE(StateOf(dir.path()).promoted);
  CHECK(store->FencedMessage().empty());
  // Not fenced: the source may connect again (its session was only ended).
  Refusal refusal;
  CHECK(store->StartSession("vol", 1, nullptr, &refusal).ok());

  PromoteResult forced = PromoteOk(*store, /*force=*/true);
  CHECK(forced.refused.empty());
  CHECK(forced.promoted_seq == 5);  // the last record that applied
  CHECK(forced.received_seq == 7);
  REQUIRE_FALSE(forced.warnings.empty());
  CHECK(forced.warnings.back().find("records after seq 5 are missing") != std::string::npos);
  CHECK(StateOf(dir.path()).promoted_seq == 5);
}
