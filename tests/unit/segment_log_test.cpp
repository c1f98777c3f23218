#include "common/segment_log.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/record.h"
#include "common/unique_fd.h"
#include "tests/unit/test_util.h"

using namespace mirror::common;
using mirror::test::ReadFileBytes;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;
namespace fs = std::filesystem;

namespace {

// A write record of seq `seq` whose data (and so size) differs per seq.
std::string Rec(uint64_t seq, size_t data_bytes = 0) {
  if (data_bytes == 0) data_bytes = 20 + (seq * 37) % 200;
  std::string data(data_bytes, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + (seq * 7 + i) % 26);
  auto bytes = EncodeRecord({seq, 3, 1700000000000000000 + static_cast<int64_t>(seq)},
                            WriteOp{"dir/file", seq * 100, {1700000000, 5}, data});
  REQUIRE_MESSAGE(bytes.ok(), bytes.status().ToString());
  return *bytes;
}

// unit_segment_log_direct runs every test with direct appends (CMakeLists.txt).
bool DirectAppends() {
  const char* v = std::getenv("MIRROR_TEST_SEGMENT_DIRECT");
  return v != nullptr && std::string(v) == "1";
}

std::unique_ptr<SegmentLog> OpenLog(const std::string& dir, uint64_t segment_bytes = 64ull << 20) {
  SegmentLogOptions options;
  options.segment_bytes = segment_bytes;
  options.direct_io = DirectAppends();
  auto log = SegmentLog::Open(dir, options);
  REQUIRE_MESSAGE(log.ok(), log.status().ToString());
  return std::move(*log);
}

void AppendRange(SegmentLog& log, uint64_t from, uint64_t through) {
  for (uint64_t seq = from; seq <= through; ++seq) {
    Status s = log.Append(Rec(seq));
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
}

struct ReadResult {
  std::vector<std::string> records;
  Status status;
};

ReadResult ReadFrom(const SegmentLog& log, uint64_t from, uint64_t through = UINT64_MAX) {
  ReadResult out;
  auto reader = log.NewReader(from, through);
  if (!reader.ok()) {
    out.status = reader.status();
    return out;
  }
  while ((*reader)->Next()) {
    CHECK((*reader)->seq() == from + out.records.size());
    CHECK((*reader)->record().meta.seq == (*reader)->seq());
    out.records.emplace_back((*reader)->bytes());
  }
  out.status = (*reader)->status();
  return out;
}

// Reads [from, through] and checks every record against Rec(seq).
void CheckRecords(const SegmentLog& log, uint64_t from, uint64_t through) {
  ReadResult r = ReadFrom(log, from, through);
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  REQUIRE(r.records.size() == through - from + 1);
  for (uint64_t seq = from; seq <= through; ++seq) REQUIRE(r.records[seq - from] == Rec(seq));
}

std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (ParseSegmentFileName(e.path().filename().string())) {
      names.push_back(e.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

uint64_t FileSize(const std::string& path) { return fs::file_size(path); }

// A log whose last segment holds records 1..n (one segment) or, with a small segment
// size, several sealed segments before it. Returns the byte offset in the last segment
// where the record `seq` starts.
uint64_t OffsetOf(const std::string& segment_path, uint64_t seq) {
  std::string bytes = ReadFileBytes(segment_path);
  uint64_t off = kSegmentHeaderSize;
  while (off < bytes.size()) {
    auto h = DecodeHeader(std::string_view(bytes).substr(off));
    REQUIRE(h.ok());
    if (h->meta.seq == seq) return off;
    off += h->length;
  }
  FAIL("seq not in segment");
  return 0;
}

}  // namespace

TEST_CASE("RecordsReadBackByteExactAcrossSegmentsAndAfterReopen") {
  TempDir tmp;
  std::string dir = tmp / "state/src1/log";  // missing parents are created
  constexpr uint64_t kN = 300;
  {
    auto log = OpenLog(dir, 2048);
    CHECK(log->empty());
    CHECK(log->last_seq() == 0);
    CHECK(log->next_seq() == 0);
    AppendRange(*log, 1, kN / 2);
    // The second half in batches that cross segment boundaries.
    for (uint64_t seq = kN / 2 + 1; seq <= kN; seq += 25) {
      std::vector<std::string> owned;
      for (uint64_t s = seq; s < seq + 25 && s <= kN; ++s) owned.push_back(Rec(s));
      std::vector<std::string_view> views(owned.begin(), owned.end());
      REQUIRE(log->AppendBatch(views).ok());
    }
    CHECK(log->first_seq() == 1);
    CHECK(log->last_seq() == kN);
    CHECK(log->segment_count() > 10);
    CheckRecords(*log, 1, kN);
    CheckRecords(*log, 137, kN);  // from the middle of some segment
    REQUIRE(log->Sync().ok());
    CHECK(log->durable_seq() == kN);
  }
  auto names = SegmentFiles(dir);
  uint64_t total = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    std::string bytes = ReadFileBytes(dir + "/" + names[i]);
    total += bytes.size();
    CHECK(bytes.size() <= 2048);
    auto first = DecodeSegmentHeader(bytes);
    REQUIRE(first.ok());
    CHECK(names[i] == SegmentFileName(*first));
    // The name is the seq of the first record.
    CHECK(DecodeHeader(std::string_view(bytes).substr(kSegmentHeaderSize))->meta.seq == *first);
  }
  auto log = OpenLog(dir, 2048);
  CHECK(log->recovery().clean());
  CHECK(log->recovery().segments == names);
  CHECK(log->segment_count() == names.size());
  CHECK(log->total_bytes() == total);
  CHECK(log->first_seq() == 1);
  CHECK(log->last_seq() == kN);
  CHECK(log->durable_seq() == kN);
  CheckRecords(*log, 1, kN);
  AppendRange(*log, kN + 1, kN + 10);
  CheckRecords(*log, kN - 5, kN + 10);
}

TEST_CASE("ARecordLargerThanASegmentGetsItsOwnSegment") {
  TempDir tmp;
  auto log = OpenLog(tmp.path(), 512);
  AppendRange(*log, 1, 2);
  REQUIRE(log->Append(Rec(3, 3000)).ok());
  AppendRange(*log, 4, 4);
  auto names = SegmentFiles(tmp.path());
  REQUIRE(names.size() == 3);
  CHECK(names[1] == SegmentFileName(3));
  CHECK(FileSize(tmp / names[1]) == kSegmentHeaderSize + Rec(3, 3000).size());
  CHECK(names[2] == SegmentFileName(4));
  CheckRecords(*log, 1, 2);
  auto reopened = OpenLog(tmp.path(), 512);
  CHECK(reopened->last_seq() == 4);
  ReadResult r = ReadFrom(*reopened, 3);
  REQUIRE(r.status.ok());
  CHECK(r.records[0] == Rec(3, 3000));
}

TEST_CASE("GapsAndDuplicatesAreRefusedNamingBothSeqs") {
  TempDir tmp;
  auto log = OpenLog(tmp.path());
  REQUIRE(log->Append(Rec(10)).ok());  // an empty log starts where its first record does
  CHECK(SegmentFiles(tmp.path()) == std::vector<std::string>{SegmentFileName(10)});
  AppendRange(*log, 11, 15);
  std::string before = ReadFileBytes(tmp / SegmentFileName(10));

  Status gap = log->Append(Rec(17));
  CHECK(gap.code() == Code::kInvalidArgument);
  CHECK(gap.message().find("17") != std::string::npos);
  CHECK(gap.message().find("15") != std::string::npos);
  Status dup = log->Append(Rec(15));
  CHECK(dup.code() == Code::kInvalidArgument);
  CHECK(log->Append(Rec(3)).code() == Code::kInvalidArgument);
  // A batch with a gap in its middle writes nothing, not even its good head.
  std::vector<std::string> owned{Rec(16), Rec(17), Rec(19)};
  std::vector<std::string_view> views(owned.begin(), owned.end());
  Status batch = log->AppendBatch(views);
  CHECK(batch.code() == Code::kInvalidArgument);
  CHECK(batch.message().find("19") != std::string::npos);
  CHECK(batch.message().find("17") != std::string::npos);

  CHECK(log->last_seq() == 15);
  CHECK(ReadFileBytes(tmp / SegmentFileName(10)) == before);
  CHECK(log->sticky_error().ok());  // refusals are not write errors
  REQUIRE(log->Append(Rec(16)).ok());
  CheckRecords(*log, 10, 16);
}

// Whether `dir`'s filesystem takes O_DIRECT opens (tmpfs does not).
bool AllowsDirectIo(const std::string& dir) {
  const std::string probe = dir + "/direct-probe";
  int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
  unlink(probe.c_str());
  return fd >= 0;
}

TEST_CASE("DirectAppendsLeaveExactlyTheRecordsInTheFile") {
  TempDir tmp;
  SegmentLogOptions options;
  options.direct_io = true;
  const bool direct = AllowsDirectIo(tmp.path());
  if (!direct) MESSAGE("no O_DIRECT in " << tmp.path() << ": checks buffered appends only");
  std::vector<std::string> all;
  {
    auto log = SegmentLog::Open(tmp.path(), options);
    REQUIRE(log.ok());
    // Sizes that end inside a 4096-byte block and on its boundary; then a batch larger
    // than the 4 MiB staging buffer.
    const size_t sizes[] = {100, 4000, 4096, 9000, 1, 70000};
    uint64_t seq = 1;
    for (size_t size : sizes) {
      all.push_back(Rec(seq++, size));
      REQUIRE((*log)->Append(all.back()).ok());
      CHECK((*log)->direct_appends() == direct);  // from the first segment on
      // No padding is left behind: the file holds exactly the header and the records.
      CHECK(FileSize(tmp / SegmentFileName(1)) == (*log)->total_bytes());
    }
    std::vector<std::string> batch;
    for (int i = 0; i < 6; ++i) batch.push_back(Rec(seq++, (1u << 20) - 1000 + 7 * i));
    batch.push_back(Rec(seq++, 12));
    std::vector<std::string_view> views(batch.begin(), batch.end());
    REQUIRE((*log)->AppendBatch(views).ok());
    all.insert(all.end(), batch.begin(), batch.end());
    REQUIRE((*log)->Sync().ok());
    CHECK(FileSize(tmp / SegmentFileName(1)) == (*log)->total_bytes());
  }
  // Reopened mid-block, the log goes on from the bytes on disk.
  auto log = SegmentLog::Open(tmp.path(), options);
  REQUIRE(log.ok());
  CHECK((*log)->recovery().clean());
  all.push_back(Rec(all.size() + 1, 777));
  REQUIRE((*log)->Append(all.back()).ok());
  ReadResult r = ReadFrom(**log, 1);
  REQUIRE(r.status.ok());
  REQUIRE(r.records.size() == all.size());
  for (size_t i = 0; i < all.size(); ++i) CHECK(r.records[i] == all[i]);
}

TEST_CASE("ADecodedBatchIsCheckedForLengthsAndSeqsOnly") {
  TempDir tmp;
  auto log = OpenLog(tmp.path());
  AppendRange(*log, 1, 3);
  // Good records land exactly as with AppendBatch.
  std::vector<std::string> good{Rec(4), Rec(5)};
  std::vector<std::string_view> good_views(good.begin(), good.end());
  REQUIRE(log->AppendDecodedBatch(good_views).ok());
  CheckRecords(*log, 1, 5);
  // Seq order and length fields are still checked, and a refused batch writes nothing.
  std::vector<std::string> gap{Rec(6), Rec(8)};
  std::vector<std::string_view> gap_views(gap.begin(), gap.end());
  CHECK(log->AppendDecodedBatch(gap_views).code() == Code::kInvalidArgument);
  std::string cut = Rec(6);
  std::string_view short_view = std::string_view(cut).substr(0, cut.size() - 1);
  CHECK(log->AppendDecodedBatch(std::span<const std::string_view>(&short_view, 1)).code() ==
        Code::kInvalidArgument);
  CHECK(log->last_seq() == 5);
  // The CRC is not: that is the caller's promise (AppendBatch refuses the same bytes).
  std::string flipped = Rec(6);
  flipped.back() ^= 1;
  std::string_view flipped_view = flipped;
  CHECK(log->AppendBatch(std::span<const std::string_view>(&flipped_view, 1)).code() ==
        Code::kCorruption);
  CHECK(log->AppendDecodedBatch(std::span<const std::string_view>(&flipped_view, 1)).ok());
  CHECK(log->last_seq() == 6);
}

TEST_CASE("CorruptOrMalformedRecordsAreRefusedAndTheLogIsUnchanged") {
  TempDir tmp;
  auto log = OpenLog(tmp.path());
  AppendRange(*log, 1, 3);
  std::string before = ReadFileBytes(tmp / SegmentFileName(1));

  std::string flipped = Rec(4);
  flipped[60] ^= 0x10;
  CHECK(log->Append(flipped).code() == Code::kCorruption);
  std::string good = Rec(4);
  CHECK(log->Append(std::string_view(good).substr(0, good.size() - 1)).code() == Code::kCorruption);
  CHECK(log->Append(good + "x").code() == Code::kInvalidArgument);  // not exactly one record
  CHECK(log->Append(std::string(64, '\0')).code() == Code::kCorruption);
  CHECK(log->Append(Rec(0)).code() == Code::kInvalidArgument);  // seq 0 is reserved

  std::vector<std::string> owned{Rec(4), Rec(5), flipped};
  owned[2] = Rec(6);
  owned[2][50] ^= 1;
  std::vector<std::string_view> views(owned.begin(), owned.end());
  Status batch = log->AppendBatch(views);
  CHECK(batch.code() == Code::kCorruption);
  CHECK(batch.message().find("batch item 2") != std::string::npos);

  // A record larger than the limit is refused as well.
  SegmentLogOptions small;
  small.limits.max_record_bytes = 200;
  TempDir tmp2;
  auto limited = SegmentLog::Open(tmp2.path(), small);
  REQUIRE(limited.ok());
  CHECK((*limited)->Append(Rec(1, 500)).code() == Code::kCorruption);
  CHECK((*limited)->segment_count() == 0);

  CHECK(log->last_seq() == 3);
  CHECK(ReadFileBytes(tmp / SegmentFileName(1)) == before);
  CHECK(log->sticky_error().ok());
  AppendRange(*log, 4, 4);
  CheckRecords(*log, 1, 4);
}

// Crash simulations on the last segment. Records 1..kLast; with 700-byte segments, the
// sealed segments before the last one must come through untouched as well.
constexpr uint64_t kLast = 12;
constexpr uint64_t kSegBytes = 700;

struct CrashFixture {
  TempDir tmp;
  std::string last_path;
  std::string original;  // the last segment's bytes
  uint64_t last_first = 0;
  uint64_t last_start = 0;  // offset of record kLast in the last segment

  CrashFixture() {
    auto log = OpenLog(tmp.path(), kSegBytes);
    AppendRange(*log, 1, kLast);
    REQUIRE(log->segment_count() >= 3);
    auto names = SegmentFiles(tmp.path());
    last_path = tmp / names.back();
    last_first = *ParseSegmentFileName(names.back());
    REQUIRE(last_first < kLast - 1);  // the last segment holds several records
    original = ReadFileBytes(last_path);
    last_start = OffsetOf(last_path, kLast);
  }

  // Opens after damage that is a clean torn tail; the log must end at kLast - 1 with
  // the file cut at last_start, and go on with kLast.
  void ExpectTornTail(uint64_t damaged_size) {
    auto log = OpenLog(tmp.path(), kSegBytes);
    const auto& rec = log->recovery();
    CHECK(rec.dropped_bytes == damaged_size - last_start);
    if (damaged_size > last_start) {
      CHECK(rec.truncated_at == last_start);
      CHECK_FALSE(rec.dropped_reason.empty());
    }
    CHECK(rec.last_segment_records == kLast - 1 - last_first + 1);
    CHECK(FileSize(last_path) == last_start);
    CHECK(log->last_seq() == kLast - 1);
    CHECK(log->durable_seq() == kLast - 1);
    CheckRecords(*log, 1, kLast - 1);
    REQUIRE(log->Append(Rec(kLast)).ok());
    CheckRecords(*log, kLast - 3, kLast);
  }
};

TEST_CASE("TruncationAtEveryOffsetOfTheLastRecordIsACleanTornTail") {
  CrashFixture f;
  for (uint64_t cut = f.last_start; cut < f.original.size(); ++cut) {
    CAPTURE(cut);
    WriteFileBytes(f.last_path, f.original.substr(0, cut));
    f.ExpectTornTail(cut);
  }
}

TEST_CASE("ZeroesFromEveryOffsetOfTheLastRecordAreACleanTornTail") {
  CrashFixture f;
  for (uint64_t from = f.last_start; from < f.original.size(); ++from) {
    CAPTURE(from);
    std::string bytes = f.original;
    std::fill(bytes.begin() + static_cast<ptrdiff_t>(from), bytes.end(), '\0');
    bytes.append(from % 3 == 0 ? 4096 : 0, '\0');  // sometimes preallocated space too
    WriteFileBytes(f.last_path, bytes);
    f.ExpectTornTail(bytes.size());
  }
}

TEST_CASE("GarbageAfterTheLastRecordIsACleanTornTail") {
  CrashFixture f;
  std::mt19937_64 rng(7);
  // The good end is after the last record here, so only the garbage goes.
  for (size_t len : {1u, 3u, 39u, 40u, 41u, 100u, 1000u, 5000u, 70000u}) {
    CAPTURE(len);
    std::string garbage(len, '\0');
    for (auto& c : garbage) c = static_cast<char>(rng());
    WriteFileBytes(f.last_path, f.original + garbage);
    auto log = OpenLog(f.tmp.path(), kSegBytes);
    CHECK(log->recovery().dropped_bytes == len);
    CHECK(log->recovery().truncated_at == f.original.size());
    CHECK(FileSize(f.last_path) == f.original.size());
    CHECK(log->last_seq() == kLast);
    CheckRecords(*log, 1, kLast);
  }
  // Garbage after a partial last record goes with it.
  std::string garbage(300, '\0');
  for (auto& c : garbage) c = static_cast<char>(rng());
  WriteFileBytes(f.last_path, f.original.substr(0, f.last_start + 20) + garbage);
  f.ExpectTornTail(f.last_start + 20 + garbage.size());
}

TEST_CASE("AStaleDuplicateAtTheTailIsDroppedButASeqGapIsCorruption") {
  CrashFixture f;
  // A whole, valid copy of the last record: not a later seq, so a torn tail.
  std::string last_record = f.original.substr(f.last_start);
  WriteFileBytes(f.last_path, f.original + last_record);
  {
    auto log = OpenLog(f.tmp.path(), kSegBytes);
    CHECK(log->recovery().dropped_bytes == last_record.size());
    CHECK(log->recovery().dropped_reason.find("expected " + std::to_string(kLast + 1)) !=
          std::string::npos);
    CHECK(log->last_seq() == kLast);
  }
  // A valid record that skips a seq was written on purpose by someone: never dropped.
  std::string with_gap = f.original + Rec(kLast + 2);
  WriteFileBytes(f.last_path, with_gap);
  auto log = SegmentLog::Open(f.tmp.path());
  REQUIRE_FALSE(log.ok());
  CHECK(log.status().code() == Code::kCorruption);
  CHECK(log.status().message().find("at byte " + std::to_string(f.original.size())) !=
        std::string::npos);
  CHECK(ReadFileBytes(f.last_path) == with_gap);
}

TEST_CASE("AFlippedByteMidLogInTheLastSegmentFailsOpenAndChangesNothing") {
  CrashFixture f;
  // Every byte of a record that has good records after it.
  uint64_t victim = kLast - 2;
  uint64_t start = OffsetOf(f.last_path, victim);
  uint64_t end = OffsetOf(f.last_path, victim + 1);
  for (uint64_t at = start; at < end; ++at) {
    CAPTURE(at);
    std::string bytes = f.original;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x40);
    WriteFileBytes(f.last_path, bytes);
    auto log = SegmentLog::Open(f.tmp.path(), SegmentLogOptions{kSegBytes, {}});
    REQUIRE_FALSE(log.ok());
    CHECK(log.status().code() == Code::kCorruption);
    const std::string& msg = log.status().message();
    CHECK(msg.find(SegmentFileName(f.last_first)) != std::string::npos);
    CHECK(msg.find("at byte " + std::to_string(start) + ":") != std::string::npos);
    CHECK(ReadFileBytes(f.last_path) == bytes);
  }
  // Zeroes in the middle (a lost page) are damage as well.
  std::string bytes = f.original;
  std::fill(bytes.begin() + static_cast<ptrdiff_t>(start),
            bytes.begin() + static_cast<ptrdiff_t>(end), '\0');
  WriteFileBytes(f.last_path, bytes);
  auto log = SegmentLog::Open(f.tmp.path(), SegmentLogOptions{kSegBytes, {}});
  REQUIRE_FALSE(log.ok());
  CHECK(log.status().code() == Code::kCorruption);
}

TEST_CASE("AFlippedByteInASealedSegmentIsReportedWhenRead") {
  CrashFixture f;
  auto names = SegmentFiles(f.tmp.path());
  std::string sealed = f.tmp / names[0];
  std::string original = ReadFileBytes(sealed);
  uint64_t start = OffsetOf(sealed, 2);
  std::string bytes = original;
  bytes[start + 50] ^= 0x01;  // inside the payload: only the CRC tells
  WriteFileBytes(sealed, bytes);

  auto log = OpenLog(f.tmp.path(), kSegBytes);  // sealed segments are checked lazily
  ReadResult r = ReadFrom(*log, 1);
  CHECK(r.records.size() == 1);
  CHECK(r.status.code() == Code::kCorruption);
  CHECK(r.status.message().find(names[0] + " at byte " + std::to_string(start) + ":") !=
        std::string::npos);
  CheckRecords(*log, *ParseSegmentFileName(names[1]), kLast);  // later segments still read

  // A damaged header of a sealed segment is caught by Open.
  bytes = original;
  bytes[17] ^= 0x01;
  WriteFileBytes(sealed, bytes);
  auto bad = SegmentLog::Open(f.tmp.path(), SegmentLogOptions{kSegBytes, {}});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kCorruption);
  CHECK(bad.status().message().find(names[0]) != std::string::npos);

