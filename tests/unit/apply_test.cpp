#include "common/apply.h"

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

TEST_CASE("SequenceBuildsExpectedTree") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  for (const Op& op : SampleSequence()) ApplyOk(tree, op);
  const std::string d = dir / "d";

  struct stat root = Lstat(dir.path());
  CHECK((root.st_mode & 07777) == 0751);
  CHECK(root.st_uid == kUid);
  CHECK(root.st_gid == kGid);
  CheckMtime(dir.path(), T(1600000019, 1));
  CHECK(Xattr(dir.path(), "user.root") == "r");

  struct stat sd = Lstat(d);
  CHECK(S_ISDIR(sd.st_mode));
  CHECK((sd.st_mode & 07777) == 02750);  // setgid kept, no umask
  CHECK(sd.st_uid == kUid);
  CHECK(sd.st_gid == kGid);
  CheckMtime(d, T(1600000012, 1));  // the rename out of d/old was its last change

  struct stat sf = Lstat(d + "/f");
  CHECK(S_ISREG(sf.st_mode));
  CHECK((sf.st_mode & 07777) == 0604);
  CHECK(sf.st_uid == 4321);
  CHECK(sf.st_gid == kGid);
  CHECK(sf.st_size == 100000);
  CHECK(sf.st_nlink == 2);
  CheckMtime(d + "/f", T(1600000018, 1));
  CHECK(sf.st_atim.tv_sec == 1500000000);
  CHECK(sf.st_atim.tv_nsec == 5);
  std::string content = ReadFileBytes(d + "/f");
  CHECK(content.substr(0, Hello().size()) == std::string(5, '\0') + Hello().substr(5));
  CHECK(content.find_first_not_of('\0', Hello().size()) == std::string::npos);
  CHECK(Xattr(d + "/f", "user.comment") == std::string("a\0b", 3));
  CHECK(Xattr(d + "/f", "user.gone") == "<none>");

  struct stat sh = Lstat(d + "/sub/hard");
  CHECK(sh.st_ino == sf.st_ino);

  struct stat ss = Lstat(d + "/s");
  CHECK(S_ISLNK(ss.st_mode));
  CHECK(ss.st_uid == kUid);
  CHECK(ss.st_gid == kGid);
  CheckMtime(d + "/s", T(1600000007, 71));
  char target[16] = {};
  CHECK(readlink((d + "/s").c_str(), target, sizeof(target)) == 1);
  CHECK(std::string(target) == "f");
  CHECK(Xattr(d + "/s", "trusted.on_link") == "L");
  CHECK(Xattr(d + "/f", "trusted.on_link") == "<none>");  // not the link's target

  struct stat sp = Lstat(d + "/p");
  CHECK(S_ISFIFO(sp.st_mode));
  CHECK((sp.st_mode & 07777) == 0620);
  CHECK(sp.st_uid == kUid);
  CheckMtime(d + "/p", T(1600000009, 91));
  struct stat sk = Lstat(d + "/sock");
  CHECK(S_ISSOCK(sk.st_mode));
  CHECK((sk.st_mode & 07777) == 0600);

  CHECK(ReadFileBytes(d + "/sub/new") == Tail());
  CheckMtime(d + "/sub", T(1600000012, 2));
  CHECK_FALSE(Exists(d + "/old"));
  CHECK_FALSE(Exists(dir / "gone"));
  CHECK_FALSE(Exists(dir / "empty"));
}

