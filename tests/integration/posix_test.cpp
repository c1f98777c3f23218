// POSIX comparison (issue 3): every scenario runs in a plain directory and in the
// FUSE mount under test, as root and as uid 65534; return values, errno, observed
// data and the resulting trees must match.
//
// Environment (set by CTest, see CMakeLists.txt):
//   MIRROR_IT_FS, MIRROR_IT_FS_KIND, MIRROR_IT_FS_OPTS  the filesystem under test
//   MIRROR_IT_EXPECT_FAIL  comma-separated "scenario/identity" (or "scenario" for
//                          both identities) that must differ on this filesystem
//   MIRROR_IT_ONLY         run only scenarios whose name contains this (debugging)
//   MIRROR_IT_VERBOSE      print the differences of known failures too
//
// Run: ctest -L integration --output-on-failure  (in a build dir, as root), or by
// hand: MIRROR_IT_FS=<build>/mirrorfs/mirrorfs MIRROR_IT_FS_KIND=mirrorfs
//       MIRROR_IT_FS_OPTS=allow_other,dev <build>/tests/integration/it_posix
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fuse_mount.h"
#include "posix_scenarios.h"
#include "run_as.h"
#include "tree_compare.h"

namespace mirror::itest {
namespace {

constexpr size_t kMaxShownDiffs = 12;

std::set<std::string> SplitList(const char* text) {
  std::set<std::string> out;
  if (text == nullptr) return out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.insert(item);
  }
  return out;
}

struct RunRecord {
  std::vector<Step> steps;
  TreeSnapshot tree;
  std::string error;  // the run itself broke (child died, timeout, walk failed)
};

// Runs one phase of a scenario in a child as `who` and appends its steps.
bool RunPhase(const Identity& who, const std::string& dir, void (*fn)(Ops&), const char* prefix,
              RunRecord* rec) {
  ChildOutput out = RunAs(who, [&] {
    ::umask(022);
    Ops ops(dir);
    fn(ops);
    return ops.Serialize();
  });
  std::vector<Step> steps;
  if (!out.ok || !Ops::Parse(out.output, &steps)) {
    rec->error = std::string(prefix) + (out.ok ? "unparsable steps" : out.error);
    return false;
  }
  for (Step& s : steps) {
    s.name = prefix + s.name;
    rec->steps.push_back(std::move(s));
  }
  return true;
}

RunRecord RunScenario(const Scenario& sc, const std::string& dir, const Identity& who) {
  RunRecord rec;
  if (::mkdir(dir.c_str(), 0755) != 0 || ::chown(dir.c_str(), who.uid, who.gid) != 0) {
    rec.error = "cannot prepare " + dir;
    return rec;
  }
  if (sc.setup != nullptr && !RunPhase(kRoot, dir, sc.setup, "setup: ", &rec)) return rec;
  if (!RunPhase(who, dir, sc.run, "", &rec)) return rec;
  std::string error;
  if (!SnapshotTree(dir, &rec.tree, &error)) rec.error = "snapshot: " + error;
  return rec;
}

std::vector<std::string> Differences(const RunRecord& want, const RunRecord& got) {
  std::vector<std::string> diffs;
  if (!want.error.empty()) diffs.push_back("plain run broke: " + want.error);
  if (!got.error.empty()) diffs.push_back("mount run broke: " + got.error);
  if (!diffs.empty()) return diffs;
  size_t n = std::max(want.steps.size(), got.steps.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= want.steps.size() || i >= got.steps.size()) {
      diffs.push_back("step count differs: " + std::to_string(want.steps.size()) + " vs " +
                      std::to_string(got.steps.size()));
      break;
    }
    const Step& a = want.steps[i];
    const Step& b = got.steps[i];
    if (a.name != b.name || a.ret != b.ret || a.err != b.err || a.data != b.data) {
      diffs.push_back("step " + std::to_string(i) + " expected {" + DescribeStep(a) + "} got {" +
                      DescribeStep(b) + "}");
    }
  }
  for (std::string& d : CompareTrees(want.tree, got.tree)) diffs.push_back("tree: " + d);
  return diffs;
}

std::string Shown(const std::vector<std::string>& diffs) {
  std::string out;
  for (size_t i = 0; i < diffs.size() && i < kMaxShownDiffs; ++i) out += "    " + diffs[i] + "\n";
  if (diffs.size() > kMaxShownDiffs) {
    out += "    ... " + std::to_string(diffs.size() - kMaxShownDiffs) + " more\n";
  }
  return out;
}

struct Tally {
  int passed = 0;
  int known = 0;       // failed and listed
  int unexpected = 0;  // failed, not listed
  int stale = 0;       // listed, but passed
};

