// Link loss (issue 5), made real with a TcpRelay between mirrorfs and mirrord: in block
// mode writers wait and nothing diverges; in degrade mode they go on and the mirror
// catches up (the overflow case is in mirror_resync_test.cpp).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "mirror_checks.h"
#include "mirror_rig.h"

namespace mirror::itest {
namespace {

using namespace std::chrono_literals;

RigOptions Relayed(const char* mode, const char* on_disconnect) {
  RigOptions o;
  o.mode = mode;
  o.on_disconnect = on_disconnect;
  o.via_relay = true;
  return o;
}

TEST_CASE("BlockModeWritersWaitWhileTheLinkIsDown") {
  MirrorRig rig;
  StartRigWithWorkDir(rig, Relayed("sync", "block"));
  const std::string dir = rig.mount().mountpoint() + "/w";
  REQUIRE(WriteWholeFile(dir + "/before", "before the cut\n"));
  rig.relay().Cut();
  std::atomic<bool> returned{false};
  std::thread writer([&] {
    WriteWholeFile(dir + "/during", "written while the link was down\n");
    returned = true;
  });
  std::string status;
  CHECK_MESSAGE(WaitStatus(rig, "\"waiting_writers\":1", &status, 20s), status);
  std::this_thread::sleep_for(1s);
  const bool returned_while_down = returned.load();
  CHECK_MESSAGE(status.find("\"link\":\"connected\"") == std::string::npos, status);
  rig.relay().Forward();
  for (int i = 0; i < 300 && !returned.load(); ++i) std::this_thread::sleep_for(100ms);
  const bool returned_after = returned.load();
  if (!returned_after) rig.relay().Forward();  // keep the join bounded: it cannot return
  writer.join();
  CHECK_FALSE_MESSAGE(returned_while_down, "a sync write returned while mirrord was cut off");
  CHECK(returned_after);
  CHECK(WaitStatus(rig, "\"link\":\"connected\"", &status));
  ExpectMirrored(rig, "w", "after the link came back");
  ExpectNoResync(rig, "after the link came back");
}

TEST_CASE("DegradeModeWritersGoOnAndTheMirrorCatchesUp") {
  MirrorRig rig;
  StartRigWithWorkDir(rig, Relayed("sync", "degrade"));
  const std::string dir = rig.mount().mountpoint() + "/w";
  REQUIRE(WriteWholeFile(dir + "/before", "before the cut\n"));
  rig.relay().Cut();
  std::string status;
  REQUIRE_MESSAGE(WaitStatus(rig, "\"link\":\"degraded\"", &status), status);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    REQUIRE(WriteWholeFile(dir + "/f" + std::to_string(i), std::string(1000 + i, 'x')));
  }
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK_MESSAGE(WaitStatus(rig, "\"lag_records\":", &status), status);
  CHECK_MESSAGE(status.find("\"lag_records\":0,") == std::string::npos, status);
  rig.relay().Forward();
  CHECK(WaitStatus(rig, "\"link\":\"connected\"", &status));
  ExpectMirrored(rig, "w", "after the link came back");
  ExpectNoResync(rig, "after the link came back");
}

}  // namespace
}  // namespace mirror::itest
