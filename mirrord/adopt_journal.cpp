#include "mirrord/adopt_journal.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <type_traits>

namespace mirror::d {

using common::Result;
using common::Status;

std::vector<std::string> PathsOf(const common::Op& op) {
  return std::visit(
      [](const auto& o) {
        std::vector<std::string> paths;
        using T = std::decay_t<decltype(o)>;
        if constexpr (requires { o.path; } && !std::is_same_v<T, common::VoidOp>) {
          paths.emplace_back(o.path);
        }
        if constexpr (requires { o.new_path; }) paths.emplace_back(o.new_path);
        return paths;
      },
      op);
}

Result<UnshippedList> ListUnshipped(const std::string& path, std::optional<uint64_t> after_seq) {
  UnshippedList list;
  MIRROR_ASSIGN_OR_RETURN(list.identity, common::Journal::ReadIdentity(path));
  common::JournalOptions options;
  // At least as large as any writer's limit: the largest write with two maximal paths.
  options.limits.max_record_bytes = common::kMaxWriteBytes + 64 * 1024;
  MIRROR_ASSIGN_OR_RETURN(auto journal, common::Journal::Open(path, list.identity, options));
  const common::JournalStats stats = journal->stats();
  list.after_seq = after_seq;
  list.first_live_seq = stats.tail_seq;
  list.last_seq = journal->recovery().last_seq;
  const uint64_t after = after_seq.value_or(0);
  list.freed_unshipped = after_seq && after + 1 < list.first_live_seq;
  const uint64_t start = std::max(after + 1, list.first_live_seq);
  if (start > list.last_seq) return list;
  MIRROR_ASSIGN_OR_RETURN(common::JournalCursor cursor, journal->ReadFrom(start));
  for (;;) {
    Result<bool> more = cursor.Next();
    if (!more.ok()) return more.status().Annotate("journal " + path);
    if (!*more) break;
    const common::Record& rec = cursor.record();
    const common::RecordType type = rec.type();
    if (type == common::RecordType::kCheckpoint || type == common::RecordType::kVoid) {
      ++list.not_listed;
      continue;
    }
    list.records.push_back({rec.meta.seq, rec.meta.timestamp_ns,
                            std::string(common::RecordTypeName(type)), PathsOf(rec.op)});
  }
  return list;
}

}  // namespace mirror::d