// Runs every selected scenario in `plain_root` and `fs_root`, checks each outcome
// against `expected` (the known failures), and returns the tally. Stops early once
// `healthy` says the filesystem is gone or a run timed out, so a hung daemon costs
// one child timeout, not one per scenario.
Tally CompareAll(const std::string& plain_root, const std::string& fs_root,
                 const std::string& fs_name, const std::set<std::string>& expected,
                 const std::function<bool()>& healthy) {
  Tally tally;
  const char* only = getenv("MIRROR_IT_ONLY");
  bool verbose = getenv("MIRROR_IT_VERBOSE") != nullptr;
  for (const Scenario& sc : PosixScenarios()) {
    if (only != nullptr && std::string(sc.name).find(only) == std::string::npos) continue;
    for (const Identity& who : {kRoot, kNobody}) {
      if ((who.uid == 0 && !sc.as_root) || (who.uid != 0 && !sc.as_user)) continue;
      std::string id = std::string(sc.name) + "/" + who.name;
      std::string leaf = std::string(sc.name) + "." + who.name;
      RunRecord want = RunScenario(sc, plain_root + "/" + leaf, who);
      RunRecord got = RunScenario(sc, fs_root + "/" + leaf, who);
      std::vector<std::string> diffs = Differences(want, got);
      if (got.error.find("timed out") != std::string::npos || !healthy()) {
        FAIL_CHECK("stopping after " << id << ": " << fs_name << " hangs or died ("
                                     << got.error << ")");
        ++tally.unexpected;
        return tally;
      }
      bool listed = expected.count(id) > 0 || expected.count(sc.name) > 0;
      if (diffs.empty() && !listed) {
        ++tally.passed;
      } else if (diffs.empty()) {
        ++tally.stale;
        FAIL_CHECK(id << " is listed as a known failure of " << fs_name
                      << " but now matches the plain directory: remove it from the list");
      } else if (listed) {
        ++tally.known;
        std::printf("known failure %s on %s (%zu differences)\n%s", id.c_str(), fs_name.c_str(),
                    diffs.size(), verbose ? Shown(diffs).c_str() : "");
      } else {
        ++tally.unexpected;
        FAIL_CHECK(id << " on " << fs_name << " differs from a plain directory:\n" << Shown(diffs));
      }
    }
  }
  return tally;
}

std::set<std::string> AllScenarioIds() {
  std::set<std::string> ids;
  for (const Scenario& sc : PosixScenarios()) {
    ids.insert(sc.name);
    if (sc.as_root) ids.insert(std::string(sc.name) + "/root");
    if (sc.as_user) ids.insert(std::string(sc.name) + "/nobody");
  }
  return ids;
}

TEST_CASE("ScenariosAreDeterministicOnPlainDirectories") {
  // Two plain directories must agree, or the comparison against a mount would
  // report noise (times, inode numbers) instead of behaviour.
  REQUIRE_MESSAGE(geteuid() == 0, "run as root: the scenarios chown and switch uids");
  const char* tmp = getenv("TMPDIR");
  std::string root = std::string(tmp && *tmp ? tmp : "/tmp") + "/mirror-it-plain-XXXXXX";
  REQUIRE(mkdtemp(root.data()) != nullptr);
  REQUIRE(::chmod(root.c_str(), 0755) == 0);
  REQUIRE(::mkdir((root + "/a").c_str(), 0755) == 0);
  REQUIRE(::mkdir((root + "/b").c_str(), 0755) == 0);
  Tally t = CompareAll(root + "/a", root + "/b", "plain", {}, [] { return true; });
  RemoveTree(root);
  CHECK(t.unexpected == 0);
  CHECK(t.passed > 0);
}

TEST_CASE("PosixScenariosMatchPlainDirectory") {
  MountOptions options;
  std::string error;
  REQUIRE_MESSAGE(MountOptionsFromEnv(&options, &error), error);
  std::set<std::string> expected = SplitList(getenv("MIRROR_IT_EXPECT_FAIL"));
  std::set<std::string> ids = AllScenarioIds();
  for (const std::string& name : expected) {
    CHECK_MESSAGE(ids.count(name) > 0, "MIRROR_IT_EXPECT_FAIL names no scenario: " << name);
  }
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<FuseMount> mount = FuseMount::Start(options, &error);
  REQUIRE_MESSAGE(mount != nullptr, error);
  std::string plain = mount->root() + "/plain";
  REQUIRE(::mkdir(plain.c_str(), 0755) == 0);
  std::string fs_name = FsKindName(options.kind);

  Tally t = CompareAll(plain, mount->mountpoint(), fs_name, expected,
                       [&mount] { return mount->DaemonAlive(); });

  CHECK_MESSAGE(mount->DaemonAlive(), "daemon died; stderr:\n" << mount->DaemonStderr());
  // A clean unmount ends the daemon cleanly, without sanitizer reports.
  int status = mount->Stop();
  std::string daemon_stderr = mount->DaemonStderr();
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0),
                "daemon wait status " << status << "; stderr:\n" << daemon_stderr);
  CHECK_MESSAGE(daemon_stderr.find("Sanitizer") == std::string::npos, daemon_stderr);
  CHECK_MESSAGE(daemon_stderr.find("runtime error:") == std::string::npos, daemon_stderr);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("SUMMARY %s: %d passed, %d failed (%d known, %d unexpected), %d listed but passing; "
              "%.1f s\n",
              fs_name.c_str(), t.passed, t.known + t.unexpected, t.known, t.unexpected, t.stale, secs);
  std::fflush(stdout);
  CHECK(t.unexpected == 0);
  CHECK(t.stale == 0);
  CHECK(t.passed > 0);
}

}  // namespace
}  // namespace mirror::itest
