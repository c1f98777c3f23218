// BuildRecord: the journal record of one mutation (common/record.h), from what the op put
// in its MutationInfo, the inode table's paths and the time the sink chose.
//
// Where BACKING decides a result (the owner, group and mode of a new node, the mode after
// a chown, setuid/setgid dropped by a write, truncate or ACL change), the record carries a prediction made with the kernel's rules; the sink checks
// it after the change and journals a correction when BACKING decided otherwise.
//
// Thread-safety: a pure function of its inputs plus fstat calls; call it inside the
// mutation's ordering section, so that paths and predictions hold for the change.
#pragma once

#include <sys/stat.h>
#include <time.h>

#include <string>

#include "common/record.h"
#include "mirrorfs/inode_table.h"
#include "mirrorfs/mutation.h"

namespace mirror::fs {

common::Timespec ToRecordTime(const struct timespec& t);

// The path of entry `name` in the directory at `parent_path` ("." is the root).
std::string JoinEntryPath(const std::string& parent_path, const std::string& name);

struct BuiltRecord {
  enum class Outcome {
    kRecord,       // `op` is the record
    kNoName,       // the inode has no name left (unlinked): nothing to journal
    kUnknownName,  // the inode has links but no name we know: cannot be journaled
  };
  Outcome outcome = Outcome::kRecord;
  common::Op op;
  // Storage that op's string_views point into: a BuiltRecord must not be copied or moved.
  std::string path;
  std::string new_path;
  // New nodes, chown, and changes to setuid/setgid files: what BACKING is expected to
  // show for the node afterwards.
  bool predicts_node = false;
  mode_t mode = 0;  // type and permission bits (a symlink's are not compared)
  uid_t uid = 0;
  gid_t gid = 0;
  BuiltRecord() = default;
  BuiltRecord(const BuiltRecord&) = delete;
  BuiltRecord& operator=(const BuiltRecord&) = delete;
};

// Fills *out for `m` with the change's time `t`. Returns 0, or an errno for the client
// (ENAMETOOLONG for a path longer than a record may carry, EIO if a stat fails).
int BuildRecord(const Mutation& m, InodeTable& inodes, const struct timespec& t,
                BuiltRecord* out);

// The mode a new node gets natively: `requested` under umask, plus the setgid bit that a
// new directory inherits from a setgid parent. (Default ACLs are left to the check.)
mode_t PredictNewMode(mode_t type, mode_t requested, mode_t umask, const struct stat& parent);
// The group a new node gets natively: the parent's when the parent is setgid.
gid_t PredictNewGid(gid_t caller_gid, const struct stat& parent);
// The permission bits after a chown: setuid cleared on non-directories, and setgid too
// where group-execute is set (as the kernel's setattr_should_drop_suidgid).
mode_t PredictModeAfterChown(const struct stat& before);

}  // namespace mirror::fs
