// Write-ahead appends: AppendHeld, Release, VoidAndRelease and the released-prefix hint
// (the journal side of mirrorfs's "journal first, then apply" ordering).
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "common/endian.h"
#include "tests/unit/journal_test_util.h"
#include "tests/unit/test_util.h"

using namespace mirror::common;
using namespace mirror::test;

namespace {

HeldRecord MustAppendHeld(Journal& j, const std::string& path, const std::string& data) {
  EncodedRecord rec;
  REQUIRE(rec.Build(WriteOp{path, 0, {}, data}).ok());
  auto held = j.AppendHeld(rec);
  REQUIRE_MESSAGE(held.ok(), held.status().ToString());
  return *held;
}

uint64_t StoredHint(const std::string& path) {
  std::string bytes = ReadFileBytes(path);
  return LoadLE<uint64_t>(bytes.data() + kJournalReleasedHintOffset);
}

}  // namespace

TEST_CASE("HeldRecordsAreInvisibleUntilReleasedInOrder") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  auto j = MustCreate(dir / "journal", kind);
  HeldRecord a = MustAppendHeld(*j, "a", "1");
  HeldRecord b = MustAppendHeld(*j, "b", "2");
  CHECK(a.seq == 1);
  CHECK(b.seq == 2);
  CHECK(j->committed_seq() == 2);
  CHECK(j->released_seq() == 0);
  CHECK(ReadAll(*j, 1).empty());
  CHECK_FALSE(j->Free(1).ok());  // a held record cannot be freed

  // Released out of order: the prefix waits for the first.
  REQUIRE(j->Release(b).ok());
  CHECK(j->released_seq() == 0);
  REQUIRE(j->Release(a).ok());
  CHECK(j->released_seq() == 2);
  CHECK(ReadAll(*j, 1).size() == 2);
  CHECK(j->Free(2).ok());

  CHECK_FALSE(j->Release(a).ok());  // twice
}

TEST_CASE("PlainAppendsWaitBehindAnEarlierHeldRecord") {
  TempDir dir;
  auto j = MustCreate(dir / "journal", JournalMediumKind::kMmap);
  HeldRecord held = MustAppendHeld(*j, "a", "1");
  MustAppendWrite(*j, "b", "2");
  CHECK(j->released_seq() == 0);  // seq 2 is released, but seq 1 is not
  REQUIRE(j->Release(held).ok());
  CHECK(j->released_seq() == 2);
}

TEST_CASE("AVoidedRecordKeepsItsPlaceAndReadsAsVoid") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  {
    auto j = MustCreate(dir / "journal", kind);
    HeldRecord failed = MustAppendHeld(*j, "a", "did not happen");
    MustAppendWrite(*j, "b", "happened");
    REQUIRE(j->VoidAndRelease(failed).ok());
    auto cursor = j->ReadFrom(1);
    REQUIRE(cursor.ok());
    REQUIRE(*cursor->Next());
    CHECK(cursor->record().type() == RecordType::kVoid);
    CHECK(std::get<VoidOp>(cursor->record().op).original == RecordType::kWrite);
    REQUIRE(*cursor->Next());
    CHECK(cursor->record().type() == RecordType::kWrite);
  }
  // The void survives a reopen, and seqs continue after it.
  auto j = MustOpen(dir / "journal", kind);
  CHECK(j->recovery().records == 2);
  auto cursor = j->ReadFrom(1);
  REQUIRE(cursor.ok());
  REQUIRE(*cursor->Next());
  CHECK(cursor->record().type() == RecordType::kVoid);
  CHECK(MustAppendWrite(*j, "c", "next").seq == 3);
}

// The hint is what recovery uses to find the records whose changes were in flight at a
// kill -9: every record above it was held and not released.
TEST_CASE("TheReleasedHintMarksTheInFlightRecordsAfterACrash") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  const std::string path = dir / "journal";
  {
    auto j = MustCreate(path, kind);
    for (int i = 0; i < 5; ++i) REQUIRE(j->Release(MustAppendHeld(*j, "f", "x")).ok());
    CHECK(StoredHint(path) == 5);
    MustAppendHeld(*j, "g", "in flight");  // seq 6: the "crash" comes before its release
    MustAppendHeld(*j, "h", "in flight");  // seq 7
    CHECK(StoredHint(path) == 5);
  }
  auto j = MustOpen(path, kind);
  CHECK(j->recovery().records == 7);
  CHECK(j->recovery().released_hint == 5);
  // Recovered records count as released once the journal is open.
  CHECK(j->released_seq() == 7);
  REQUIRE(j->Release(MustAppendHeld(*j, "i", "y")).ok());
  CHECK(StoredHint(path) == 8);
}

TEST_CASE("ReleasedHintIsClampedToTheLiveRecords") {
  TempDir dir;
  const std::string path = dir / "journal";
  {
    auto j = MustCreate(path, JournalMediumKind::kMmap);
    for (int i = 0; i < 3; ++i) MustAppendWrite(*j, "f", "x");
  }
  std::string garbage(8, '\xff');
  PatchFile(path, kJournalReleasedHintOffset, garbage);
  auto j = MustOpen(path, JournalMediumKind::kMmap);
  CHECK(j->recovery().released_hint == 3);
}

TEST_CASE("ConcurrentHeldAppendsReleaseToAGapFreePrefix") {
  TempDir dir;
  auto j = MustCreate(dir / "journal", JournalMediumKind::kMmap, 8u << 20);
  constexpr int kThreads = 4, kPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        EncodedRecord rec;
        std::string data = std::to_string(t) + ":" + std::to_string(i);
        if (!rec.Build(WriteOp{"f", 0, {}, data}).ok()) return;
        auto held = j->AppendHeld(rec);
        if (!held.ok()) return;
        // Every third change "fails" on the source and is voided.
        Status s = i % 3 == 0 ? j->VoidAndRelease(*held) : j->Release(*held);
        if (!s.ok()) return;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(j->released_seq() == kThreads * kPerThread);
  auto cursor = j->ReadFrom(1);
  REQUIRE(cursor.ok());
  int voids = 0, writes = 0;
  while (*cursor->Next()) (cursor->record().type() == RecordType::kVoid ? voids : writes)++;
  CHECK(voids == kThreads * ((kPerThread + 2) / 3));
  CHECK(voids + writes == kThreads * kPerThread);
}
