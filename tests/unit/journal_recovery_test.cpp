// The journal after crashes and damage: torn tails, cut files, torn header slots,
// stale records of earlier laps and other epochs, and wrap-around across laps.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <future>
#include <random>
#include <thread>

#include "common/journal.h"
#include "tests/unit/journal_test_util.h"
#include "tests/unit/test_util.h"

using namespace mirror::common;
using namespace mirror::test;
using namespace std::chrono_literals;

namespace {

struct Written {
  uint64_t offset;
  std::string bytes;
};

// Appends writes of the given data sizes and returns where each record lies.
std::vector<Written> AppendAndLocate(Journal& j, const std::vector<size_t>& sizes, char fill) {
  uint64_t first = j.stats().last_assigned_seq + 1;
  for (size_t i = 0; i < sizes.size(); ++i) {
    MustAppendWrite(j, "r/" + std::to_string(i), std::string(sizes[i], fill));
  }
  auto cursor = j.ReadFrom(first);
  REQUIRE(cursor.ok());
  std::vector<Written> out;
  while (*cursor->Next()) out.push_back({cursor->offset(), std::string(cursor->bytes())});
  REQUIRE(out.size() == sizes.size());
  return out;
}

std::vector<std::string> BytesOf(const std::vector<Written>& w, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(w[i].bytes);
  return out;
}

// After the last record was lost: the others are all there and appends continue.
void CheckLastRecordLost(const std::string& path, JournalMediumKind kind,
                         const std::vector<Written>& w) {
  auto j = MustOpen(path, kind);
  const uint64_t kept = w.size() - 1;
  REQUIRE(j->recovery().records == kept);
  CHECK(j->recovery().last_seq == kept);
  CHECK(j->recovery().stop_offset == w.back().offset);
  CHECK(j->recovery().records_after_stop == 0);
  CHECK(ReadAll(*j, 1) == BytesOf(w, kept));
  CHECK(MustAppendWrite(*j, "n", "new").seq == kept + 1);
}

}  // namespace

TEST_CASE("TornOrZeroedLastRecordIsTheCleanEndAtEveryOffset") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  const std::string path = dir / "j";
  std::vector<Written> w = AppendAndLocate(*MustCreate(path, kind), {10, 3000, 0, 77, 200}, 'z');
  const std::string original = ReadFileBytes(path);
  const Written& last = w.back();
  const uint64_t end = last.offset + last.bytes.size();
  auto restore = [&] { PatchFile(path, last.offset, original.substr(last.offset, 4096)); };
  for (uint64_t at = last.offset; at < end; ++at) {
    CAPTURE(at);
    // A torn write: the bytes from `at` on never arrived.
    PatchFile(path, at, std::string(end - at, '\0'));
    CheckLastRecordLost(path, kind, w);
    restore();
    // One zeroed byte (where it was not zero already).
    if (original[at] != '\0') {
      PatchFile(path, at, std::string(1, '\0'));
      CheckLastRecordLost(path, kind, w);
      restore();
    }
  }
  // Restored, the file holds all five again.
  CHECK(MustOpen(path, kind)->recovery().records == w.size());
}

TEST_CASE("FileCutShortInsideTheLastRecordIsExtendedAndEndsThere") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  const std::string path = dir / "j";
  std::vector<Written> w = AppendAndLocate(*MustCreate(path, kind), {10, 3000, 0, 77, 200}, 'z');
  const std::string original = ReadFileBytes(path);
  const Written& last = w.back();
  // Cuts around the header's edges and across the payload (each reopen extends the file
  // and fsyncs it, so not every byte: zeroing covers every offset above).
  std::vector<uint64_t> cuts = {0, 1, 3, 4, 7, 8, 16, 39, 40, 41, last.bytes.size() - 1};
  for (uint64_t in = 48; in < last.bytes.size(); in += 29) cuts.push_back(in);
  for (uint64_t cut : cuts) {
    const uint64_t at = last.offset + cut;
    CAPTURE(at);
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(at)) == 0);
    {
      auto j = MustOpen(path, kind);
      CHECK(j->recovery().extended_bytes == kSmallJournal - at);
    }
    CHECK(ReadFileBytes(path).size() == kSmallJournal);
    CheckLastRecordLost(path, kind, w);
    PatchFile(path, last.offset, original.substr(last.offset, 4096));
  }
}

