// Journal replay: copy, open, apply (see journal_replay.h).
#include "journal_replay.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <variant>

#include "common/apply.h"
#include "common/quote.h"
#include "common/unique_fd.h"

namespace mirror::itest {
namespace {

using common::Result;
using common::Status;

// Large enough for anything a writer may append (a write record carries at most
// kMaxWriteBytes): Open must use limits at least as large as the writer's.
common::JournalOptions ReaderOptions() {
  common::JournalOptions o;
  o.limits.max_record_bytes = common::kMaxWriteBytes + (256u << 10);
  return o;
}

std::string TimeText(const common::Timespec& t) {
  if (t.nsec == common::kTimeOmit) return "omit";
  std::string ns = std::to_string(t.nsec);
  return std::to_string(t.sec) + "." + std::string(9 - std::min<size_t>(9, ns.size()), '0') + ns;
}

// Walks an op's fields (the Visit() list of record.h) into "name=value" words.
struct Describer {
  std::string out;
  void Add(const char* name, const std::string& value) {
    out += ' ';
    out += name;
    out += '=';
    out += value;
  }
  void U32(uint32_t v, const char* name) {
    bool octal = std::string_view(name) == "mode";
    char buf[16];
    snprintf(buf, sizeof(buf), octal ? "0%o" : "%u", v);
    Add(name, buf);
  }
  void U64(uint64_t v, const char* name) { Add(name, std::to_string(v)); }
  void Time(const common::Timespec& t, const char* name) { Add(name, TimeText(t)); }
  void OptionalTime(const common::Timespec& t, const char* name) { Add(name, TimeText(t)); }
  void EntryPath(std::string_view p, const char* name) { Add(name, common::QuoteForMessage(p)); }
  void NodePath(std::string_view p, const char* name) { Add(name, common::QuoteForMessage(p)); }
  void LinkTarget(std::string_view t, const char* name) { Add(name, common::QuoteForMessage(t)); }
  void XattrName(std::string_view n, const char* name) { Add(name, common::QuoteForMessage(n)); }
  void Bulk(std::string_view b, const char* name, uint32_t) {
    Add(name, "<" + std::to_string(b.size()) + " bytes>");
  }
  void Opaque(std::string_view b, const char* name) {
    Add(name, "<" + std::to_string(b.size()) + " bytes>");
  }
};

std::string TypeKey(const common::Record& record) {
  if (const auto* v = std::get_if<common::VoidOp>(&record.op)) {
    return "void(" + std::string(common::RecordTypeName(v->original)) + ")";
  }
  return std::string(common::RecordTypeName(record.type()));
}

}  // namespace

Status CopyJournalFile(const std::string& from, const std::string& to) {
  common::UniqueFd in(open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return Status::IOError("open " + from, errno);
  common::UniqueFd out(open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out) return Status::IOError("create " + to, errno);
  constexpr size_t kBlock = 64 << 10;
  std::string buf(kBlock, '\0');
  off_t pos = 0;
  for (;;) {
    ssize_t n = pread(in.get(), buf.data(), kBlock, pos);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError("read " + from, errno);
    if (n == 0) break;
    bool zero = std::all_of(buf.begin(), buf.begin() + n, [](char c) { return c == 0; });
    if (!zero && pwrite(out.get(), buf.data(), static_cast<size_t>(n), pos) != n) {
      return Status::IOError("write " + to, errno);
    }
    pos += n;
  }
  if (ftruncate(out.get(), pos) != 0) return Status::IOError("ftruncate " + to, errno);
  return Status::Ok();
}

Result<JournalSummary> InspectJournal(const std::string& journal_copy) {
  MIRROR_ASSIGN_OR_RETURN(common::JournalIdentity id, common::Journal::ReadIdentity(journal_copy));
  MIRROR_ASSIGN_OR_RETURN(std::unique_ptr<common::Journal> j,
                          common::Journal::Open(journal_copy, id, ReaderOptions()));
  return JournalSummary{j->identity(), j->stats(), j->recovery()};
}

std::string DescribeRecord(const common::Record& record) {
  Describer d;
  std::visit([&d](auto op) { op.Visit(d); }, record.op);
  return "seq " + std::to_string(record.meta.seq) + " " + TypeKey(record) + d.out;
}

Result<ReplayResult> ApplyJournal(const std::string& journal_copy, const std::string& image_dir,
                                  const ReplayOptions& options) {
  auto annotate = [&journal_copy](const Status& s) {
    return s.Annotate("journal " + journal_copy);
  };
  auto id = common::Journal::ReadIdentity(journal_copy);
  if (!id.ok()) return annotate(id.status());
  auto journal = common::Journal::Open(journal_copy, *id, ReaderOptions());
  if (!journal.ok()) return annotate(journal.status());
  const common::Journal& j = **journal;
  ReplayResult r;
  r.journal = JournalSummary{j.identity(), j.stats(), j.recovery()};
  r.first_seq = r.journal.stats.tail_seq;
  r.last_seq = r.journal.recovery.last_seq;
  auto image = common::ImageTree::Open(image_dir);
  if (!image.ok()) return annotate(image.status());
  auto cursor = j.ReadFrom(r.first_seq);
  if (!cursor.ok()) return annotate(cursor.status());
  const uint64_t hint = r.journal.recovery.released_hint;
  uint64_t expect = r.first_seq;
  for (;;) {
    Result<bool> more = cursor->Next();
    if (!more.ok()) {
      return annotate(
          more.status().Annotate("reading the record after seq " + std::to_string(expect - 1)));
    }
    if (!*more) break;
    const common::Record& rec = cursor->record();
    if (rec.meta.seq != expect) {
      return annotate(Status::Corruption("seq " + std::to_string(rec.meta.seq) + " where seq " +
                                         std::to_string(expect) +
                                         " was expected (gap or reorder)"));
    }
    ++expect;
    if (rec.meta.seq < options.min_seq) continue;
    if (r.records == 0) r.first_read = rec.meta.seq;
    ++r.records;
    ++r.by_type[TypeKey(rec)];
    if (options.describe) r.log.push_back(DescribeRecord(rec));
    if (std::holds_alternative<common::VoidOp>(rec.op)) {
      ++r.voided;
      continue;
    }
    if (rec.meta.seq + options.drop_last > r.last_seq) {
      if (options.describe) r.log.back() += " (dropped: self-test)";
      continue;
    }
    bool in_flight = rec.meta.seq > hint;
    if (in_flight) ++r.in_flight;
    common::ApplyOptions apply{.allow_devices = true,
                               .replay = in_flight && options.tolerate_in_flight};
    Status s = image->Apply(rec, apply);
    if (!s.ok()) {
      if (in_flight && options.tolerate_in_flight) {
        r.in_flight_failures.push_back(DescribeRecord(rec) + ": " + s.ToString());
        continue;
      }
      return annotate(s.Annotate(DescribeRecord(rec)));
    }
    ++r.applied;
  }
  if (expect - 1 != r.last_seq) {
    return annotate(Status::Corruption("read up to seq " + std::to_string(expect - 1) +
                                       " but recovery found records up to " +
                                       std::to_string(r.last_seq)));
  }
  return r;
}

}  // namespace mirror::itest