TEST_CASE("DataRecordsWriteSparsePunchZeroAndTruncate") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  const std::string f = dir / "f";
  const std::string block(64 * 1024, 'x');
  ApplyOk(tree, CreateOp{"f", S_IFREG | 0644, 0, 0, T(10, 1), T(10, 2)});
  for (uint64_t i = 0; i < 3; ++i) ApplyOk(tree, WriteOp{"f", i * block.size(), T(11, 1), block});
  ApplyOk(tree,
          FallocateOp{"f", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536, 65536, T(12, 7)});
  CheckMtime(f, T(12, 7));
  CHECK(Lstat(f).st_size == 3 * 65536);
  {
    int fd = open(f.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    CHECK(lseek(fd, 0, SEEK_HOLE) == 65536);
    CHECK(lseek(fd, 65536, SEEK_DATA) == 2 * 65536);
    close(fd);
  }
  std::string content = ReadFileBytes(f);
  CHECK(content.substr(0, 65536) == block);
  CHECK(content.substr(65536, 65536) == std::string(65536, '\0'));
  CHECK(content.substr(2 * 65536) == block);

  ApplyOk(tree, FallocateOp{"f", FALLOC_FL_ZERO_RANGE, 10, 5, T(13, 1)});
  content = ReadFileBytes(f);
  CHECK(content.substr(0, 16) == "xxxxxxxxxx" + std::string(5, '\0') + "x");
  CHECK(content.size() == 3 * 65536);

  ApplyOk(tree, FallocateOp{"f", 0, 3 * 65536, 4096, T(14, 1)});  // plain allocate grows
  CHECK(Lstat(f).st_size == 3 * 65536 + 4096);

  ApplyOk(tree, TruncateOp{"f", 12, T(15, 999999999)});
  CHECK(ReadFileBytes(f) == "xxxxxxxxxx" + std::string(2, '\0'));
  CheckMtime(f, T(15, 999999999));
  ApplyOk(tree, WriteOp{"f", 1000, T(16, 1), "end"});  // past EOF: a hole before it
  CHECK(Lstat(f).st_size == 1003);
  CheckMtime(f, T(16, 1));
}

TEST_CASE("NodeCreatingRecordsSetExactModeOwnerAndTimes") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  const mode_t old_umask = umask(0077);  // must not matter
  ApplyOk(tree, MkdirOp{"d", S_IFDIR | 01777, kUid, kGid, T(20, 1), T(20, 2)});
  CheckMtime(dir.path(), T(20, 2));
  ApplyOk(tree, CreateOp{"d/suid", S_IFREG | 06755, kUid, kGid, T(21, 1), T(21, 2)});
  umask(old_umask);
  struct stat st = Lstat(dir / "d/suid");
  CHECK((st.st_mode & 07777) == 06755);  // chown first: it would clear setuid/setgid
  CHECK(st.st_uid == kUid);
  CHECK(st.st_gid == kGid);
  CHECK(st.st_size == 0);
  CheckMtime(dir / "d/suid", T(21, 1));
  CheckMtime(dir / "d", T(21, 2));
  CHECK((Lstat(dir / "d").st_mode & 07777) == 01777);
}

TEST_CASE("PosixAclTravelsAsXattr") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  ApplyOk(tree, CreateOp{"f", S_IFREG | 0600, 0, 0, T(1, 1), T(1, 2)});
  // version 2; entries {tag, perm, id}: USER_OBJ rw, USER 1234 r, GROUP_OBJ r, MASK r-x, OTHER 0
  std::string acl;
  auto put32 = [&acl](uint32_t v) {
    for (int i = 0; i < 4; ++i) acl.push_back(static_cast<char>(v >> (8 * i)));
  };
  auto entry = [&](uint16_t tag, uint16_t perm, uint32_t id) {
    acl.push_back(static_cast<char>(tag));
    acl.push_back(static_cast<char>(tag >> 8));
    acl.push_back(static_cast<char>(perm));
    acl.push_back(static_cast<char>(perm >> 8));
    put32(id);
  };
  put32(2);
  entry(0x01, 6, 0xffffffffu);
  entry(0x02, 4, kUid);
  entry(0x04, 4, 0xffffffffu);
  entry(0x10, 5, 0xffffffffu);
  entry(0x20, 0, 0xffffffffu);
  Status st = tree.Apply(SetxattrOp{"f", "system.posix_acl_access", acl}, {});
  if (st.error_number() == EOPNOTSUPP) {
    MESSAGE("no POSIX ACLs on this filesystem; skipped");
    return;
  }
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(Xattr(dir / "f", "system.posix_acl_access") == acl);
  CHECK((Lstat(dir / "f").st_mode & 0777) == 0650);  // the mask is the group class
  ApplyOk(tree, RemovexattrOp{"f", "system.posix_acl_access"});
  CHECK(Xattr(dir / "f", "system.posix_acl_access") == "<none>");
}

