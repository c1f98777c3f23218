// `mirrord adopt`: prepares a source's store to receive again, for failback (issue 6;
// docs/operations.md). Two cases:
//
//  - With a DIR (failback): the old source's BACKING becomes the store's image
//    (STATE_DIR/<source>/image, a symlink to realpath(DIR)); the promoted side then
//    mirrors to this store, and its resync sends only the differences.
//  - Without a DIR (switch back): this mirrord's promoted store becomes a destination
//    again; the image stays.
//
// Before anything changes, the old side's journal (when given) is read: the records
// after the last seq the promoted side holds are listed in a report, and copies of the
// paths they name, as they are now in the image, are saved under
// STATE_DIR/<source>/saved/<UTC time>/ (docs/formats.md, "Failback report"). Then the
// journal and its side files are renamed aside (never deleted), so that a later mirrorfs
// mount starts a fresh journal and never replays them, and the store's state is written:
// not promoted, nothing applied, epoch = max(the store's, the .fenced note's, the
// journal's + 1), and a resync pending (resync_active with no end yet), so the first
// session is told to resync (WELCOME resume_seq 0) and promote refuses until it is
// applied.
//
// The store's lock (mirrord/store_lock.h) is held throughout, so this refuses to run
// beside a mirrord serving the source or a promote of it.
//
// Thread-safety: one call per store at a time (the lock enforces it across processes).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mirrord/adopt_report.h"

namespace mirror::d {

struct AdoptRequest {
  std::string source_id;
  std::string state_dir;               // e.g. kDefaultStateDir
  std::optional<std::string> dir;      // failback: the old source's BACKING
  std::optional<std::string> journal;  // the old mirrorfs journal
  std::optional<uint64_t> after_seq;   // overrides the .fenced note's promoted_seq
  // Test hooks: the mount table to check, and the time (0: CLOCK_REALTIME now).
  std::string mounts_path = "/proc/self/mounts";
  int64_t now_ns = 0;
};

enum class AdoptOutcome {
  kDone,     // exit 0
  kRefused,  // exit 2: unsafe or not applicable now; `error` says why and what to do
  kFailed,   // exit 3: I/O error, no such store, unreadable journal or state
};

struct AdoptResult {
  AdoptOutcome outcome = AdoptOutcome::kFailed;
  std::string error;  // one line, when not kDone

  std::string store;      // STATE_DIR/<source>
  std::string image;      // the directory the store applies to (DIR's realpath, or image/)
  std::string volume_id;  // written to the state
  uint64_t epoch = 0;     // written to the state
  std::optional<std::string> saved_dir;         // saved/<time>, when anything was saved
  std::optional<std::string> report;            // saved/<time>/report.txt
  std::optional<std::string> journal_moved_to;  // <journal>.adopted-<time>
  std::vector<std::string> side_files_moved;    // their new paths
  std::optional<std::string> log_moved_to;      // saved/<time>/log (no-DIR case)
  uint64_t records = 0;                         // listed in the report
  uint64_t saved_files = 0;                     // copies under files/
  bool exact = false;                 // the report lists exactly what the other side lacks
  std::vector<std::string> warnings;  // one line each
};

// Runs the whole adopt (see the file comment). Never throws; every refusal leaves the
// store, DIR and the journal as they were (a store directory and its lock file may have
// been created).
AdoptResult Adopt(const AdoptRequest& request);

}  // namespace mirror::d
