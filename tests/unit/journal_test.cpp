#include "common/journal.h"

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "common/endian.h"
#include "tests/unit/journal_test_util.h"
#include "tests/unit/record_samples.h"
#include "tests/unit/test_util.h"

using namespace mirror::common;
using namespace mirror::test;
using namespace std::chrono_literals;

TEST_CASE("EveryRecordTypeRoundTripsByteExactAndSurvivesReopen") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  std::vector<std::string> expected;
  {
    auto j = MustCreate(dir / "j", kind);
    for (const Op& op : SampleOpsOfEveryType()) {
      Appended a = MustAppend(*j, op);
      CHECK(a.seq == expected.size() + 1);
      auto rec = DecodeRecord(a.bytes);
      REQUIRE(rec.ok());
      CHECK(rec->meta.seq == a.seq);
      CHECK(rec->meta.epoch == kIdentity.epoch);
      CHECK(rec->meta.timestamp_ns > 1600000000LL * 1000000000);
      expected.push_back(a.bytes);
    }
    CHECK(ReadAll(*j, 1) == expected);
    CHECK(j->Sync().ok());
  }
  auto j = MustOpen(dir / "j", kind);
  CHECK(j->recovery().records == expected.size());
  CHECK(j->recovery().first_seq == 1);
  CHECK(j->recovery().last_seq == expected.size());
  CHECK(j->recovery().records_after_stop == 0);
  CHECK(j->recovery().stop_reason.find("end of data") != std::string::npos);
  CHECK(ReadAll(*j, 1) == expected);
  // The decoded record is the op that went in.
  auto cursor = j->ReadFrom(1);
  REQUIRE(cursor.ok());
  for (const Op& op : SampleOpsOfEveryType()) {
    REQUIRE(*cursor->Next());
    CHECK(cursor->record().type() == TypeOf(op));
  }
  CHECK(MustAppendWrite(*j, "after/reopen", "x").seq == expected.size() + 1);
}

TEST_CASE("EightThreadsGetUniqueGapFreeSeqsAndTheirOwnBytes") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  auto j = MustCreate(dir / "j", kind, 16u << 20);
  constexpr int kThreads = 8, kPerThread = 300;
  // Record (t, i) is a write of a recognisable path and data of a size that varies.
  auto path_of = [](int t, int i) { return "t" + std::to_string(t) + "/r" + std::to_string(i); };
  auto data_of = [](int t, int i) {
    static const size_t kSizes[] = {0, 1, 100, 1000, 5000, 17};
    return std::string(kSizes[(t + i) % 6], static_cast<char>('a' + (t * 7 + i) % 26));
  };
  std::vector<std::vector<uint64_t>> seqs(kThreads);
  std::atomic<int> prefix_violations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string path = path_of(t, i), data = data_of(t, i);
        auto seq = j->Append(WriteOp{path, static_cast<uint64_t>(i), {3, 4}, data});
        if (!seq.ok()) return;
        // Append returns only when every earlier record is committed too.
        if (j->stats().committed_seq < *seq) ++prefix_violations;
        seqs[t].push_back(*seq);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(prefix_violations == 0);
  std::set<uint64_t> all;
  std::map<uint64_t, std::pair<int, int>> owner;
  for (int t = 0; t < kThreads; ++t) {
    REQUIRE(seqs[t].size() == kPerThread);
    for (int i = 0; i < kPerThread; ++i) {
      if (i > 0) CHECK(seqs[t][i] > seqs[t][i - 1]);
      all.insert(seqs[t][i]);
      owner[seqs[t][i]] = {t, i};
    }
  }
  REQUIRE(all.size() == kThreads * kPerThread);
  CHECK(*all.begin() == 1);
  CHECK(*all.rbegin() == kThreads * kPerThread);  // unique + count + range = gap-free
  auto check_contents = [&](const Journal& journal) {
    auto cursor = journal.ReadFrom(1);
    REQUIRE(cursor.ok());
    uint64_t n = 0;
    while (*cursor->Next()) {
      ++n;
      auto [t, i] = owner.at(cursor->seq());
      const auto& w = std::get<WriteOp>(cursor->record().op);
      REQUIRE(w.path == path_of(t, i));
      REQUIRE(w.data == data_of(t, i));
      REQUIRE(w.offset == static_cast<uint64_t>(i));
    }
    CHECK(n == kThreads * kPerThread);
  };
  check_contents(*j);
  j.reset();
  check_contents(*MustOpen(dir / "j", kind));
}

