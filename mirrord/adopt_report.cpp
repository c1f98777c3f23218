#include "mirrord/adopt_report.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "common/quote.h"
#include "common/unique_fd.h"

namespace mirror::d {

using common::Status;

namespace {

struct tm UtcOf(int64_t realtime_ns) {
  const time_t seconds = static_cast<time_t>(realtime_ns / 1000000000);
  struct tm tm {};
  gmtime_r(&seconds, &tm);
  return tm;
}

std::string Q(const std::string& text) { return common::QuoteForMessage(text); }

Status WriteFileDurably(const std::string& path, const std::string& bytes) {
  common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return Status::IOError("create " + path, errno);
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError("write " + path, errno);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return Status::IOError("fsync " + path, errno);
  return Status::Ok();
}

std::string ExactnessText(const FailbackReport& r) {
  if (!r.list.after_seq) {
    return "no: which records reached the promoted side is unknown; every live record is "
           "listed, some of them may have reached it";
  }
  if (r.list.freed_unshipped) {
    return "no: records " + std::to_string(*r.list.after_seq + 1) + ".." +
           std::to_string(r.list.first_live_seq - 1) +
           " were freed from the journal before they were shipped (it was out of sync); "
           "they are not listed";
  }
  if (r.out_of_sync_marker) {
    return "no: the journal was marked out of sync (records may have been freed unshipped)";
  }
  return "yes";
}

}  // namespace

bool FailbackReport::exact() const {
  return list.after_seq.has_value() && !list.freed_unshipped && !out_of_sync_marker;
}

std::string IsoTimeMs(int64_t realtime_ns) {
  const struct tm tm = UtcOf(realtime_ns);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>((realtime_ns % 1000000000) / 1000000));
  return buf;
}

std::string CompactUtcTime(int64_t realtime_ns) {
  const struct tm tm = UtcOf(realtime_ns);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

nlohmann::json ReportJson(const FailbackReport& r) {
  nlohmann::json records = nlohmann::json::array();
  for (const UnshippedRecord& rec : r.list.records) {
    records.push_back({{"seq", rec.seq},
                       {"time", IsoTimeMs(rec.timestamp_ns)},
                       {"op", rec.op},
                       {"paths", rec.paths}});
  }
  nlohmann::json not_copied = nlohmann::json::array();
  for (const NotCopied& n : r.copies.not_copied)
    not_copied.push_back({{"path", n.path}, {"why", n.why}});
  nlohmann::json after = nullptr;
  if (r.list.after_seq) after = *r.list.after_seq;
  return {{"format", "mirrord-failback-report"},
          {"version", 1},
          {"source", r.source_id},
          {"journal", r.journal},
          {"volume_id", r.list.identity.volume_id},
          {"journal_epoch", r.list.identity.epoch},
          {"image", r.image},
          {"created", r.created},
          {"after_seq", after},
          {"after_from", r.after_from},
          {"first_live_seq", r.list.first_live_seq},
          {"last_seq", r.list.last_seq},
          {"exact", r.exact()},
          {"not_listed", r.list.not_listed},
          {"records", records},
          {"saved_files", r.copies.saved},
          {"gone", r.copies.gone},
          {"not_copied", not_copied}};
}

std::string ReportText(const FailbackReport& r) {
  const UnshippedList& l = r.list;
  std::string out;
  out += "mirrord adopt: failback report for source " + Q(r.source_id) + "\n\n";
  out += "The records below are changes the old source made that ";
  out += l.after_seq ? "never reached" : "are not known to have reached";
  out += " the promoted side.\nThe resync from the promoted side overwrites them. ";
  out += "files/ holds a copy of every path they\nname, as it was in the image when this ";
  out += "report was made (before the resync).\n\n";
  out += "created:   " + r.created + "\n";
  out += "journal:   " + Q(r.journal) + " (volume " + Q(l.identity.volume_id) + ", epoch " +
         std::to_string(l.identity.epoch) + "; live records " + std::to_string(l.first_live_seq) +
         ".." + std::to_string(l.last_seq) + ")\n";
  out += "image:     " + Q(r.image) + "\n";
  out += "after seq: ";
  out += l.after_seq ? std::to_string(*l.after_seq) + " (from " + r.after_from + ")"
                     : std::string("unknown (no --after-seq, no promoted_seq in a .fenced file)");
  out += "\nexact:     " + ExactnessText(r) + "\n";
  out += "records:   " + std::to_string(l.records.size()) + " listed";
  if (l.not_listed > 0) {
    out += " (" + std::to_string(l.not_listed) + " checkpoint or voided records not listed)";
  }
  out += "\nfiles:     " + std::to_string(r.copies.saved.size()) + " saved, " +
         std::to_string(r.copies.gone.size()) + " gone, " +
         std::to_string(r.copies.not_copied.size()) + " not copied\n\n";
  out += "seq time op paths\n";
  for (const UnshippedRecord& rec : l.records) {
    out += std::to_string(rec.seq) + " " + IsoTimeMs(rec.timestamp_ns) + " " + rec.op;
    for (size_t i = 0; i < rec.paths.size(); ++i) out += (i ? " -> " : " ") + Q(rec.paths[i]);
    out += "\n";
  }
  if (!r.copies.gone.empty()) {
    out += "\ngone (named by a record, no longer in the image):\n";
    for (const std::string& p : r.copies.gone) out += "  " + Q(p) + "\n";
  }
  if (!r.copies.not_copied.empty()) {
    out += "\nnot copied:\n";
    for (const NotCopied& n : r.copies.not_copied) out += "  " + Q(n.path) + ": " + n.why + "\n";
  }
  return out;
}

Status WriteReports(const std::string& dir, const FailbackReport& report) {
  MIRROR_RETURN_IF_ERROR(WriteFileDurably(dir + "/report.txt", ReportText(report)));
  // Invalid UTF-8 in a path becomes U+FFFD here; files/ keeps the real names.
  const std::string json =
      ReportJson(report).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return WriteFileDurably(dir + "/report.json", json);
}

}  // namespace mirror::d
