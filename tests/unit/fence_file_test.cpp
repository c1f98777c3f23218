// The fence file and the refusal message it is read from (common/fence_file.h): both ends
// of the format mirrord and mirrorfs share.
#include "common/fence_file.h"

#include <doctest/doctest.h>

#include <filesystem>

#include "tests/unit/test_util.h"

using namespace mirror::common;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;

TEST_CASE("TheFenceMessageCarriesEpochAndSeqBackToTheSource") {
  const std::string message = FenceMessage(3, 1234);
  CHECK(message == "fenced: promoted at epoch 3 (image at seq 1234)");
  // As the source logs it: wrapped in the ERROR's code and quotes.
  FenceInfo info = ParseFenceMessage("mirrord refused: stale-epoch: \"" + message + "\"");
  CHECK(info.epoch == 3);
  CHECK(info.promoted_seq == 1234);
  // An epoch raised by a newer source, not a promote: nothing to read.
  FenceInfo other = ParseFenceMessage("fenced: epoch 1 is older than the stored epoch 2");
  CHECK(other.epoch == 0);
  CHECK(other.promoted_seq == 0);
}

TEST_CASE("AFenceFileRoundTripsAndAMissingOneIsNone") {
  TempDir dir;
  const std::string path = dir / "journal.fenced";
  auto none = ReadFenceFile(path);
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  REQUIRE(WriteFenceFile(path, ParseFenceMessage(FenceMessage(2, 77))).ok());
  auto got = ReadFenceFile(path);
  REQUIRE_MESSAGE(got.ok(), got.status().ToString());
  REQUIRE(got->has_value());
  CHECK((*got)->epoch == 2);
  CHECK((*got)->promoted_seq == 77);
  CHECK((*got)->message == "fenced: promoted at epoch 2 (image at seq 77)");
  CHECK((*got)->time.size() == 20);  // 2026-11-25T13:01:02Z
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_CASE("AFenceFileWithAGuessableSeqIsCorruption") {
  TempDir dir;
  const std::string path = dir / "journal.fenced";
  WriteFileBytes(path, R"({"epoch":2,"promoted_seq":"77"})");
  auto got = ReadFenceFile(path);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == Code::kCorruption);
  CHECK(got.status().message().find("promoted_seq") != std::string::npos);
  WriteFileBytes(path, "not json");
  CHECK(ReadFenceFile(path).status().code() == Code::kCorruption);
}