TEST_CASE("TornHeaderSlotFallsBackToTheOther") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  const std::string path = dir / "j";
  {
    auto j = MustCreate(path, kind);  // header generation 1 in slot A
    for (int i = 0; i < 5; ++i) MustAppendWrite(*j, "h", "data");
    REQUIRE(j->Free(2).ok());  // generation 2 in slot B
  }
  const std::string original = ReadFileBytes(path);
  SUBCASE("newest slot torn: the older header, with its older tail") {
    PatchFile(path, kJournalSlotOffsets[1] + 60, "X");
    auto j = MustOpen(path, kind);
    CHECK(j->recovery().first_seq == 1);
    CHECK(j->recovery().records == 5);
    // The next header write goes to the torn slot, never over the only good one.
    REQUIRE(j->Free(1).ok());
    j.reset();
    PatchFile(path, kJournalSlotOffsets[0] + 60, "X");
    CHECK(MustOpen(path, kind)->recovery().first_seq == 2);
  }
  SUBCASE("older slot torn: the newest header") {
    PatchFile(path, kJournalSlotOffsets[0] + 300, "X");
    auto j = MustOpen(path, kind);
    CHECK(j->recovery().first_seq == 3);
    CHECK(j->recovery().records == 3);
  }
  SUBCASE("both torn: corruption") {
    PatchFile(path, kJournalSlotOffsets[0] + 8, "X");
    PatchFile(path, kJournalSlotOffsets[1], "X");
    auto j = Journal::Open(path, kIdentity, Options(kind));
    CHECK(j.status().code() == Code::kCorruption);
    CHECK(j.status().message().find("journal header damaged") == 0);
  }
}

TEST_CASE("WrapAroundAcrossLapsKeepsSeqsAndReopensMidLap") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  const std::string path = dir / "j";
  auto j = MustCreate(path, kind);
  const uint64_t capacity = j->stats().capacity_bytes;
  std::mt19937_64 rng(7);
  std::deque<std::string> live;  // bytes of records tail_seq.. in order
  uint64_t tail = 1, next = 1, appended = 0, since_reopen = 0;
  int reopens = 0;
  while (appended < 6 * capacity) {
    const size_t size = rng() % 3 == 0 ? 60000 + rng() % 40000 : rng() % 5000;
    Appended a = MustAppendWrite(*j, "w/" + std::to_string(next),
                                 std::string(size, static_cast<char>('a' + next % 26)));
    REQUIRE(a.seq == next++);
    live.push_back(a.bytes);
    appended += JournalAlignUp(a.bytes.size());
    since_reopen += JournalAlignUp(a.bytes.size());
    if (j->stats().used_bytes > capacity / 2) {
      const uint64_t through = tail + live.size() / 2;  // a partial free: tails land anywhere
      REQUIRE(j->Free(through).ok());
      while (tail <= through) {
        live.pop_front();
        ++tail;
      }
    }
    if (since_reopen > capacity * 7 / 10) {
      since_reopen = 0;
      ++reopens;
      j.reset();
      j = MustOpen(path, kind);
      REQUIRE(j->recovery().first_seq == tail);
      REQUIRE(j->recovery().records == live.size());
      REQUIRE(j->recovery().last_seq == next - 1);
      REQUIRE(j->recovery().records_after_stop == 0);
      REQUIRE(ReadAll(*j, tail) == std::vector<std::string>(live.begin(), live.end()));
    }
  }
  CHECK(reopens >= 6);
  CHECK(ReadAll(*j, tail) == std::vector<std::string>(live.begin(), live.end()));
}

