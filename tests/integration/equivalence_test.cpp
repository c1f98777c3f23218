// Journal equivalence (issue 3), the test this product lives by: a random multi-threaded
// workload runs through a mirrorfs mount; the journal's records, applied with common's
// apply to a directory that started as BACKING did (empty, same root attributes), must
// give exactly BACKING: content, type, mode, uid, gid, size, hard-link groups, symlink
// targets, xattrs and mtimes. Then the same after a kill -9 of the daemon in the middle
// of the workload and a remount (recovery), and after a clean remount; each remount is
// followed by a second workload, so the recovered mount must also journal on.
//
// Targeted cases (equivalence_targeted_test.cpp) pin down what the random runs found: a
// hard link made before a remount, set-id bits dropped by unprivileged changes, setgid
// and an owner outside the group.
//
// Also checks the workload itself on plain directories (deterministic per seed, every op
// kind runs, the fd scenarios hold), the replay helper on a hand-made journal, and that
// the comparison fails when records are left out.
//
// Environment (CTest sets it; see CMakeLists.txt): MIRROR_IT_FS, MIRROR_IT_FS_KIND
// (must be mirrorfs for the mount tests), MIRROR_IT_FS_OPTS. Optional:
//   MIRROR_EQ_SEEDS=1,2,3  MIRROR_EQ_THREADS=1,4,8  MIRROR_EQ_OPS=500 (per thread)
//   MIRROR_EQ_KILL_SEEDS=1,2,3,4  the kill -9 and clean-remount cases
//   MIRROR_EQ_KILL_THREADS=4      their thread count
//   MIRROR_EQ_AS_USER=8    percent of the workload's ops run as uid 1000 or 65534
//   MIRROR_EQ_KEEP=1       keep BACKING, the copy and the journal copy of a failed case
//   MIRROR_EQ_VERBOSE=1    print the plain-directory workload's counts and trace
//   MIRROR_EQ_DROP_LAST=N  leave the last N records unapplied (to see a failure report)
// On a failure the full report (differences, records touching them, workload trace,
// daemon stderr) is written to $TMPDIR/mirror-eq-<case>-<pid>.log and named in the
// message. Reproduce one case with e.g. MIRROR_EQ_SEEDS=2 MIRROR_EQ_THREADS=4
// -tc=JournalReplayedOnACopyEqualsBacking (exact replay with 1 thread only).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <vector>

#include "common/journal.h"
#include "equivalence_check.h"
#include "fuse_mount.h"
#include "journal_replay.h"
#include "tree_compare.h"
#include "workload.h"

