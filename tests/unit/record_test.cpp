#include "common/record.h"

#include <doctest/doctest.h>

#include <random>
#include <set>
#include <string>

#include "common/crc32c.h"
#include "common/endian.h"
#include "tests/unit/record_samples.h"

using namespace mirror::common;
using mirror::test::SampleOpsOfEveryType;

namespace {

const RecordMeta kMeta{42, 7, 1700000000123456789};

std::string Encode(const Op& op, RecordMeta meta = kMeta) {
  auto bytes = EncodeRecord(meta, op);
  REQUIRE_MESSAGE(bytes.ok(), bytes.status().ToString());
  return *bytes;
}

// Recomputes the CRC after a test tampers with the bytes, so the field decoder,
// not the checksum, must catch the damage.
void FixCrc(std::string& bytes) {
  if (bytes.size() < kRecordHeaderSize) return;
  uint32_t len = LoadLE<uint32_t>(bytes.data());
  if (len < kRecordCrcStart || len > bytes.size()) return;
  uint32_t crc = crc32c::Value(bytes.data() + kRecordCrcStart, len - kRecordCrcStart);
  StoreLE(bytes.data() + kRecordCrcOffset, crc32c::Mask(crc));
}

// A record that decodes must re-encode to exactly the same bytes: the encoding is
// canonical, so a decoder that accepts something the encoder would not write is a bug.
void CheckCanonical(std::string_view bytes) {
  auto rec = DecodeRecord(bytes);
  if (!rec.ok()) return;
  auto again = EncodeRecord(rec->meta, rec->op);
  REQUIRE(again.ok());
  uint32_t len = LoadLE<uint32_t>(bytes.data());
  CHECK(*again == bytes.substr(0, len));
}

std::string DecodeError(const std::string& bytes) {
  auto rec = DecodeRecord(bytes);
  REQUIRE_FALSE(rec.ok());
  return rec.status().message();
}

}  // namespace

TEST_CASE("EveryTypeRoundTripsByteExact") {
  std::set<RecordType> seen;
  for (const Op& op : SampleOpsOfEveryType()) {
    std::string bytes = Encode(op);
    auto rec = DecodeRecord(bytes);
    REQUIRE_MESSAGE(rec.ok(), rec.status().ToString());
    CHECK(rec->meta == kMeta);
    CHECK(rec->type() == TypeOf(op));
    CHECK(Encode(rec->op) == bytes);
    CHECK(LoadLE<uint32_t>(bytes.data()) == bytes.size());
    seen.insert(rec->type());
  }
  CHECK(seen.size() == kMaxRecordType + 1);  // every stored type, and a void
}

TEST_CASE("DecodedFieldsPointIntoTheBufferAndKeepTheirValues") {
  std::string bytes = Encode(WriteOp{"d/f", 77, {5, 6}, "payload"});
  auto rec = DecodeRecord(bytes);
  REQUIRE(rec.ok());
  const auto& w = std::get<WriteOp>(rec->op);
  CHECK(w.path == "d/f");
  CHECK(w.offset == 77);
  CHECK(w.mtime == Timespec{5, 6});
  CHECK(w.data == "payload");
  CHECK(w.data.data() >= bytes.data());
  CHECK(w.data.data() < bytes.data() + bytes.size());
}

TEST_CASE("BulkBytesAreReferencedNotStaged") {
  std::string data(100000, 'x');
  EncodedRecord rec;
  REQUIRE(rec.Build(WriteOp{"f", 0, {}, data}).ok());
  rec.Seal(kMeta);
  CHECK(rec.bulk().data() == data.data());
  CHECK(rec.head().size() < 100);
  CHECK(rec.ToBytes() == Encode(WriteOp{"f", 0, {}, data}));
}

TEST_CASE("EveryTruncationOfEveryRecordIsAnError") {
  for (const Op& op : SampleOpsOfEveryType()) {
    std::string bytes = Encode(op);
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto rec = DecodeRecord(std::string_view(bytes).substr(0, n));
      REQUIRE_FALSE(rec.ok());
      REQUIRE(rec.status().code() == Code::kCorruption);
    }
  }
}

TEST_CASE("RandomByteFlipsAreAlwaysCaughtByTheCrc") {
  std::mt19937_64 rng(1);
  for (const Op& op : SampleOpsOfEveryType()) {
    std::string good = Encode(op);
    for (int i = 0; i < 2000; ++i) {
      std::string bad = good;
      size_t at = rng() % bad.size();
      bad[at] = static_cast<char>(bad[at] ^ static_cast<char>(1 + rng() % 255));
      auto rec = DecodeRecord(bad);
      REQUIRE_FALSE(rec.ok());
    }
  }
}

