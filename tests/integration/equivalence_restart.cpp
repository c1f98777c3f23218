// The restart cases of equivalence_check.h: kill -9 mid-workload or a clean unmount,
// then a remount of the same backing dir and a second workload; both sessions'
// journals are replayed in turn onto one copy.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <optional>
#include <random>

#include "equivalence_case.h"
#include "equivalence_check.h"

namespace mirror::itest {
namespace {

// The first session of a restart case: the workload, either killed (-9) at a seeded
// point or run to its end; then the daemon is gone. Returns the copy of its journal.
std::optional<std::string> FirstSession(CaseRun& run, WorkloadOptions o, bool kill) {
  if (!kill) {
    run.RunWorkloadBounded(o);
    run.CheckWorkload(false);
    // Every thread joined: nothing in flight.
    return run.SaveJournalAndStop("journal.copy", "at the first unmount");
  }
  uint64_t total = static_cast<uint64_t>(o.threads) * static_cast<uint64_t>(o.ops_per_thread);
  std::mt19937_64 pick(o.seed * 7919 + 17);
  uint64_t kill_at = total * (15 + pick() % 56) / 100;  // 15% .. 70% of the ops
  bool killed = run.RunWorkloadBounded(o, kill_at);
  run.out.summary += " kill_at_op=" + std::to_string(kill_at) + "/" + std::to_string(total);
  if (!killed) run.Problem("the workload ended before the kill point " + std::to_string(kill_at));
  run.CheckWorkload(true);
  if (killed && !run.workload.mount_lost) {
    run.Problem("the workload never saw the mount go away after kill -9");
  }
  int status = run.mount->Stop();  // detaches the dead mount, reaps the daemon
  if (killed && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
    run.Problem("the killed daemon ended with " + DescribeWait(status));
  }
  run.out.details += "stderr of the killed daemon:\n" + run.mount->DaemonStderr() + "\n";
  std::string copy = run.mount->root() + "/journal.copy";
  if (!run.CopyJournal(copy)) return std::nullopt;  // holds every change whose record was written
  return copy;
}

CaseOutcome RunRestartCase(const EquivalenceConfig& config, uint64_t seed, int threads, bool kill) {
  CaseRun run(config, "seed=" + std::to_string(seed) + " threads=" + std::to_string(threads) +
                          (kill ? " kill" : " remount"));
  if (!run.Mount()) {
    run.Finish();
    return run.out;
  }
  WorkloadOptions o = run.Workload(seed, threads);
  std::optional<std::string> copy = FirstSession(run, o, kill);
  std::string error;
  if (!run.mount->Restart(&error)) {
    run.Problem("remount failed: " + error);
    run.Finish();
    return run.out;
  }
  run.out.details += "stderr of the remount:\n" + run.mount->DaemonStderr() + "\n";
  // The remounted (recovered) mount must serve and journal on: a second workload on the
  // same tree, meeting the names, links and open-file history of the first.
  WorkloadOptions again = run.Workload(seed + 1000, threads);
  again.setup = false;
  again.ops_per_thread = std::max(1, o.ops_per_thread / 2);
  WorkloadResult first = std::move(run.workload);
  run.RunWorkloadBounded(again);
  run.CheckWorkload(false);
  // One report for both runs: the first run's trace, then the second's (marked).
  run.out.details += "workload before the remount:\n" + first.Summary();
  run.out.summary += " ops_after_remount=" + std::to_string(run.workload.ops);
  for (auto& t : run.workload.traces) {
    for (std::string& line : t) line = "[after remount] " + line;
    first.traces.push_back(std::move(t));
  }
  run.workload.traces = std::move(first.traces);
  run.workload.ops += first.ops;
  std::optional<std::string> after =
      run.SaveJournalAndStop("journal.after_remount", "after the remount and a second workload");
  if (copy && after) run.Verify({*copy, *after});
  run.Finish();
  return run.out;
}

}  // namespace

CaseOutcome RunKillCase(const EquivalenceConfig& config, uint64_t seed, int threads) {
  return RunRestartCase(config, seed, threads, true);
}

CaseOutcome RunRemountCase(const EquivalenceConfig& config, uint64_t seed, int threads) {
  return RunRestartCase(config, seed, threads, false);
}

CaseOutcome RunScriptedCase(const EquivalenceConfig& config, const std::string& name,
                            const SessionScript& script) {
  CaseRun run(config, name);
  if (run.Mount()) {
    std::string failed = script(run.mount->mountpoint());
    if (!failed.empty()) run.Problem("script: " + failed);
    if (auto copy = run.SaveJournalAndStop("journal.copy", "at unmount")) run.Verify({*copy});
  }
  run.Finish();
  return run.out;
}

CaseOutcome RunScriptedRemountCase(const EquivalenceConfig& config, const std::string& name,
                                   const SessionScript& before, const SessionScript& after) {
  CaseRun run(config, name);
  if (run.Mount()) {
    std::string failed = before(run.mount->mountpoint());
    if (!failed.empty()) run.Problem("before the remount: " + failed);
    std::optional<std::string> copy =
        run.SaveJournalAndStop("journal.copy", "at the first unmount");
    std::string error;
    if (!run.mount->Restart(&error)) {
      run.Problem("remount failed: " + error);
    } else {
      failed = after(run.mount->mountpoint());
      if (!failed.empty()) run.Problem("after the remount: " + failed);
      std::optional<std::string> second =
          run.SaveJournalAndStop("journal.after_remount", "after the remount");
      if (copy && second) run.Verify({*copy, *second});
    }
  }
  run.Finish();
  return run.out;
}

}  // namespace mirror::itest