namespace mirror::itest {
namespace {

using Clock = std::chrono::steady_clock;

// A scratch directory removed on destruction (also when a CHECK fails).
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = getenv("TMPDIR");
    path_ = std::string(tmp && *tmp ? tmp : "/tmp") + "/mirror-eq-XXXXXX";
    // 0755: the workload's other users must reach the tree.
    if (mkdtemp(path_.data()) == nullptr || ::chmod(path_.c_str(), 0755) != 0) path_.clear();
  }
  ~ScratchDir() {
    if (!path_.empty()) RemoveTree(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string Sub(const std::string& name) const {
    std::string p = path_ + "/" + name;
    ::mkdir(p.c_str(), 0755);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- The workload on plain directories -------------------------------------------

TEST_CASE("WorkloadIsDeterministicPerSeedSingleThreadedAndRunsEveryOpKind") {
  ScratchDir dir;
  REQUIRE(!dir.path().empty());
  WorkloadOptions o;
  o.seed = 11;
  o.ops_per_thread = 1500;
  o.root = dir.Sub("one");
  WorkloadResult first = RunWorkload(o);
  o.root = dir.Sub("two");
  WorkloadResult second = RunWorkload(o);
  REQUIRE_MESSAGE(first.setup_error.empty(), first.setup_error);
  CHECK(first.ops == 1500);
  CHECK_FALSE(first.timed_out);
  CHECK_FALSE(first.mount_lost);
  CHECK_MESSAGE(first.violations.empty(), JoinLines(first.violations, 20));
  REQUIRE(first.traces.size() == 1);
  REQUIRE(second.traces.size() == 1);
  CHECK(first.traces[0] == second.traces[0]);
  for (size_t i = 0; i < kWorkOpCount; ++i) {
    CHECK_MESSAGE(first.by_op[i].ok > 0, std::string(WorkOpName(static_cast<WorkOp>(i))),
                  " never succeeded\n", first.Summary());
  }
  TreeSnapshot a, b;
  std::string error;
  REQUIRE_MESSAGE(SnapshotTree(dir.path() + "/one", &a, &error), error);
  REQUIRE_MESSAGE(SnapshotTree(dir.path() + "/two", &b, &error), error);
  std::vector<std::string> diffs = CompareTrees(a, b);
  CHECK_MESSAGE(diffs.empty(), JoinLines(diffs, 20));
  CHECK(a.size() > 20);  // the run left a real tree behind

  o.root = dir.Sub("other_seed");
  o.seed = 12;
  WorkloadResult other = RunWorkload(o);
  CHECK(other.traces.at(0) != first.traces[0]);
}

TEST_CASE("WorkloadOnManyThreadsKeepsFdSemanticsOnAPlainDirectory") {
  ScratchDir dir;
  REQUIRE(!dir.path().empty());
  WorkloadOptions o{.root = dir.Sub("w"), .seed = 3, .threads = 4, .ops_per_thread = 400};
  WorkloadResult r = RunWorkload(o);
  REQUIRE_MESSAGE(r.setup_error.empty(), r.setup_error);
  CHECK(r.ops == 1600);
  if (getenv("MIRROR_EQ_VERBOSE") != nullptr) {
    std::string text = r.Summary() + r.TraceText();
    MESSAGE(text);
  }
  CHECK_MESSAGE(r.violations.empty(), JoinLines(r.violations, 20));
  CHECK_MESSAGE(r.Errors(EIO) + r.Errors(EBADF) + r.Errors(EFAULT) == 0, r.Summary());
  CHECK(r.by_op[static_cast<size_t>(WorkOp::kSharedWrite)].ok > 0);
  CHECK(r.by_op[static_cast<size_t>(WorkOp::kFdAfterReuse)].ok > 0);
  REQUIRE(r.traces.size() == 4);
  CHECK(r.traces[1].front().rfind("t1#0 ", 0) == 0);  // each line names thread and op index
}

TEST_CASE("WorkloadStopsAtItsTimeBound") {
  ScratchDir dir;
  REQUIRE(!dir.path().empty());
  WorkloadOptions o{.root = dir.Sub("w"),
                    .seed = 1,
                    .threads = 2,
                    .ops_per_thread = 1000000,
                    .max_time = std::chrono::milliseconds(300),
                    .trace = false};
  auto start = Clock::now();
  WorkloadResult r = RunWorkload(o);
  CHECK(r.timed_out);
  CHECK(r.ops < 2000000);
  CHECK(Clock::now() - start < std::chrono::seconds(10));
}

// ---- The replay helper on a journal made by hand -----------------------------------

TEST_CASE("ApplyJournalAppliesLiveRecordsAndSkipsVoidedOnes") {
  ScratchDir dir;
  REQUIRE(!dir.path().empty());
  std::string path = dir.path() + "/journal";
  common::JournalOptions options;
  options.size_bytes = 1 << 20;
  auto j = common::Journal::Create(path, {"src", "vol", 1}, options);
  REQUIRE_MESSAGE(j.ok(), j.status().ToString());
  common::Timespec t{1700000000, 5};
  REQUIRE((*j)->Append(common::MkdirOp{
                           .path = "d", .mode = S_IFDIR | 0750, .mtime = t, .parent_mtime = t})
              .ok());
  REQUIRE((*j)->Append(common::CreateOp{
                           .path = "d/f", .mode = S_IFREG | 0640, .mtime = t, .parent_mtime = t})
              .ok());
  common::EncodedRecord failed;
  REQUIRE(failed.Build(common::UnlinkOp{.path = "d/none", .parent_mtime = t}).ok());
  auto held = (*j)->AppendHeld(failed);
  REQUIRE(held.ok());
  REQUIRE((*j)->VoidAndRelease(*held).ok());
  REQUIRE((*j)->Append(common::WriteOp{.path = "d/f", .offset = 2, .mtime = t, .data = "xy"}).ok());
  std::string copy = dir.path() + "/journal.copy";
  common::Status copied = CopyJournalFile(path, copy);
  REQUIRE_MESSAGE(copied.ok(), copied.ToString());
  j->reset();

  std::string image = dir.Sub("image");
  auto r = ApplyJournal(copy, image, {});
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->first_seq == 1);
  CHECK(r->last_seq == 4);
  CHECK(r->records == 4);
  CHECK(r->applied == 3);
  CHECK(r->voided == 1);
  CHECK(r->by_type["void(unlink)"] == 1);
  REQUIRE(r->log.size() == 4);
  CHECK(r->log[3].find("seq 4 write path=\"d/f\" offset=2") == 0);
  struct stat st;
  REQUIRE(::stat((image + "/d/f").c_str(), &st) == 0);
  CHECK(st.st_size == 4);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_mtim.tv_sec == t.sec);

  // A record that cannot apply (its name is taken in this image) is an error naming
  // its seq and type.
  std::string other = dir.Sub("other");
  REQUIRE(::mkdir((other + "/d").c_str(), 0755) == 0);
  auto bad = ApplyJournal(copy, other, {});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().ToString().find("seq 1") != std::string::npos);
  CHECK(bad.status().ToString().find("mkdir") != std::string::npos);
}

// ---- Equivalence through a real mirrorfs mount -------------------------------------

TEST_CASE("JournalReplayedOnACopyEqualsBacking") {
  EquivalenceConfig config = EquivalenceConfigFromEnv();
  REQUIRE_MESSAGE(config.error.empty(), config.error);
  for (uint64_t seed : config.seeds) {
    for (int threads : config.threads) {
      CaseOutcome out = RunEquivalenceCase(config, seed, threads);
      MESSAGE(out.summary);
      CHECK_MESSAGE(out.problems.empty(), out.Report());
    }
  }
}

TEST_CASE("EquivalenceCatchesRecordsLeftOut") {
  // The comparison's own check: with the last records of the journal left unapplied,
  // the copy must differ from BACKING (else a broken journal would pass too).
  EquivalenceConfig config = EquivalenceConfigFromEnv();
  REQUIRE_MESSAGE(config.error.empty(), config.error);
  config.ops_per_thread = 100;
  config.drop_last = 3;
  CaseOutcome out = RunEquivalenceCase(config, 5, 1);
  REQUIRE(out.problems.size() == 1);
  CHECK_MESSAGE(out.problems[0].find("differences between BACKING") != std::string::npos,
                out.problems[0]);
  CHECK(out.details.find("(dropped: self-test)") != std::string::npos);
  if (!out.log_path.empty()) std::remove(out.log_path.c_str());
}

TEST_CASE("Kill9MidWorkloadThenRemountStillEquivalent") {
  EquivalenceConfig config = EquivalenceConfigFromEnv();
  REQUIRE_MESSAGE(config.error.empty(), config.error);
  for (uint64_t seed : config.kill_seeds) {
    CaseOutcome out = RunKillCase(config, seed, config.kill_threads);
    MESSAGE(out.summary);
    CHECK_MESSAGE(out.problems.empty(), out.Report());
  }
}

TEST_CASE("CleanRemountThenMoreWorkloadStillEquivalent") {
  EquivalenceConfig config = EquivalenceConfigFromEnv();
  REQUIRE_MESSAGE(config.error.empty(), config.error);
  for (uint64_t seed : config.kill_seeds) {
    CaseOutcome out = RunRemountCase(config, seed, config.kill_threads);
    MESSAGE(out.summary);
    CHECK_MESSAGE(out.problems.empty(), out.Report());
  }
}

}  // namespace
}  // namespace mirror::itest