  // Bytes after the last record of a sealed segment are found when read across it.
  WriteFileBytes(sealed, original + Rec(100));
  auto longer = OpenLog(f.tmp.path(), kSegBytes);
  r = ReadFrom(*longer, 1);
  CHECK(r.status.code() == Code::kCorruption);
  CHECK(r.status.message().find(names[0] + " at byte " + std::to_string(original.size())) !=
        std::string::npos);

  // A sealed segment cut short is found when read across it.
  WriteFileBytes(sealed, original.substr(0, OffsetOf(sealed, 3) + 10));
  auto cut = OpenLog(f.tmp.path(), kSegBytes);
  r = ReadFrom(*cut, 1);
  CHECK(r.status.code() == Code::kCorruption);
  CHECK(r.status.message().find(names[0]) != std::string::npos);
}

TEST_CASE("TheReaderStaysInsideTheLog") {
  TempDir tmp;
  auto log = OpenLog(tmp.path(), 600);
  CHECK(log->NewReader(1).status().code() == Code::kNotFound);  // empty
  AppendRange(*log, 5, 20);
  CHECK(log->NewReader(4).status().code() == Code::kNotFound);
  CHECK(log->NewReader(21).status().code() == Code::kNotFound);
  // A reader sees the log as it was when created.
  auto reader = log->NewReader(18);
  REQUIRE(reader.ok());
  AppendRange(*log, 21, 30);
  std::vector<uint64_t> seqs;
  while ((*reader)->Next()) seqs.push_back((*reader)->seq());
  CHECK((*reader)->status().ok());
  CHECK(seqs == std::vector<uint64_t>{18, 19, 20});
  // A bounded reader.
  auto bounded = log->NewReader(6, 9);
  REQUIRE(bounded.ok());
  seqs.clear();
  while ((*bounded)->Next()) seqs.push_back((*bounded)->seq());
  CHECK(seqs == std::vector<uint64_t>{6, 7, 8, 9});
}

