// Tree snapshots and comparison for integration tests: what a user can observe of
// a directory tree (type, mode, owner, size, links, targets, content, xattrs and,
// on request, times), keyed by relative path. Inode numbers are never compared;
// hard links show up as link_group (the inode's first path in the walk, which
// visits children in sorted order).
//
// Thread-safety: plain values; functions are reentrant.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <map>
#include <string>
#include <vector>

namespace mirror::itest {

struct TreeEntry {
  mode_t mode = 0;         // type and permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;
  nlink_t nlink = 0;
  dev_t rdev = 0;          // devices only
  std::string target;      // symlinks only
  std::string content;     // regular files only
  std::string link_group;  // first path sharing this inode
  std::map<std::string, std::string> xattrs;
  struct timespec atime = {};
  struct timespec mtime = {};
};

// Relative path ("." for the root itself) -> entry.
using TreeSnapshot = std::map<std::string, TreeEntry>;

// Walks `root` without following symlinks or crossing mounts. Bounded: fails
// (returns false with *error) beyond 100000 entries or 64 levels.
bool SnapshotTree(const std::string& root, TreeSnapshot* out, std::string* error);

struct CompareOptions {
  bool dir_size = false;   // directory sizes are filesystem bookkeeping
  bool mtime = false;      // only where a scenario sets times explicitly
  bool atime = false;
};

// Human-readable differences, empty when the trees match.
std::vector<std::string> CompareTrees(const TreeSnapshot& expected, const TreeSnapshot& actual,
                                      const CompareOptions& options = {});

// One line: "mode=100644 uid=0 gid=0 size=3 nlink=1 ...".
std::string DescribeEntry(const TreeEntry& entry);

}  // namespace mirror::itest