TEST_CASE("FullJournalBlocksTheAppenderUntilFreeReleasesIt") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  auto j = MustCreate(dir / "j", kind);
  const std::string data(100000, 'f');
  const uint64_t last = FillRing(*j, data);
  auto blocked = std::async(std::launch::async, [&] {
    return j->Append(WriteOp{"fill", 0, {}, data});
  });
  CHECK(blocked.wait_for(200ms) == std::future_status::timeout);
  JournalStats s = j->stats();
  CHECK(s.waiting_appenders == 1);
  CHECK(s.full_since_ns > 0);
  CHECK(s.full_reason.find("journal full: ") == 0);
  CHECK(s.committed_seq == last);
  REQUIRE(j->Free(last).ok());
  REQUIRE(Finishes(blocked, *j));
  auto seq = blocked.get();
  REQUIRE(seq.ok());
  CHECK(*seq == last + 1);
  CHECK(j->stats().waiting_appenders == 0);
  CHECK(j->stats().full_since_ns == 0);
  CHECK(j->stats().full_reason.empty());
}

TEST_CASE("ShutdownAbortsAnAppenderWaitingForSpace") {
  TempDir dir;
  auto j = MustCreate(dir / "j", JournalMediumKind::kMmap);
  const std::string data(200000, 's');
  FillRing(*j, data);
  auto blocked = std::async(std::launch::async, [&] {
    return j->Append(WriteOp{"s", 0, {}, data});
  });
  while (j->stats().waiting_appenders == 0) std::this_thread::sleep_for(1ms);
  j->Shutdown();
  REQUIRE(Finishes(blocked, *j));
  CHECK(blocked.get().status().code() == Code::kAborted);
  CHECK(j->Append(WriteOp{"s", 0, {}, "x"}).status().code() == Code::kAborted);
}

TEST_CASE("LaterAppendersQueueBehindAWaitingOneInOrder") {
  TempDir dir;
  auto j = MustCreate(dir / "j", JournalMediumKind::kMmap);
  const std::string big(200000, 'b');
  FillRing(*j, big);
  auto first = std::async(std::launch::async, [&] { return j->Append(WriteOp{"b", 0, {}, big}); });
  while (j->stats().waiting_appenders < 1) std::this_thread::sleep_for(1ms);
  // A small record would fit, but must not overtake the waiting big one.
  auto second = std::async(std::launch::async, [&] { return j->Append(WriteOp{"s", 0, {}, "x"}); });
  CHECK(second.wait_for(100ms) == std::future_status::timeout);
  CHECK(j->stats().waiting_appenders == 2);
  REQUIRE(j->Free(j->stats().committed_seq).ok());
  REQUIRE(Finishes(first, *j));
  REQUIRE(Finishes(second, *j));
  auto a = first.get(), b = second.get();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*b == *a + 1);
}

TEST_CASE("RecordThatCanNeverFitFailsAtOnce") {
  TempDir dir;
  JournalOptions options = Options(JournalMediumKind::kMmap);
  options.limits.max_record_bytes = 4u << 20;
  auto created = Journal::Create(dir / "j", kIdentity, options);
  REQUIRE(created.ok());
  auto& j = *created;
  CHECK(j->max_record_bytes() == j->stats().capacity_bytes / 2);
  std::string data(j->stats().capacity_bytes / 2, 'x');  // plus its header: over half
  auto r = j->Append(WriteOp{"big", 0, {}, data});
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK(r.status().message().find("can never fit") != std::string::npos);
  CHECK(j->stats().last_assigned_seq == 0);
  // The decode limit caps it too: a reader would refuse a longer record.
  auto small = MustCreate(dir / "k", JournalMediumKind::kMmap, 8u << 20);
  std::string over(kDefaultMaxRecordBytes, 'y');
  CHECK(small->Append(WriteOp{"big", 0, {}, over}).status().code() == Code::kInvalidArgument);
  CHECK(MustAppendWrite(*small, "ok", std::string(100000, 'o')).seq == 1);
}