TEST_CASE("RenameNoReplaceExchangeAndParentMtimes") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  ApplyOk(tree, MkdirOp{"a", S_IFDIR | 0755, 0, 0, T(1, 1), T(1, 2)});
  ApplyOk(tree, MkdirOp{"b", S_IFDIR | 0755, 0, 0, T(1, 1), T(1, 2)});
  ApplyOk(tree, CreateOp{"a/x", S_IFREG | 0644, 0, 0, T(2, 1), T(2, 2)});
  ApplyOk(tree, WriteOp{"a/x", 0, T(2, 3), "X"});
  ApplyOk(tree, CreateOp{"b/y", S_IFREG | 0644, 0, 0, T(3, 1), T(3, 2)});
  ApplyOk(tree, WriteOp{"b/y", 0, T(3, 3), "Y"});

  Status st = tree.Apply(RenameOp{"a/x", "b/y", kRenameNoReplace, T(4, 1), T(4, 2)}, {});
  CHECK(st.code() == Code::kAlreadyExists);
  CHECK(st.error_number() == EEXIST);
  CHECK(st.message().find("a/x") != std::string::npos);
  CHECK(ReadFileBytes(dir / "a/x") == "X");
  CHECK(ReadFileBytes(dir / "b/y") == "Y");

  ApplyOk(tree, RenameOp{"a/x", "b/y", kRenameExchange, T(5, 1), T(5, 2)});
  CHECK(ReadFileBytes(dir / "a/x") == "Y");
  CHECK(ReadFileBytes(dir / "b/y") == "X");
  CheckMtime(dir / "a", T(5, 1));
  CheckMtime(dir / "b", T(5, 2));

  ApplyOk(tree, RenameOp{"a/x", "b/z", kRenameNoReplace, T(6, 1), T(6, 2)});
  CHECK(ReadFileBytes(dir / "b/z") == "Y");
  CHECK_FALSE(Exists(dir / "a/x"));
  CheckMtime(dir / "a", T(6, 1));
  CheckMtime(dir / "b", T(6, 2));

  // Same directory: the new parent's time is set last and wins.
  ApplyOk(tree, RenameOp{"b/z", "b/y", 0, T(7, 1), T(7, 2)});
  CHECK(ReadFileBytes(dir / "b/y") == "Y");
  CheckMtime(dir / "b", T(7, 2));

  ApplyOk(tree, UnlinkOp{"b/y", T(8, 1)});
  CHECK_FALSE(Exists(dir / "b/y"));
  CheckMtime(dir / "b", T(8, 1));
  ApplyOk(tree, RmdirOp{"a", T(9, 1)});
  CHECK_FALSE(Exists(dir / "a"));
  CheckMtime(dir.path(), T(9, 1));
}

TEST_CASE("ChmodOnSymlinkIsRefusedChownAndTimesActOnTheLink") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  ApplyOk(tree, CreateOp{"f", S_IFREG | 0644, 0, 0, T(1, 1), T(1, 2)});
  ApplyOk(tree, SymlinkOp{"s", 0, 0, T(2, 1), T(2, 2), "f"});
  Status st = tree.Apply(ChmodOp{"s", 0600}, {});
  CHECK(st.code() == Code::kPermissionDenied);
  CHECK(st.message() == "path 's' is a symlink; chmod refused");
  ApplyOk(tree, ChownOp{"s", kUid, kGid, 0600});
  ApplyOk(tree, UtimensOp{"s", T(3, 1), T(3, 2)});
  CHECK(Lstat(dir / "s").st_uid == kUid);
  CheckMtime(dir / "s", T(3, 2));
  struct stat target = Lstat(dir / "f");
  CHECK(target.st_uid == 0);
  CHECK((target.st_mode & 07777) == 0644);
  CheckMtime(dir / "f", T(1, 1));
}

