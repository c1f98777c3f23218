// Failover (issue 6, DESIGN invariant 7): `mirrord promote` after the source died holds
// every write that returned, the promoted image serves read-write as the same volume at
// the next epoch, and the old source, when it comes back with its journal, is fenced:
// its later writes never reach the promoted image. Promote also works with mirrord
// stopped, and a second promote is a no-op that says so.
#include "mirror_failover.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "mirror_checks.h"
#include "mirror_rig.h"

namespace mirror::itest {
namespace {

using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return in ? content.str() : "<missing>";
}

}  // namespace

TEST_CASE("PromoteAfterTheSourceDiesHoldsEveryReturnedWriteAndFencesTheOldSource") {
  MirrorRig rig;
  StartRigWithWorkDir(rig, [] {
    RigOptions o;
    o.mode = "sync";
    o.cp_interval = "1s";
    return o;
  }());
  const std::string dir = rig.mount().mountpoint() + "/w";
  const unsigned seed = std::random_device{}();
  const int kill_after = 100 + static_cast<int>(seed % 400);
  MESSAGE("seed " << seed << ": kill -9 of mirrorfs after " << kill_after << " writes");
  std::atomic<int> written{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] { WriteNumbered(dir, &written, &stop); });
  for (int i = 0; i < 1500 && written.load() < kill_after; ++i) std::this_thread::sleep_for(10ms);
  kill(rig.mount().pid(), SIGKILL);  // the source dies in the middle of a write
  stop = true;
  writer.join();
  const int returned = written.load();
  REQUIRE(returned >= kill_after);
  rig.mount().Stop();

  // Promote while mirrord runs: through its control socket.
  PromoteOutcome p = Promote(rig.state_dir(), kRigSource);
  REQUIRE_MESSAGE(p.exit_code == 0, p.output);
  CHECK(p.json.value("outcome", "") == "promoted");
  CHECK(p.json.value("epoch", 0) == 2);
  CHECK(p.json.value("mount_command", "").find("mirrorfs " + p.json.value("image", "?")) == 0);
  int missing = 0;
  for (int i = 0; i < returned; ++i) {
    if (ReadFile(rig.image() + "/w/n" + std::to_string(i)) !=
        "record " + std::to_string(i) + "\n") {
      ++missing;
    }
  }
  CHECK_MESSAGE(missing == 0, missing << " of " << returned
                                      << " writes that returned are not in the promoted image");

  // The promoted image, served read-write: the same volume at epoch 2.
  std::string error;
  auto promoted = MountDir(rig.image(), {"source_id=" + std::string(kRigSource)}, &error);
  REQUIRE_MESSAGE(promoted, error);
  nlohmann::json st = MountStatus(*promoted);
  CHECK(st.value("state", "") == "running");
  CHECK(st.value("volume_id", "") == rig.VolumeId());
  CHECK(JournalEpoch(promoted->journal_path()) == 2);
  REQUIRE(WriteWholeFile(promoted->mountpoint() + "/w/after-promote", "new primary\n"));
  CHECK(ReadFile(rig.image() + "/w/after-promote") == "new primary\n");

  // The old source comes back with its journal: fenced, and its writes stay there.
  REQUIRE_MESSAGE(rig.mount().Restart(&error), error);
  std::string last;
  CHECK_MESSAGE(WaitStatus(rig, "\"state\":\"mirror-fenced\"", &last, 30s), last);
  nlohmann::json old = nlohmann::json::parse(last, nullptr, false);
  REQUIRE(old.is_object());
  CHECK(old["mirror"]["fenced"].value("epoch", 0) == 2);
  CHECK(old["mirror"]["fenced"].value("promoted_seq", 0) == p.json.value("promoted_seq", 0));
  REQUIRE(WriteWholeFile(dir + "/old-after-fence", "split brain?\n"));
  std::this_thread::sleep_for(1500ms);  // a consistency point, were anything shipped
  CHECK(ReadFile(rig.image() + "/w/old-after-fence") == "<missing>");
  CHECK(ReadFile(promoted->mountpoint() + "/w/old-after-fence") == "<missing>");
  CHECK(rig.mirrord().LogText().find("fenced: promoted at epoch 2") != std::string::npos);
  // Its status and log say so, and a remount does not even try to connect.
  CHECK(rig.mount().DaemonStderr().find("fenced") != std::string::npos);
}

