#include "mirrord/memory_file.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/endian.h"
#include "mirrord/tests/test_records.h"
#include "tests/unit/test_util.h"

using namespace mirror::d;
using mirror::common::DecodeLimits;
using mirror::d::test::WriteRec;
using mirror::test::ReadFileBytes;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;

namespace {

constexpr uint64_t kHalf = 64 * 1024;

std::unique_ptr<MemoryFile> OpenMem(const std::string& path, MemoryRecovery* rec,
                                    uint64_t half = kHalf) {
  auto file = MemoryFile::Open(path, half, DecodeLimits{}, rec);
  REQUIRE_MESSAGE(file.ok(), file.status().ToString());
  return std::move(file).value();
}

uint64_t SeqOf(const std::string& rec) { return mirror::common::LoadLE<uint64_t>(rec.data() + 16); }

std::vector<uint64_t> Seqs(const std::vector<std::string>& recs) {
  std::vector<uint64_t> out;
  for (const auto& r : recs) out.push_back(SeqOf(r));
  return out;
}

std::vector<uint64_t> Range(uint64_t a, uint64_t b) {
  std::vector<uint64_t> out;
  for (uint64_t s = a; s <= b; ++s) out.push_back(s);
  return out;
}

}  // namespace

TEST_CASE("MemoryFileCreatedEmptyWithItsGeometry") {
  TempDir dir;
  MemoryRecovery rec;
  auto mem = OpenMem(dir / "memory", &rec);
  CHECK(rec.created);
  CHECK(mem->half_bytes() == kHalf);
  CHECK(rec.halves[0].records.empty());
  CHECK(rec.halves[1].records.empty());
  struct stat st {};
  REQUIRE(stat((dir / "memory").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == kMemoryHeaderSize + 2 * kHalf);
}

TEST_CASE("MemoryFileAppendFillsActiveHalfThenRefuses") {
  TempDir dir;
  MemoryRecovery rec;
  auto mem = OpenMem(dir / "memory", &rec);
  uint64_t seq = 1;
  while (mem->TryAppend(WriteRec(seq, 1, 1000))) ++seq;
  CHECK(seq > 50);  // 64 KiB of ~1 KiB records
  CHECK(mem->active_records() == seq - 1);
  CHECK(mem->active_bytes() <= kHalf);
  CHECK(kHalf - mem->active_bytes() < WriteRec(seq, 1, 1000).size());
  // A record larger than a half never fits, even in an empty one.
  mem->Switch();
  CHECK_FALSE(mem->TryAppend(WriteRec(seq, 1, kHalf)));
  CHECK(mem->TryAppend(WriteRec(seq, 1, 1000)));
}

TEST_CASE("MemoryFileSwitchSealsAndClearFreesTheHalf") {
  TempDir dir;
  MemoryRecovery rec;
  auto mem = OpenMem(dir / "memory", &rec);
  std::vector<std::string> want;
  for (uint64_t s = 1; s <= 10; ++s) {
    want.push_back(WriteRec(s));
    REQUIRE(mem->TryAppend(want.back()));
  }
  CHECK_FALSE(mem->has_sealed());
  mem->Switch();
  CHECK(mem->has_sealed());
  CHECK(mem->active_records() == 0);
  REQUIRE(mem->SealedRecords().size() == 10);
  for (size_t i = 0; i < 10; ++i) CHECK(mem->SealedRecords()[i] == want[i]);
  // Appends go to the other half while the sealed one waits for the flusher.
  REQUIRE(mem->TryAppend(WriteRec(11)));
  CHECK(mem->SealedRecords().size() == 10);
  mem->ClearSealed();
  CHECK_FALSE(mem->has_sealed());
  CHECK(mem->sealed_bytes() == 0);
  CHECK(mem->active_records() == 1);
  mem->Switch();  // allowed again once cleared
  CHECK(mem->SealedRecords().size() == 1);
}

TEST_CASE("MemoryFileRecoversBothHalvesAfterCrashInSeqOrder") {
  TempDir dir;
  {
    MemoryRecovery rec;
    auto mem = OpenMem(dir / "memory", &rec);
    for (uint64_t s = 1; s <= 20; ++s) REQUIRE(mem->TryAppend(WriteRec(s)));
    mem->Switch();  // half 0 sealed (1..20), never flushed: a "crash" now
    for (uint64_t s = 21; s <= 25; ++s) REQUIRE(mem->TryAppend(WriteRec(s)));
  }  // the mapping goes away without any clear: like kill -9
  MemoryRecovery rec;
  auto mem = OpenMem(dir / "memory", &rec);
  CHECK_FALSE(rec.created);
  CHECK(rec.halves[0].first_seq == 1);
  CHECK(rec.halves[0].records.size() == 20);
  CHECK(rec.halves[1].first_seq == 21);
  CHECK(rec.halves[1].records.size() == 5);
  CHECK(Seqs(MergeRuns(rec, 0)) == Range(1, 25));
  // Deduplicated against what the log already holds durably.
  CHECK(Seqs(MergeRuns(rec, 12)) == Range(13, 25));
  CHECK(Seqs(MergeRuns(rec, 20)) == Range(21, 25));
  CHECK(MergeRuns(rec, 25).empty());
  CHECK(MergeRuns(rec, 99).empty());
  CHECK(MergeRuns(rec, 0)[4] == WriteRec(5));
}

TEST_CASE("MemoryFileTornTailIsDropped") {
  TempDir dir;
  uint64_t torn_at = 0;
  {
    MemoryRecovery rec;
    auto mem = OpenMem(dir / "memory", &rec);
    for (uint64_t s = 1; s <= 8; ++s) REQUIRE(mem->TryAppend(WriteRec(s)));
    torn_at = mem->active_bytes();
    REQUIRE(mem->TryAppend(WriteRec(9)));
  }
  // Tear record 9: keep its first half only, as a kill -9 inside memcpy would.
  std::string bytes = ReadFileBytes(dir / "memory");
  const size_t len9 = WriteRec(9).size();
  for (size_t i = len9 / 2; i < len9; ++i) bytes[kMemoryHeaderSize + torn_at + i] = '\x5a';
  WriteFileBytes(dir / "memory", bytes);

  MemoryRecovery rec;
  auto mem = OpenMem(dir / "memory", &rec);
  CHECK(rec.halves[0].records.size() == 8);
  CHECK(rec.halves[0].stop_offset == torn_at);
  CHECK(rec.halves[0].stop_reason.find("CRC") != std::string::npos);
  CHECK(Seqs(MergeRuns(rec, 0)) == Range(1, 8));
}

TEST_CASE("MemoryFileStaleBytesOfEarlierFillAreNotRecovered") {
  TempDir dir;
  {
    MemoryRecovery rec;
    auto mem = OpenMem(dir / "memory", &rec);
    for (uint64_t s = 1; s <= 30; ++s) REQUIRE(mem->TryAppend(WriteRec(s, 1, 300)));
    mem->Switch();
    mem->ClearSealed();  // flushed: half 0 cleared
    for (uint64_t s = 31; s <= 32; ++s) REQUIRE(mem->TryAppend(WriteRec(s, 1, 300)));
    mem->Switch();  // half 1 sealed; half 0 active again, over stale 1..30
    for (uint64_t s = 33; s <= 35; ++s) REQUIRE(mem->TryAppend(WriteRec(s, 1, 50)));
  }
  MemoryRecovery rec;
  auto mem = OpenMem(dir / "memory", &rec);
  CHECK(rec.halves[0].first_seq == 33);
  CHECK(rec.halves[0].records.size() == 3);
  CHECK(rec.halves[1].first_seq == 31);
  CHECK(Seqs(MergeRuns(rec, 30)) == Range(31, 35));
}

TEST_CASE("MemoryFileClearedHalfRecoversNothing") {
  TempDir dir;
  {
    MemoryRecovery rec;
    auto mem = OpenMem(dir / "memory", &rec);
    for (uint64_t s = 1; s <= 5; ++s) REQUIRE(mem->TryAppend(WriteRec(s)));
    mem->Switch();
    mem->ClearSealed();
  }
  MemoryRecovery rec;
  auto mem = OpenMem(dir / "memory", &rec);
  CHECK(rec.halves[0].records.empty());
  CHECK(rec.halves[0].stop_reason == "end of data");
  CHECK(MergeRuns(rec, 0).empty());
}

TEST_CASE("MemoryFileGapBetweenHalvesStopsMerge") {
  TempDir dir;
  {
    MemoryRecovery rec;
    auto mem = OpenMem(dir / "memory", &rec);
    for (uint64_t s = 1; s <= 3; ++s) REQUIRE(mem->TryAppend(WriteRec(s)));
    mem->Switch();
    for (uint64_t s = 10; s <= 12; ++s) REQUIRE(mem->TryAppend(WriteRec(s)));
  }
  MemoryRecovery rec;
  auto mem = OpenMem(dir / "memory", &rec);
  std::string gap;
  CHECK(Seqs(MergeRuns(rec, 0, &gap)) == Range(1, 3));
  CHECK(gap.find("seq 4 is missing") != std::string::npos);
}

TEST_CASE("MemoryFileDamagedHeaderIsCorruptionAndKept") {
  TempDir dir;
  {
    MemoryRecovery rec;
    auto mem = OpenMem(dir / "memory", &rec);
    REQUIRE(mem->TryAppend(WriteRec(1)));
  }
  std::string bytes = ReadFileBytes(dir / "memory");
  bytes[20] ^= 1;
  WriteFileBytes(dir / "memory", bytes);
  MemoryRecovery rec;
  auto file = MemoryFile::Open(dir / "memory", kHalf, DecodeLimits{}, &rec);
  REQUIRE_FALSE(file.ok());
  CHECK(file.status().code() == mirror::common::Code::kCorruption);
  CHECK(file.status().message().find("CRC") != std::string::npos);
  CHECK(ReadFileBytes(dir / "memory") == bytes);  // never overwritten
}

TEST_CASE("MemoryFileKeepsExistingGeometryUntilRecreated") {
  TempDir dir;
  {
    MemoryRecovery rec;
    auto mem = OpenMem(dir / "memory", &rec, kHalf);
    REQUIRE(mem->TryAppend(WriteRec(1)));
  }
  MemoryRecovery rec;
  auto mem = OpenMem(dir / "memory", &rec, 2 * kHalf);
  CHECK(mem->half_bytes() == kHalf);
  CHECK(rec.halves[0].records.size() == 1);
  mem.reset();
  REQUIRE(MemoryFile::Create(dir / "memory", 2 * kHalf).ok());
  mem = OpenMem(dir / "memory", &rec, 2 * kHalf);
  CHECK(mem->half_bytes() == 2 * kHalf);
  CHECK(rec.halves[0].records.empty());
}

TEST_CASE("MemoryFileRefusesBadHalfSize") {
  TempDir dir;
  MemoryRecovery rec;
  auto file = MemoryFile::Open(dir / "memory", 5000, DecodeLimits{}, &rec);
  CHECK(file.status().code() == mirror::common::Code::kInvalidArgument);
}