TEST_CASE("StaleRecordsOfAnEarlierLapAreNotLive") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  const std::string path = dir / "j";
  uint64_t lap1 = 0;
  {
    auto j = MustCreate(path, kind);
    const std::string data(10000, 's');
    // Lap 1 fills the ring with records of one size; all freed; lap 2 writes 3 records
    // over the start of lap 1, whose later records still decode and carry our epoch.
    lap1 = FillRing(*j, data);
    REQUIRE(j->Free(lap1).ok());
    for (int i = 0; i < 3; ++i) MustAppendWrite(*j, "fill", data);
  }
  auto j = MustOpen(path, kind);
  CHECK(j->recovery().first_seq == lap1 + 1);
  CHECK(j->recovery().records == 3);
  CHECK(j->recovery().records_after_stop == 0);
  CHECK(j->recovery().stop_reason.find("earlier lap") != std::string::npos);
  CHECK(MustAppendWrite(*j, "s", "x").seq == lap1 + 4);
}

TEST_CASE("RecordsOfAnotherEpochAreNotRead") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  // Epoch 7's records 2 and 3 copied where epoch 8's records 2 and 3 would be: the seqs
  // are the expected ones, only the epoch tells them apart.
  std::vector<Written> old = AppendAndLocate(*MustCreate(dir / "old", kind), {100, 100, 100}, 'e');
  JournalIdentity newer = kIdentity;
  newer.epoch = 8;
  JournalOptions o = Options(kind);
  {
    auto j = Journal::Create(dir / "new", newer, o);
    REQUIRE(j.ok());
    MustAppendWrite(**j, "r/0", std::string(100, 'e'));
  }
  const std::string old_bytes = ReadFileBytes(dir / "old");
  PatchFile(dir / "new", old[1].offset, old_bytes.substr(old[1].offset, 4096));
  auto j = Journal::Open(dir / "new", newer, o);
  REQUIRE(j.ok());
  CHECK((*j)->recovery().records == 1);
  CHECK((*j)->recovery().records_after_stop == 0);
  CHECK((*j)->recovery().stop_reason.find("epoch 7") != std::string::npos);
}

TEST_CASE("GoodRecordsAfterDamageAreReportedAndNeverResurrected") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  const std::string path = dir / "j";
  std::vector<Written> w = AppendAndLocate(*MustCreate(path, kind), {500, 500, 500, 500, 500}, 'g');
  PatchFile(path, w[2].offset, std::string(4, '\0'));  // record 3 lost its length
  {
    auto j = MustOpen(path, kind);
    CHECK(j->recovery().records == 2);
    CHECK(j->recovery().records_after_stop == 2);  // records 4 and 5
    CHECK(j->recovery().stop_offset == w[2].offset);
    // A new record 3 of the same size ends exactly where the old record 4 starts.
    CHECK(MustAppendWrite(*j, "r/2", std::string(500, 'g')).seq == 3);
  }
  auto j = MustOpen(path, kind);
  CHECK(j->recovery().records == 3);  // not 5: the old 4 and 5 were erased
  CHECK(j->recovery().last_seq == 3);
  CHECK(j->recovery().records_after_stop == 0);
}

TEST_CASE("FreeWhoseHeaderCannotBeSyncedFreesNothing") {
  TempDir dir;
  const std::string path = dir / "j";
  MustCreate(path, JournalMediumKind::kMmap);
  auto inner = OpenJournalMedium(path, JournalMediumKind::kMmap);
  REQUIRE(inner.ok());
  auto faulty = std::make_unique<FaultyMedium>(std::move(inner).value());
  FaultyMedium* fault = faulty.get();
  auto j = std::move(
      Journal::OpenWithMedium(std::move(faulty), kIdentity, Options(JournalMediumKind::kMmap))
          .value());
  const std::string data(200000, 'b');
  const uint64_t last = FillRing(*j, data);
  auto blocked = std::async(std::launch::async, [&] {
    return j->Append(WriteOp{"b", 0, {}, data});
  });
  while (j->stats().waiting_appenders == 0) std::this_thread::sleep_for(1ms);
  fault->fail_sync = true;
  CHECK(j->Free(last).code() == Code::kIOError);
  CHECK(j->stats().tail_seq == 1);
  // The waiter must not have taken the space whose header never became durable.
  REQUIRE(Finishes(blocked, *j));
  CHECK(blocked.get().status().code() == Code::kIOError);
}