TEST_CASE("PromoteWithMirrordStoppedAppliesEverythingAndASecondOneIsANoOp") {
  MirrorRig rig;
  StartRigWithWorkDir(rig, [] {
    RigOptions o;
    o.mode = "sync";
    o.cp_interval = "0";  // only explicit checkpoints: some records stay unapplied
    return o;
  }());
  const std::string dir = rig.mount().mountpoint() + "/w";
  REQUIRE(WriteWholeFile(dir + "/applied", "at a checkpoint\n"));
  std::string out;
  REQUIRE(rig.Checkpoint(&out) == 0);
  for (int i = 0; i < 50; ++i) {
    REQUIRE(WriteWholeFile(dir + "/later" + std::to_string(i), "received only\n"));
  }
  CHECK(ReadFile(rig.image() + "/w/later0") == "<missing>");  // not applied yet
  REQUIRE(rig.mirrord().Terminate() == 0);

  CHECK(Promote(rig.state_dir(), "no-such-source").exit_code == 3);
  // Before the promote the image is mirrord's: mirrorfs refuses to serve it.
  std::string refused;
  CHECK(MountDir(rig.image(), {"source_id=" + std::string(kRigSource)}, &refused) == nullptr);
  CHECK_MESSAGE(refused.find("is the image of mirrord's store") != std::string::npos, refused);
  PromoteOutcome first = Promote(rig.state_dir(), kRigSource);
  REQUIRE_MESSAGE(first.exit_code == 0, first.output);
  CHECK(first.json.value("outcome", "") == "promoted");
  CHECK(ReadFile(rig.image() + "/w/applied") == "at a checkpoint\n");
  for (int i = 0; i < 50; ++i) {
    CHECK(ReadFile(rig.image() + "/w/later" + std::to_string(i)) == "received only\n");
  }
  PromoteOutcome second = Promote(rig.state_dir(), kRigSource, {}, /*json=*/false);
  CHECK(second.exit_code == 0);
  CHECK_MESSAGE(second.output.find("already promoted") != std::string::npos, second.output);
  CHECK(second.output.find("nothing to do") != std::string::npos);

  // mirrord comes back: the promoted store refuses the old source.
  std::string error;
  REQUIRE_MESSAGE(rig.RestartMirrord(&error), error);
  std::string last;
  CHECK_MESSAGE(WaitStatus(rig, "\"state\":\"mirror-fenced\"", &last, 30s), last);
  std::string status;
  // A promoted source is a primary now, not a broken mirror: status stays healthy (0).
  CHECK(d::test::RunStatus({"--state-dir", rig.state_dir(), "--json"}, &status) == 0);
  CHECK(status.find("\"state\":\"promoted\"") != std::string::npos);
}

}  // namespace mirror::itest