// With the CRC repaired after each flip, only the field checks stand between hostile
// bytes and the applier: nothing may crash (ASan/UBSan run this in CI), and whatever
// decodes must be canonical.
TEST_CASE("RandomFlipsWithRepairedCrcNeverCrashAndStayCanonical") {
  std::mt19937_64 rng(2);
  int rejected = 0, total = 0;
  for (const Op& op : SampleOpsOfEveryType()) {
    std::string good = Encode(op);
    for (int i = 0; i < 3000; ++i) {
      std::string bad = good;
      int flips = 1 + static_cast<int>(rng() % 3);
      for (int f = 0; f < flips; ++f) {
        // Aim most flips at the header and the small fields, where the structure is.
        size_t span = (rng() % 4 == 0) ? bad.size() : std::min<size_t>(bad.size(), 120);
        size_t at = rng() % span;
        bad[at] = static_cast<char>(rng());
      }
      FixCrc(bad);
      ++total;
      if (!DecodeRecord(bad).ok()) ++rejected;
      CheckCanonical(bad);
    }
  }
  MESSAGE(rejected << " of " << total << " damaged records rejected by field checks");
  // Both outcomes must occur, or the test is not reaching the field checks at all.
  CHECK(rejected > 0);
  CHECK(rejected < total);
}

TEST_CASE("RandomGarbageNeverCrashes") {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    std::string junk(kRecordHeaderSize + rng() % 200, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    StoreLE(junk.data(), static_cast<uint32_t>(rng() % (junk.size() + 8)));
    StoreLE(junk.data() + 8, static_cast<uint16_t>(rng() % (kMaxRecordType + 2)));
    StoreLE(junk.data() + 10, uint16_t{0});
    StoreLE(junk.data() + 12, uint32_t{0});
    FixCrc(junk);
    CheckCanonical(junk);
  }
}

TEST_CASE("HeaderErrorsSayWhichAndWhere") {
  std::string good = Encode(UnlinkOp{"x", {}});

  std::string bad = good;
  StoreLE(bad.data() + 8, uint16_t{999});
  CHECK(DecodeError(bad).find("unknown record type 999 at byte 8") != std::string::npos);

  bad = good;
  StoreLE(bad.data() + 8, uint16_t{0});
  CHECK(DecodeError(bad).find("type 0") != std::string::npos);

  bad = good;
  StoreLE(bad.data(), uint32_t{5000});
  CHECK(DecodeError(bad).find("runs past the end of the buffer") != std::string::npos);

  bad = good;
  StoreLE(bad.data(), uint32_t{12});
  CHECK(DecodeError(bad).find("shorter than the 40-byte header") != std::string::npos);

  auto over = DecodeRecord(Encode(WriteOp{"f", 0, {}, std::string(4096, 'a')}), DecodeLimits{1024});
  REQUIRE_FALSE(over.ok());
  CHECK(over.status().message().find("exceeds the limit of 1024") != std::string::npos);

  bad = good;
  bad[kRecordHeaderSize + 4] ^= 1;  // inside the path bytes
  CHECK(DecodeError(bad).find("CRC mismatch") != std::string::npos);

  bad = good;
  StoreLE(bad.data() + 10, uint16_t{1});
  FixCrc(bad);
  CHECK(DecodeError(bad).find("flags") != std::string::npos);

  CHECK(DecodeError(good.substr(0, 10)).find("header truncated") != std::string::npos);
}

TEST_CASE("PathErrorsSayWhichAndWhere") {
  struct Case {
    std::string path;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"", "path is empty"},
      {"/etc/passwd", "path is absolute"},
      {"a/../b", "'..' component at byte 2"},
      {"..", "'..' component at byte 0"},
      {"a/./b", "'.' component at byte 2"},
      {".", "'.' component"},  // "." is only valid as a node path
      {"a//b", "empty component at byte 2"},
      {"a/", "empty component at byte 2"},
      {std::string("a\0b", 3), "NUL at byte 1"},
      {std::string(kMaxPathBytes + 1, 'p'), "longer than PATH_MAX-1"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.path);
    // The encoder refuses the same paths, with the field named.
    auto enc = EncodeRecord(kMeta, UnlinkOp{c.path, {}});
    REQUIRE_FALSE(enc.ok());
    CHECK(enc.status().message().find("field 'path'") != std::string::npos);
    CHECK(enc.status().message().find(c.expect) != std::string::npos);

    // Hand-build the bytes to reach the decoder: a valid record with the path replaced.
    std::string bytes = Encode(UnlinkOp{"x", {}});
    std::string payload;
    AppendLE(payload, static_cast<uint32_t>(c.path.size()));
    payload += c.path;
    payload.append(12, '\0');  // parent_mtime
    bytes = bytes.substr(0, kRecordHeaderSize) + payload;
    StoreLE(bytes.data(), static_cast<uint32_t>(bytes.size()));
    FixCrc(bytes);
    auto rec = DecodeRecord(bytes, DecodeLimits{1u << 20});
    REQUIRE_FALSE(rec.ok());
    std::string msg = rec.status().message();
    CHECK(msg.find("record (seq 42, unlink)") != std::string::npos);
    if (c.path.size() <= kMaxPathBytes) {
      CHECK(msg.find("field 'path' at byte 40") != std::string::npos);
      CHECK(msg.find(c.expect) != std::string::npos);
    } else {
      CHECK(msg.find("exceeds its limit") != std::string::npos);
    }
  }
  CHECK(CheckNodePath(".").ok());
  CHECK(CheckNodePath("a/b").ok());
  CHECK_FALSE(CheckEntryPath(".").ok());
}

