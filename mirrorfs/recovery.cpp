#include "mirrorfs/recovery.h"

#include <variant>

#include "common/apply.h"
#include "mirrorfs/log.h"

namespace mirror::fs {

common::Result<RecoveryReport> RecoverBacking(const common::Journal& journal,
                                              const std::string& backing, bool same_boot) {
  RecoveryReport report;
  report.same_boot = same_boot;
  const common::JournalStats stats = journal.stats();
  report.from_seq = same_boot ? journal.recovery().released_hint + 1 : stats.tail_seq;
  report.through_seq = stats.last_assigned_seq;
  if (report.from_seq > report.through_seq) {
    report.through_seq = report.from_seq - 1;
    report.kind = "clean";
    return report;
  }
  report.kind = same_boot ? "daemon crash" : "reboot";
  MIRROR_ASSIGN_OR_RETURN(common::ImageTree tree, common::ImageTree::Open(backing));
  MIRROR_ASSIGN_OR_RETURN(common::JournalCursor cursor, journal.ReadFrom(report.from_seq));
  common::ApplyOptions options;
  options.allow_devices = true;  // BACKING is the source's own volume
  options.replay = true;
  for (;;) {
    MIRROR_ASSIGN_OR_RETURN(bool more, cursor.Next());
    if (!more) break;
    const common::Record& record = cursor.record();
    if (std::holds_alternative<common::VoidOp>(record.op)) {
      ++report.voided;
      continue;
    }
    if (common::Status s = tree.Apply(record, options); !s.ok()) {
      ++report.failed;
      Log(LogLevel::kError, "recovery: " + s.message());
      continue;
    }
    ++report.replayed;
  }
  MIRROR_RETURN_IF_ERROR(tree.Sync());
  return report;
}

}  // namespace mirror::fs
