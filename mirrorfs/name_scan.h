// ScanForPath: finds a path of an inode in BACKING by walking the tree, for the rare
// change to an inode whose names the inode table never saw (a hard link made before the
// daemon started, once the name it was opened by is unlinked). The journal needs a path.
//
// Breadth-first from the root, never following symlinks or crossing into another
// filesystem, and bounded: NotFound after `max_entries` directory entries. Run it inside
// the mutation's ordering section (the namespace cannot change during the walk).
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <string>

#include "common/status.h"

namespace mirror::fs {

inline constexpr size_t kMaxScanEntries = 1'000'000;

// `root_fd`: BACKING's root (an O_PATH fd will do). `target`: the inode's stat. The path is
// relative to the root ("a/b").
common::Result<std::string> ScanForPath(int root_fd, const struct stat& target,
                                        size_t max_entries = kMaxScanEntries);

}  // namespace mirror::fs
