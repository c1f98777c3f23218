// Shared by the apply tests: small checks on the image and a sample sequence of
// records that touches every record type.
#pragma once

#include <doctest/doctest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/apply.h"
#include "common/record.h"

namespace mirror::test::apply {

using namespace mirror::common;

inline constexpr uint32_t kUid = 1234, kGid = 5678;

inline Timespec T(int64_t sec, uint32_t nsec) { return Timespec{sec, nsec}; }

inline struct stat Lstat(const std::string& path) {
  struct stat st {};
  REQUIRE_MESSAGE(lstat(path.c_str(), &st) == 0, "lstat " << path);
  return st;
}

inline bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

inline void CheckMtime(const std::string& path, Timespec want) {
  struct stat st = Lstat(path);
  CHECK_MESSAGE(st.st_mtim.tv_sec == want.sec, path);
  CHECK_MESSAGE(st.st_mtim.tv_nsec == static_cast<long>(want.nsec), path);
}

inline std::string Xattr(const std::string& path, const char* name) {
  char buf[4096];
  ssize_t n = lgetxattr(path.c_str(), name, buf, sizeof(buf));
  if (n < 0) return "<none>";
  return std::string(buf, static_cast<size_t>(n));
}

inline void ApplyOk(ImageTree& tree, const Op& op, const ApplyOptions& options = {}) {
  Status st = tree.Apply(op, options);
  REQUIRE_MESSAGE(st.ok(), RecordTypeName(TypeOf(op)) << ": " << st.ToString());
}

inline ImageTree OpenTree(const std::string& root) {
  Result<ImageTree> tree = ImageTree::Open(root);
  REQUIRE_MESSAGE(tree.ok(), tree.status().ToString());
  return std::move(tree).value();
}

// The data the sample sequence writes; the ops' views point here.
inline const std::string& Hello() {
  static const std::string s = "hello, mirrored world";
  return s;
}
inline const std::string& Tail() {
  static const std::string s = "tail";
  return s;
}

// A sequence that touches every kind of record, with no name reused after a rename
// (see apply.h, IsReplaySafe). Used for the codec round trip and the replay tests.
inline std::vector<Op> SampleSequence() {
  return {
      ChmodOp{".", 0751},
      MkdirOp{"d", S_IFDIR | 02750, kUid, kGid, T(1600000001, 11), T(1600000001, 12)},
      MkdirOp{"d/sub", S_IFDIR | 0700, kUid, kGid, T(1600000002, 21), T(1600000002, 22)},
      CreateOp{"d/f", S_IFREG | 0640, kUid, kGid, T(1600000003, 31), T(1600000003, 32)},
      WriteOp{"d/f", 0, T(1600000004, 41), Hello()},
      WriteOp{"d/f", 1 << 20, T(1600000005, 51), Tail()},
      FallocateOp{"d/f", FALLOC_FL_ZERO_RANGE, 0, 5, T(1600000006, 61)},
      SetxattrOp{"d/f", "user.comment", std::string_view("a\0b", 3)},
      SetxattrOp{"d/f", "user.gone", "x"},
      RemovexattrOp{"d/f", "user.gone"},
      SymlinkOp{"d/s", kUid, kGid, T(1600000007, 71), T(1600000007, 72), "f"},
      SetxattrOp{"d/s", "trusted.on_link", "L"},
      LinkOp{"d/f", "d/sub/hard", T(1600000008, 81)},
      MknodOp{"d/p", S_IFIFO | 0620, 0, kUid, kGid, T(1600000009, 91), T(1600000009, 92)},
      MknodOp{"d/sock", S_IFSOCK | 0600, 0, kUid, kGid, T(1600000010, 1), T(1600000010, 2)},
      CreateOp{"d/old", S_IFREG | 0600, 0, 0, T(1600000011, 1), T(1600000011, 2)},
      WriteOp{"d/old", 0, T(1600000011, 3), Tail()},
      RenameOp{"d/old", "d/sub/new", 0, T(1600000012, 1), T(1600000012, 2)},
      CreateOp{"gone", S_IFREG | 0644, 0, 0, T(1600000013, 1), T(1600000013, 2)},
      UnlinkOp{"gone", T(1600000014, 1)},
      MkdirOp{"empty", S_IFDIR | 0755, 0, 0, T(1600000015, 1), T(1600000015, 2)},
      RmdirOp{"empty", T(1600000016, 1)},
      ChownOp{"d/f", 4321, kIdUnchanged, 0640},
      ChmodOp{"d/f", 0604},
      TruncateOp{"d/f", 100000, T(1600000017, 1)},
      UtimensOp{"d/f", T(1500000000, 5), T(1600000018, 1)},
      ChownOp{".", kUid, kGid, 0751},
      SetxattrOp{".", "user.root", "r"},
      UtimensOp{".", Timespec{0, kTimeOmit}, T(1600000019, 1)},
      CheckpointOp{},
  };
}

}  // namespace mirror::test::apply
