// Journal replay for the equivalence test: copy a live mirrorfs journal, open the copy
// and apply its live records, in seq order, to a directory with common's apply.
//
//   MIRROR_RETURN_IF_ERROR(CopyJournalFile(m->journal_path(), copy));  // while mounted
//   auto replay = ApplyJournal(copy, image_dir, {});
//   // replay->applied, replay->voided, replay->log (one line per record)
//
// The copy is taken with plain reads of the file: the journal is an mmap'd MAP_SHARED
// file, so read() sees every store the daemon made. Taken while no change is in flight
// (workload joined), it holds every change since the mount (unless a consistency point
// freed some: check first_seq). Taken after a kill -9, it also holds the records that
// were in flight (above the released-prefix hint): their change may or may not have
// reached BACKING, and mirrorfs replays them at the next mount.
//
// Journal::Open on the copy may rewrite it (it erases stray records past the end), so
// never point these functions at a live journal.
//
// Thread-safety: plain functions; one caller per file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/journal.h"
#include "common/record.h"
#include "common/status.h"

namespace mirror::itest {

// Copies `from` to `to` (created or truncated). All-zero 64 KiB blocks are left as
// holes, so a mostly empty preallocated journal costs reads, not disk space.
common::Status CopyJournalFile(const std::string& from, const std::string& to);

// What a journal (copy) holds, from Journal::Open with the file's own identity.
struct JournalSummary {
  common::JournalIdentity identity;
  common::JournalStats stats;
  common::JournalRecovery recovery;
};
common::Result<JournalSummary> InspectJournal(const std::string& journal_copy);

struct ReplayOptions {
  // Records above the released-prefix hint (in flight at a crash) are applied in replay
  // mode (ApplyOptions::replay) and a failure there is tolerated and listed: the same
  // change failed on BACKING too, or mirrorfs's recovery decides. Every other record
  // must apply cleanly, without replay mode.
  bool tolerate_in_flight = true;
  bool describe = true;  // fill ReplayResult::log
  // Records below this seq are skipped (already applied from an earlier copy of the
  // same journal); they are neither counted nor logged.
  uint64_t min_seq = 0;
  // Self-tests of the comparison only: the records with the last `drop_last` seqs are
  // read but not applied, so the copy must differ from the source.
  uint64_t drop_last = 0;
};

struct ReplayResult {
  JournalSummary journal;
  uint64_t first_seq = 0;   // the first live record (the header's tail seq)
  uint64_t last_seq = 0;    // the last live record; first_seq - 1 when none
  uint64_t records = 0;     // records read (from min_seq on)
  uint64_t first_read = 0;  // the first record's seq read (0 when none)
  uint64_t applied = 0;     // applied (no-op types included: checkpoints)
  uint64_t voided = 0;      // VoidOp records: changes that failed on BACKING, skipped
  uint64_t in_flight = 0;   // records above the released-prefix hint
  std::vector<std::string> in_flight_failures;  // tolerated, one line each
  std::map<std::string, uint64_t> by_type;      // "write" -> count (voided: "void(write)")
  std::vector<std::string> log;                 // DescribeRecord of every record
};

// Opens `journal_copy`, applies every live record to `image_dir` with
// {.allow_devices = true}, and returns the counts. An error names the journal, the
// record's seq and type, and what apply said.
common::Result<ReplayResult> ApplyJournal(const std::string& journal_copy,
                                          const std::string& image_dir,
                                          const ReplayOptions& options);

// One line: "seq 12 write path=\"s/d0/f1\" offset=4096 mtime=... data=<100 bytes>".
std::string DescribeRecord(const common::Record& record);

}  // namespace mirror::itest
