#include "mirrord/record_check.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include "common/crc32c.h"
#include "common/endian.h"
#include "mirrord/tests/test_records.h"

using namespace mirror::d;
using mirror::common::WireError;
using mirror::d::test::OpRec;
using mirror::d::test::WriteRec;
namespace c = mirror::common;

namespace {

IncomingRecordRules Rules(uint64_t expected, uint64_t epoch = 1) {
  IncomingRecordRules r;
  r.expected_seq = expected;
  r.epoch = epoch;
  return r;
}

std::optional<WireError> Code(const std::string& rec, const IncomingRecordRules& rules) {
  uint32_t len = 0;
  auto r = CheckIncomingRecord(rec, rules, &len);
  if (!r) {
    CHECK(len == rec.size());
    return std::nullopt;
  }
  CHECK(r->message.find("record seq") == 0);
  return r->code;
}

std::string Reseal(std::string rec) {
  uint32_t crc = c::crc32c::Mask(c::crc32c::Value(rec.data() + 8, rec.size() - 8));
  c::StoreLE<uint32_t>(rec.data() + 4, crc);
  return rec;
}

}  // namespace

TEST_CASE("RecordCheckAcceptsTheNextRecordAndVoids") {
  CHECK_FALSE(Code(WriteRec(7), Rules(7)));
  std::string voided = WriteRec(7);
  c::StoreLE<uint32_t>(voided.data() + 4, ~c::LoadLE<uint32_t>(voided.data() + 4));
  CHECK_FALSE(Code(voided, Rules(7)));
}

TEST_CASE("RecordCheckCodes") {
  CHECK(Code(WriteRec(8), Rules(7)) == WireError::kSequenceGap);
  CHECK(Code(WriteRec(6), Rules(7)) == WireError::kSequenceGap);
  CHECK(Code(WriteRec(7, 1), Rules(7, 2)) == WireError::kStaleEpoch);
  CHECK(Code(WriteRec(7, 3), Rules(7, 2)) == WireError::kProtocol);
  std::string crc = WriteRec(7);
  crc[45] ^= 0x10;
  CHECK(Code(crc, Rules(7)) == WireError::kBadCrc);
  IncomingRecordRules small = Rules(7);
  small.limits.max_record_bytes = 100;
  CHECK(Code(WriteRec(7, 1, 500), small) == WireError::kOversized);
  std::string type = WriteRec(7);
  c::StoreLE<uint16_t>(type.data() + 8, 0);
  CHECK(Code(Reseal(type), Rules(7)) == WireError::kUnknownType);
  std::string abs_path = OpRec(7, c::UnlinkOp{"xetc", {1, 0}});
  abs_path[44] = '/';
  CHECK(Code(Reseal(abs_path), Rules(7)) == WireError::kEscape);
  std::string dotdot = OpRec(7, c::LinkOp{"a", "b/xx", {1, 0}});
  dotdot.replace(dotdot.find("b/xx"), 4, "b/..");
  CHECK(Code(Reseal(dotdot), Rules(7)) == WireError::kEscape);
  std::string flags = OpRec(7, c::RenameOp{"a", "b", 0, {1, 0}, {1, 0}});
  c::StoreLE<uint32_t>(flags.data() + 40 + 5 + 5, 4);  // RENAME_WHITEOUT
  CHECK(Code(Reseal(flags), Rules(7)) == WireError::kProtocol);
  std::string blk = OpRec(7, c::MknodOp{"b", S_IFBLK | 0600, 0x0801, 0, 0, {1, 0}, {1, 0}});
  CHECK(Code(blk, Rules(7)) == WireError::kDeviceRefused);
  IncomingRecordRules devices = Rules(7);
  devices.allow_devices = true;
  CHECK_FALSE(Code(blk, devices));
  CHECK_FALSE(Code(OpRec(7, c::MknodOp{"p", S_IFIFO | 0600, 0, 0, 0, {1, 0}, {1, 0}}), Rules(7)));
  uint32_t len = 0;
  CHECK(CheckIncomingRecord(WriteRec(7).substr(0, 30), Rules(7), &len)->code ==
        WireError::kProtocol);
  CHECK(CheckIncomingRecord(WriteRec(7).substr(0, 60), Rules(7), &len)->code ==
        WireError::kProtocol);
}

TEST_CASE("RecordCheckBadCrcWinsOverOtherFindings") {
  // A flipped bit in the seq or type is damage, not a gap or an unknown type.
  std::string seq = WriteRec(7);
  seq[16] ^= 0x04;
  CHECK(Code(seq, Rules(7)) == WireError::kBadCrc);
  std::string type = WriteRec(7);
  type[9] ^= 0x40;
  CHECK(Code(type, Rules(7)) == WireError::kBadCrc);
}
