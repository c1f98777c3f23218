// Filesystem: the state behind a mount: BACKING's root, the inode table, the ordering lock
// and the mutation sink. One per mount; handed to libfuse as the session's userdata.
//
// Thread-safety: all methods may be called from any FUSE worker thread.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>

#include "common/status.h"
#include "common/unique_fd.h"
#include "mirrorfs/inode_table.h"
#include "mirrorfs/mutation.h"

namespace mirror::fs {

// The reserved xattr namespace on BACKING (mirrorfs keeps its volume id there). Clients
// neither see it (getxattr: ENODATA, listxattr: filtered) nor change it (EPERM).
inline constexpr char kReservedXattrPrefix[] = "trusted.mirrorfs.";
bool IsReservedXattr(const char* name);

struct FsParams {
  double entry_timeout = 1.0;  // seconds the kernel may cache names and attributes
  double attr_timeout = 1.0;
  unsigned max_write = 1u << 20;
};

class Filesystem {
 public:
  // Opens BACKING (must be a directory). `sink` may be null: a CountingSink is used.
  static common::Result<std::unique_ptr<Filesystem>> Open(const std::string& backing,
                                                          FsParams params,
                                                          std::unique_ptr<MutationSink> sink);
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  InodeTable& inodes() { return *inodes_; }
  const FsParams& params() const { return params_; }
  MutationSink& sink() { return *sink_; }
  const struct stat& root_stat() const { return root_st_; }

  // Takes the ordering locks for `kind` and returns the Mutation (see mutation.h).
  // `target` is required for data/attribute kinds and ignored for namespace kinds.
  // Returned by value (guaranteed copy elision): `Mutation m = fs.BeginMutation(...);`
  [[nodiscard]] Mutation BeginMutation(MutationKind kind, Inode* target) {
    return Mutation(namespace_mu_, *sink_, kind, target);
  }

  // Blocks every change to BACKING (all mutations take the namespace lock) while the
  // returned lock is held: a resync compares and journals at one point of the stream.
  [[nodiscard]] std::unique_lock<std::shared_mutex> FreezeChanges() {
    return std::unique_lock(namespace_mu_);
  }

  // Looks `name` up in `parent` on BACKING and adds a kernel lookup: fills `e` (ino, attr,
  // timeouts, generation). Returns 0 or an errno.
  int Lookup(InodeNumber parent, const char* name, fuse_entry_param* e);
  // fstat of the inode through its O_PATH fd.
  int Stat(Inode& inode, struct stat* st);

 private:
  Filesystem(FsParams params, std::unique_ptr<MutationSink> sink, common::UniqueFd root,
             const struct stat& root_st);

  FsParams params_;
  std::unique_ptr<MutationSink> sink_;
  struct stat root_st_;
  std::unique_ptr<InodeTable> inodes_;
  std::shared_mutex namespace_mu_;
};

// "/proc/self/fd/N": reopens an O_PATH fd with real access modes.
struct ProcPath {
  explicit ProcPath(int fd);
  char path[32];
};

// The Filesystem behind a request.
inline Filesystem& FsOf(fuse_req_t req) { return *static_cast<Filesystem*>(fuse_req_userdata(req)); }

}  // namespace mirror::fs
