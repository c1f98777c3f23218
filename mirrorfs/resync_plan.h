// The namespace part of a resync (issue 5), as a pure function: given the manifest of
// BACKING and the manifest of mirrord's image at the same point of the stream, the
// records that make the image's tree, owners, modes, xattrs and times equal BACKING's,
// and the files whose data must then be compared block by block.
//
// Order of the records: removals first, deepest first (what the image has and BACKING
// has not, or has as another type, another symlink target, another device, another hard
// link structure); then BACKING's entries in walk order (parents first): creations, then
// owner, mode and xattr fixes; last the times of every entry whose mtime differs, and of
// every directory whose entries changed (the creations and removals moved its mtime).
// Files whose data differs (size or mtime, or new and not empty) are listed for the
// data phase, which also sets their times.
//
// Thread-safety: pure; the plan owns every byte its ops point to.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "common/manifest.h"
#include "common/record.h"

namespace mirror::fs {

struct DataTask {
  std::string path;
  uint64_t size = 0;          // in BACKING, at the plan
  bool image_has_it = false;  // the image's file may be compared block by block
  uint64_t image_size = 0;
  uint64_t dev = 0;  // BACKING's inode, filled in by the resync (to follow renames)
  uint64_t ino = 0;
};

struct ResyncPlan {
  std::vector<common::Op> ops;  // views into `strings`
  std::vector<DataTask> data;
  uint64_t removed = 0;  // entries removed from the image
  uint64_t created = 0;  // entries created in the image
  uint64_t fixed = 0;    // entries whose metadata was fixed

  std::deque<std::string> strings;  // owns what ops point to (stable addresses)
  std::string_view Keep(std::string s);
};

// `root_mtime_ns`: BACKING's root directory's mtime (the manifests leave the root out;
// records that change a top-level entry carry it as the parent's time).
ResyncPlan PlanResync(const common::Manifest& source, const common::Manifest& image,
                      int64_t root_mtime_ns);

}  // namespace mirror::fs
