// The mutation ordering (DESIGN invariant 2): the order in which BACKING sees changes is
// the order in which they will be journaled.
//
// - Namespace-changing operations (create, mknod, mkdir, symlink, link, unlink, rmdir,
//   rename) hold the namespace lock EXCLUSIVELY: they are totally ordered among themselves
//   and against every data/attribute change.
// - Data and attribute changes (write, setattr, fallocate, copy_file_range destination,
//   setxattr, removexattr, open with O_TRUNC) hold it SHARED plus the target inode's data
//   mutex (Inode::mu): changes to one inode are totally ordered; changes to different
//   inodes commute, so running them in parallel is safe.
//
// Lock order: namespace lock, then InodeTable::mu_, then Inode::mu. Only one Inode::mu is
// ever held at a time (copy_file_range locks only its destination).
// OrderingGuard is the only way these locks are taken; Mutation (mutation.h) owns one.
#pragma once

#include <mutex>
#include <shared_mutex>

#include "mirrorfs/inode_table.h"

namespace mirror::fs {

class OrderingGuard {
 public:
  // Exclusive namespace lock (target == nullptr) or shared namespace lock + target->mu.
  OrderingGuard(std::shared_mutex& namespace_mu, Inode* target) {
    if (target == nullptr) {
      exclusive_ = std::unique_lock(namespace_mu);
    } else {
      shared_ = std::shared_lock(namespace_mu);
      inode_ = std::unique_lock(target->mu);
    }
  }
  OrderingGuard(const OrderingGuard&) = delete;
  OrderingGuard& operator=(const OrderingGuard&) = delete;
  ~OrderingGuard() = default;  // releases in reverse order: inode, then namespace

  bool exclusive() const { return exclusive_.owns_lock(); }

 private:
  std::unique_lock<std::shared_mutex> exclusive_;
  std::shared_lock<std::shared_mutex> shared_;
  std::unique_lock<std::mutex> inode_;  // declared last: destroyed first
};

}  // namespace mirror::fs
