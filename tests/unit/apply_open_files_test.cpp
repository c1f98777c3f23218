// ImageTree keeps the files that data records opened (common/apply_open_files.h): a run
// of writes to one file opens it once, and no kept file ever receives a write meant for
// whatever took its name later.
#include <doctest/doctest.h>

#include <string>

#include "common/apply.h"
#include "common/record.h"
#include "tests/unit/apply_samples.h"
#include "tests/unit/test_util.h"

using namespace mirror::common;
using namespace mirror::test::apply;
using mirror::test::ReadFileBytes;
using mirror::test::TempDir;

namespace {

CreateOp Create(std::string_view path) {
  CreateOp op;
  op.path = path;
  op.mode = S_IFREG | 0644;
  op.mtime = op.parent_mtime = T(1600000000, 0);
  return op;
}

WriteOp Write(std::string_view path, uint64_t offset, std::string_view data) {
  WriteOp op;
  op.path = path;
  op.offset = offset;
  op.data = data;
  op.mtime = T(1600000001, 5);
  return op;
}

}  // namespace

TEST_CASE("WritesToOneFileOpenItOnce") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  ApplyOk(tree, Create("f"));
  ApplyOk(tree, Write("f", 0, "aaaa"));
  ApplyOk(tree, Write("f", 4, "bbbb"));
  ApplyOk(tree, Write("f", 2, "cc"));
  CHECK(tree.open_files() == 1);
  CHECK(ReadFileBytes(dir / "f") == "aaccbbbb");
  CheckMtime(dir / "f", T(1600000001, 5));
  REQUIRE(tree.Sync().ok());
  CHECK(tree.open_files() == 0);
}

TEST_CASE("WritesAfterANameChangeReachTheFileNowAtThatName") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  ApplyOk(tree, Create("f"));
  ApplyOk(tree, Write("f", 0, "old"));
  SUBCASE("rename away, then create again") {
    RenameOp rename;
    rename.path = "f";
    rename.new_path = "g";
    ApplyOk(tree, rename);
    CHECK(tree.open_files() == 0);
    ApplyOk(tree, Create("f"));
    ApplyOk(tree, Write("f", 0, "new"));
    CHECK(ReadFileBytes(dir / "g") == "old");
  }
  SUBCASE("unlink, then create again") {
    UnlinkOp unlink;
    unlink.path = "f";
    ApplyOk(tree, unlink);
    ApplyOk(tree, Create("f"));
    ApplyOk(tree, Write("f", 0, "new"));
  }
  SUBCASE("exchange with another file") {
    ApplyOk(tree, Create("g"));
    RenameOp exchange;
    exchange.path = "f";
    exchange.new_path = "g";
    exchange.flags = kRenameExchange;
    ApplyOk(tree, exchange);
    ApplyOk(tree, Write("f", 0, "new"));
    CHECK(ReadFileBytes(dir / "g") == "old");
  }
  CHECK(ReadFileBytes(dir / "f") == "new");
}

TEST_CASE("AFailedRecordClosesTheFiles") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  ApplyOk(tree, Create("f"));
  ApplyOk(tree, Write("f", 0, "x"));
  REQUIRE(tree.open_files() == 1);
  CHECK_FALSE(tree.Apply(Write("missing", 0, "x"), ApplyOptions{}).ok());
  CHECK(tree.open_files() == 0);
}

TEST_CASE("TheOldestFileIsClosedWhenTheLimitIsReached") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  std::vector<std::string> names;
  for (size_t i = 0; i <= OpenFiles::kMaxFiles; ++i) names.push_back("f" + std::to_string(i));
  for (const std::string& n : names) {
    ApplyOk(tree, Create(n));
    ApplyOk(tree, Write(n, 0, n));  // create closes every kept file; the write keeps one
  }
  CHECK(tree.open_files() == 1);
  for (const std::string& n : names) ApplyOk(tree, Write(n, 0, n + n));
  CHECK(tree.open_files() == OpenFiles::kMaxFiles);
  for (const std::string& n : names) CHECK(ReadFileBytes(dir / n) == n + n);
}
