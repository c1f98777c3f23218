#include "mirrorfs/inode_table.h"

#include <algorithm>
#include <vector>

namespace mirror::fs {

InodeTable::InodeTable(common::UniqueFd root_fd, const struct stat& root_st) {
  auto root = std::make_unique<Inode>(std::move(root_fd), root_st, 0);
  root->nlookup = 2;  // never reaches zero
  root_ = root.get();
  live_.insert(root_);
  inodes_.emplace(Key{root_st.st_dev, root_st.st_ino}, std::move(root));
}

Inode* InodeTable::FindLocked(dev_t dev, ino_t ino) const {
  auto it = inodes_.find(Key{dev, ino});
  return it == inodes_.end() ? nullptr : it->second.get();
}

NameRef InodeTable::MakeName(InodeNumber parent, std::string_view name) {
  return NameRef{parent, Get(parent).generation, std::string(name)};
}

const Inode* InodeTable::LiveParent(const NameRef& ref) const {
  const Inode* p = ref.parent == kRootInode
                       ? root_
                       : reinterpret_cast<const Inode*>(static_cast<uintptr_t>(ref.parent));
  if (live_.count(p) == 0 || p->generation != ref.parent_generation) return nullptr;
  return p;
}

InodeNumber InodeTable::AddLookup(common::UniqueFd fd, const struct stat& st, InodeNumber parent,
                                  std::string_view name) {
  std::lock_guard lock(mu_);
  Inode* inode = FindLocked(st.st_dev, st.st_ino);
  if (inode == nullptr) {
    auto fresh = std::make_unique<Inode>(std::move(fd), st, next_generation_++);
    inode = fresh.get();
    live_.insert(inode);
    inodes_.emplace(Key{st.st_dev, st.st_ino}, std::move(fresh));
  }
  inode->nlookup.fetch_add(1, std::memory_order_relaxed);
  if (!name.empty()) inode->names.insert(MakeName(parent, name));
  return NumberOf(*inode);
}

void InodeTable::Forget(InodeNumber n, uint64_t count) {
  Inode& inode = Get(n);
  if (&inode == root_) return;
  std::lock_guard lock(mu_);
  // Decrement under mu_ so that AddLookup cannot revive an inode we are erasing.
  uint64_t before = inode.nlookup.fetch_sub(count, std::memory_order_relaxed);
  if (before <= count) {
    live_.erase(&inode);
    inodes_.erase(Key{inode.dev, inode.ino});
  }
}

void InodeTable::AddName(dev_t dev, ino_t ino, InodeNumber parent, std::string_view name) {
  std::lock_guard lock(mu_);
  if (Inode* inode = FindLocked(dev, ino)) inode->names.insert(MakeName(parent, name));
}

void InodeTable::RemoveName(dev_t dev, ino_t ino, InodeNumber parent, std::string_view name) {
  std::lock_guard lock(mu_);
  if (Inode* inode = FindLocked(dev, ino)) inode->names.erase(MakeName(parent, name));
  ++namespace_generation_;  // scanned paths may be stale now
}

void InodeTable::RememberScannedPath(InodeNumber n, std::string path) {
  std::lock_guard lock(mu_);
  Inode& inode = Get(n);
  inode.scanned_path = std::move(path);
  inode.scanned_generation = namespace_generation_;
}

common::Result<std::string> InodeTable::PathOf(InodeNumber n) const {
  std::lock_guard lock(mu_);
  std::vector<const std::string*> parts;
  const Inode* cur = n == kRootInode ? root_ : reinterpret_cast<const Inode*>(static_cast<uintptr_t>(n));
  // A depth bound guards against a cycle of stale names (BACKING changed behind our back).
  constexpr size_t kMaxDepth = 4096;
  while (cur != root_) {
    if (parts.size() >= kMaxDepth) return common::Status::NotFound("path too deep or cyclic");
    const Inode* next = nullptr;
    for (const NameRef& ref : cur->names) {
      // The parent may have been forgotten since the name was recorded: check it is live.
      const Inode* p = LiveParent(ref);
      if (p == nullptr) continue;
      parts.push_back(&ref.name);
      next = p;
      break;
    }
    if (next == nullptr) {
      // No chain of known names: a path found by a scan still holds if no name was
      // removed since.
      if (cur->scanned_generation != namespace_generation_ || cur->scanned_path.empty()) {
        return common::Status::NotFound("inode has no known name");
      }
      break;
    }
    cur = next;
  }
  if (parts.empty()) return cur == root_ ? std::string(".") : cur->scanned_path;
  std::string path = cur == root_ ? std::string() : cur->scanned_path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += **it;
  }
  return path;
}

common::Result<std::pair<InodeNumber, std::string>> InodeTable::AnyNameOf(InodeNumber n) const {
  std::lock_guard lock(mu_);
  const Inode* inode = n == kRootInode ? root_ : reinterpret_cast<const Inode*>(static_cast<uintptr_t>(n));
  for (const NameRef& ref : inode->names) {
    if (LiveParent(ref) != nullptr) return std::make_pair(ref.parent, ref.name);
  }
  return common::Status::NotFound("inode has no known name");
}

size_t InodeTable::size() const {
  std::lock_guard lock(mu_);
  return inodes_.size();
}

}  // namespace mirror::fs