TEST_CASE("FieldRulesRefuseMeaninglessValues") {
  auto refused = [](const Op& op, const std::string& expect) {
    auto enc = EncodeRecord(kMeta, op);
    REQUIRE_FALSE(enc.ok());
    CHECK_MESSAGE(enc.status().message().find(expect) != std::string::npos, enc.status().message());
  };
  refused(CreateOp{"f", S_IFDIR | 0755, 0, 0, {}, {}}, "wrong file type");
  refused(MkdirOp{"d", 0755, 0, 0, {}, {}}, "wrong file type");
  refused(MknodOp{"n", S_IFREG | 0600, 0, 0, 0, {}, {}}, "wrong file type");
  refused(ChmodOp{"f", 010000}, "beyond 07777");
  refused(RenameOp{"a", "b", 4 /* RENAME_WHITEOUT */, {}, {}}, "rename flags");
  refused(FallocateOp{"f", 0x02, 0, 10, {}}, "punch hole");
  refused(FallocateOp{"f", 0x40, 0, 10, {}}, "unknown bits");
  refused(FallocateOp{"f", 0, 0, 0, {}}, "length is 0");
  refused(WriteOp{"f", ~uint64_t{0} - 2, {}, "abc"}, "largest file offset");
  refused(TruncateOp{"f", 0, {0, 1000000000}}, "field 'mtime': nanoseconds");
  refused(UtimensOp{"f", {0, 1000000000}, {}}, "field 'atime'");
  refused(SymlinkOp{"l", 0, 0, {}, {}, ""}, "field 'target': is empty");
  refused(SetxattrOp{"f", "", "v"}, "field 'name': is empty");
  refused(SetxattrOp{"f", "user.x", std::string(kMaxXattrValueBytes + 1, 'v')}, "field 'value'");
  CHECK(EncodeRecord(kMeta, UtimensOp{"f", {0, kTimeOmit}, {0, kTimeOmit}}).ok());
}

TEST_CASE("TrailingBytesInsideTheRecordAreCorruption") {
  std::string bytes = Encode(UnlinkOp{"x", {}});
  bytes += "zz";
  StoreLE(bytes.data(), static_cast<uint32_t>(bytes.size()));
  FixCrc(bytes);
  CHECK(DecodeError(bytes).find("2 trailing bytes") != std::string::npos);
}

TEST_CASE("ZeroedSpaceIsTheEndMarker") {
  CHECK(IsEndMarker(std::string(64, '\0')));
  CHECK(IsEndMarker(std::string(2, '\0')));
  CHECK_FALSE(IsEndMarker(Encode(CheckpointOp{})));
  CHECK_FALSE(DecodeRecord(std::string(64, '\0')).ok());
}

TEST_CASE("SealRestampsAReusedRecord") {
  EncodedRecord rec;
  REQUIRE(rec.Build(TruncateOp{"f", 1, {}}).ok());
  rec.Seal({1, 1, 1});
  std::string first = rec.ToBytes();
  rec.Seal({2, 1, 1});
  auto a = DecodeRecord(first);
  auto b = DecodeRecord(rec.ToBytes());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->meta.seq == 1);
  CHECK(b->meta.seq == 2);
}

TEST_CASE("VoidingIsInvertingTheStoredCrc") {
  for (const Op& op : SampleOpsOfEveryType()) {
    if (std::holds_alternative<VoidOp>(op)) continue;
    std::string bytes = Encode(op);
    std::string voided = bytes;
    StoreLE(voided.data() + kRecordCrcOffset, VoidedCrc(LoadLE<uint32_t>(bytes.data() + kRecordCrcOffset)));
    auto rec = DecodeRecord(voided);
    REQUIRE_MESSAGE(rec.ok(), rec.status().ToString());
    REQUIRE(rec->type() == RecordType::kVoid);
    const auto& v = std::get<VoidOp>(rec->op);
    CHECK(v.original == TypeOf(op));
    CHECK(v.payload == std::string_view(bytes).substr(kRecordHeaderSize));
    CHECK(rec->meta == kMeta);
    // Encoding the VoidOp gives back exactly the voided bytes: voids are canonical too.
    CHECK(Encode(rec->op) == voided);
  }
}

TEST_CASE("AVoidIsNotAWayAroundTheCrc") {
  std::string voided = Encode(VoidOp{RecordType::kWrite, "abc"});
  REQUIRE(DecodeRecord(voided).ok());
  voided[kRecordHeaderSize] ^= 1;  // the payload is opaque, but still checked
  CHECK(DecodeError(voided).find("CRC mismatch") != std::string::npos);
}
