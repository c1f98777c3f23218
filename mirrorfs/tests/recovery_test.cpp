// Crash recovery and consistency points over a real journal and directory (no FUSE).
#include "mirrorfs/recovery.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/journal.h"
#include "mirrorfs/checkpointer.h"
#include "tests/unit/test_util.h"

using namespace mirror::fs;
namespace common = mirror::common;

namespace {

const common::JournalIdentity kId{"src", "vol", 1};

common::CreateOp Create(std::string_view path) {
  return common::CreateOp{path, S_IFREG | 0644, 0, 0, {1700000000, 0}, {1700000000, 0}};
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// A journal left as a killed daemon leaves it: "a" released (its change made on BACKING,
// then removed there so that a replay would show), "b" held (in flight: not made).
std::string JournalKilledMidChange(const mirror::test::TempDir& dir) {
  std::string path = dir.path() + "/journal";
  common::JournalOptions options;
  options.size_bytes = 2u << 20;
  auto j = common::Journal::Create(path, kId, options);
  REQUIRE(j.ok());
  common::EncodedRecord rec;
  REQUIRE(rec.Build(Create("a")).ok());
  auto a = (*j)->AppendHeld(rec);
  REQUIRE(a.ok());
  REQUIRE((*j)->Release(*a).ok());
  REQUIRE(rec.Build(Create("b")).ok());
  REQUIRE((*j)->AppendHeld(rec).ok());  // never released: the daemon died here
  return path;
}

// Recovers a journal whose daemon died mid-change (JournalKilledMidChange) onto an
// empty BACKING in `dir`, as after a daemon crash (same boot) or a reboot.
RecoveryReport RecoverKilledJournal(const mirror::test::TempDir& dir, bool same_boot) {
  std::string backing = dir.path() + "/backing";
  REQUIRE(mkdir(backing.c_str(), 0755) == 0);
  auto j = common::Journal::Open(JournalKilledMidChange(dir), kId, {});
  REQUIRE(j.ok());
  auto report = RecoverBacking(**j, backing, same_boot);
  REQUIRE(report.ok());
  return *report;
}

}  // namespace

TEST_CASE("AfterADaemonCrashOnlyTheChangesInFlightAreReplayed") {
  mirror::test::TempDir dir;
  RecoveryReport report = RecoverKilledJournal(dir, /*same_boot=*/true);
  CHECK(report.replayed == 1);
  CHECK(report.kind == "daemon crash");
  CHECK(Exists(dir.path() + "/backing/b"));
  // "a" was released, so BACKING had it (the page cache survived): not replayed.
  CHECK_FALSE(Exists(dir.path() + "/backing/a"));
}

TEST_CASE("AfterARebootEverythingSinceTheLastConsistencyPointIsReplayed") {
  mirror::test::TempDir dir;
  RecoveryReport report = RecoverKilledJournal(dir, /*same_boot=*/false);
  CHECK(report.replayed == 2);
  CHECK(report.kind == "reboot");
  CHECK(Exists(dir.path() + "/backing/a"));
  CHECK(Exists(dir.path() + "/backing/b"));
}

TEST_CASE("AJournalPastHalfFullGetsAConsistencyPointWithoutAsking") {
  mirror::test::TempDir dir;
  common::JournalOptions options;
  options.size_bytes = 2u << 20;
  auto j = common::Journal::Create(dir.path() + "/journal", kId, options);
  REQUIRE(j.ok());
  const std::string data(64 * 1024, 'x');
  while ((*j)->stats().used_bytes <= (*j)->stats().capacity_bytes / 2) {
    REQUIRE((*j)->Append(common::WriteOp{"f", 0, {1, 0}, data}).ok());
  }
  const uint64_t last = (*j)->stats().last_assigned_seq;
  mirror::common::UniqueFd fd(open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Checkpointer cp(**j, fd.get(), std::chrono::milliseconds(0));  // never by time
  cp.Start();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (cp.stats().cps == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(cp.stats().cps >= 1);
  CHECK(cp.stats().cp_seq == last);
  CHECK((*j)->stats().used_bytes == 0);
}

TEST_CASE("ARequestedConsistencyPointReturnsItsSeqOnceTheJournalIsFreed") {
  mirror::test::TempDir dir;
  common::JournalOptions options;
  options.size_bytes = 2u << 20;
  auto j = common::Journal::Create(dir.path() + "/journal", kId, options);
  REQUIRE(j.ok());
  REQUIRE((*j)->Append(Create("a")).ok());
  REQUIRE((*j)->Append(Create("b")).ok());
  mirror::common::UniqueFd fd(open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Checkpointer cp(**j, fd.get(), std::chrono::hours(1));
  for (bool running : {true, false}) {  // on its thread, then on the caller's after Stop
    if (running) cp.Start();
    if (!running) cp.Stop();
    REQUIRE((*j)->Append(Create("c")).ok());
    auto seq = cp.Request(std::chrono::seconds(10));
    REQUIRE(seq.ok());
    CHECK(*seq == (*j)->stats().last_assigned_seq);
    CHECK((*j)->stats().used_bytes == 0);
  }
}
