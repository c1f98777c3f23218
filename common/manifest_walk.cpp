// BuildManifest: the walk below a root, one entry per name, in walk order.
//
// Every syscall is relative to an open directory fd (openat/statx/readlinkat), never a
// path rebuilt from the root, so a rename above the entry cannot redirect us and paths
// longer than PATH_MAX from the process's view never matter.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <map>
#include <memory>
#include <utility>

#include "common/manifest.h"
#include "common/manifest_internal.h"
#include "common/quote.h"
#include "common/record.h"
#include "common/unique_fd.h"

namespace mirror::common {
namespace {

std::string Quote(std::string_view s) { return QuoteForMessage(s, '\''); }

// A replaced entry (file became a directory between statx and open, ...) is looked at
// again this many times before the walk gives up on it.
constexpr int kEntryAttempts = 3;

// What the walk keeps of statx.
struct NodeStat {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t mtime_ns = 0;
  bool mount_root = false;
};

int64_t ToNanoseconds(const struct statx_timestamp& t) {
  int64_t ns = 0;
  if (__builtin_mul_overflow(t.tv_sec, int64_t{1'000'000'000}, &ns) ||
      __builtin_add_overflow(ns, static_cast<int64_t>(t.tv_nsec), &ns)) {
    return t.tv_sec < 0 ? INT64_MIN : INT64_MAX;
  }
  return ns;
}

// statx rather than fstatat: it also tells a mount root, which catches a bind mount of
// the same filesystem (same st_dev, and a loop if it binds an ancestor). Returns errno.
int StatAt(int dirfd, const char* name, int flags, NodeStat* out) {
  struct statx sx {};
  if (::statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS,
              &sx) != 0) {
    return errno;
  }
  out->mode = sx.stx_mode;
  out->uid = sx.stx_uid;
  out->gid = sx.stx_gid;
  out->nlink = sx.stx_nlink;
  out->size = sx.stx_size;
  out->rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
  out->dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  out->ino = sx.stx_ino;
  out->mtime_ns = ToNanoseconds(sx.stx_mtime);
  out->mount_root = (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
                    (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  return 0;
}

// Opens a file or directory entry for reading its xattrs and content. O_NOATIME keeps the
// walk from touching atimes where we may (owner or CAP_FOWNER); O_NONBLOCK keeps a
// device or fifo that replaced a file since statx from blocking the open.
int OpenEntry(int dirfd, const char* name, bool directory) {
  int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  if (directory) flags |= O_DIRECTORY;
  int fd = ::openat(dirfd, name, flags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::openat(dirfd, name, flags);
  return fd;
}

// Where an entry's xattrs are read: its open fd, or (symlinks, devices, fifos, sockets,
// which we do not open) its name under the parent through /proc/self/fd.
struct XattrSource {
  int fd = -1;
  std::string proc_path;

  ssize_t List(char* buf, size_t n) const {
    return fd >= 0 ? ::flistxattr(fd, buf, n) : ::llistxattr(proc_path.c_str(), buf, n);
  }
  ssize_t Get(const char* name, char* buf, size_t n) const {
    return fd >= 0 ? ::fgetxattr(fd, name, buf, n) : ::lgetxattr(proc_path.c_str(), name, buf, n);
  }
};

// Calls fill(buf, size) until the buffer is large enough: a size query, then the read,
// again if the value grew in between (ERANGE). Returns the bytes, or -1 with errno.
template <class Fill>
ssize_t ReadSized(std::string* out, Fill fill) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    ssize_t n = fill(nullptr, 0);
    if (n <= 0) {
      out->clear();
      return n;
    }
    out->resize(static_cast<size_t>(n));
    ssize_t got = fill(out->data(), out->size());
    if (got >= 0) {
      out->resize(static_cast<size_t>(got));
      return got;
    }
    if (errno != ERANGE) return -1;
  }
  errno = ERANGE;
  return -1;
}

bool Skipped(std::string_view name, const std::vector<std::string>& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const std::string& p) { return name.starts_with(p); });
}

// The entry's xattrs (sorted by name), without the skipped ones. An IOError keeps its
// errno, so the caller can tell a vanished entry (ENOENT).
Status ReadXattrs(const XattrSource& src, const std::string& path, const ManifestOptions& options,
                  std::vector<std::pair<std::string, std::string>>* out) {
  std::string names;
  if (ReadSized(&names, [&](char* b, size_t n) { return src.List(b, n); }) < 0) {
    if (errno == ENOTSUP || errno == EOPNOTSUPP) return {};  // no xattrs on this filesystem
    return Status::IOError("listxattr " + Quote(path), errno);
  }
  for (size_t pos = 0; pos < names.size();) {
    const char* name = names.c_str() + pos;
    const std::string_view name_view(name);
    pos += name_view.size() + 1;
    if (name_view.empty() || Skipped(name_view, options.skip_xattr_prefixes)) continue;
    std::string value;
    if (ReadSized(&value, [&](char* b, size_t n) { return src.Get(name, b, n); }) < 0) {
      if (errno == ENODATA) continue;  // removed since the list
      return Status::IOError("getxattr " + Quote(path) + " " + Quote(name_view), errno);
    }
    if (name_view.size() > kMaxXattrNameBytes || value.size() > kMaxXattrValueBytes)
      return Status::Full(Quote(path) + ": xattr " + Quote(name_view) + " exceeds the limits");
    out->emplace_back(name_view, std::move(value));
  }
  if (out->size() > kManifestMaxXattrs)
    return Status::Full(Quote(path) + ": more than " + std::to_string(kManifestMaxXattrs) +
                        " xattrs");
  std::sort(out->begin(), out->end());
  return {};
}

class Walker {
 public:
  explicit Walker(const ManifestOptions& options) : options_(options) {}