TEST_CASE("FailedSyncIsStickyUntilReopen") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  MustCreate(dir / "j", kind);
  auto inner = OpenJournalMedium(dir / "j", kind);
  REQUIRE(inner.ok());
  auto faulty = std::make_unique<FaultyMedium>(std::move(inner).value());
  FaultyMedium* fault = faulty.get();
  auto opened = Journal::OpenWithMedium(std::move(faulty), kIdentity, Options(kind));
  REQUIRE(opened.ok());
  auto& j = *opened;
  Appended a = MustAppendWrite(*j, "a", "before");
  CHECK(j->Sync().ok());
  MustAppendWrite(*j, "b", "unsynced");
  fault->fail_sync = true;
  Status s = j->Sync();
  CHECK(s.code() == Code::kIOError);
  CHECK(s.message().find("write-protected") != std::string::npos);
  fault->fail_sync = false;  // the medium recovers; the journal must not pretend it did
  CHECK(j->Sync().code() == Code::kIOError);
  CHECK(j->Append(WriteOp{"c", 0, {}, "after"}).status().code() == Code::kIOError);
  CHECK(j->Free(a.seq).code() == Code::kIOError);
  CHECK(j->stats().sticky_error.code() == Code::kIOError);
  j.reset();
  auto again = MustOpen(dir / "j", kind);
  CHECK(again->recovery().records == 2);
  CHECK(MustAppendWrite(*again, "c", "after").seq == 3);
  CHECK(again->Sync().ok());
}

TEST_CASE("FailedWriteIsStickyAndNeverCommits") {
  TempDir dir;
  MustCreate(dir / "j", JournalMediumKind::kPwrite);
  auto inner = OpenJournalMedium(dir / "j", JournalMediumKind::kPwrite);
  REQUIRE(inner.ok());
  auto faulty = std::make_unique<FaultyMedium>(std::move(inner).value());
  FaultyMedium* fault = faulty.get();
  auto j = std::move(
      Journal::OpenWithMedium(std::move(faulty), kIdentity, Options(JournalMediumKind::kPwrite))
          .value());
  MustAppendWrite(*j, "a", "ok");
  fault->fail_write = true;
  CHECK(j->Append(WriteOp{"b", 0, {}, "lost"}).status().code() == Code::kIOError);
  fault->fail_write = false;
  CHECK(j->Append(WriteOp{"c", 0, {}, "refused"}).status().code() == Code::kIOError);
  CHECK(j->stats().committed_seq == 1);
  CHECK(j->Free(1).code() == Code::kIOError);
}

TEST_CASE("FreeWritesTheHeaderAndRefusesUncommittedSeqs") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  auto j = MustCreate(dir / "j", kind);
  for (int i = 0; i < 5; ++i) MustAppendWrite(*j, "f", "data");
  CHECK(j->Free(6).code() == Code::kInvalidArgument);
  REQUIRE(j->Free(3).ok());
  CHECK(j->stats().tail_seq == 4);
  CHECK(j->Free(2).ok());  // already freed: nothing to do
  CHECK(j->stats().tail_seq == 4);
  j.reset();
  auto again = MustOpen(dir / "j", kind);
  CHECK(again->recovery().first_seq == 4);
  CHECK(again->recovery().records == 2);
  CHECK(again->stats().tail_seq == 4);
}

TEST_CASE("CursorStartsAtAnyLiveSeqAndRefreshes") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  auto j = MustCreate(dir / "j", kind);
  std::vector<std::string> all;
  for (int i = 0; i < 10; ++i)
    all.push_back(MustAppendWrite(*j, "c" + std::to_string(i), "d").bytes);
  REQUIRE(j->Free(2).ok());
  CHECK(j->ReadFrom(2).status().code() == Code::kNotFound);
  CHECK(j->ReadFrom(12).status().code() == Code::kNotFound);
  CHECK(ReadAll(*j, 6) == std::vector<std::string>(all.begin() + 5, all.end()));
  auto tailing = j->ReadFrom(11);  // the next seq: an empty cursor to refresh later
  REQUIRE(tailing.ok());
  CHECK_FALSE(*tailing->Next());
  std::string next = MustAppendWrite(*j, "c10", "d").bytes;
  CHECK_FALSE(*tailing->Next());
  tailing->Refresh();
  REQUIRE(*tailing->Next());
  CHECK(tailing->bytes() == next);
  CHECK(tailing->seq() == 11);
}

