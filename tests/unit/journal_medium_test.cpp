// The journal's building blocks: UniqueFd, both media, and the header slot codec.
#include "common/journal_medium.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <thread>
#include <vector>

#include "common/crc32c.h"
#include "common/endian.h"
#include "common/journal_format.h"
#include "common/journal_header.h"
#include "common/unique_fd.h"
#include "tests/unit/test_util.h"

using namespace mirror::common;
using namespace mirror::test;

namespace {

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

std::unique_ptr<JournalMedium> MakeMedium(const std::string& path, JournalMediumKind kind,
                                          uint64_t size) {
  WriteFileBytes(path, std::string(size, '\0'));
  auto m = OpenJournalMedium(path, kind);
  REQUIRE_MESSAGE(m.ok(), m.status().ToString());
  return std::move(m).value();
}

JournalHeader SampleHeader() {
  JournalHeader h;
  h.file_size = 8u << 20;
  h.data_start = kJournalDataStart;
  h.epoch = 3;
  h.generation = 41;
  h.tail_offset = kJournalDataStart + 4096 + 8;
  h.tail_seq = 123456789;
  h.source_id = "src";
  h.volume_id = std::string(kJournalMaxIdBytes, 'v');
  return h;
}

}  // namespace

TEST_CASE("UniqueFdClosesOnResetAndDestructionAndMovesOwnership") {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(raw >= 0);
  {
    UniqueFd a(raw);
    CHECK(static_cast<bool>(a));
    UniqueFd b(std::move(a));
    CHECK_FALSE(static_cast<bool>(a));  // NOLINT: moved-from is empty by contract
    CHECK(b.get() == raw);
    CHECK(IsOpen(raw));
  }
  CHECK_FALSE(IsOpen(raw));
  UniqueFd c(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int kept = c.release();
  CHECK_FALSE(static_cast<bool>(c));
  CHECK(IsOpen(kept));
  c.reset(kept);
  c.reset();
  CHECK_FALSE(IsOpen(kept));
}

TEST_CASE("MediaWritePiecesInOrderAndReadThemBack") {
  for (JournalMediumKind kind : {JournalMediumKind::kMmap, JournalMediumKind::kPwrite}) {
    CAPTURE(JournalMediumName(kind));
    TempDir dir;
    auto m = MakeMedium(dir / "m", kind, 64 * 1024);
    CHECK(m->size() == 64 * 1024);
    std::string big(10000, 'b');
    std::string_view pieces[] = {"head-", "", big, "-tail"};
    REQUIRE(m->Write(4093, pieces).ok());
    std::string scratch;
    auto got = m->Read(4093, 5 + big.size() + 5, &scratch);
    REQUIRE(got.ok());
    CHECK(*got == "head-" + big + "-tail");
    CHECK(m->Sync(4093, 100).ok());
    CHECK(m->Sync(0, m->size()).ok());
    // Out of range is refused, not clamped.
    std::string_view one[] = {"xy"};
    CHECK(m->Write(m->size() - 1, one).code() == Code::kInvalidArgument);
    CHECK(m->Read(m->size() - 1, 2, &scratch).status().code() == Code::kInvalidArgument);
    CHECK(m->Sync(m->size(), 1).code() == Code::kInvalidArgument);
    m.reset();
    CHECK(ReadFileBytes(dir / "m").substr(4093, big.size() + 10) == "head-" + big + "-tail");
  }
}

TEST_CASE("MediaTakeConcurrentWritesToDisjointRanges") {
  for (JournalMediumKind kind : {JournalMediumKind::kMmap, JournalMediumKind::kPwrite}) {
    CAPTURE(JournalMediumName(kind));
    TempDir dir;
    auto m = MakeMedium(dir / "m", kind, 1u << 20);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::string bytes(1000, static_cast<char>('0' + t));
        std::string_view piece[] = {bytes};
        for (uint64_t i = 0; i < 200; ++i) CHECK(m->Write((i * 4 + t) * 1000, piece).ok());
      });
    }
    for (auto& th : threads) th.join();
    std::string scratch;
    for (uint64_t k = 0; k < 800; ++k) {
      auto got = m->Read(k * 1000, 1000, &scratch);
      REQUIRE(got.ok());
      REQUIRE(*got == std::string(1000, static_cast<char>('0' + k % 4)));
    }
  }
}

