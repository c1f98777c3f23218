// Replay (invariant 5): "already done" answers are errors in strict mode and harmless
// in replay mode; a sequence replayed after a crash converges to the tree of once.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/apply.h"
#include "common/record.h"
#include "tests/unit/apply_samples.h"
#include "tests/unit/test_util.h"
#include "tests/unit/tree_snapshot.h"

using namespace mirror::common;
using namespace mirror::test::apply;
using mirror::test::FirstDifference;
using mirror::test::ReadFileBytes;
using mirror::test::SnapshotTree;
using mirror::test::TempDir;

TEST_CASE("StrictModeReportsRepeatsWithTheirCodes") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  ApplyOk(tree, MkdirOp{"d", S_IFDIR | 0755, 0, 0, T(1, 1), T(1, 2)});
  ApplyOk(tree, CreateOp{"d/f", S_IFREG | 0644, 0, 0, T(1, 1), T(1, 2)});
  ApplyOk(tree, SymlinkOp{"d/s", 0, 0, T(1, 1), T(1, 2), "f"});
  ApplyOk(tree, LinkOp{"d/f", "d/h", T(1, 3)});
  ApplyOk(tree, MknodOp{"d/p", S_IFIFO | 0600, 0, 0, 0, T(1, 1), T(1, 2)});
  struct Case {
    Op op;
    Code code;
  };
  const std::vector<Case> cases = {
      {MkdirOp{"d", S_IFDIR | 0755, 0, 0, T(1, 1), T(1, 2)}, Code::kAlreadyExists},
      {CreateOp{"d/f", S_IFREG | 0644, 0, 0, T(1, 1), T(1, 2)}, Code::kAlreadyExists},
      {SymlinkOp{"d/s", 0, 0, T(1, 1), T(1, 2), "f"}, Code::kAlreadyExists},
      {MknodOp{"d/p", S_IFIFO | 0600, 0, 0, 0, T(1, 1), T(1, 2)}, Code::kAlreadyExists},
      {LinkOp{"d/f", "d/h", T(1, 3)}, Code::kAlreadyExists},
      {UnlinkOp{"d/missing", T(1, 1)}, Code::kNotFound},
      {RmdirOp{"d/missing", T(1, 1)}, Code::kNotFound},
      {RenameOp{"d/missing", "d/f", 0, T(1, 1), T(1, 2)}, Code::kNotFound},
      {RemovexattrOp{"d/f", "user.none"}, Code::kNotFound},
      {WriteOp{"d/missing", 0, T(1, 1), "x"}, Code::kNotFound},
      {TruncateOp{"d/missing", 0, T(1, 1)}, Code::kNotFound},
      {FallocateOp{"d/missing", 0, 0, 1, T(1, 1)}, Code::kNotFound},
      {ChmodOp{"d/missing", 0600}, Code::kNotFound},
      {ChownOp{"d/missing", 1, 1, 0600}, Code::kNotFound},
      {UtimensOp{"d/missing", T(1, 1), T(1, 1)}, Code::kNotFound},
      {SetxattrOp{"d/missing", "user.x", "v"}, Code::kNotFound},
      {CreateOp{"gone/f", S_IFREG | 0644, 0, 0, T(1, 1), T(1, 2)}, Code::kNotFound},
  };
  for (const Case& c : cases) {
    Status strict = tree.Apply(c.op, {});
    CHECK_MESSAGE(strict.code() == c.code, RecordTypeName(TypeOf(c.op))
                                               << ": " << strict.ToString());
    ApplyOptions replay;
    replay.replay = true;
    Status replayed = tree.Apply(c.op, replay);
    CHECK_MESSAGE(replayed.ok(), RecordTypeName(TypeOf(c.op)) << ": " << replayed.ToString());
  }
}

TEST_CASE("ReplayKeepsContentAndReplacesOtherSymlinkTarget") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  ApplyOptions replay;
  replay.replay = true;
  const CreateOp create{"f", S_IFREG | 0640, kUid, kGid, T(1, 1), T(1, 2)};
  ApplyOk(tree, create);
  ApplyOk(tree, WriteOp{"f", 0, T(2, 1), "kept"});
  ApplyOk(tree, ChmodOp{"f", 0600});
  ApplyOk(tree, create, replay);
  CHECK(ReadFileBytes(dir / "f") == "kept");  // no truncation
  CHECK((Lstat(dir / "f").st_mode & 07777) == 0640);
  CheckMtime(dir / "f", T(1, 1));
  CheckMtime(dir.path(), T(1, 2));

  ApplyOk(tree, SymlinkOp{"s", 0, 0, T(3, 1), T(3, 2), "elsewhere"});
  ApplyOk(tree, SymlinkOp{"s", kUid, kGid, T(4, 1), T(4, 2), "f"}, replay);
  CHECK(std::filesystem::read_symlink(dir / "s") == "f");
  CHECK(Lstat(dir / "s").st_uid == kUid);

  // Another kind of node in place is still an error in replay mode.
  Status st = tree.Apply(MkdirOp{"f", S_IFDIR | 0755, 0, 0, T(5, 1), T(5, 2)}, replay);
  CHECK(st.code() == Code::kAlreadyExists);
  st = tree.Apply(SymlinkOp{"f", 0, 0, T(5, 1), T(5, 2), "x"}, replay);
  CHECK(st.code() == Code::kAlreadyExists);
  CHECK(ReadFileBytes(dir / "f") == "kept");
}

TEST_CASE("ReplayTwiceGivesTheTreeOfOnce") {
  TempDir once, twice;
  ImageTree a = OpenTree(once.path()), b = OpenTree(twice.path());
  ApplyOptions replay;
  replay.replay = true;
  for (const Op& op : SampleSequence()) ApplyOk(a, op);
  for (int round = 0; round < 2; ++round) {
    for (const Op& op : SampleSequence()) ApplyOk(b, op, replay);
  }
  std::string diff = FirstDifference(SnapshotTree(once.path()), SnapshotTree(twice.path()));
  CHECK_MESSAGE(diff.empty(), diff);

  // The same second pass in strict mode reports the repeats.
  int errors = 0;
  for (const Op& op : SampleSequence()) errors += a.Apply(op, {}).ok() ? 0 : 1;
  CHECK(errors > 5);
}

// A crash after any record: the applier stored its applied seq at the last record
// that IsReplaySafe() calls unsafe (and at the start); everything after is replayed.
TEST_CASE("ReplayAfterACrashAtEveryRecordConverges") {
  const std::vector<Op> ops = SampleSequence();
  TempDir reference;
  {
    ImageTree tree = OpenTree(reference.path());
    for (const Op& op : ops) ApplyOk(tree, op);
  }
  const mirror::test::TreeSnapshot want = SnapshotTree(reference.path());
  ApplyOptions replay;
  replay.replay = true;
  for (size_t crash = 0; crash <= ops.size(); ++crash) {
    CAPTURE(crash);
    TempDir dir;
    ImageTree tree = OpenTree(dir.path());
    size_t stored = 0;
    for (size_t i = 0; i < crash; ++i) {
      ApplyOk(tree, ops[i]);
      if (!IsReplaySafe(ops[i])) stored = i + 1;
    }
    for (size_t i = stored; i < ops.size(); ++i) ApplyOk(tree, ops[i], replay);
    std::string diff = FirstDifference(want, SnapshotTree(dir.path()));
    CHECK_MESSAGE(diff.empty(), diff);
  }
}
