// The equivalence scenarios of equivalence_test.cpp, as functions that never
// abort half-way: each mounts mirrorfs (FuseMount, which always tears down), runs the
// workload, replays the journal onto a copy and compares it with BACKING, collecting
// every problem and a full report instead of stopping at the first.
//
// Equivalence: SnapshotTree of BACKING and of the copy, CompareTrees with mtimes; the
// only thing ignored is mirrorfs's own bookkeeping, the trusted.mirrorfs.* xattrs on
// BACKING's root.
//
// Thread-safety: call from the test's main thread only (forks, mounts).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fuse_mount.h"

namespace mirror::itest {

struct EquivalenceConfig {
  MountOptions mount;  // from the environment, plus the journal options
  std::vector<uint64_t> seeds{1, 2, 3};
  std::vector<int> threads{1, 4, 8};
  std::vector<uint64_t> kill_seeds{1, 2, 3, 4};  // also the clean-remount cases
  int kill_threads = 4;
  int ops_per_thread = 500;
  int as_user_percent = 8;  // WorkloadOptions::as_user_percent
  uint64_t drop_last = 0;  // self-test: leave the last N records unapplied
  std::string error;       // non-empty: cannot run (not root, not mirrorfs, ...)
};

// MIRROR_IT_FS* (see fuse_mount.h), which must name mirrorfs, and the optional
// MIRROR_EQ_SEEDS, MIRROR_EQ_THREADS, MIRROR_EQ_KILL_SEEDS (comma lists) and
// MIRROR_EQ_OPS (ops per thread), MIRROR_EQ_KILL_THREADS, MIRROR_EQ_AS_USER (percent of
// ops run as another user), MIRROR_EQ_DROP_LAST (self-test: see the
// report of a failing run). Adds journal_size=256M, cp_interval=0 and source_id=eq to the mount
// options (256M: the workload's records stay far below half of it, so no consistency
// point frees any; a run that sees one says so); the fixture puts the journal in its
// temp dir.
EquivalenceConfig EquivalenceConfigFromEnv();

struct CaseOutcome {
  std::string name;                   // "seed=1 threads=4" (+ " kill" / " remount")
  std::string summary;                // one line: records, ops, times
  std::vector<std::string> problems;  // empty: the case passed
  std::string details;                // the full report (written to log_path on failure)
  std::string log_path;
  // The case name, every problem, and where the full report is.
  std::string Report() const;
};

// (a) mount, workload, copy the journal while mounted, clean unmount, replay, compare.
CaseOutcome RunEquivalenceCase(const EquivalenceConfig& config, uint64_t seed, int threads);

// (b) mount, workload, kill -9 the daemon at a seeded point (15-70% of the ops), copy
// the journal, remount the same backing dir (mirrorfs recovers), a second workload
// (seed + 1000, half the ops), copy the journal again, clean unmount; replay the first
// copy (records above its released hint in replay mode, failures there tolerated and
// listed), then the second from where the first ended; compare.
CaseOutcome RunKillCase(const EquivalenceConfig& config, uint64_t seed, int threads);

// (c) as (b) without the kill: the workload runs to its end, clean unmount, remount,
// a second workload over the same tree, then both journals are replayed in turn.
CaseOutcome RunRemountCase(const EquivalenceConfig& config, uint64_t seed, int threads);

// A scripted session before and after a clean remount (for targeted cases). Each gets
// the mountpoint and returns "" or what went wrong; the journals of both sessions are
// replayed in turn and the copy compared with BACKING.
using SessionScript = std::function<std::string(const std::string& mountpoint)>;
CaseOutcome RunScriptedRemountCase(const EquivalenceConfig& config, const std::string& name,
                                   const SessionScript& before, const SessionScript& after);

// A scripted single session (for targeted cases): mount, run `script`, copy the journal,
// clean unmount, replay, compare.
CaseOutcome RunScriptedCase(const EquivalenceConfig& config, const std::string& name,
                            const SessionScript& script);

// The first `max` lines joined with newlines, plus "... N more" if cut.
std::string JoinLines(const std::vector<std::string>& lines, size_t max);

}  // namespace mirror::itest
