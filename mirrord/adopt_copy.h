// Saving copies of named paths of a directory tree, as they are now, for `mirrord adopt`
// (mirrord/adopt.h): the old source's unshipped changes, before the resync from the
// promoted side overwrites them.
//
// Reading never leaves the tree: each path is resolved beneath the root without
// following any symlink (common/beneath.h), and the last component is opened with
// O_NOFOLLOW. Writing goes to a fresh directory that the caller owns.
//
// Thread-safety: a plain function.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace mirror::d {

struct NotCopied {
  std::string path;
  std::string why;  // "a device node", "component 'a' is a symlink; refused", ...
};

struct SavedCopies {
  std::vector<std::string> saved;     // copied (files, symlinks, directories), sorted
  std::vector<std::string> gone;      // no longer exist in the tree, sorted
  std::vector<NotCopied> not_copied;  // exist but were not copied, and why
};

// Copies each of `paths` (record paths relative to `root`; "." is the root and is
// never copied) from `root` into `dest` (created, 0700): regular files with content,
// mode, owner (when allowed) and times; symlinks as symlinks; directories as empty
// directories with their mode and times (their entries only when named themselves).
// Device nodes, fifos and sockets are not copied (not_copied). Everything written is
// synced (syncfs) before this returns. IOError when `root` cannot be opened or `dest`
// cannot be written; a path that cannot be read is reported in not_copied instead.
common::Result<SavedCopies> SaveCurrentCopies(const std::string& root,
                                              const std::vector<std::string>& paths,
                                              const std::string& dest);

}  // namespace mirror::d
