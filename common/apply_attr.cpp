// Apply of the attribute records: chmod, chown, utimens, setxattr, removexattr.
// All may target "." (the image root). None follows a symlink: the node is opened
// O_PATH | O_NOFOLLOW, so a symlink is acted on itself (chown, times, trusted.*
// xattrs) or refused (chmod: symlinks have no permission bits, and chmod(2) on the
// source follows links, so such a record cannot come from a real source).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/apply_internal.h"

namespace mirror::common::apply_internal {
namespace {

// Resolves `path`, opens the node itself and runs `change` on it. In replay mode a
// missing node (or parent) means a later record removed it: nothing to do.
template <class Change>
Status ApplyToNode(const Ctx& ctx, std::string_view path, Change&& change) {
  Result<Entry> e = ResolveNode(ctx, path);
  if (!e.ok()) return SkipMissing(ctx, e.status()) ? Status() : e.status();
  Result<Leaf> leaf = OpenLeaf(*e);
  if (!leaf.ok()) return SkipMissing(ctx, leaf.status()) ? Status() : leaf.status();
  return change(*e, *leaf);
}

Status ChmodLeaf(const Entry& e, const Leaf& leaf, uint32_t mode) {
  // There is no fchmod for an O_PATH fd; chmod follows our own magic link to the
  // inode we opened without following anything.
  if (chmod(leaf.ProcPath().c_str(), mode & 07777) != 0) return ProcErrno("chmod", e.path, errno);
  return {};
}

}  // namespace

Status ApplyOp(const Ctx& ctx, const ChmodOp& op) {
  return ApplyToNode(ctx, op.path, [&op](const Entry& e, const Leaf& leaf) -> Status {
    if (S_ISLNK(leaf.st.st_mode)) {
      return Status::PermissionDenied("path '" + e.path + "' is a symlink; chmod refused");
    }
    return ChmodLeaf(e, leaf, op.mode);
  });
}

Status ApplyOp(const Ctx& ctx, const ChownOp& op) {
  return ApplyToNode(ctx, op.path, [&op](const Entry& e, const Leaf& leaf) -> Status {
    // kIdUnchanged is chown's own -1. AT_EMPTY_PATH acts on the opened inode: for a
    // symlink, the link itself.
    if (fchownat(leaf.fd.get(), "", op.uid, op.gid, AT_EMPTY_PATH) != 0) {
      return Errno("chown", e.path, errno);
    }
    // The chown may have cleared setuid/setgid; the record carries the bits after it.
    if (S_ISLNK(leaf.st.st_mode)) return {};
    return ChmodLeaf(e, leaf, op.mode);
  });
}

Status ApplyOp(const Ctx& ctx, const UtimensOp& op) {
  Result<Entry> e = ResolveNode(ctx, op.path);
  if (!e.ok()) return SkipMissing(ctx, e.status()) ? Status() : e.status();
  const struct timespec times[2] = {ToTimespec(op.atime), ToTimespec(op.mtime)};
  if (utimensat(e->dir.get(), e->leaf.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    Status st = Errno("utimens", op.path, errno);
    return SkipMissing(ctx, st) ? Status() : st;
  }
  return {};
}

Status ApplyOp(const Ctx& ctx, const SetxattrOp& op) {
  if (op.name.empty() || op.name.size() > kMaxXattrNameBytes ||
      op.name.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("setxattr '" + std::string(op.path) + "': bad name");
  }
  const std::string name(op.name);
  return ApplyToNode(ctx, op.path, [&](const Entry& e, const Leaf& leaf) -> Status {
    // setxattr() through our magic link reaches the opened inode, a symlink's own too
    // (there is no fsetxattr for an O_PATH fd). Flags 0: create or replace.
    if (setxattr(leaf.ProcPath().c_str(), name.c_str(), op.value.data(), op.value.size(), 0) != 0) {
      return ProcErrno("setxattr " + name + " on", e.path, errno);
    }
    return {};
  });
}

Status ApplyOp(const Ctx& ctx, const RemovexattrOp& op) {
  if (op.name.empty() || op.name.size() > kMaxXattrNameBytes ||
      op.name.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("removexattr '" + std::string(op.path) + "': bad name");
  }
  const std::string name(op.name);
  return ApplyToNode(ctx, op.path, [&](const Entry& e, const Leaf& leaf) -> Status {
    if (removexattr(leaf.ProcPath().c_str(), name.c_str()) != 0) {
      // ENODATA is "no such attribute": removed before the crash, when replaying.
      if (errno == ENODATA) {
        if (ctx.options.replay) return {};
        return Status::NotFound("removexattr " + name + " on '" + e.path +
                                "': " + std::strerror(ENODATA));
      }
      return ProcErrno("removexattr " + name + " on", e.path, errno);
    }
    return {};
  });
}

}  // namespace mirror::common::apply_internal