TEST_CASE("MediumRefusesAFileShorterThanAsked") {
  TempDir dir;
  WriteFileBytes(dir / "m", std::string(4096, '\0'));
  UniqueFd fd(::open((dir / "m").c_str(), O_RDWR | O_CLOEXEC));
  REQUIRE(fd);
  CHECK(NewMmapMedium(std::move(fd), 8192, dir / "m").status().code() == Code::kInvalidArgument);
}

TEST_CASE("HeaderSlotRoundTripsAndEveryFlippedByteIsCaught") {
  char slot[kJournalSlotSize];
  EncodeHeaderSlot(SampleHeader(), slot);
  CHECK(std::string_view(slot, 8) == kJournalMagic);
  CHECK(LoadLE<uint64_t>(slot + kSlotTailSeq) == 123456789);
  auto h = DecodeHeaderSlot({slot, sizeof slot});
  REQUIRE(h.ok());
  CHECK(h->generation == 41);
  CHECK(h->tail_offset == SampleHeader().tail_offset);
  CHECK(h->source_id == "src");
  CHECK(h->volume_id == SampleHeader().volume_id);
  for (size_t i = 0; i < kSlotCrc + 4; ++i) {
    std::string bad(slot, sizeof slot);
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    CAPTURE(i);
    REQUIRE(DecodeHeaderSlot(bad).status().code() == Code::kCorruption);
  }
}

TEST_CASE("ChooseHeaderTakesTheNewestValidSlot") {
  std::string page(kJournalDataStart, '\0');
  JournalHeader a = SampleHeader(), b = SampleHeader();
  b.generation = a.generation + 1;
  b.tail_seq = a.tail_seq + 10;
  EncodeHeaderSlot(a, page.data() + kJournalSlotOffsets[0]);
  EncodeHeaderSlot(b, page.data() + kJournalSlotOffsets[1]);
  auto chosen = ChooseHeader(page, "j");
  REQUIRE(chosen.ok());
  CHECK(chosen->slot == 1);
  CHECK(chosen->header.tail_seq == b.tail_seq);
  page[kJournalSlotOffsets[1] + kSlotTailSeq] ^= 1;
  chosen = ChooseHeader(page, "j");
  REQUIRE(chosen.ok());
  CHECK(chosen->slot == 0);
  page[kJournalSlotOffsets[0] + kSlotEpoch] ^= 1;
  auto none = ChooseHeader(page, "j");
  CHECK(none.status().code() == Code::kCorruption);
  CHECK(none.status().message().find("journal header damaged") == 0);
}

TEST_CASE("IntactSlotOfAnotherFormatVersionIsAMismatch") {
  std::string page(kJournalDataStart, '\0');
  EncodeHeaderSlot(SampleHeader(), page.data());
  StoreLE(page.data() + kSlotVersion, uint32_t{2});
  StoreLE(page.data() + kSlotCrc, crc32c::Mask(crc32c::Value(page.data(), kSlotCrc)));
  CHECK(ChooseHeader(page, "j").status().code() == Code::kMismatch);
}

TEST_CASE("HeaderFieldsOutOfRangeAreCorruption") {
  auto reject = [](JournalHeader h) {
    char slot[kJournalSlotSize];
    EncodeHeaderSlot(h, slot);
    return DecodeHeaderSlot({slot, sizeof slot}).status().code() == Code::kCorruption;
  };
  JournalHeader h = SampleHeader();
  h.tail_offset = h.file_size;
  CHECK(reject(h));
  h = SampleHeader();
  h.tail_offset = kJournalDataStart + 4;  // not 8-aligned
  CHECK(reject(h));
  h = SampleHeader();
  h.file_size = kJournalMinFileBytes - kJournalPageSize;
  CHECK(reject(h));
  h = SampleHeader();
  h.data_start = 0;
  CHECK(reject(h));
  h = SampleHeader();
  h.tail_seq = 0;
  CHECK(reject(h));
}
