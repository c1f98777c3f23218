// Mutation: the one doorway through which a FUSE request changes BACKING.
//
// Every mutating op does, in this order:
//   Mutation m = fs.BeginMutation(kind, target);  // takes the ordering locks (ordering.h)
//   ... fill m.info() ...
//   if (int err = m.Start()) return err;          // the sink may refuse (journal full, ro)
//   ... the syscall on BACKING ...
//   m.Finish(err)  (0 = Commit, else Fail)
// The locks are released when `m` is destroyed, i.e. after Finish, so the sink sees the
// changes in exactly the order BACKING did; then the sink's Settle runs (the wait for
// the mirror's acknowledgement), before the op replies. A started Mutation destroyed without Finish
// counts as failed (EIO). Ops may return early (validation errors) before Start: nothing
// reaches the sink then.
//
// MutationSink is the hook for the journal: Before() runs with the locks held, before the
// syscall (journal-first: reserve and write the record; return an errno to refuse);
// After() runs with the locks held, after it (publish, or void the record on failure).
// The default sink only counts.
//
// Thread-safety: a Mutation belongs to one request thread. Sinks are called concurrently
// from many threads (for different inodes, under the shared namespace lock).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>

#include "mirrorfs/inode_table.h"
#include "mirrorfs/ordering.h"

namespace mirror::fs {

enum class MutationKind : uint8_t {
  // Namespace changes: exclusive namespace lock.
  kCreate, kMknod, kMkdir, kSymlink, kLink, kUnlink, kRmdir, kRename,
  // Data and attribute changes: shared namespace lock + the target's data mutex. One FUSE
  // setattr is up to four of them (chmod, chown, truncate, utimens), one record each.
  kWrite, kChmod, kChown, kTruncate, kUtimens, kTruncateOnOpen, kFallocate, kCopyFileRange,
  kSetxattr, kRemovexattr,
};
inline constexpr int kMutationKinds = static_cast<int>(MutationKind::kRemovexattr) + 1;
bool IsNamespaceKind(MutationKind kind);
const char* MutationKindName(MutationKind kind);

// What a mutation changes. Ops fill the fields that apply before calling the syscall and
// complete the "result" fields before Commit. Pointers are valid until Commit/Fail returns.
struct MutationInfo {
  MutationKind kind;
  InodeNumber ino = 0;         // target (data/attr ops; link source; rename: moved inode)
  int fd = -1;                 // write, fallocate, copy_file_range: the target's open fd
  InodeNumber parent = 0;      // namespace ops: directory of `name`
  std::string name;
  InodeNumber new_parent = 0;  // rename: destination directory; link: directory of new name
  std::string new_name;
  uint32_t flags = 0;          // rename flags, fallocate mode, setxattr flags, utimens to_set
  mode_t mode = 0;             // create/mknod/mkdir: requested mode (before umask); chmod
  dev_t rdev = 0;              // mknod
  uid_t uid = 0;               // the caller
  gid_t gid = 0;
  mode_t umask = 0;
  off_t offset = 0;            // write/fallocate/copy_file_range destination offset
  uint64_t length = 0;         // bytes asked for; truncate: the new size
  const char* data = nullptr;  // write: the bytes; setxattr: the value; symlink: the target
  InodeNumber src_ino = 0;     // copy_file_range source
  off_t src_offset = 0;
  const struct stat* attr = nullptr;  // chown: st_uid/st_gid (-1: unchanged); utimens: times
  // Results, set by the op before Commit:
  InodeNumber result_ino = 0;  // create/mknod/mkdir/symlink/link: the new entry's inode
  uint64_t result_length = 0;  // write/copy_file_range: bytes actually changed
};

// Per-mutation scratch space for the sink (what it reserved in Before, for After).
struct SinkSlot {
  uint64_t seq = 0;      // the held record, if `held`
  uint64_t offset = 0;
  bool held = false;
  uint64_t last_seq = 0;      // the highest seq this change journaled (0: none), for Settle
  struct timespec time = {};  // the time the sink chose for this change (mtimes)
  // What the record predicts for the node after the change (new nodes, chown, changes that
  // may drop setuid/setgid): checked
  // against BACKING afterwards.
  bool check_node = false;
  mode_t mode = 0;  // type and permission bits
  uid_t uid = 0;
  gid_t gid = 0;
};

class Mutation;

class MutationSink {
 public:
  virtual ~MutationSink() = default;
  // Called with the ordering locks held, before the syscall. Non-zero refuses the request
  // with that errno; After() is then not called.
  virtual int Before(const Mutation& m) = 0;
  // Called with the ordering locks held, after the syscall: err == 0 means BACKING changed.
  virtual void After(const Mutation& m, int err) = 0;
  // Called after the ordering locks are released, before the request is answered: where
  // the client's call must wait (for the mirror's acknowledgement) it waits here.
  virtual void Settle(const Mutation& /*m*/) {}
};

// The default sink: counts begun/committed/failed mutations per kind.
class CountingSink final : public MutationSink {
 public:
  int Before(const Mutation& m) override;
  void After(const Mutation& m, int err) override;
  uint64_t begun(MutationKind k) const { return begun_[static_cast<int>(k)].load(); }
  uint64_t committed(MutationKind k) const { return committed_[static_cast<int>(k)].load(); }
  uint64_t failed(MutationKind k) const { return failed_[static_cast<int>(k)].load(); }

 private:
  std::atomic<uint64_t> begun_[kMutationKinds] = {};
  std::atomic<uint64_t> committed_[kMutationKinds] = {};
  std::atomic<uint64_t> failed_[kMutationKinds] = {};
};

class Mutation {
 public:
  // Takes the ordering locks for `kind` (target is required for non-namespace kinds).
  // Prefer Filesystem::BeginMutation.
  Mutation(std::shared_mutex& namespace_mu, MutationSink& sink, MutationKind kind, Inode* target);
  Mutation(const Mutation&) = delete;
  Mutation& operator=(const Mutation&) = delete;
  ~Mutation();

  // Calls the sink's Before with the filled info: 0 to go ahead, or the errno with which
  // the sink refused (then do not touch BACKING; return that errno).
  int Start();
  MutationInfo& info() { return info_; }
  const MutationInfo& info() const { return info_; }
  // The sink's scratch space: a Mutation is used by one thread, and the sink is called
  // with it, so the const sink callbacks may still write here.
  SinkSlot& sink_slot() const { return slot_; }
  MutationKind kind() const { return info_.kind; }

  void Commit() { Finish(0); }
  void Fail(int err) { Finish(err == 0 ? 5 /*EIO*/ : err); }
  // Convenience: Commit if err == 0, else Fail(err); returns err.
  int Finish(int err);

 private:
  std::optional<OrderingGuard> guard_;  // reset before Settle
  MutationSink& sink_;
  MutationInfo info_;
  mutable SinkSlot slot_;
  bool started_ = false;
  bool finished_ = false;
};

}  // namespace mirror::fs
