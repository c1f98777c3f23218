// The failback report of `mirrord adopt` (mirrord/adopt.h): report.txt for people and
// report.json for scripts, in the saved directory STATE_DIR/<source>/saved/<time>/.
// Format: docs/formats.md, "Failback report (mirrord adopt)".
//
// Thread-safety: pure functions, except WriteReports (writes two files).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/status.h"
#include "mirrord/adopt_copy.h"
#include "mirrord/adopt_journal.h"

namespace mirror::d {

struct FailbackReport {
  std::string source_id;
  std::string journal;  // the journal's path as given (before it was renamed)
  std::string image;    // the directory the copies were taken from
  std::string created;  // UTC ISO-8601, when adopt ran
  // Where after_seq came from: "--after-seq", "<journal>.fenced", or "" (unknown).
  std::string after_from;
  bool out_of_sync_marker = false;  // <journal>.out-of-sync existed
  UnshippedList list;
  SavedCopies copies;

  // True when the list is exactly the records the other side lacks: after_seq is known,
  // and no record after it was freed unshipped (and no out-of-sync marker says so).
  bool exact() const;
};

// UTC ISO-8601 with milliseconds: "2026-11-25T13:01:02.345Z".
std::string IsoTimeMs(int64_t realtime_ns);
// The saved directory's name: "20261125T130102Z".
std::string CompactUtcTime(int64_t realtime_ns);

nlohmann::json ReportJson(const FailbackReport& report);
std::string ReportText(const FailbackReport& report);

// Writes dir/report.txt and dir/report.json (each fsynced).
common::Status WriteReports(const std::string& dir, const FailbackReport& report);

}  // namespace mirror::d