TEST_CASE("DeleteThroughRemovesOnlySegmentsWhollyAtOrBelowTheSeq") {
  TempDir tmp;
  auto log = OpenLog(tmp.path(), 800);
  AppendRange(*log, 1, 60);
  std::vector<uint64_t> firsts;
  for (const auto& name : SegmentFiles(tmp.path())) firsts.push_back(*ParseSegmentFileName(name));
  REQUIRE(firsts.size() >= 5);
  CHECK(log->DeleteThrough(0).ok());
  CHECK(SegmentFiles(tmp.path()).size() == firsts.size());

  // A seq inside the third segment: the first two go, the third stays.
  uint64_t through = firsts[2] + 1;
  REQUIRE(through < firsts[3] - 1);
  REQUIRE(log->DeleteThrough(through).ok());
  auto names = SegmentFiles(tmp.path());
  REQUIRE(names.size() == firsts.size() - 2);
  CHECK(names[0] == SegmentFileName(firsts[2]));
  CHECK(log->first_seq() == firsts[2]);
  CHECK(log->segment_count() == names.size());
  uint64_t total = 0;
  for (const auto& n : names) total += FileSize(tmp / n);
  CHECK(log->total_bytes() == total);
  CHECK(log->NewReader(firsts[2] - 1).status().code() == Code::kNotFound);
  CheckRecords(*log, firsts[2], 60);

  // Exactly the last seq of a segment deletes it.
  REQUIRE(log->DeleteThrough(firsts[3] - 1).ok());
  CHECK(SegmentFiles(tmp.path())[0] == SegmentFileName(firsts[3]));
  CHECK(log->first_seq() == firsts[3]);

  // A reader that had not reached a segment before it was deleted gets NotFound.
  auto reader = log->NewReader(firsts[3]);
  REQUIRE(reader.ok());
  REQUIRE(log->DeleteThrough(firsts[4] - 1).ok());
  while ((*reader)->Next()) {
  }
  CHECK((*reader)->status().code() == Code::kNotFound);

  auto reopened = OpenLog(tmp.path(), 800);
  CHECK(reopened->first_seq() == firsts[4]);
  CheckRecords(*reopened, firsts[4], 60);
}

