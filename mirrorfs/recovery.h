// Crash recovery at mount: re-applies journal records to BACKING before anyone is served.
//
// Which records (docs/mirrorfs.md, "Crash recovery"):
// - same boot (only the daemon died; BACKING's page cache holds every change made
//   before): the records above the journal's released-prefix hint, i.e. those whose
//   change was in flight (at most one per FUSE thread). A namespace change in flight
//   excluded every other mutation, so nothing journaled later depends on them.
// - another boot (the machine crashed; BACKING may have lost what was not synced):
//   every record since the last consistency point.
// Records are applied with common's apply in replay mode (already-done is harmless),
// so BACKING ends as the journal says. A record that cannot be applied is logged and
// counted; the mount still comes up (BACKING is then what it is, and the caller's
// consistency point drops the record from the journal).
#pragma once

#include <cstdint>
#include <string>

#include "common/journal.h"
#include "common/status.h"

namespace mirror::fs {

struct RecoveryReport {
  bool same_boot = true;
  uint64_t from_seq = 0;     // first seq looked at
  uint64_t through_seq = 0;  // last seq looked at (from_seq - 1: none)
  uint64_t replayed = 0;     // records applied
  uint64_t voided = 0;       // voided records skipped (changes that had failed)
  uint64_t failed = 0;       // records that could not be applied
  // For status: "new journal", "clean" (nothing to replay), "daemon crash" or "reboot".
  std::string kind;
};

common::Result<RecoveryReport> RecoverBacking(const common::Journal& journal,
                                              const std::string& backing, bool same_boot);

}  // namespace mirror::fs
