// Apply of the namespace records: create, mknod, mkdir, symlink, link, unlink, rmdir,
// rename. Each acts on the last component with a call that never follows a symlink,
// then puts the recorded times back: the node's, then its parent's (the change itself
// set the parent's mtime to "now").
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/apply_internal.h"

namespace mirror::common::apply_internal {
namespace {

static_assert(kRenameNoReplace == RENAME_NOREPLACE && kRenameExchange == RENAME_EXCHANGE);

// In replay mode, an op that found its object gone still leaves the parent's mtime
// as recorded: replaying earlier records in the same directory moved it.
Status TouchParentIfPresent(const Ctx& ctx, std::string_view path, const Timespec& mtime) {
  Result<Entry> e = ResolveEntry(ctx, path);
  if (!e.ok()) return SkipMissing(ctx, e.status()) ? Status() : e.status();
  return SetDirMtime(*e, mtime);
}

// What a node-creating record asks for.
struct NewNode {
  std::string_view what;  // "create", "mkdir", ...
  uint32_t mode;          // type and permission bits
  uint64_t rdev;          // mknod of a device only
  uint32_t uid, gid;
  Timespec mtime, parent_mtime;
};

// Creates the node with `make(dir_fd, leaf)` (0, or -1 with errno). A replay that
// finds a node of the same type (and device number) in place sets its attributes and
// leaves its contents alone; anything else already there is AlreadyExists.
template <class Make>
Status CreateNode(const Ctx& ctx, std::string_view path, const NewNode& node, Make&& make) {
  Result<Entry> e = ResolveEntry(ctx, path);
  if (!e.ok()) return SkipMissing(ctx, e.status()) ? Status() : e.status();
  if (make(e->dir.get(), e->leaf.c_str()) != 0) {
    int err = errno;
    if (err != EEXIST || !ctx.options.replay) return Errno(node.what, path, err);
    MIRROR_ASSIGN_OR_RETURN(Leaf leaf, OpenLeaf(*e));
    bool same_type = (leaf.st.st_mode & S_IFMT) == (node.mode & S_IFMT);
    bool is_device = S_ISCHR(node.mode) || S_ISBLK(node.mode);
    if (!same_type || (is_device && leaf.st.st_rdev != static_cast<dev_t>(node.rdev))) {
      return Status::FromErrno(std::string(node.what) + " '" + std::string(path) +
                                   "' (replay: another kind of node is in place)",
                               EEXIST);
    }
  }
  MIRROR_RETURN_IF_ERROR(SetNodeAttrs(*e, node.uid, node.gid, node.mode, node.mtime));
  return SetDirMtime(*e, node.parent_mtime);
}

Status WrongType(std::string_view what, std::string_view path, uint32_t mode) {
  char octal[16];
  snprintf(octal, sizeof(octal), "0%o", mode);
  return Status::InvalidArgument(std::string(what) + " '" + std::string(path) + "': mode " + octal +
                                 " has the wrong file type");
}

}  // namespace

Status ApplyOp(const Ctx& ctx, const CreateOp& op) {
  if (!S_ISREG(op.mode)) return WrongType("create", op.path, op.mode);
  NewNode node{"create", op.mode, 0, op.uid, op.gid, op.mtime, op.parent_mtime};
  return CreateNode(ctx, op.path, node, [&op](int dir, const char* leaf) {
    // Created with the recorded permissions so that a default ACL of the parent is
    // inherited as on the source; SetNodeAttrs then sets the exact mode (umask).
    int fd =
        openat(dir, leaf, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, op.mode & 0777);
    if (fd < 0) return -1;
    close(fd);
    return 0;
  });
}

Status ApplyOp(const Ctx& ctx, const MknodOp& op) {
  bool device = S_ISCHR(op.mode) || S_ISBLK(op.mode);
  if (!device && !S_ISFIFO(op.mode) && !S_ISSOCK(op.mode))
    return WrongType("mknod", op.path, op.mode);
  if (device && !ctx.options.allow_devices) {
    return Status::PermissionDenied("mknod '" + std::string(op.path) +
                                    "': device node not allowed for this source");
  }
  NewNode node{"mknod", op.mode, op.rdev, op.uid, op.gid, op.mtime, op.parent_mtime};
  return CreateNode(ctx, op.path, node, [&op](int dir, const char* leaf) {
    return mknodat(dir, leaf, (op.mode & S_IFMT) | (op.mode & 0777), static_cast<dev_t>(op.rdev));
  });
}

Status ApplyOp(const Ctx& ctx, const MkdirOp& op) {
  if (!S_ISDIR(op.mode)) return WrongType("mkdir", op.path, op.mode);
  NewNode node{"mkdir", op.mode, 0, op.uid, op.gid, op.mtime, op.parent_mtime};
  return CreateNode(ctx, op.path, node, [&op](int dir, const char* leaf) {
    return mkdirat(dir, leaf, op.mode & 0777);
  });
}

Status ApplyOp(const Ctx& ctx, const SymlinkOp& op) {
  // The target is stored, never resolved; it only has to be a valid C string.
  if (op.target.empty() || op.target.size() > kMaxPathBytes ||
      op.target.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("symlink '" + std::string(op.path) + "': bad target");
  }
  const std::string target(op.target);
  NewNode node{"symlink", S_IFLNK | 0777, 0, op.uid, op.gid, op.mtime, op.parent_mtime};
  return CreateNode(ctx, op.path, node, [&](int dir, const char* leaf) {
    if (symlinkat(target.c_str(), dir, leaf) == 0) return 0;
    if (errno != EEXIST || !ctx.options.replay) return -1;
    // Replay: a symlink in place with the same target is this one; with another
    // target it is replaced (a later record will replace it back if it must).
    std::vector<char> buf(kMaxPathBytes + 2);
    ssize_t n = readlinkat(dir, leaf, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINVAL) errno = EEXIST;  // not a symlink: CreateNode reports it
      return -1;
    }
    if (std::string_view(buf.data(), static_cast<size_t>(n)) == op.target) return 0;
    if (unlinkat(dir, leaf, 0) != 0) return -1;
    return symlinkat(target.c_str(), dir, leaf);
  });
}

