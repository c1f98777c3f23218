// The equivalence scenarios (see equivalence_check.h): the steps of a case, and the
// single-session case. The restart cases are in equivalence_restart.cpp.
#include "equivalence_check.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "equivalence_case.h"
#include "journal_replay.h"
#include "tree_compare.h"
#include "workload.h"

namespace mirror::itest {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kOwnXattrPrefix = "trusted.mirrorfs.";
constexpr size_t kLinesPerPath = 40;

template <class T>
std::vector<T> ListFromEnv(const char* name, std::vector<T> fallback) {
  const char* text = getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  std::vector<T> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(static_cast<T>(std::strtoll(item.c_str(), nullptr, 10)));
  }
  return out;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Fixed(double v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

// Lines of `lines` that mention `needle`, the last `max` of them.
std::string Matching(const std::vector<std::string>& lines, const std::string& needle, size_t max) {
  std::vector<std::string> hits;
  for (const std::string& l : lines) {
    if (l.find(needle) != std::string::npos) hits.push_back(l);
  }
  std::string out;
  size_t from = hits.size() > max ? hits.size() - max : 0;
  if (from > 0) out += "    ... " + std::to_string(from) + " earlier\n";
  for (size_t i = from; i < hits.size(); ++i) out += "    " + hits[i] + "\n";
  return out;
}

// Where two contents part: the first differing byte and the extent of the difference.
std::string ContentDifference(const std::string& want, const std::string& got) {
  size_t n = std::min(want.size(), got.size());
  size_t first = 0;
  while (first < n && want[first] == got[first]) ++first;
  size_t last = n;
  while (last > first && want[last - 1] == got[last - 1]) --last;
  return "content: expected " + std::to_string(want.size()) + " bytes, got " +
         std::to_string(got.size()) + "; first difference at byte " + std::to_string(first) +
         (first < n ? ", common length differs up to byte " + std::to_string(last) : "");
}

}  // namespace

std::string DescribeWait(int status) {
  if (status == -1) return "not reaped";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

bool CaseRun::Mount() {
  std::string error;
  mount = FuseMount::Start(config.mount, &error);
  if (mount == nullptr) {
    Problem("mount failed: " + error);
    return false;
  }
  if (::stat(mount->backing().c_str(), &backing_root) != 0) {
    Problem("stat backing: " + std::string(strerror(errno)));
    return false;
  }
  return Baseline();
}

// The journal right after the mount: it must exist and open; its tail is the first
// seq of this mount, which must still be live when the workload is done.
bool CaseRun::Baseline() {
  const std::string& path = mount->journal_path();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || st.st_size == 0) {
    Problem("mirrorfs wrote no journal: " + path +
            (::stat(path.c_str(), &st) != 0 ? " does not exist" : " is empty") +
            " after mounting with -o journal=" + path + ",journal_size=256M,cp_interval=0");
    return false;
  }
  std::string copy = mount->root() + "/journal.at_mount";
  common::Status s = CopyJournalFile(path, copy);
  auto summary = s.ok() ? InspectJournal(copy) : common::Result<JournalSummary>(s);
  if (!summary.ok()) {
    Problem("the journal after mount does not open: " + summary.status().ToString());
    return false;
  }
  first_seq = summary->stats.tail_seq;
  out.details += "journal at mount: tail_seq=" + std::to_string(first_seq) +
                 " last_assigned=" + std::to_string(summary->stats.last_assigned_seq) +
                 " capacity=" + std::to_string(summary->stats.capacity_bytes) + "\n";
  return true;
}

WorkloadOptions CaseRun::Workload(uint64_t seed, int threads) const {
  WorkloadOptions o;
  o.root = mount->mountpoint();
  o.seed = seed;
  o.threads = threads;
  o.ops_per_thread = config.ops_per_thread;
  o.as_user_percent = config.as_user_percent;
  o.max_time = std::chrono::seconds(60);
  return o;
}

bool CaseRun::RunWorkloadBounded(const WorkloadOptions& options, uint64_t kill_after_ops,
                                 std::chrono::seconds grace) {
  WorkloadOptions o = options;
  std::atomic<uint64_t> progress{0};
  std::atomic<bool> done{false};
  o.progress = &progress;
  std::thread worker([&] {
    workload = RunWorkload(o);
    done = true;
  });
  auto deadline = Clock::now() + o.max_time + grace;
  bool killed = false;
  while (!done) {
    if (kill_after_ops > 0 && progress.load() >= kill_after_ops) {
      killed = ::kill(mount->pid(), SIGKILL) == 0;
      break;
    }
    if (Clock::now() >= deadline) {
      Problem("the workload did not finish within " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::seconds>(o.max_time + grace).count()) +
              " s (ops done: " + std::to_string(progress.load()) +
              "): the mount hung; the daemon was killed to free the callers");
      ::kill(mount->pid(), SIGKILL);
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  worker.join();
  return killed;
}

void CaseRun::CheckWorkload(bool expect_lost) {
  if (!workload.setup_error.empty()) Problem("workload: " + workload.setup_error);
  for (const std::string& v : workload.violations) Problem("workload check failed: " + v);
  if (!expect_lost && workload.mount_lost) Problem("the mount went away during the workload");
  if (!expect_lost && workload.Errors(EIO) > 0) {
    Problem("EIO from the mount in " + std::to_string(workload.Errors(EIO)) +
            " ops (see the workload summary and trace)");
  }
  if (workload.timed_out) Problem("the workload hit its time bound (mount too slow or hung?)");
}

// Stops the daemon; a clean unmount must end it with exit 0.
void CaseRun::StopClean(const char* when) {
  int status = mount->Stop();
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    Problem(std::string("daemon did not exit cleanly ") + when + ": " + DescribeWait(status) +
            "; stderr:\n" + mount->DaemonStderr());
  }
}

bool CaseRun::CopyJournal(const std::string& to) {
  common::Status s = CopyJournalFile(mount->journal_path(), to);
  if (!s.ok()) Problem("copying the journal: " + s.ToString());
  return s.ok();
}

std::optional<std::string> CaseRun::SaveJournalAndStop(const char* file, const char* when) {
  std::string copy = mount->root() + "/" + file;
  bool copied = CopyJournal(copy);
  StopClean(when);
  if (!copied) return std::nullopt;
  return copy;
}

// Replays the journal copies, in order, onto a fresh copy dir and compares it with
// BACKING. A later copy continues where the one before ended (its records up to
// there are skipped); a gap between them means records the test never saw.
void CaseRun::Verify(const std::vector<std::string>& journal_copies) {
  std::string copy = mount->root() + "/copy";
  if (::mkdir(copy.c_str(), 0700) != 0 ||
      ::chmod(copy.c_str(), backing_root.st_mode & 07777) != 0 ||
      ::chown(copy.c_str(), backing_root.st_uid, backing_root.st_gid) != 0) {
    Problem("preparing the copy dir: " + std::string(strerror(errno)));
    return;
  }
  std::vector<std::string> log;
  uint64_t next = 0;
  for (size_t i = 0; i < journal_copies.size(); ++i) {
    const std::string& part = journal_copies[i];
    auto t0 = Clock::now();
    ReplayOptions options;
    options.min_seq = next;
    if (i + 1 == journal_copies.size()) options.drop_last = config.drop_last;
    auto replay = ApplyJournal(part, copy, options);
    double replay_s = Seconds(Clock::now() - t0);
    if (!replay.ok()) {
      Problem("replay failed: " + replay.status().ToString());
      return;
    }
    const ReplayResult& r = *replay;
    out.summary +=
        " [" + part.substr(part.rfind('/') + 1) + ": records=" + std::to_string(r.records) +
        " seq " + std::to_string(r.first_read) + ".." + std::to_string(r.last_seq) +
        " voided=" + std::to_string(r.voided) + " in_flight=" + std::to_string(r.in_flight) +
        " replay=" + Fixed(replay_s) + "s]";
    out.details += part + ": tail_seq=" + std::to_string(r.first_seq) +
                   " last_seq=" + std::to_string(r.last_seq) +
                   " released_hint=" + std::to_string(r.journal.recovery.released_hint) + "\n";
    for (const auto& [type, n] : r.by_type) {
      out.details += "  records " + type + ": " + std::to_string(n) + "\n";
    }
    for (const std::string& f : r.in_flight_failures) {
      out.details += "  in-flight record failed on the copy (tolerated): " + f + "\n";
    }
    if (i == 0 && r.first_seq != first_seq) {
      Problem("the journal freed records: its tail is seq " + std::to_string(r.first_seq) +
              " but the mount started at seq " + std::to_string(first_seq) +
              ": a consistency point ran during the workload (journal too small, or "
              "cp_interval=0 ignored), so this run cannot check equivalence");
      return;
    }
    if (i > 0 && r.first_seq > next) {
      Problem(part + " starts at seq " + std::to_string(r.first_seq) + " but the copy before " +
              "ended at seq " + std::to_string(next - 1) + ": records " + std::to_string(next) +
              ".." + std::to_string(r.first_seq - 1) + " were freed before the test saw them");
    }
    if (r.records == 0) Problem(part + " holds no records after the workload");
    log.insert(log.end(), r.log.begin(), r.log.end());
    next = r.last_seq + 1;
  }
  Compare(copy, log);
}

void CaseRun::Compare(const std::string& copy, const std::vector<std::string>& log) {
  TreeSnapshot want, got;
  std::string error;
  if (!SnapshotTree(mount->backing(), &want, &error) || !SnapshotTree(copy, &got, &error)) {
    Problem("snapshot: " + error);
    return;
  }
  auto root = want.find(".");
  if (root != want.end()) {
    std::erase_if(root->second.xattrs,
                  [](const auto& x) { return x.first.rfind(kOwnXattrPrefix, 0) == 0; });
  }
  std::vector<std::string> diffs = CompareTrees(want, got, CompareOptions{.mtime = true});
  uint64_t bytes = 0;
  for (const auto& [path, e] : want) bytes += e.content.size();
  out.summary += " entries=" + std::to_string(want.size()) + " bytes=" + std::to_string(bytes) +
                 " diffs=" + std::to_string(diffs.size());
  if (diffs.empty()) return;
  Problem(std::to_string(diffs.size()) + " differences between BACKING (expected) and the " +
          "replayed copy (got):\n" + JoinLines(diffs, 60));
  std::string per_path;
  for (const std::string& d : diffs) {
    std::string path = d.substr(0, d.find(": "));
    per_path += "== " + d + "\n";
    if (d.find(": content ") != std::string::npos) {
      per_path += "  " + ContentDifference(want[path].content, got[path].content) + "\n";
    }
    if (path == ".") continue;
    // The inode's other names in BACKING too: a change may have come through any of them.
    std::vector<std::string> names = {path};
    auto entry = want.find(path);
    for (const auto& [other, e] : want) {
      if (entry != want.end() && !e.link_group.empty() && other != path &&
          e.link_group == entry->second.link_group) {
        names.push_back(other);
      }
    }
    for (const std::string& name : names) {
      per_path +=
          "  records naming \"" + name + "\":\n" + Matching(log, "\"" + name, kLinesPerPath);
      for (const auto& t : workload.traces) {
        std::string lines = Matching(t, name, kLinesPerPath);
        if (!lines.empty()) per_path += "  workload ops naming " + name + ":\n" + lines;
      }
    }
  }
  out.details += "\n---- differences, with the records and ops that touched each path\n" +
                 per_path + "\n---- every record\n" + JoinLines(log, log.size());
}

void CaseRun::Finish() {
  out.summary = out.name + ": " + Fixed(Seconds(Clock::now() - start)) +
                "s ops=" + std::to_string(workload.ops) + out.summary;
  if (out.problems.empty()) return;
  out.details = out.summary + "\n\n---- problems\n" + JoinLines(out.problems, out.problems.size()) +
                "\n\n" + out.details + "\n---- workload\n" + workload.Summary() + "\n" +
                workload.TraceText() + "\n---- daemon stderr\n" +
                (mount ? mount->DaemonStderr() : std::string());
  const char* tmp = getenv("TMPDIR");
  std::string name = out.name;
  for (char& c : name) {
    if (c == ' ' || c == '=') c = '-';
  }
  out.log_path = std::string(tmp && *tmp ? tmp : "/tmp") + "/mirror-eq-" + name + "-" +
                 std::to_string(getpid()) + ".log";
  std::ofstream(out.log_path) << out.details;
  if (mount && getenv("MIRROR_EQ_KEEP") != nullptr) {
    std::string keep = out.log_path + ".trees";
    if (::mkdir(keep.c_str(), 0755) == 0) {
      for (const char* what : {"backing", "copy", "journal.copy"}) {
        std::rename((mount->root() + "/" + what).c_str(), (keep + "/" + what).c_str());
      }
      out.log_path += " (trees kept in " + keep + ")";
    }
  }
}

std::string JoinLines(const std::vector<std::string>& lines, size_t max) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < max; ++i) out += lines[i] + "\n";
  if (lines.size() > max) out += "... " + std::to_string(lines.size() - max) + " more\n";
  return out;
}

