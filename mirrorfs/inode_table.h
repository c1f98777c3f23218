// InodeTable: the inodes the kernel knows about, each with one O_PATH fd on BACKING.
//
// A FUSE inode number is the address of its Inode (as in libfuse's passthrough_ll), except
// FUSE_ROOT_ID, which maps to the root. An Inode lives while the kernel holds lookups on it
// (nlookup > 0); Forget drops it. Inodes are keyed by (st_dev, st_ino); the O_PATH fd pins
// the backing inode, so its number cannot be reused while the Inode exists.
//
// Names: each Inode records the (parent, name) entries under which we have seen it (lookup,
// readdirplus, create, link, rename). PathOf walks them up to the root; the journal needs
// these paths. Name updates are made by namespace operations while they hold the exclusive
// namespace lock (ordering.h), so the names agree with BACKING whenever no namespace op runs.
//
// Lock order: InodeTable::mu_ before any Inode::mu. Inode::mu is the data mutex used by
// Mutation (held across the write syscall, by design); mu_ is never held across a syscall.
// Thread-safety: all methods are thread-safe.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::fs {

using InodeNumber = uint64_t;  // == fuse_ino_t
inline constexpr InodeNumber kRootInode = 1;  // FUSE_ROOT_ID

// A name under which an inode was seen. The parent's generation tells a live parent from a
// new inode that reuses a forgotten parent's address (inode number).
struct NameRef {
  InodeNumber parent;
  uint64_t parent_generation;
  std::string name;
  bool operator<(const NameRef& o) const {
    return std::tie(parent, parent_generation, name) < std::tie(o.parent, o.parent_generation, o.name);
  }
};

struct Inode {
  Inode(common::UniqueFd path_fd, const struct stat& st, uint64_t gen)
      : fd(std::move(path_fd)), dev(st.st_dev), ino(st.st_ino), type(st.st_mode & S_IFMT),
        generation(gen) {}
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  const common::UniqueFd fd;  // O_PATH | O_NOFOLLOW
  const dev_t dev;
  const ino_t ino;
  const mode_t type;  // S_IFMT bits; a backing inode never changes type
  const uint64_t generation;
  std::atomic<uint64_t> nlookup{0};
  // Data mutex: a Mutation on this inode holds it across the syscall (ordering.h).
  std::mutex mu;
  // (parent inode number, name) entries seen for this inode. Guarded by InodeTable::mu_.
  std::set<NameRef> names;
  // True once a stat found neither setuid nor setgid set: a write then needs no stat to
  // predict the mode (the kernel drops those bits, and only chmod sets them again). Read
  // and written by mutations holding `mu` (record_builder.cpp); relaxed order suffices.
  // Only chmod through the mount can set the bits again, and it clears this; a chmod
  // behind the mount is outside what the journal can see anyway.
  std::atomic<bool> no_setid_bits{false};
  // True once BACKING answered ENODATA for security.capability. The kernel asks for it
  // before every write (to kill file capabilities), so this saves a /proc path walk per
  // write. Set under `mu` by getxattr; cleared under `mu` by every setxattr and
  // removexattr through the mount, the only way to add the attribute (ops/xattr.cpp).
  std::atomic<bool> no_file_caps{false};
  // A path found by scanning BACKING when no chain of known names exists (a hard link
  // made by an earlier daemon, whose other name was unlinked), valid while
  // scanned_generation equals the table's namespace generation. Guarded by InodeTable::mu_.
  std::string scanned_path;
  uint64_t scanned_generation = 0;
};

class InodeTable {
 public:
  // Takes ownership of the root's O_PATH fd; the root is never forgotten.
  InodeTable(common::UniqueFd root_fd, const struct stat& root_st);
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  Inode& Root() { return *root_; }
  // The Inode for a number the kernel gave us. The kernel only passes numbers it holds a
  // lookup on, so the Inode is alive for the duration of the request.
  Inode& Get(InodeNumber n) {
    return n == kRootInode ? *root_ : *reinterpret_cast<Inode*>(static_cast<uintptr_t>(n));
  }
  InodeNumber NumberOf(const Inode& inode) const {
    return &inode == root_ ? kRootInode : static_cast<InodeNumber>(reinterpret_cast<uintptr_t>(&inode));
  }

  // Finds the inode for `st` or inserts one owning `fd` (otherwise `fd` is closed), adds one
  // lookup and records (parent, name) if `name` is not empty. Returns its number.
  InodeNumber AddLookup(common::UniqueFd fd, const struct stat& st, InodeNumber parent,
                        std::string_view name);
  // Drops `n` lookups; at zero the inode leaves the table and its fd is closed.
  void Forget(InodeNumber ino, uint64_t n);

  // Name bookkeeping for namespace operations (called with the namespace lock held).
  // RemoveName/AddName on an inode not in the table do nothing.
  void AddName(dev_t dev, ino_t ino, InodeNumber parent, std::string_view name);
  void RemoveName(dev_t dev, ino_t ino, InodeNumber parent, std::string_view name);

  // A path from the root to `n` ("." for the root, else "a/b/c"), through known names whose
  // parents are still in the table. NotFound if no such chain exists (e.g. unlinked).
  common::Result<std::string> PathOf(InodeNumber n) const;

  // Remembers `path` (found by name_scan.h) for PathOf until the next RemoveName.
  void RememberScannedPath(InodeNumber n, std::string path);
  // One recorded (parent, name) of `n` whose parent is live; NotFound if none.
  common::Result<std::pair<InodeNumber, std::string>> AnyNameOf(InodeNumber n) const;

  size_t size() const;

 private:
  using Key = std::pair<dev_t, ino_t>;
  Inode* FindLocked(dev_t dev, ino_t ino) const;  // requires mu_
  NameRef MakeName(InodeNumber parent, std::string_view name);  // parent must be live
  const Inode* LiveParent(const NameRef& ref) const;  // requires mu_; null if gone

  mutable std::mutex mu_;
  std::map<Key, std::unique_ptr<Inode>> inodes_;  // guarded by mu_; includes the root
  // The addresses of live inodes, so PathOf can test a recorded parent without touching it.
  std::set<const Inode*> live_;  // guarded by mu_
  Inode* root_ = nullptr;
  uint64_t next_generation_ = 1;  // guarded by mu_
  // Bumped by every RemoveName (unlink, rmdir, rename): invalidates scanned paths.
  uint64_t namespace_generation_ = 1;  // guarded by mu_
};

}  // namespace mirror::fs
