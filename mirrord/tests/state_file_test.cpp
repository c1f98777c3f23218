#include "mirrord/state_file.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "tests/unit/test_util.h"

using namespace mirror::d;
using mirror::common::Code;
using mirror::test::ReadFileBytes;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;

namespace {

SourceState Sample() {
  SourceState s;
  s.source_id = "s1";
  s.volume_id = "vol-a";
  s.epoch = 3;
  s.applied_seq = 1200;
  s.replay_through = 1250;
  s.promoted = false;
  return s;
}

void Replace(std::string& text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("StateFileRoundTrips") {
  TempDir dir;
  REQUIRE(WriteStateFile(dir / "state", Sample()).ok());
  auto got = ReadStateFile(dir / "state");
  REQUIRE_MESSAGE(got.ok(), got.status().ToString());
  CHECK(*got == Sample());
  CHECK_FALSE(std::filesystem::exists(dir / "state.tmp"));
  // Human-readable on purpose.
  CHECK(ReadFileBytes(dir / "state").find("\"applied_seq\":1200") != std::string::npos);
}

TEST_CASE("StateFileReplaceKeepsOnlyTheNewState") {
  TempDir dir;
  REQUIRE(WriteStateFile(dir / "state", Sample()).ok());
  SourceState next = Sample();
  next.applied_seq = 1250;
  next.epoch = 4;
  next.promoted = true;
  next.promoted_seq = 1250;
  REQUIRE(WriteStateFile(dir / "state", next).ok());
  auto got = ReadStateFile(dir / "state");
  REQUIRE(got.ok());
  CHECK(*got == next);
  CHECK(ReadFileBytes(dir / "state").find("\"promoted\":true,\"promoted_seq\":1250,") !=
        std::string::npos);
}

TEST_CASE("StateFileOfAPromotedStoreWithoutItsSeqIsRefused") {
  TempDir dir;
  SourceState promoted = Sample();
  promoted.promoted = true;
  promoted.promoted_seq = 1200;
  REQUIRE(WriteStateFile(dir / "state", promoted).ok());
  std::string text = ReadFileBytes(dir / "state");
  Replace(text, "\"promoted_seq\":1200,", "");
  WriteFileBytes(dir / "state", text);
  auto got = ReadStateFile(dir / "state");
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().message().find("promoted_seq") != std::string::npos);
}

TEST_CASE("StateFileMissingIsNotFound") {
  TempDir dir;
  CHECK(ReadStateFile(dir / "state").status().code() == Code::kNotFound);
}

TEST_CASE("StateFileChangedValueFailsItsCrc") {
  TempDir dir;
  REQUIRE(WriteStateFile(dir / "state", Sample()).ok());
  std::string text = ReadFileBytes(dir / "state");
  Replace(text, "\"applied_seq\":1200", "\"applied_seq\":1300");
  WriteFileBytes(dir / "state", text);
  auto got = ReadStateFile(dir / "state");
  CHECK(got.status().code() == Code::kCorruption);
  CHECK(got.status().message().find("CRC") != std::string::npos);
}

TEST_CASE("StateFileTruncatedOrGarbageIsCorruption") {
  TempDir dir;
  REQUIRE(WriteStateFile(dir / "state", Sample()).ok());
  std::string text = ReadFileBytes(dir / "state");
  WriteFileBytes(dir / "state", text.substr(0, text.size() / 2));
  CHECK(ReadStateFile(dir / "state").status().code() == Code::kCorruption);
  WriteFileBytes(dir / "state", "");
  CHECK(ReadStateFile(dir / "state").status().code() == Code::kCorruption);
  WriteFileBytes(dir / "state", "[1,2]");
  CHECK(ReadStateFile(dir / "state").status().code() == Code::kCorruption);
}

TEST_CASE("StateFileMissingOrMistypedFieldIsNamed") {
  TempDir dir;
  REQUIRE(WriteStateFile(dir / "state", Sample()).ok());
  std::string text = ReadFileBytes(dir / "state");
  std::string mistyped = text;
  Replace(mistyped, "\"epoch\":3", "\"epoch\":\"3\"");
  WriteFileBytes(dir / "state", mistyped);
  auto got = ReadStateFile(dir / "state");
  CHECK(got.status().code() == Code::kCorruption);
  CHECK(got.status().message().find("'epoch'") != std::string::npos);
}

TEST_CASE("StateFileOtherVersionIsMismatch") {
  TempDir dir;
  REQUIRE(WriteStateFile(dir / "state", Sample()).ok());
  std::string text = ReadFileBytes(dir / "state");
  Replace(text, "\"version\":1", "\"version\":2");
  WriteFileBytes(dir / "state", text);
  CHECK(ReadStateFile(dir / "state").status().code() == Code::kMismatch);
}

TEST_CASE("StateFileResyncKeysRoundTripAndAreWrittenOnlyWhileActive") {
  TempDir dir;
  SourceState active = Sample();
  active.resync_active = true;
  active.resync_until = 1300;
  REQUIRE(WriteStateFile(dir / "state", active).ok());
  const std::string text = ReadFileBytes(dir / "state");
  CHECK(text.find("\"promoted\":false,\"resync_active\":true,\"resync_until\":1300,\"crc32c\":") !=
        std::string::npos);
  auto got = ReadStateFile(dir / "state");
  REQUIRE_MESSAGE(got.ok(), got.status().ToString());
  CHECK(*got == active);
  // The CRC covers them.
  std::string changed = text;
  Replace(changed, "\"resync_until\":1300", "\"resync_until\":1301");
  WriteFileBytes(dir / "state", changed);
  CHECK(ReadStateFile(dir / "state").status().message().find("CRC") != std::string::npos);
  // Both or neither.
  std::string half = text;
  Replace(half, ",\"resync_until\":1300", "");
  WriteFileBytes(dir / "state", half);
  auto bad = ReadStateFile(dir / "state");
  CHECK(bad.status().code() == Code::kCorruption);
  CHECK(bad.status().message().find("'resync_until'") != std::string::npos);

  // Not active: the file is exactly what a version without resync wrote (9 keys), and
  // such a file reads as not resyncing.
  REQUIRE(WriteStateFile(dir / "state", Sample()).ok());
  const std::string plain = ReadFileBytes(dir / "state");
  CHECK(plain.find("resync") == std::string::npos);
  CHECK(plain.rfind("{\"format\":\"mirrord-state\",\"version\":1,\"source_id\":\"s1\",", 0) == 0);
  got = ReadStateFile(dir / "state");
  REQUIRE(got.ok());
  CHECK_FALSE(got->resync_active);
  CHECK(got->resync_until == 0);
}

TEST_CASE("StateFileOfAnAdoptedStoreKeepsTheFlagAndOnlyWhileTrue") {
  TempDir dir;
  SourceState adopted = Sample();
  adopted.resync_active = true;
  adopted.adopted = true;
  REQUIRE(WriteStateFile(dir / "state", adopted).ok());
  auto got = ReadStateFile(dir / "state");
  REQUIRE_MESSAGE(got.ok(), got.status().ToString());
  CHECK(*got == adopted);
  CHECK(ReadFileBytes(dir / "state").find("\"adopted\":true") != std::string::npos);
  REQUIRE(WriteStateFile(dir / "state", Sample()).ok());
  CHECK(ReadFileBytes(dir / "state").find("adopted") == std::string::npos);
}