TEST_CASE("DeletingEverythingKeepsTheSequenceAcrossReopen") {
  TempDir tmp;
  {
    auto log = OpenLog(tmp.path(), 800);
    AppendRange(*log, 1, 40);
    // The active segment stays while it holds a record above the seq.
    REQUIRE(log->DeleteThrough(39).ok());
    CHECK(log->first_seq() <= 40);
    CheckRecords(*log, 40, 40);
    REQUIRE(log->DeleteThrough(40).ok());
    CHECK(log->empty());
    CHECK(log->first_seq() == 0);
    CHECK(log->last_seq() == 40);
    CHECK(log->next_seq() == 41);
    CHECK(log->durable_seq() == 40);
    CHECK(log->NewReader(40).status().code() == Code::kNotFound);
    CHECK(SegmentFiles(tmp.path()) == std::vector<std::string>{SegmentFileName(41)});
    CHECK(log->total_bytes() == kSegmentHeaderSize);
    CHECK(log->DeleteThrough(1000).ok());  // nothing left to delete
  }
  {
    auto log = OpenLog(tmp.path(), 800);
    CHECK(log->recovery().clean());
    CHECK(log->empty());
    CHECK(log->last_seq() == 40);
    CHECK(log->Append(Rec(45)).code() == Code::kInvalidArgument);
    REQUIRE(log->Append(Rec(41)).ok());
    AppendRange(*log, 42, 50);
    CHECK(log->first_seq() == 41);
    CheckRecords(*log, 41, 50);
    REQUIRE(log->DeleteThrough(1000).ok());  // beyond the end: everything
    CHECK(log->next_seq() == 51);
  }
  auto log = OpenLog(tmp.path(), 800);
  CHECK(log->next_seq() == 51);
}