TEST_CASE("WrongIdentityOrSizeIsRefused") {
  TempDir dir;
  MustCreate(dir / "j", JournalMediumKind::kMmap);
  JournalOptions o = Options(JournalMediumKind::kMmap);
  auto other_source = Journal::Open(dir / "j", {"source-b", "volume-1", 7}, o);
  CHECK(other_source.status().code() == Code::kMismatch);
  CHECK(other_source.status().message().find("belongs to source 'source-a', volume 'volume-1'") !=
        std::string::npos);
  CHECK(Journal::Open(dir / "j", {"source-a", "volume-2", 7}, o).status().code() ==
        Code::kMismatch);
  CHECK(Journal::Open(dir / "j", {"source-a", "volume-1", 8}, o).status().code() ==
        Code::kMismatch);
  auto id = Journal::ReadIdentity(dir / "j");
  REQUIRE(id.ok());
  CHECK(id->source_id == "source-a");
  CHECK(id->epoch == 7);

  CHECK(Journal::Create(dir / "j", kIdentity, o).status().code() == Code::kAlreadyExists);
  o.size_bytes = (1u << 20) - 4096;
  auto small = Journal::Create(dir / "small", kIdentity, o);
  CHECK(small.status().code() == Code::kInvalidArgument);
  CHECK(small.status().message().find("journal too small: ") == 0);
  o.size_bytes = (1u << 20) + 100;
  CHECK(Journal::Create(dir / "odd", kIdentity, o).status().code() == Code::kInvalidArgument);
  o.size_bytes = 1u << 20;
  CHECK(Journal::Create(dir / "long", {std::string(128, 's'), "v", 1}, o).status().code() ==
        Code::kInvalidArgument);
  CHECK(Journal::Create(dir / "long", {"s", std::string(128, 'v'), 1}, o).status().code() ==
        Code::kInvalidArgument);
  auto longest =
      Journal::Create(dir / "longest", {std::string(127, 's'), std::string(127, 'v'), 1}, o);
  REQUIRE(longest.ok());
  CHECK((*longest)->identity().source_id == std::string(127, 's'));
  CHECK(Journal::Open(dir / "missing", kIdentity, o).status().code() == Code::kNotFound);
  o.first_seq = 0;
  CHECK(Journal::Create(dir / "zero", kIdentity, o).status().code() == Code::kInvalidArgument);
  o.first_seq = 1000;
  auto later = Journal::Create(dir / "later", kIdentity, o);
  REQUIRE(later.ok());
  CHECK(MustAppendWrite(**later, "f", "x").seq == 1000);
}

TEST_CASE("SyncCoversWrappedAndWholeLapRanges") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  auto j = MustCreate(dir / "j", kind);
  const std::string data(30000, 'w');
  for (int round = 0; round < 100; ++round) {
    uint64_t seq = MustAppendWrite(*j, "w", data).seq;
    if (round % 7 == 0) REQUIRE(j->Sync().ok());
    if (j->stats().used_bytes > j->stats().capacity_bytes / 2) REQUIRE(j->Free(seq).ok());
  }
  REQUIRE(j->Sync().ok());
  CHECK(j->Sync().ok());  // nothing new: no-op
}

TEST_CASE("CursorAndFreeFindEverySeqPastTheRememberedRecordStarts") {
  FOR_EACH_MEDIUM(kind);
  TempDir dir;
  auto j = MustCreate(dir / "j", kind);
  std::vector<std::string> all = {""};  // all[seq]
  // 2500 records of ~150 bytes: many 64 KiB index strides.
  for (int i = 0; i < 2500; ++i) {
    all.push_back(MustAppendWrite(*j, "p/" + std::to_string(i), std::string(i % 200, 'q')).bytes);
  }
  auto check_from = [&](const Journal& journal, uint64_t seq) {
    CAPTURE(seq);
    auto cursor = journal.ReadFrom(seq);
    REQUIRE(cursor.ok());
    REQUIRE(*cursor->Next());
    CHECK(cursor->seq() == seq);
    CHECK(cursor->bytes() == all[seq]);
  };
  for (uint64_t seq = 1; seq <= 2500; seq += 7) check_from(*j, seq);
  REQUIRE(j->Free(1234).ok());
  CHECK(j->ReadFrom(1234).status().code() == Code::kNotFound);
  for (uint64_t seq = 1235; seq <= 2500; seq += 5) check_from(*j, seq);
  REQUIRE(j->Free(2001).ok());
  j.reset();
  auto again = MustOpen(dir / "j", kind);
  CHECK(again->recovery().first_seq == 2002);
  for (uint64_t seq = 2002; seq <= 2500; seq += 3) check_from(*again, seq);
  REQUIRE(again->Free(2400).ok());
  CHECK(ReadAll(*again, 2401) == std::vector<std::string>(all.begin() + 2401, all.end()));
}
