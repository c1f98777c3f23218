// Apply: one record onto an image directory tree (docs/formats.md, "Apply rules").
//
// mirrord applies the records of a source, in sequence order, to the source's image:
// a plain directory tree that ends up identical to the source volume (content, type,
// mode, owner, size, hard links, symlink targets, xattrs incl. POSIX ACLs, mtimes, and
// atimes where a utimens record sets them).
//
//   MIRROR_ASSIGN_OR_RETURN(ImageTree image, ImageTree::Open("/var/lib/mirrord/s1/image"));
//   for (const Record& rec : records) MIRROR_RETURN_IF_ERROR(image.Apply(rec, options));
//   MIRROR_RETURN_IF_ERROR(image.Sync());
//
// Confinement (invariant 6): the record is never trusted, even when it was decoded.
// Every path is re-checked with the path rules, its parent directory is opened beneath
// the root with no symlink in any component (common/beneath.h), and the last component
// is acted on with calls that never follow a symlink. A refused record changes nothing.
//
// Replay (invariant 5): with ApplyOptions::replay, a record that was already applied
// before a crash repeats harmlessly ("already done" answers are OK); without it, every
// such answer is an error, which catches divergence in tests.
//
// Thread-safety: an ImageTree may be used by one thread at a time. Records must be
// applied in sequence order. Between two calls the tree keeps only the files that data
// records opened (common/apply_open_files.h): until the next Sync, nothing but this
// ImageTree may rename or remove names in the image.
#pragma once

#include <string>

#include "common/apply_open_files.h"
#include "common/beneath.h"
#include "common/record.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::common {

struct ApplyOptions {
  // Let mknod create character and block devices. Off by default: a source that may
  // create devices in its image could reach hardware on the destination.
  bool allow_devices = false;
  // Records after the last stored applied sequence number may be applied a second
  // time after a crash; make "already done" harmless (docs/formats.md, "Replay").
  bool replay = false;
};

class ImageTree {
 public:
  // Opens the image root, which must be a directory; the tree keeps an fd to it, so a
  // later rename of the root's path does not redirect apply. `method` is for tests
  // that cover the resolver of old kernels.
  static Result<ImageTree> Open(const std::string& root_path,
                                ResolveMethod method = ResolveMethod::kAuto);

  ImageTree(ImageTree&&) = default;
  ImageTree& operator=(ImageTree&&) = default;
  ImageTree(const ImageTree&) = delete;
  ImageTree& operator=(const ImageTree&) = delete;

  // Applies one record. Errors name the record ("record seq 7 (write): path 'a/b': ...")
  // and are:
  //  - PermissionDenied: refused by policy (escape attempt, a symlink in the path or as
  //    the target of an op that must not follow it, a device node not allowed);
  //  - NotFound / AlreadyExists / IOError (errno kept): the change did not apply.
  // Never throws.
  Status Apply(const Record& record, const ApplyOptions& options);
  Status Apply(const Op& op, const ApplyOptions& options);

  // Closes the files kept open and flushes the image's filesystem (syncfs on the root fd).
  Status Sync();

  int root_fd() const { return root_.get(); }
  // How many files data records keep open (common/apply_open_files.h).
  size_t open_files() const { return open_files_.size(); }

 private:
  ImageTree(UniqueFd root, ResolveMethod method) : root_(std::move(root)), method_(method) {}

  UniqueFd root_;
  ResolveMethod method_;
  OpenFiles open_files_;
};

// False for ops whose repetition cannot be told apart from a new change, so that a
// replay may diverge when later records reused the names (rename: the source name may
// have been created again; RENAME_EXCHANGE swaps back). An applier narrows the replay
// window by storing its applied sequence number right after such a record.
bool IsReplaySafe(const Op& op);

}  // namespace mirror::common