TEST_CASE("SetNextSeqChoosesTheStartOfAnEmptyLogDurably") {
  TempDir tmp;
  {
    auto log = OpenLog(tmp.path());
    REQUIRE(log->SetNextSeq(100).ok());
    CHECK(log->empty());
    CHECK(log->next_seq() == 100);
    CHECK(log->Append(Rec(1)).code() == Code::kInvalidArgument);
    REQUIRE(log->SetNextSeq(7).ok());  // still empty: may move, also backwards
    CHECK(SegmentFiles(tmp.path()) == std::vector<std::string>{SegmentFileName(7)});
  }
  auto log = OpenLog(tmp.path());
  CHECK(log->next_seq() == 7);
  AppendRange(*log, 7, 8);
  CHECK(log->SetNextSeq(100).code() == Code::kInvalidArgument);
  CHECK(log->SetNextSeq(0).code() == Code::kInvalidArgument);
}

TEST_CASE("ATornHeaderOfANewLastSegmentIsRemoved") {
  TempDir tmp;
  {
    auto log = OpenLog(tmp.path());
    AppendRange(*log, 1, 5);
  }
  std::string header = EncodeSegmentHeader(6);
  for (size_t len : {size_t{0}, size_t{10}, kSegmentHeaderSize - 1}) {
    CAPTURE(len);
    WriteFileBytes(tmp / SegmentFileName(6), header.substr(0, len));
    auto log = OpenLog(tmp.path());
    CHECK(log->recovery().removed_segment == SegmentFileName(6));
    CHECK_FALSE(fs::exists(tmp / SegmentFileName(6)));
    CHECK(log->last_seq() == 5);
    CheckRecords(*log, 1, 5);
  }
  // A whole header that was never synced reads back as zeroes.
  WriteFileBytes(tmp / SegmentFileName(6), std::string(kSegmentHeaderSize, '\0'));
  {
    auto log = OpenLog(tmp.path());
    CHECK(log->recovery().removed_segment == SegmentFileName(6));
    REQUIRE(log->Append(Rec(6)).ok());  // into the segment before
    CHECK(SegmentFiles(tmp.path()) == std::vector<std::string>{SegmentFileName(1)});
  }
  // A bad header on a file that holds more than a header is not a crash artifact.
  std::string bytes = EncodeSegmentHeader(7) + Rec(7);
  bytes[0] = 'X';
  WriteFileBytes(tmp / SegmentFileName(7), bytes);
  auto bad = SegmentLog::Open(tmp.path());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kCorruption);
  CHECK(bad.status().message().find(SegmentFileName(7) + " at byte 0") != std::string::npos);
  CHECK(ReadFileBytes(tmp / SegmentFileName(7)) == bytes);
}

