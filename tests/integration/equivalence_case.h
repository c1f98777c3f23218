// Internals of equivalence_check.h: the state and steps of one case, shared by
// equivalence_check.cpp (the single-session case) and equivalence_restart.cpp (kill -9
// and remount cases). Every step records what went wrong as a problem and returns;
// nothing throws or aborts, so the mount is always torn down by FuseMount.
//
// Thread-safety: one case, the test's main thread (the workload threads only touch
// `workload` through RunWorkload's return value).
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "equivalence_check.h"
#include "fuse_mount.h"
#include "workload.h"

namespace mirror::itest {

struct CaseRun {
  CaseRun(const EquivalenceConfig& c, std::string name) : config(c) { out.name = std::move(name); }

  void Problem(std::string text) { out.problems.push_back(std::move(text)); }
  // Mounts and takes the journal baseline (first_seq); false once a problem is noted.
  bool Mount();
  bool Baseline();
  WorkloadOptions Workload(uint64_t seed, int threads) const;
  // Runs the workload into `workload`, bounded: if it has not finished `grace` after
  // its own time bound (a hung mount: ops block in the kernel, not between ops), the
  // daemon is SIGKILLed so that every blocked call returns, and that is a problem.
  // `kill_after_ops` > 0: SIGKILL the daemon once that many ops are done (the kill
  // case); returns whether this call killed it then.
  bool RunWorkloadBounded(const WorkloadOptions& o, uint64_t kill_after_ops = 0,
                          std::chrono::seconds grace = std::chrono::seconds(30));
  // Problems from the workload: setup, violated fd checks, EIO, lost mount, time bound.
  void CheckWorkload(bool expect_lost);
  // Stops the daemon; a clean unmount must end it with exit 0.
  void StopClean(const char* when);
  bool CopyJournal(const std::string& to);
  // Copies the journal to <root>/<file> while mounted (every change in it), then
  // StopClean(when). The copy's path, or nullopt if copying failed (a problem then).
  std::optional<std::string> SaveJournalAndStop(const char* file, const char* when);
  // Replays the journal copies, in order, onto a fresh copy dir and compares it with
  // BACKING. A later copy continues where the one before ended (its records up to
  // there are skipped); a gap between them means records the test never saw.
  void Verify(const std::vector<std::string>& journal_copies);
  void Compare(const std::string& copy, const std::vector<std::string>& log);
  // Completes the summary; on problems writes the full report to out.log_path.
  void Finish();

  const EquivalenceConfig& config;
  CaseOutcome out;
  std::unique_ptr<FuseMount> mount;
  struct stat backing_root {};
  uint64_t first_seq = 0;  // the journal's tail right after the mount
  WorkloadResult workload;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

// "exit 0", "signal 9", ... for a wait status (-1: not reaped).
std::string DescribeWait(int status);

}  // namespace mirror::itest
