// Reading an old source's journal for `mirrord adopt` (mirrord/adopt.h): which of its
// records never reached the promoted side (the fenced mirrorfs's note beside it is read
// with common/fence_file.h).
//
// Thread-safety: plain functions; the journal must not be in use by a mirrorfs (it is
// opened read-write, and Journal::Open's recovery may erase stray records past its end,
// as any mount would).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/journal.h"
#include "common/record.h"
#include "common/status.h"

namespace mirror::d {

// One record the promoted side may not have.
struct UnshippedRecord {
  uint64_t seq = 0;
  int64_t timestamp_ns = 0;
  std::string op;                  // RecordTypeName: "write", "rename", ...
  std::vector<std::string> paths;  // path, then new_path for rename and link
};

struct UnshippedList {
  common::JournalIdentity identity;
  std::optional<uint64_t> after_seq;  // nullopt: unknown, every live record is listed
  uint64_t first_live_seq = 0;        // the journal's tail seq
  uint64_t last_seq = 0;              // its last live record (first_live_seq - 1: none)
  // Records in (after_seq, first_live_seq) were freed without reaching the other side
  // (an out-of-sync journal): the list cannot name them.
  bool freed_unshipped = false;
  uint64_t not_listed = 0;  // checkpoint markers and voided records: they changed nothing
  std::vector<UnshippedRecord> records;
};

// The record paths of `op` (none for a checkpoint or a voided record).
std::vector<std::string> PathsOf(const common::Op& op);

// Opens the journal at `path` (its identity read from its own header) and lists its
// live records with a seq above `after_seq` (all of them when nullopt). NotFound or
// IOError when it cannot be opened; Corruption when a record does not decode.
common::Result<UnshippedList> ListUnshipped(const std::string& path,
                                            std::optional<uint64_t> after_seq);

}  // namespace mirror::d