Status ApplyOp(const Ctx& ctx, const LinkOp& op) {
  Result<Entry> from = ResolveEntry(ctx, op.path);
  if (!from.ok()) {
    if (!SkipMissing(ctx, from.status())) return from.status();
    return TouchParentIfPresent(ctx, op.new_path, op.new_parent_mtime);
  }
  Result<Entry> to = ResolveEntry(ctx, op.new_path);
  if (!to.ok()) return SkipMissing(ctx, to.status()) ? Status() : to.status();
  // Flags 0: a symlink as the existing entry is linked itself, never followed.
  if (linkat(from->dir.get(), from->leaf.c_str(), to->dir.get(), to->leaf.c_str(), 0) != 0) {
    int err = errno;
    // Replay: the new entry exists (linked before the crash), or the source is gone
    // (a later record removed it).
    bool done_before = ctx.options.replay && (err == EEXIST || err == ENOENT);
    if (!done_before) {
      return Errno("link '" + std::string(op.path) + "' to", op.new_path, err);
    }
  }
  return SetDirMtime(*to, op.new_parent_mtime);
}

namespace {

Status RemoveEntry(const Ctx& ctx, std::string_view path, const Timespec& parent_mtime, int flags,
                   std::string_view what) {
  Result<Entry> e = ResolveEntry(ctx, path);
  if (!e.ok()) return SkipMissing(ctx, e.status()) ? Status() : e.status();
  if (unlinkat(e->dir.get(), e->leaf.c_str(), flags) != 0) {
    if (errno != ENOENT || !ctx.options.replay) return Errno(what, path, errno);
  }
  return SetDirMtime(*e, parent_mtime);
}

}  // namespace

Status ApplyOp(const Ctx& ctx, const UnlinkOp& op) {
  return RemoveEntry(ctx, op.path, op.parent_mtime, 0, "unlink");
}

Status ApplyOp(const Ctx& ctx, const RmdirOp& op) {
  return RemoveEntry(ctx, op.path, op.parent_mtime, AT_REMOVEDIR, "rmdir");
}

Status ApplyOp(const Ctx& ctx, const RenameOp& op) {
  if (op.flags != 0 && op.flags != kRenameNoReplace && op.flags != kRenameExchange) {
    return Status::InvalidArgument("rename '" + std::string(op.path) + "': flags " +
                                   std::to_string(op.flags) + " not allowed");
  }
  Result<Entry> from = ResolveEntry(ctx, op.path);
  if (!from.ok()) {
    if (!SkipMissing(ctx, from.status())) return from.status();
    return TouchParentIfPresent(ctx, op.new_path, op.new_parent_mtime);
  }
  Result<Entry> to = ResolveEntry(ctx, op.new_path);
  if (!to.ok()) {
    if (!SkipMissing(ctx, to.status())) return to.status();
    return SetDirMtime(*from, op.parent_mtime);
  }
  if (renameat2(from->dir.get(), from->leaf.c_str(), to->dir.get(), to->leaf.c_str(), op.flags) !=
      0) {
    // Replay: the source name is gone, renamed before the crash (or removed later).
    if (errno != ENOENT || !ctx.options.replay) {
      return Errno("rename '" + std::string(op.path) + "' to", op.new_path, errno);
    }
  }
  // Parent first, new parent last: when both are one directory, the last one wins.
  MIRROR_RETURN_IF_ERROR(SetDirMtime(*from, op.parent_mtime));
  return SetDirMtime(*to, op.new_parent_mtime);
}

}  // namespace mirror::common::apply_internal