TEST_CASE("ATornHeaderOfTheOnlySegmentLeavesALogThatAcceptsAnySeq") {
  TempDir tmp;
  WriteFileBytes(tmp / SegmentFileName(9), EncodeSegmentHeader(9).substr(0, 20));
  auto log = OpenLog(tmp.path());
  CHECK(log->recovery().removed_segment == SegmentFileName(9));
  CHECK(log->segment_count() == 0);
  CHECK(log->next_seq() == 0);
  REQUIRE(log->Append(Rec(3)).ok());
  CHECK(SegmentFiles(tmp.path()) == std::vector<std::string>{SegmentFileName(3)});
}

TEST_CASE("StrayFilesAreIgnoredAndReported") {
  TempDir tmp;
  {
    auto log = OpenLog(tmp.path());
    AppendRange(*log, 1, 3);
  }
  WriteFileBytes(tmp / "notes.txt", "hello");
  WriteFileBytes(tmp / "123.seg", "short name");
  WriteFileBytes(tmp / (SegmentFileName(1) + ".tmp"), "x");
  fs::create_directory(tmp / SegmentFileName(50));  // a directory is not a segment
  auto log = OpenLog(tmp.path());
  std::vector<std::string> expected{"123.seg", SegmentFileName(1) + ".tmp", SegmentFileName(50),
                                    "notes.txt"};
  std::sort(expected.begin(), expected.end());
  CHECK(log->recovery().stray_files == expected);
  CHECK_FALSE(log->recovery().clean());
  CHECK(log->recovery().ToString().find("notes.txt") != std::string::npos);
  CHECK(log->last_seq() == 3);
  AppendRange(*log, 4, 4);
  CHECK(fs::exists(tmp / "notes.txt"));
}

