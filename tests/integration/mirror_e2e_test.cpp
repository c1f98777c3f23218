// End-to-end mirroring (issue 5): a mirrorfs mount ships to a real mirrord on 127.0.0.1;
// after `mirrorfs checkpoint` the image equals BACKING exactly (content, metadata, links,
// xattrs, mtimes), in every mode, and through kill -9 of either daemon.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "mirror_checks.h"
#include "mirror_rig.h"
#include "workload.h"

namespace mirror::itest {
namespace {

using namespace std::chrono_literals;

WorkloadOptions Workload(MirrorRig& rig, uint64_t seed, std::atomic<uint64_t>* progress) {
  WorkloadOptions w;
  w.root = rig.mount().mountpoint() + "/w";
  w.seed = seed;
  w.threads = 4;
  w.ops_per_thread = 250;
  w.max_time = 30s;
  w.trace = false;
  w.progress = progress;
  return w;
}

// Waits (bounded) until `progress` reaches `ops`.
bool WaitProgress(const std::atomic<uint64_t>& progress, uint64_t ops) {
  for (int i = 0; i < 3000 && progress.load() < ops; ++i) std::this_thread::sleep_for(10ms);
  return progress.load() >= ops;
}

RigOptions Mode(const char* mode, const char* cp_interval = "1s") {
  RigOptions o;
  o.mode = mode;
  o.cp_interval = cp_interval;
  return o;
}

TEST_CASE("EveryModeMirrorsARandomWorkloadExactly") {
  for (const char* mode : {"sync", "durable", "async"}) {
    for (uint64_t seed : {11, 12}) {
      CAPTURE(mode);
      CAPTURE(seed);
      MirrorRig rig;
      StartRigWithWorkDir(rig, Mode(mode));
      WorkloadResult r = rig.RunWorkloadGuarded(Workload(rig, seed, nullptr));
      REQUIRE_FALSE_MESSAGE(rig.hung(), "the workload hung: " << rig.mount().DaemonStderr());
      REQUIRE_MESSAGE(r.setup_error.empty(), r.setup_error);
      CHECK_FALSE(r.mount_lost);
      CHECK_MESSAGE(r.violations.empty(), JoinFirst(r.violations));
      ExpectMirrored(rig, "w", "after the workload");
      ExpectNoResync(rig, "after the workload");
      std::string status;
      REQUIRE(rig.StatusJson(&status) == 0);
      CHECK_MESSAGE(status.find("\"link\":\"connected\"") != std::string::npos, status);
    }
  }
}

// Invariant 3: a durable write returns once the record is on mirrord's disk, a sync write
// once it is in mirrord's memory. mirrord flushes a durable source's records 1 s after a
// half's first record (flush_delay), so only the durable write waits for that second; a
// sync source says in its HELLO that it does not wait, and its records are flushed only
// after lazy_flush_delay (3 s, no consistency point comes in between).
TEST_CASE("EachModeReturnsAWriteAtItsOwnAcknowledgement") {
  auto seq_in = [](const std::string& json, const std::string& key) -> uint64_t {
    const size_t at = json.find("\"" + key + "\":");
    REQUIRE_MESSAGE(at != std::string::npos, json);
    return std::stoull(json.substr(at + key.size() + 3));
  };
  for (const std::string mode : {"durable", "sync"}) {
    CAPTURE(mode);
    MirrorRig rig;
    RigOptions o = Mode(mode.c_str(), "0");
    o.flush_delay = "1s";
    o.lazy_flush_delay = "3s";
    StartRigWithWorkDir(rig, o);
    const std::string path = rig.mount().mountpoint() + "/w/f";
    const auto t0 = std::chrono::steady_clock::now();
    const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    const auto created = std::chrono::steady_clock::now();
    CHECK(write(fd, "x", 1) == 1);
    close(fd);
    const auto create_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(created - t0).count();
    if (mode == "durable") {
      CHECK_MESSAGE(create_ms >= 700, "create returned after " << create_ms << " ms");
      CHECK_MESSAGE(create_ms < 2500, "create returned after " << create_ms << " ms");
    } else {
      CHECK_MESSAGE(create_ms < 700, "create returned after " << create_ms << " ms");
      // Past flush_delay, short of lazy_flush_delay: received, not yet durable.
      std::this_thread::sleep_for(1500ms);
      std::string status;
      REQUIRE(rig.StatusJson(&status) == 0);
      CHECK_MESSAGE(seq_in(status, "durable_seq") < seq_in(status, "received_seq"), status);
    }
    ExpectMirrored(rig, "w", "after the write");
  }
}

TEST_CASE("KillingMirrordMidWorkloadLosesNothing") {
  MirrorRig rig;
  StartRigWithWorkDir(rig, Mode("sync"));
  std::atomic<uint64_t> progress{0};
  WorkloadResult r;
  std::thread work([&] { r = rig.RunWorkloadGuarded(Workload(rig, 21, &progress)); });
  const bool reached = WaitProgress(progress, 200);
  rig.mirrord().Kill9();
  std::this_thread::sleep_for(500ms);  // writers block (on_disconnect=block)
  std::string error;
  const bool restarted = rig.RestartMirrord(&error);
  work.join();
  REQUIRE(reached);
  REQUIRE_MESSAGE(restarted, error);
  REQUIRE_FALSE(rig.hung());
  REQUIRE_MESSAGE(r.setup_error.empty(), r.setup_error);
  CHECK_FALSE(r.mount_lost);
  ExpectMirrored(rig, "w", "after kill -9 of mirrord and its restart");
  ExpectNoResync(rig, "after kill -9 of mirrord");
}

TEST_CASE("KillingMirrorfsMidWorkloadConvergesAfterRemount") {
  MirrorRig rig;
  StartRigWithWorkDir(rig, Mode("sync"));
  std::atomic<uint64_t> progress{0};
  WorkloadResult r;
  std::thread work([&] { r = rig.RunWorkloadGuarded(Workload(rig, 31, &progress)); });
  const bool reached = WaitProgress(progress, 300);
  kill(rig.mount().pid(), SIGKILL);
  work.join();
  REQUIRE(reached);
  rig.mount().Stop();
  std::string error;
  REQUIRE_MESSAGE(rig.mount().Restart(&error), error);
  ExpectMirrored(rig, "w", "after kill -9 of mirrorfs and a remount");
  ExpectNoResync(rig, "after kill -9 of mirrorfs");
}

// In sync mode a write that returned success is in mirrord's memory: kill -9 the source
// right after, and mirrord too, restart mirrord alone and have it apply what it holds.
TEST_CASE("SyncWritesThatReturnedSurviveTheSourceDying") {
  MirrorRig rig;
  StartRigWithWorkDir(rig, Mode("sync", "0"));
  const std::string dir = rig.mount().mountpoint() + "/w";
  std::atomic<int> written{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] { WriteNumbered(dir, &written, &stop); });
  for (int i = 0; i < 500 && written.load() < 200; ++i) std::this_thread::sleep_for(10ms);
  kill(rig.mount().pid(), SIGKILL);  // the source dies while the writer is writing
  stop = true;
  writer.join();
  const int returned = written.load();
  REQUIRE(returned >= 200);
  char volume[64] = {};
  ssize_t n = getxattr(rig.mount().backing().c_str(), "trusted.mirrorfs.volume_id", volume,
                       sizeof(volume) - 1);
  REQUIRE(n > 0);
  rig.mount().Stop();
  rig.mirrord().Kill9();
  std::string error;
  REQUIRE_MESSAGE(rig.RestartMirrord(&error), error);
  auto client = d::test::TestClient::Connect(rig.port(), kRigSource, kRigSecret, 1,
                                             std::string(volume, static_cast<size_t>(n)));
  REQUIRE_MESSAGE(client.ok(), client.status().ToString());
  const uint64_t durable = (*client)->welcome().durable_seq;
  auto applied = (*client)->Sync(durable);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  int missing = 0;
  std::string first_missing;
  for (int i = 0; i < returned; ++i) {
    std::ifstream in(rig.image() + "/w/n" + std::to_string(i));
    std::stringstream content;
    content << in.rdbuf();
    if (!in || content.str() != "record " + std::to_string(i) + "\n") {
      if (missing++ == 0) first_missing = "n" + std::to_string(i);
    }
  }
  CHECK_MESSAGE(missing == 0, missing << " of " << returned << " files whose writes returned "
                                      << "are not in mirrord's image (first: " << first_missing
                                      << "); durable seq " << durable);
}

}  // namespace
}  // namespace mirror::itest
