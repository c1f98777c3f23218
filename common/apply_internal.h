// Internal to apply*.cpp: the shared context and helpers of the per-op appliers.
// Not part of the library's interface; include common/apply.h instead.
#pragma once

#include <sys/stat.h>
#include <time.h>

#include <string>
#include <string_view>

#include "common/apply.h"
#include "common/beneath.h"
#include "common/record.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::common::apply_internal {

// What every op applier needs: the image root, how to resolve beneath it, the options,
// and the files data records keep open (apply_open_files.h).
struct Ctx {
  int root_fd;
  ResolveMethod method;
  const ApplyOptions& options;
  OpenFiles& open_files;
};

// A resolved entry: its parent directory, opened beneath the root (a real O_RDONLY fd,
// so its mtime can be set with futimens), and the last component, NUL-terminated.
// For the node path "." the parent is the root itself and leaf is ".".
struct Entry {
  UniqueFd dir;
  std::string leaf;
  std::string path;  // the record's path, for messages
};

// Checks the path rules (a violation is an escape attempt: PermissionDenied) and opens
// the parent. Errors are annotated with "path '<path>'".
Result<Entry> ResolveEntry(const Ctx& ctx, std::string_view path);
Result<Entry> ResolveNode(const Ctx& ctx, std::string_view path);  // also "."

// In replay mode a NotFound (the path, or its parent, is gone because a later record
// removed or renamed it) means "nothing to do"; otherwise it stays an error.
inline bool SkipMissing(const Ctx& ctx, const Status& st) {
  return ctx.options.replay && st.code() == Code::kNotFound;
}

// "<what> '<path>': <strerror>", classified by errno (ENOENT is NotFound, ...).
Status Errno(std::string_view what, std::string_view path, int err);

struct timespec ToTimespec(const Timespec& t);  // kTimeOmit becomes UTIME_OMIT

// Sets only the mtime (atime UTIME_OMIT) of a directory we hold open.
Status SetDirMtime(const Entry& e, const Timespec& mtime);
// Sets only the mtime of the entry itself, never following a symlink.
Status SetLeafMtime(const Entry& e, const Timespec& mtime);

// The leaf opened O_PATH | O_NOFOLLOW (a symlink is opened as itself) and its stat.
// ProcPath() names it as /proc/self/fd/N: a magic link that we opened ourselves, for
// the calls that have no *at or fd form usable on an O_PATH fd (chmod, setxattr,
// removexattr). Following it reaches the inode we opened, even a symlink's own inode.
struct Leaf {
  UniqueFd fd;
  struct stat st {};
  std::string ProcPath() const { return "/proc/self/fd/" + std::to_string(fd.get()); }
};
// The error of a call through ProcPath(). The inode is pinned by our fd, so ENOENT
// can only mean that /proc is missing: an IOError, never a NotFound that a replay
// would skip.
Status ProcErrno(std::string_view what, std::string_view path, int err);
Result<Leaf> OpenLeaf(const Entry& e);

// Owner, exact permission bits (not for symlinks: they have none) and mtime of a node
// that was just created or found in place by a replay. The owner goes first: chown
// may clear setuid/setgid, the chmod after it sets them as recorded.
Status SetNodeAttrs(const Entry& e, uint32_t uid, uint32_t gid, uint32_t mode,
                    const Timespec& mtime);

// Per-op appliers, by file: apply_data.cpp, apply_namespace.cpp, apply_attr.cpp.
Status ApplyOp(const Ctx& ctx, const WriteOp& op);
Status ApplyOp(const Ctx& ctx, const TruncateOp& op);
Status ApplyOp(const Ctx& ctx, const FallocateOp& op);
Status ApplyOp(const Ctx& ctx, const CreateOp& op);
Status ApplyOp(const Ctx& ctx, const MknodOp& op);
Status ApplyOp(const Ctx& ctx, const MkdirOp& op);
Status ApplyOp(const Ctx& ctx, const SymlinkOp& op);
Status ApplyOp(const Ctx& ctx, const LinkOp& op);
Status ApplyOp(const Ctx& ctx, const UnlinkOp& op);
Status ApplyOp(const Ctx& ctx, const RmdirOp& op);
Status ApplyOp(const Ctx& ctx, const RenameOp& op);
Status ApplyOp(const Ctx& ctx, const ChmodOp& op);
Status ApplyOp(const Ctx& ctx, const ChownOp& op);
Status ApplyOp(const Ctx& ctx, const UtimensOp& op);
Status ApplyOp(const Ctx& ctx, const SetxattrOp& op);
Status ApplyOp(const Ctx& ctx, const RemovexattrOp& op);
inline Status ApplyOp(const Ctx&, const CheckpointOp&) { return {}; }
inline Status ApplyOp(const Ctx&, const VoidOp&) { return {}; }

}  // namespace mirror::common::apply_internal
