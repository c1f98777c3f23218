#include "common/apply.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <variant>

#include "common/apply_internal.h"
#include "common/quote.h"

namespace mirror::common {
namespace apply_internal {
namespace {

std::string QuotePath(std::string_view path) { return "path " + QuoteForMessage(path, '\''); }

}  // namespace

Result<Entry> ResolveEntry(const Ctx& ctx, std::string_view path) {
  // Decoding checked this already, but a record may be hand-built: check again, and
  // treat any violation as an escape attempt (it is never produced by a real source).
  if (Status st = CheckEntryPath(path); !st.ok()) {
    return Status::PermissionDenied("escape attempt: " + QuotePath(path) + ": " + st.message());
  }
  SplitPath split = SplitEntryPath(path);
  Result<UniqueFd> dir = OpenDirBeneath(ctx.root_fd, split.parent, ctx.method);
  if (!dir.ok()) return dir.status().Annotate(QuotePath(path));
  return Entry{std::move(dir).value(), std::string(split.leaf), std::string(path)};
}

Result<Entry> ResolveNode(const Ctx& ctx, std::string_view path) {
  if (path != ".") return ResolveEntry(ctx, path);
  Result<UniqueFd> dir = OpenDirBeneath(ctx.root_fd, ".", ctx.method);
  if (!dir.ok()) return dir.status().Annotate(QuotePath(path));
  return Entry{std::move(dir).value(), ".", "."};
}

Status Errno(std::string_view what, std::string_view path, int err) {
  return Status::FromErrno(std::string(what) + " " + QuoteForMessage(path, '\''), err);
}

Status ProcErrno(std::string_view what, std::string_view path, int err) {
  if (err != ENOENT) return Errno(what, path, err);
  return Status::IOError(std::string(what) + " '" + std::string(path) + "' through /proc/self/fd",
                         err);
}

struct timespec ToTimespec(const Timespec& t) {
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(t.sec);
  ts.tv_nsec = t.nsec == kTimeOmit ? UTIME_OMIT : static_cast<long>(t.nsec);
  return ts;
}

Status SetDirMtime(const Entry& e, const Timespec& mtime) {
  const struct timespec times[2] = {{0, UTIME_OMIT}, ToTimespec(mtime)};
  if (futimens(e.dir.get(), times) != 0) return Errno("set mtime of the parent of", e.path, errno);
  return {};
}

Status SetLeafMtime(const Entry& e, const Timespec& mtime) {
  const struct timespec times[2] = {{0, UTIME_OMIT}, ToTimespec(mtime)};
  if (utimensat(e.dir.get(), e.leaf.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno("set mtime of", e.path, errno);
  }
  return {};
}

Result<Leaf> OpenLeaf(const Entry& e) {
  Leaf leaf;
  leaf.fd.reset(openat(e.dir.get(), e.leaf.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!leaf.fd) return Errno("open", e.path, errno);
  if (fstat(leaf.fd.get(), &leaf.st) != 0) return Errno("fstat", e.path, errno);
  return leaf;
}

Status SetNodeAttrs(const Entry& e, uint32_t uid, uint32_t gid, uint32_t mode,
                    const Timespec& mtime) {
  MIRROR_ASSIGN_OR_RETURN(Leaf leaf, OpenLeaf(e));
  // AT_EMPTY_PATH on an O_PATH fd changes the inode we opened: for a symlink, the
  // link itself (as lchown).
  if (fchownat(leaf.fd.get(), "", uid, gid, AT_EMPTY_PATH) != 0)
    return Errno("chown", e.path, errno);
  if (!S_ISLNK(leaf.st.st_mode)) {
    // No fchmod on an O_PATH fd; chmod follows our own magic link to the same inode.
    if (chmod(leaf.ProcPath().c_str(), mode & 07777) != 0) return ProcErrno("chmod", e.path, errno);
  }
  return SetLeafMtime(e, mtime);
}

}  // namespace apply_internal

Result<ImageTree> ImageTree::Open(const std::string& root_path, ResolveMethod method) {
  // The root's own path is configuration, not record data: following a symlink in it
  // is the admin's choice. Everything below it is resolved beneath this fd.
  UniqueFd root(open(root_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Status::FromErrno("open image root '" + root_path + "'", errno);
  // chmod and xattrs go through /proc/self/fd (apply_internal.h, Leaf): say so now
  // rather than fail on the first such record.
  if (access("/proc/self/fd", X_OK) != 0) {
    return Status::IOError("apply needs /proc mounted: /proc/self/fd", errno);
  }
  return ImageTree(std::move(root), method);
}

namespace {

// Ops that change no name in the image, so a file kept open stays the file at its path.
bool KeepsNames(const Op& op) {
  return std::holds_alternative<WriteOp>(op) || std::holds_alternative<TruncateOp>(op) ||
         std::holds_alternative<FallocateOp>(op) || std::holds_alternative<ChmodOp>(op) ||
         std::holds_alternative<ChownOp>(op) || std::holds_alternative<UtimensOp>(op) ||
         std::holds_alternative<SetxattrOp>(op) || std::holds_alternative<RemovexattrOp>(op) ||
         std::holds_alternative<CheckpointOp>(op) || std::holds_alternative<VoidOp>(op);
}

}  // namespace

Status ImageTree::Apply(const Op& op, const ApplyOptions& options) {
  if (!KeepsNames(op)) open_files_.Clear();
  const apply_internal::Ctx ctx{root_.get(), method_, options, open_files_};
  Status st = std::visit([&ctx](const auto& o) { return apply_internal::ApplyOp(ctx, o); }, op);
  // Whatever failed, the next record starts from names, not from what we hold.
  if (!st.ok()) open_files_.Clear();
  return st;
}

Status ImageTree::Apply(const Record& record, const ApplyOptions& options) {
  Status st = Apply(record.op, options);
  if (st.ok()) return st;
  return st.Annotate("record seq " + std::to_string(record.meta.seq) + " (" +
                     std::string(RecordTypeName(record.type())) + ")");
}

Status ImageTree::Sync() {
  open_files_.Clear();
  if (syncfs(root_.get()) != 0) return Status::IOError("syncfs image", errno);
  return {};
}

bool IsReplaySafe(const Op& op) { return !std::holds_alternative<RenameOp>(op); }

}  // namespace mirror::common
