// common/file_replace.h: a replaced file holds the new content whole, no temporary file
// is left, and a failure names its step and leaves the old file.
#include "common/file_replace.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/unit/test_util.h"

using namespace mirror::common;
using mirror::test::ReadFileBytes;
using mirror::test::TempDir;

TEST_CASE("ReplaceFileSwapsTheWholeContentAndLeavesNoTemporary") {
  TempDir dir;
  const std::string path = dir / "state";
  REQUIRE(ReplaceFile(path, "first\n").ok());
  REQUIRE(ReplaceFile(path, "second, longer\n").ok());
  CHECK(ReadFileBytes(path) == "second, longer\n");
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(SyncDirectory(dir.path()).ok());
}

TEST_CASE("ReplaceFileThatCannotRenameKeepsTheOldFile") {
  TempDir dir;
  const std::string path = dir / "target";
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);  // a directory cannot be renamed over
  REQUIRE(::mkdir((path + "/x").c_str(), 0700) == 0);
  Status s = ReplaceFile(path, "data");
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("rename") != std::string::npos);
  CHECK(std::filesystem::is_directory(path));
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  CHECK_FALSE(SyncDirectory(dir / "missing").ok());
}