std::string CaseOutcome::Report() const {
  std::string r = name + " failed:\n" + JoinLines(problems, problems.size());
  if (!log_path.empty()) r += "full report: " + log_path + "\n";
  return r;
}

EquivalenceConfig EquivalenceConfigFromEnv() {
  EquivalenceConfig c;
  if (!MountOptionsFromEnv(&c.mount, &c.error)) return c;
  if (c.mount.kind != FsKind::kMirrorfs) {
    c.error =
        "the equivalence test needs MIRROR_IT_FS_KIND=mirrorfs (it replays mirrorfs's journal)";
    return c;
  }
  c.mount.fs_opts.insert(c.mount.fs_opts.end(),
                         {"journal_size=256M", "cp_interval=0", "source_id=eq"});
  c.seeds = ListFromEnv<uint64_t>("MIRROR_EQ_SEEDS", c.seeds);
  c.threads = ListFromEnv<int>("MIRROR_EQ_THREADS", c.threads);
  c.kill_seeds = ListFromEnv<uint64_t>("MIRROR_EQ_KILL_SEEDS", c.kill_seeds);
  if (const char* ops = getenv("MIRROR_EQ_OPS")) c.ops_per_thread = std::atoi(ops);
  if (const char* t = getenv("MIRROR_EQ_KILL_THREADS")) c.kill_threads = std::atoi(t);
  if (const char* p = getenv("MIRROR_EQ_AS_USER")) c.as_user_percent = std::atoi(p);
  if (const char* drop = getenv("MIRROR_EQ_DROP_LAST"))
    c.drop_last = std::strtoull(drop, nullptr, 10);
  return c;
}

CaseOutcome RunEquivalenceCase(const EquivalenceConfig& config, uint64_t seed, int threads) {
  CaseRun run(config, "seed=" + std::to_string(seed) + " threads=" + std::to_string(threads));
  if (run.Mount()) {
    run.RunWorkloadBounded(run.Workload(seed, threads));
    run.CheckWorkload(false);
    // Every workload thread has joined: no change is in flight, the journal is complete.
    if (auto copy = run.SaveJournalAndStop("journal.copy", "at unmount")) run.Verify({*copy});
  }
  run.Finish();
  return run.out;
}

}  // namespace mirror::itest
