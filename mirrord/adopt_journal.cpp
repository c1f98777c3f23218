#include "mirrord/adopt_journal.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>

namespace mirror::d {

using common::Result;
using common::Status;

Result<std::optional<FencedNote>> ReadFencedFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<FencedNote>();
    return Status::IOError("stat " + path, errno);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("open " + path, EIO);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::Corruption(path + ": not a JSON object");
  FencedNote note;
  // A key of the wrong type is damage: guessing a seq would make the report wrong.
  auto number = [&](const char* key, uint64_t* out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return Status::Ok();
    if (!it->is_number_unsigned()) {
      return Status::Corruption(path + ": key '" + key + "' is not a whole number");
    }
    *out = it->get<uint64_t>();
    return Status::Ok();
  };
  MIRROR_RETURN_IF_ERROR(number("epoch", &note.epoch));
  MIRROR_RETURN_IF_ERROR(number("promoted_seq", &note.promoted_seq));
  if (auto it = j.find("message"); it != j.end() && it->is_string()) note.message = *it;
  if (auto it = j.find("time"); it != j.end() && it->is_string()) note.time = *it;
  return std::optional<FencedNote>(std::move(note));
}

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