TEST_CASE("DeviceNodesNeedAllowDevices") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  const MknodOp chr{"null", S_IFCHR | 0666, makedev(1, 3), 0, 0, T(1, 1), T(1, 2)};
  const MknodOp blk{"disk", S_IFBLK | 0600, makedev(7, 0), 0, 0, T(1, 1), T(1, 2)};
  for (const MknodOp& op : {chr, blk}) {
    Status st = tree.Apply(op, {});
    CHECK(st.code() == Code::kPermissionDenied);
    CHECK(st.message().find("device node not allowed for this source") != std::string::npos);
    CHECK_FALSE(Exists(dir / std::string(op.path)));
  }
  ApplyOptions allow;
  allow.allow_devices = true;
  Status st = tree.Apply(chr, allow);
  if (st.error_number() == EPERM) {
    MESSAGE("no CAP_MKNOD here; the allowed case is skipped");
    return;
  }
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  struct stat s = Lstat(dir / "null");
  CHECK(S_ISCHR(s.st_mode));
  CHECK(s.st_rdev == makedev(1, 3));
  CHECK((s.st_mode & 07777) == 0666);
}

TEST_CASE("DecodedRecordsApplyLikeOps") {
  TempDir direct, decoded;
  ImageTree a = OpenTree(direct.path()), b = OpenTree(decoded.path());
  uint64_t seq = 0;
  for (const Op& op : SampleSequence()) {
    ApplyOk(a, op);
    Result<std::string> bytes = EncodeRecord(RecordMeta{++seq, 1, 0}, op);
    REQUIRE(bytes.ok());
    Result<Record> rec = DecodeRecord(*bytes);
    REQUIRE(rec.ok());
    Status st = b.Apply(*rec, {});
    REQUIRE_MESSAGE(st.ok(), st.ToString());
  }
  std::string diff = FirstDifference(SnapshotTree(direct.path()), SnapshotTree(decoded.path()));
  CHECK_MESSAGE(diff.empty(), diff);
}

TEST_CASE("RecordErrorsNameSeqTypeAndPath") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  Record rec{RecordMeta{42, 1, 0}, WriteOp{"no/such/file", 0, T(1, 1), "x"}};
  Status st = tree.Apply(rec, {});
  CHECK(st.code() == Code::kNotFound);
  CHECK(st.error_number() == ENOENT);
  CHECK(st.message().rfind("record seq 42 (write): path 'no/such/file': component 'no'", 0) == 0);
}

TEST_CASE("RefusedKindsAndMalformedOps") {
  TempDir dir;
  ImageTree tree = OpenTree(dir.path());
  CHECK(tree.Apply(CreateOp{"f", S_IFDIR | 0644, 0, 0, T(1, 1), T(1, 2)}, {}).code() ==
        Code::kInvalidArgument);
  CHECK(tree.Apply(MknodOp{"f", S_IFREG | 0644, 0, 0, 0, T(1, 1), T(1, 2)}, {}).code() ==
        Code::kInvalidArgument);
  CHECK(tree.Apply(RenameOp{"a", "b", 4 /* RENAME_WHITEOUT */, T(1, 1), T(1, 2)}, {}).code() ==
        Code::kInvalidArgument);
  CHECK(
      tree.Apply(SymlinkOp{"s", 0, 0, T(1, 1), T(1, 2), std::string_view("a\0b", 3)}, {}).code() ==
      Code::kInvalidArgument);
  CHECK_FALSE(Exists(dir / "f"));
  CHECK_FALSE(Exists(dir / "s"));
  CHECK(ImageTree::Open(dir / "none").status().code() == Code::kNotFound);
  ApplyOk(tree, CreateOp{"file", S_IFREG | 0644, 0, 0, T(1, 1), T(1, 2)});
  CHECK_FALSE(ImageTree::Open(dir / "file").ok());
  CHECK(tree.Sync().ok());
}