TEST_CASE("DurableSeqAdvancesOnSyncAndOnRoll") {
  TempDir tmp;
  auto log = OpenLog(tmp.path(), 700);
  AppendRange(*log, 1, 2);
  CHECK(log->durable_seq() == 0);
  REQUIRE(log->Sync().ok());
  CHECK(log->durable_seq() == 2);
  uint64_t segments = log->segment_count();
  uint64_t seq = 3;
  while (log->segment_count() == segments) {
    AppendRange(*log, seq, seq);
    ++seq;
  }
  // The roll sealed the old segment with an fdatasync.
  CHECK(log->durable_seq() == seq - 2);
  REQUIRE(log->Sync().ok());
  CHECK(log->durable_seq() == seq - 1);
}

// A failing fd is swapped in under the log with dup2, so the real syscalls fail.
TEST_CASE("AFailedSyncIsStickyUntilReopen") {
  TempDir tmp;
  {
    auto log = OpenLog(tmp.path());
    AppendRange(*log, 1, 3);
    int fd = log->TEST_active_fd();
    REQUIRE(fd >= 0);
    UniqueFd saved(dup(fd));
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0);
    UniqueFd pipe_r(pipe_fds[0]), pipe_w(pipe_fds[1]);
    REQUIRE(dup2(pipe_r.get(), fd) == fd);  // fdatasync on a pipe fails (EINVAL)
    Status failed = log->Sync();
    CHECK(failed.code() == Code::kIOError);
    CHECK(log->durable_seq() == 0);
    REQUIRE(dup2(saved.get(), fd) == fd);  // the file is back, healthy
    // Never retry and assume success: the error stays.
    CHECK(log->Sync().message() == failed.message());
    CHECK(log->Append(Rec(4)).message() == failed.message());
    CHECK(log->DeleteThrough(3).code() == Code::kIOError);
    CHECK(log->durable_seq() == 0);
    CHECK(log->last_seq() == 3);
  }
  auto log = OpenLog(tmp.path());
  CHECK(log->sticky_error().ok());
  CHECK(log->last_seq() == 3);
  CHECK(log->durable_seq() == 3);  // Open synced what it found
  AppendRange(*log, 4, 4);
  CheckRecords(*log, 1, 4);
}

TEST_CASE("AFailedWriteIsStickyUntilReopen") {
  TempDir tmp;
  {
    auto log = OpenLog(tmp.path());
    AppendRange(*log, 1, 3);
    int fd = log->TEST_active_fd();
    UniqueFd saved(dup(fd));
    UniqueFd read_only(open((tmp / SegmentFileName(1)).c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(dup2(read_only.get(), fd) == fd);  // pwritev fails (EBADF)
    Status failed = log->Append(Rec(4));
    CHECK(failed.code() == Code::kIOError);
    CHECK(failed.error_number() == EBADF);
    REQUIRE(dup2(saved.get(), fd) == fd);
    CHECK(log->Append(Rec(4)).code() == Code::kIOError);
    CHECK(log->Sync().code() == Code::kIOError);
    CHECK(log->last_seq() == 3);
  }
  auto log = OpenLog(tmp.path());
  CHECK(log->last_seq() == 3);
  AppendRange(*log, 4, 5);
  CheckRecords(*log, 1, 5);
}