  Status WalkRoot(const std::string& root);
  Manifest Take() { return std::move(manifest_); }

 private:
  // Lists the children of the directory open at `dirfd` (path `prefix`, "" for the root)
  // and everything below them; `depth` is the depth of those children.
  Status WalkDir(int dirfd, const std::string& prefix, uint32_t depth);
  Result<std::vector<std::string>> ReadNames(int dirfd, const std::string& what);
  // Adds the entry `name` of `dirfd` and, for a directory, what is below it.
  Status Visit(int dirfd, const std::string& name, const std::string& path, uint32_t depth);
  // One look at an entry; sets *retry when it changed type between statx and open.
  Status VisitOnce(int dirfd, const std::string& name, const std::string& path, uint32_t depth,
                   bool* retry);
  Status TooMany() const {
    return Status::Full("more than " + std::to_string(options_.max_entries) +
                        " entries in the tree");
  }
  Status Describe(int dirfd, const std::string& name, const NodeStat& st, int fd, bool read_xattrs,
                  ManifestEntry* e);

  const ManifestOptions& options_;
  Manifest manifest_;
  uint64_t root_dev_ = 0;
  std::map<std::pair<uint64_t, uint64_t>, std::string> first_path_;  // (dev, ino) -> path
  std::vector<char> buffer_;                                         // for hashing
};

Status Walker::WalkRoot(const std::string& root) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::IOError("open manifest root " + Quote(root), errno);
  NodeStat st;
  if (int err = StatAt(fd.get(), "", AT_EMPTY_PATH, &st))
    return Status::IOError("statx " + Quote(root), err);
  root_dev_ = st.dev;
  return WalkDir(fd.get(), "", 1);
}

Result<std::vector<std::string>> Walker::ReadNames(int dirfd, const std::string& what) {
  // readdir on a dup, so closedir closes the dup and the caller keeps its fd.
  UniqueFd dup(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  if (!dup) return Status::IOError("dup " + Quote(what), errno);
  struct DirClose {
    void operator()(DIR* d) const { ::closedir(d); }
  };
  std::unique_ptr<DIR, DirClose> dir(::fdopendir(dup.get()));
  if (!dir) return Status::IOError("fdopendir " + Quote(what), errno);
  dup.release();  // owned by dir now
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const struct dirent* de = ::readdir(dir.get());
    if (de == nullptr) {
      if (errno != 0) return Status::IOError("readdir " + Quote(what), errno);
      break;
    }
    const std::string_view name(de->d_name);
    if (name == "." || name == "..") continue;
    // Refuse a huge directory before holding all its names.
    if (manifest_.size() + names.size() >= options_.max_entries) return TooMany();
    names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());  // std::string orders by unsigned bytes
  return names;
}

Status Walker::WalkDir(int dirfd, const std::string& prefix, uint32_t depth) {
  const std::string what = prefix.empty() ? std::string(".") : prefix;
  MIRROR_ASSIGN_OR_RETURN(std::vector<std::string> names, ReadNames(dirfd, what));
  if (!names.empty() && depth > kManifestMaxDepth)
    return Status::Full(Quote(prefix) + ": deeper than " + std::to_string(kManifestMaxDepth) +
                        " levels");
  for (const std::string& name : names) {
    std::string path = prefix.empty() ? name : prefix + "/" + name;
    if (path.size() > kMaxPathBytes)
      return Status::Full(Quote(path.substr(0, 64)) + "...: path longer than " +
                          std::to_string(kMaxPathBytes) + " bytes");
    MIRROR_RETURN_IF_ERROR(Visit(dirfd, name, path, depth));
  }
  return {};
}

Status Walker::Visit(int dirfd, const std::string& name, const std::string& path, uint32_t depth) {
  for (int attempt = 1;; ++attempt) {
    bool retry = false;
    Status st = VisitOnce(dirfd, name, path, depth, &retry);
    if (!retry) return st;
    if (attempt == kEntryAttempts)
      return Status::IOError(Quote(path) + " keeps changing type during the walk", EAGAIN);
  }
}

Status Walker::VisitOnce(int dirfd, const std::string& name, const std::string& path,
                         uint32_t depth, bool* retry) {
  NodeStat st;
  if (int err = StatAt(dirfd, name.c_str(), 0, &st)) {
    if (err == ENOENT) return {};  // gone since readdir
    return Status::IOError("statx " + Quote(path), err);
  }
  const bool foreign = st.dev != root_dev_ || st.mount_root;  // another mount: not crossed
  UniqueFd fd;
  if (!foreign && (S_ISREG(st.mode) || S_ISDIR(st.mode))) {
    const bool directory = S_ISDIR(st.mode);
    fd.reset(OpenEntry(dirfd, name.c_str(), directory));
    if (!fd) {
      if (errno == ENOENT) return {};
      // ELOOP: a symlink now (O_NOFOLLOW); ENOTDIR: not a directory any more.
      if (errno == ELOOP || errno == ENOTDIR) {
        *retry = true;
        return {};
      }
      return Status::IOError("open " + Quote(path), errno);
    }
    const uint32_t type = st.mode & S_IFMT;
    if (int err = StatAt(fd.get(), "", AT_EMPTY_PATH, &st))
      return Status::IOError("statx " + Quote(path), err);
    if ((st.mode & S_IFMT) != type || st.dev != root_dev_ || st.mount_root) {
      *retry = true;  // replaced between statx and open: look again
      return {};
    }
  }

  ManifestEntry e;
  e.path = path;
  Status described = Describe(dirfd, name, st, fd.get(), !foreign, &e);
  if (described.error_number() == ENOENT) {
    // Gone since statx: left out. Still there: the ENOENT came from /proc/self/fd (not
    // mounted?), and dropping every symlink, device and fifo silently would be wrong.
    NodeStat again;
    if (StatAt(dirfd, name.c_str(), 0, &again) == ENOENT) return {};
  }
  MIRROR_RETURN_IF_ERROR(described);

  if (!S_ISDIR(st.mode) && st.nlink > 1) {
    auto [it, first] = first_path_.try_emplace({st.dev, st.ino}, path);
    if (!first) e.link_to = it->second;
  }
  if (S_ISREG(st.mode) && options_.content_hashes && e.link_to.empty() && fd) {
    MIRROR_ASSIGN_OR_RETURN(e.content_hash,
                            manifest_internal::Sha256OfFile(fd.get(), path, &buffer_));
  }
  if (manifest_.size() >= options_.max_entries) return TooMany();
  manifest_.push_back(std::move(e));

  if (S_ISDIR(st.mode) && fd) return WalkDir(fd.get(), path, depth + 1);
  return {};
}

// Fills the attributes, symlink target and xattrs of `e` (not link_to, not the hash).
// `fd` is the entry opened (files, directories) or -1 to read the xattrs by name.
Status Walker::Describe(int dirfd, const std::string& name, const NodeStat& st, int fd,
                        bool read_xattrs, ManifestEntry* e) {
  e->mode = st.mode;
  e->uid = st.uid;
  e->gid = st.gid;
  e->size = (S_ISREG(st.mode) || S_ISLNK(st.mode)) ? st.size : 0;
  e->mtime_ns = st.mtime_ns;
  e->rdev = (S_ISCHR(st.mode) || S_ISBLK(st.mode)) ? st.rdev : 0;
  e->nlink = S_ISREG(st.mode) ? st.nlink : 0;
  if (S_ISLNK(st.mode)) {
    std::string target(kMaxPathBytes + 1, '\0');
    ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
    if (n < 0) return Status::IOError("readlink " + Quote(e->path), errno);
    if (static_cast<size_t>(n) > kMaxPathBytes)
      return Status::Full(Quote(e->path) + ": symlink target longer than " +
                          std::to_string(kMaxPathBytes) + " bytes");
    target.resize(static_cast<size_t>(n));
    e->target = std::move(target);
  }
  if (!read_xattrs) return {};
  XattrSource src;
  src.fd = fd;
  if (fd < 0) src.proc_path = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
  return ReadXattrs(src, e->path, options_, &e->xattrs);
}

}  // namespace

Result<Manifest> BuildManifest(const std::string& root, const ManifestOptions& options) {
  Walker walker(options);
  MIRROR_RETURN_IF_ERROR(walker.WalkRoot(root));
  return walker.Take();
}

}  // namespace mirror::common
