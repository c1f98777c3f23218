// Failback and switching back (issue 6): the promoted side mirrors back to a mirrord on
// the old source's machine whose image is the old BACKING (`mirrord adopt`); the resync
// sends only the differences; the old side's writes that never reached the promoted side
// are saved and listed, exactly, before they are overwritten; then the roles switch back
// at a clean consistency point. After each step `mirrorfs verify` says the sides are equal.
//
// One machine plays both: "A" is the rig's mount and BACKING, with a second mirrord on
// 127.0.0.1 for its side; "B" is the rig's mirrord and the mount of its promoted image.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "mirror_checks.h"
#include "mirror_failover.h"
#include "mirror_rig.h"

namespace mirror::itest {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int kFiles = 16;
constexpr size_t kFileBytes = 256 * 1024;  // 4 MiB in common: a full copy would show

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return in ? content.str() : "<missing>";
}

std::string Block(int i) { return std::string(kFileBytes, static_cast<char>('a' + i % 26)); }

// Polls `mirrorfs status --json` of `mount` until `pred` holds (bounded).
template <typename Pred>
bool WaitMountStatus(const FuseMount& mount, Pred pred, nlohmann::json* last,
                     std::chrono::seconds limit = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  do {
    *last = MountStatus(mount);
    if (last->is_object() && pred(*last)) return true;
    std::this_thread::sleep_for(100ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

// `mirrorfs verify MNT`: 0 when BACKING equals the destination's image.
int VerifyMount(const FuseMount& mount, std::string* out) {
  MountOptions mo;
  std::string error;
  REQUIRE_MESSAGE(MountOptionsFromEnv(&mo, &error), error);
  return RunCommand({mo.binary, "verify", mount.mountpoint()}, out, 300);
}

std::set<std::string> ReportPaths(const std::string& report_json) {
  std::ifstream in(report_json);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  std::set<std::string> paths;
  if (!j.is_object()) return paths;
  for (const auto& rec : j["records"]) {
    for (const auto& p : rec["paths"]) paths.insert(p.get<std::string>());
  }
  return paths;
}

}  // namespace

TEST_CASE("FailbackSavesTheOldSidesWritesAndSwitchingBackLeavesBothSidesEqual") {
  MirrorRig rig;
  StartRigWithWorkDir(rig, [] {
    RigOptions o;
    o.mode = "sync";
    return o;
  }());
  const std::string a_backing = rig.mount().backing();
  const std::string a_mnt = rig.mount().mountpoint();
  const std::string a_journal = rig.mount().journal_path();
  for (int i = 0; i < kFiles; ++i) {
    REQUIRE(WriteWholeFile(a_mnt + "/w/f" + std::to_string(i), Block(i)));
  }
  REQUIRE(WriteWholeFile(a_mnt + "/w/shared", "from before the failover\n"));
  REQUIRE(WriteWholeFile(a_mnt + "/w/doomed", "deleted on B\n"));
  std::string out;
  REQUIRE(rig.Checkpoint(&out) == 0);

  // Failover with A still alive: promote B; A is fenced at its next connection.
  CommandOutcome promote = Promote(rig.state_dir(), kRigSource);
  REQUIRE_MESSAGE(promote.exit_code == 0, promote.output);
  std::string last;
  REQUIRE_MESSAGE(WaitStatus(rig, "\"state\":\"mirror-fenced\"", &last, 30s), last);
  // A's clients go on: these writes are only on A.
  REQUIRE(mkdir((a_mnt + "/a-only").c_str(), 0755) == 0);
  REQUIRE(WriteWholeFile(a_mnt + "/a-only/one", "written on A after the fence\n"));
  REQUIRE(WriteWholeFile(a_mnt + "/w/shared", "A's late edit\n"));

  // B serves its image and changes it.
  std::string error;
  auto b = MountDir(rig.image(), {"source_id=" + std::string(kRigSource)}, &error);
  REQUIRE_MESSAGE(b, error);
  const std::string b_journal = b->journal_path();
  REQUIRE(WriteWholeFile(b->mountpoint() + "/w/shared", "B's edit\n"));
  REQUIRE(WriteWholeFile(b->mountpoint() + "/w/b-new", "made on B\n"));
  REQUIRE(unlink((b->mountpoint() + "/w/doomed").c_str()) == 0);
  REQUIRE(WriteWholeFile(b->mountpoint() + "/w/f3", "B rewrote f3\n"));

  // Failback: A's mount stops; its BACKING becomes A's mirrord's image of the source.
  rig.mount().Stop();
  const std::string sa = rig.mount().root() + "/state-a";
  REQUIRE(mkdir(sa.c_str(), 0700) == 0);
  CommandOutcome adopt = Adopt(sa, kRigSource, {a_backing, "--journal", a_journal});
  REQUIRE_MESSAGE(adopt.exit_code == 0, adopt.output);
  CHECK(adopt.json.value("exact", false));
  CHECK(adopt.json.value("epoch", 0) == 2);
  const std::string report = adopt.json.value("report", "");
  REQUIRE(!report.empty());
  const std::string saved = fs::path(report).parent_path().string();
  CHECK(ReportPaths(saved + "/report.json") ==
        std::set<std::string>{"a-only", "a-only/one", "w/shared"});
  CHECK(ReadFile(saved + "/files/a-only/one") == "written on A after the fence\n");
  CHECK(ReadFile(saved + "/files/w/shared") == "A's late edit\n");
  CHECK_FALSE(fs::exists(a_journal));  // renamed: a later mount starts a fresh journal
  // Until B's resync is applied, A's image is not consistent: promote refuses and says so.
  CommandOutcome early = Promote(sa, kRigSource);
  CHECK_MESSAGE(early.exit_code == 2, early.output);
  CHECK(early.json.value("reason", "").find("resync") != std::string::npos);

  auto mirrord_a = d::test::MirrordProcess::Start(
      {"--listen", "127.0.0.1:0", "--state-dir", sa, "--secret-file", rig.secret_file()},
      rig.mount().root() + "/mirrord-a.log");
  REQUIRE_MESSAGE(mirrord_a.ok(), mirrord_a.status().ToString());
  const std::string to_a = "mirror=127.0.0.1:" + std::to_string((*mirrord_a)->port());

  // B mirrors to A: its existing journal, told by WELCOME to resync.
  b->Stop();
  b.reset();
  b = MountDir(rig.image(),
               {"source_id=" + std::string(kRigSource), "journal=" + b_journal, to_a,
                "secret_file=" + rig.secret_file(), "mode=sync"},
               &error);
  REQUIRE_MESSAGE(b, error);
  nlohmann::json st;
  CHECK_MESSAGE(
      WaitMountStatus(
          *b, [](const nlohmann::json& j) { return j.value("state", "") == "running"; }, &st),
      st.dump());
  REQUIRE(MountCheckpoint(*b) == 0);
  CHECK_MESSAGE(VerifyMount(*b, &out) == 0, out);
  CHECK(ReadFile(a_backing + "/w/shared") == "B's edit\n");
  CHECK(ReadFile(a_backing + "/w/b-new") == "made on B\n");
  CHECK(ReadFile(a_backing + "/w/doomed") == "<missing>");
  CHECK(ReadFile(a_backing + "/a-only/one") == "<missing>");
  // Only the differences crossed: far less than the 4 MiB both sides had in common.
  st = MountStatus(*b);
  const uint64_t sent = st["mirror"]["resync"].value("bytes_sent", uint64_t{1} << 40);
  CHECK_MESSAGE(sent < kFiles * kFileBytes / 4, "the resync sent " << sent << " bytes");
  MESSAGE("failback resync: " << sent << " bytes sent for a volume of "
                              << kFiles * kFileBytes << " bytes of files");
  REQUIRE(WriteWholeFile(b->mountpoint() + "/w/after-failback", "mirrored to A\n"));
  REQUIRE(MountCheckpoint(*b) == 0);
  CHECK(ReadFile(a_backing + "/w/after-failback") == "mirrored to A\n");

  // Switch back at a clean consistency point: B stops, A's mirrord promotes, A serves.
  REQUIRE(b->Stop() == 0);
  b.reset();
  CommandOutcome back = Promote(sa, kRigSource);
  REQUIRE_MESSAGE(back.exit_code == 0, back.output);
  CHECK(back.json.value("epoch", 0) == 3);
  CHECK_MESSAGE(back.json.value("warnings", nlohmann::json::array()).empty(), back.output);
  // B's side becomes the destination again, through B's running mirrord (it closes the
  // store meanwhile); its clean journal had nothing unshipped.
  CommandOutcome b_adopt = Adopt(rig.state_dir(), kRigSource, {"--journal", b_journal});
  REQUIRE_MESSAGE(b_adopt.exit_code == 0, b_adopt.output);
  CHECK(b_adopt.json.value("records", 1) == 0);
  CHECK(rig.mirrord().LogText().find("store closed for an adopt") != std::string::npos);

  auto a = MountDir(
      a_backing,
      {"source_id=" + std::string(kRigSource), "journal=" + rig.mount().root() + "/journal-epoch3",
       "mirror=127.0.0.1:" + std::to_string(rig.port()), "secret_file=" + rig.secret_file(),
       "mode=sync"},
      &error);
  REQUIRE_MESSAGE(a, error);
  CHECK(JournalEpoch(rig.mount().root() + "/journal-epoch3") == 3);
  CHECK_MESSAGE(
      WaitMountStatus(
          *a, [](const nlohmann::json& j) { return j.value("state", "") == "running"; }, &st),
      st.dump());
  REQUIRE(WriteWholeFile(a->mountpoint() + "/w/after-switch-back", "A is primary again\n"));
  REQUIRE(MountCheckpoint(*a) == 0);
  CHECK_MESSAGE(VerifyMount(*a, &out) == 0, out);
  CHECK(ReadFile(rig.image() + "/w/after-switch-back") == "A is primary again\n");
  CHECK(ReadFile(rig.image() + "/w/after-failback") == "mirrored to A\n");
}

}  // namespace mirror::itest