namespace mirror::itest {

namespace {

// Runs an example script of etc/ with bash, the programs under test named in MIRRORFS
// and MIRRORD; its exit code, and its output in *out.
int RunScript(const std::string& script, std::vector<std::string> args, std::string* out) {
  MountOptions mo;
  std::string error;
  REQUIRE_MESSAGE(MountOptionsFromEnv(&mo, &error), error);
  setenv("MIRRORFS", mo.binary.c_str(), 1);
  setenv("MIRRORD", MIRRORD_BINARY, 1);
  args.insert(args.begin(), {"/bin/bash", std::string(MIRROR_ETC_DIR) + "/" + script});
  return RunCommand(args, out, 300);
}

}  // namespace

// The example scripts in etc/, run as an admin's script would: their exit codes follow
// the mirror's state through a failover.
TEST_CASE("TheExampleScriptsFollowAFailover") {
  // Both ways the scripts read JSON: jq, and python3 where jq is not installed.
  std::string parser;
  SUBCASE("jq") { parser = "jq"; }
  SUBCASE("python3") { parser = "python3"; }
  setenv("MIRROR_JSON_PARSER", parser.c_str(), 1);
  MirrorRig rig;
  StartRigWithWorkDir(rig, RigOptions{});
  std::string error;
  const std::string mnt = rig.mount().mountpoint();
  std::string out;
  CHECK_MESSAGE(RunScript("mirror-check.sh", {"--mirrorfs", mnt}, &out) == 0, out);
  CHECK(out.rfind("MIRROR OK", 0) == 0);
  auto check_b = [&](std::string* o) {
    return RunScript("mirror-check.sh", {"--mirrord", kRigSource, "--state-dir", rig.state_dir()},
                     o);
  };
  CHECK_MESSAGE(check_b(&out) == 0, out);
  // The source is alive: the failover script refuses, even with --yes.
  CHECK_MESSAGE(
      RunScript("mirror-failover.sh",
                {kRigSource, "--state-dir", rig.state_dir(), "--settle", "1", "--yes"}, &out) == 2,
      out);

  kill(rig.mount().pid(), SIGKILL);
  rig.mount().Stop();
  CHECK_MESSAGE(check_b(&out) == 1, out);  // the source is not connected: WARNING
  CHECK_MESSAGE(RunScript("mirror-failover.sh",
                          {kRigSource, "--state-dir", rig.state_dir(), "--settle", "1"}, &out) == 2,
                out);  // a dry run without --yes
  CHECK_MESSAGE(
      RunScript("mirror-failover.sh",
                {kRigSource, "--state-dir", rig.state_dir(), "--settle", "1", "--yes"}, &out) == 0,
      out);
  CHECK(out.find("mirrorfs " + rig.image()) != std::string::npos);
  CHECK_MESSAGE(check_b(&out) == 0, out);  // a promoted source is a primary, not a fault

  // The old source returns: fenced, and its check is CRITICAL.
  REQUIRE_MESSAGE(rig.mount().Restart(&error), error);
  std::string last;
  REQUIRE_MESSAGE(WaitStatus(rig, "\"state\":\"mirror-fenced\"", &last, 30s), last);
  CHECK_MESSAGE(RunScript("mirror-check.sh", {"--mirrorfs", mnt}, &out) == 2, out);
  CHECK(out.find("MIRROR CRITICAL") == 0);
}

// The planned switchover script, with the destination on this machine: checkpoint,
// verify, unmount, promote; the image then holds everything the source wrote.
TEST_CASE("TheSwitchoverScriptMovesTheVolumeAtACleanCheckpoint") {
  unsetenv("MIRROR_JSON_PARSER");  // the scripts' own choice
  MirrorRig rig;
  StartRigWithWorkDir(rig, RigOptions{});
  const std::string mnt = rig.mount().mountpoint();
  for (int i = 0; i < 20; ++i) {
    REQUIRE(WriteWholeFile(mnt + "/w/f" + std::to_string(i), "file " + std::to_string(i)));
  }
  std::string out;
  const std::vector<std::string> args = {"--mount", mnt,           "--dest",
                                         "local",   "--state-dir", rig.state_dir()};
  CHECK_MESSAGE(RunScript("mirror-switchover.sh", args, &out) == 2, out);  // no --yes
  CHECK(rig.mount().DaemonAlive());
  std::vector<std::string> yes = args;
  yes.push_back("--yes");
  REQUIRE_MESSAGE(RunScript("mirror-switchover.sh", yes, &out) == 0, out);
  CHECK_FALSE(rig.mount().DaemonAlive());  // unmounted: the daemon left
  for (int i = 0; i < 20; ++i) {
    std::ifstream in(rig.image() + "/w/f" + std::to_string(i));
    std::stringstream content;
    content << in.rdbuf();
    CHECK(content.str() == "file " + std::to_string(i));
  }
  CHECK(Promote(rig.state_dir(), kRigSource).json.value("outcome", "") == "already");
}

}  // namespace mirror::itest
