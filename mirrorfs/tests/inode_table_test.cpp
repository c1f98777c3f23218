#include "mirrorfs/inode_table.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <string>

#include "tests/unit/test_util.h"

using mirror::common::UniqueFd;
using namespace mirror::fs;

namespace {

struct Opened {
  UniqueFd fd;
  struct stat st;
};

Opened OpenPath(const std::string& path) {
  Opened o{UniqueFd(open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC)), {}};
  REQUIRE(o.fd);
  REQUIRE(fstatat(o.fd.get(), "", &o.st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0);
  return o;
}

InodeNumber Add(InodeTable& t, const std::string& path, InodeNumber parent, const char* name) {
  Opened o = OpenPath(path);
  return t.AddLookup(std::move(o.fd), o.st, parent, name);
}

}  // namespace

TEST_CASE("PathOfWalksRecordedNamesToTheRoot") {
  mirror::test::TempDir dir;
  REQUIRE(mkdir((dir / "a").c_str(), 0755) == 0);
  REQUIRE(mkdir((dir / "a/b").c_str(), 0755) == 0);
  mirror::test::WriteFileBytes(dir / "a/b/f", "x");
  Opened root = OpenPath(dir.path());
  InodeTable t(std::move(root.fd), root.st);
  CHECK(*t.PathOf(kRootInode) == ".");
  InodeNumber a = Add(t, dir / "a", kRootInode, "a");
  InodeNumber b = Add(t, dir / "a/b", a, "b");
  InodeNumber f = Add(t, dir / "a/b/f", b, "f");
  CHECK(*t.PathOf(f) == "a/b/f");
  // A rename moves the name; the path follows.
  t.RemoveName(t.Get(f).dev, t.Get(f).ino, b, "f");
  t.AddName(t.Get(f).dev, t.Get(f).ino, a, "g");
  CHECK(*t.PathOf(f) == "a/g");
  // Unlinked: no name left.
  t.RemoveName(t.Get(f).dev, t.Get(f).ino, a, "g");
  CHECK(!t.PathOf(f).ok());
}

TEST_CASE("SameBackingInodeIsOneEntryAndForgetDropsIt") {
  mirror::test::TempDir dir;
  mirror::test::WriteFileBytes(dir / "f", "x");
  REQUIRE(link((dir / "f").c_str(), (dir / "h").c_str()) == 0);
  Opened root = OpenPath(dir.path());
  InodeTable t(std::move(root.fd), root.st);
  InodeNumber f = Add(t, dir / "f", kRootInode, "f");
  InodeNumber h = Add(t, dir / "h", kRootInode, "h");
  CHECK(f == h);
  CHECK(t.Get(f).nlookup.load() == 2);
  CHECK(t.size() == 2);  // root + the file
  // Either hard link names the inode.
  std::string p = *t.PathOf(f);
  CHECK((p == "f" || p == "h"));
  t.Forget(f, 1);
  CHECK(t.size() == 2);
  t.Forget(f, 1);
  CHECK(t.size() == 1);
  InodeNumber again = Add(t, dir / "f", kRootInode, "f");
  CHECK(t.Get(again).nlookup.load() == 1);
}

TEST_CASE("NameUnderForgottenParentIsNotUsed") {
  mirror::test::TempDir dir;
  REQUIRE(mkdir((dir / "d").c_str(), 0755) == 0);
  mirror::test::WriteFileBytes(dir / "d/f", "x");
  REQUIRE(link((dir / "d/f").c_str(), (dir / "top").c_str()) == 0);
  Opened root = OpenPath(dir.path());
  InodeTable t(std::move(root.fd), root.st);
  InodeNumber d = Add(t, dir / "d", kRootInode, "d");
  InodeNumber f = Add(t, dir / "d/f", d, "f");
  t.AddName(t.Get(f).dev, t.Get(f).ino, kRootInode, "top");
  t.Forget(d, 1);
  CHECK(*t.PathOf(f) == "top");
  auto name = t.AnyNameOf(f);
  REQUIRE(name.ok());
  CHECK(name->first == kRootInode);
  CHECK(name->second == "top");
}
