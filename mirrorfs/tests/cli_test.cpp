// Tests of `mirrorfs status|checkpoint`: mountpoint normalization, the socket path, and
// RunCli against a real ControlServer with a canned handler.
#include "mirrorfs/cli.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/control_server.h"
#include "tests/unit/test_util.h"

using mirror::fs::ControlSocketPath;
using mirror::fs::NormalizeMountpoint;
using mirror::fs::RunCli;
using nlohmann::json;

namespace {

std::string RealPath(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  REQUIRE(real != nullptr);
  std::string result = real;
  std::free(real);
  return result;
}

// Sets MIRRORFS_RUN_DIR for the life of the object, restoring the old value after.
class RunDirEnv {
 public:
  explicit RunDirEnv(const std::string& dir) {
    if (const char* old = std::getenv("MIRRORFS_RUN_DIR")) old_ = old;
    had_old_ = std::getenv("MIRRORFS_RUN_DIR") != nullptr;
    ::setenv("MIRRORFS_RUN_DIR", dir.c_str(), 1);
  }
  ~RunDirEnv() {
    if (had_old_) {
      ::setenv("MIRRORFS_RUN_DIR", old_.c_str(), 1);
    } else {
      ::unsetenv("MIRRORFS_RUN_DIR");
    }
  }

 private:
  std::string old_;
  bool had_old_ = false;
};

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun Run(std::vector<std::string> args) {
  args.insert(args.begin(), "mirrorfs");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  int code = RunCli(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

json CannedStatus(const std::string& state, const std::string& full_reason) {
  return {{"ok", true},
          {"state", state},
          {"source_id", "src-1"},
          {"volume_id", "vol-9"},
          {"backing", "/srv/backing"},
          {"mountpoint", "/mnt/m"},
          {"last_seq", 1234567},
          {"cp_seq", 1234000},
          {"cp_age_seconds", 4.2},
          {"journal_path", "/var/lib/mirrorfs/m.journal"},
          {"journal_bytes", 256ull << 20},
          {"journal_used_bytes", 12ull << 20},
          {"journal_waiting_writers", 0},
          {"journal_full_reason", full_reason},
          {"ops_per_second", 1520.5},
          {"recovered_records", 3},
          {"uptime_seconds", 3725},
          {"future_field", "from a newer daemon"}};
}

// A daemon stand-in for the mountpoint `mnt` under a temporary MIRRORFS_RUN_DIR.
class FakeDaemon {
 public:
  explicit FakeDaemon(mirror::control::Handler handler)
      : env_(run_dir_.path()), mnt_(mnt_parent_ / "mnt") {
    auto server =
        mirror::control::ControlServer::Start(ControlSocketPath(mnt_), std::move(handler));
    REQUIRE_MESSAGE(server.ok(), server.status().ToString());
    server_ = std::move(server).value();
  }
  const std::string& mnt() const { return mnt_; }
  const std::string& socket() const { return server_->path(); }
  void Stop() { server_.reset(); }

 private:
  mirror::test::TempDir run_dir_;
  mirror::test::TempDir mnt_parent_;
  RunDirEnv env_;
  std::string mnt_;
  std::unique_ptr<mirror::control::ControlServer> server_;
};

}  // namespace

TEST_CASE("CliNormalizesMountpointLexicallyAndResolvesOnlyTheParent") {
  CHECK(NormalizeMountpoint("/") == "/");
  CHECK(NormalizeMountpoint("//") == "/");
  CHECK(NormalizeMountpoint("/..") == "/");
  CHECK(NormalizeMountpoint("/no-such-dir-xyz/a/../b//c/./") == "/no-such-dir-xyz/b/c");
  CHECK(NormalizeMountpoint("/no-such-dir-xyz/../../x") == "/x");

  mirror::test::TempDir dir;
  const std::string real_dir = RealPath(dir.path());
  REQUIRE(::mkdir((dir / "real").c_str(), 0755) == 0);
  REQUIRE(::symlink("real", (dir / "link").c_str()) == 0);
  // A symlink in the parent is resolved; the last component is never looked at.
  CHECK(NormalizeMountpoint(dir / "link/mnt") == real_dir + "/real/mnt");
  CHECK(NormalizeMountpoint(dir / "link/") == real_dir + "/link");
  CHECK(NormalizeMountpoint(dir / "real/../link/./mnt//") == real_dir + "/real/mnt");
  // Relative names are taken against the current directory.
  char* cwd = ::getcwd(nullptr, 0);
  REQUIRE(cwd != nullptr);
  std::string old_cwd = cwd;
  std::free(cwd);
  REQUIRE(::chdir((dir / "link").c_str()) == 0);
  std::string relative = NormalizeMountpoint("mnt");
  std::string dotted = NormalizeMountpoint("./x/../mnt/");
  REQUIRE(::chdir(old_cwd.c_str()) == 0);
  CHECK(relative == real_dir + "/real/mnt");
  CHECK(dotted == real_dir + "/real/mnt");
}

TEST_CASE("CliSocketPathIsSha256OfTheNormalizedMountpointUnderTheRunDir") {
  {
    RunDirEnv env("");  // empty counts as unset
    // printf /mnt/x | sha256sum -> c10865fc00f31eff...
    CHECK(ControlSocketPath("/mnt/x") == "/run/mirrorfs/c10865fc00f31eff.sock");
    CHECK(ControlSocketPath("/mnt/./y/../x//") == "/run/mirrorfs/c10865fc00f31eff.sock");
    CHECK(ControlSocketPath("/mnt/y") != ControlSocketPath("/mnt/x"));
  }
  RunDirEnv env("/tmp/some-run/");
  CHECK(ControlSocketPath("/mnt/x") == "/tmp/some-run/c10865fc00f31eff.sock");
}

TEST_CASE("CliStatusJsonIsOneLineWithTheDaemonsKeysButOk") {
  FakeDaemon daemon([](const json& request) -> json {
    if (request["cmd"] != "status") return {{"ok", false}, {"error", "unknown command"}};
    return CannedStatus("running", "");
  });
  CliRun run = Run({"status", daemon.mnt(), "--json"});
  CHECK(run.code == 0);
  CHECK(run.err.empty());
  REQUIRE(!run.out.empty());
  CHECK(run.out.find('\n') == run.out.size() - 1);
  json parsed = json::parse(run.out, nullptr, false);
  REQUIRE(parsed.is_object());
  CHECK(!parsed.contains("ok"));
  json expected = CannedStatus("running", "");
  expected.erase("ok");
  CHECK(parsed == expected);
}

TEST_CASE("CliStatusTableShowsFillSeqsAndUnknownKeys") {
  FakeDaemon daemon([](const json&) -> json {
    json status = CannedStatus("running", "");
    status.erase("volume_id");  // a missing key is skipped
    return status;
  });
  CliRun run = Run({"status", daemon.mnt()});
  CHECK(run.code == 0);
  CAPTURE(run.out);
  CHECK(run.out.find("journal fill:      12.0 MiB of 256 MiB (4.7%)\n") != std::string::npos);
  CHECK(run.out.find("state:             running\n") == 0);
  CHECK(run.out.find("last seq:          1234567\n") != std::string::npos);
  CHECK(run.out.find("checkpoint seq:    1234000\n") != std::string::npos);
  CHECK(run.out.find("checkpoint age:    4.2 s\n") != std::string::npos);
  CHECK(run.out.find("uptime:            1h 2m 5s\n") != std::string::npos);
  CHECK(run.out.find("future_field:      from a newer daemon\n") != std::string::npos);
  CHECK(run.out.find("volume") == std::string::npos);
  CHECK(run.out.find("journal full") == std::string::npos);   // empty reason: no row
  CHECK(run.out.find("journal_bytes") == std::string::npos);  // folded into the fill row
}

TEST_CASE("CliStatusExitsTwoOnADegradedStateAndShowsTheReason") {
  FakeDaemon daemon([](const json&) -> json {
    return CannedStatus("journal-full", "mirrord unreachable for 120 s");
  });
  CliRun run = Run({"status", daemon.mnt()});
  CHECK(run.code == 2);
  CHECK(run.out.find("state:             journal-full\n") == 0);
  CHECK(run.out.find("journal full:      mirrord unreachable for 120 s\n") != std::string::npos);
  CHECK(Run({"status", daemon.mnt(), "--json"}).code == 2);
}

TEST_CASE("CliStatusExitsThreeWhenNoDaemonAnswersOrItRefuses") {
  mirror::test::TempDir run_dir;
  RunDirEnv env(run_dir.path());
  CliRun run = Run({"status", "/mnt/nothing-here"});
  CHECK(run.code == 3);
  CHECK(run.out.empty());
  CHECK(run.err == "mirrorfs status: no mirrorfs daemon answers for /mnt/nothing-here (socket " +
                       ControlSocketPath("/mnt/nothing-here") + ")\n");

  FakeDaemon refusing([](const json&) -> json { return {{"ok", false}, {"error", "busy"}}; });
  CliRun refused = Run({"status", refusing.mnt()});
  CHECK(refused.code == 3);
  CHECK(refused.err.find("busy") != std::string::npos);
}

TEST_CASE("CliStatusTimeoutIsExitThree") {
  std::atomic<bool> release{false};
  FakeDaemon daemon([&](const json&) -> json {
    for (int i = 0; i < 200 && !release; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return CannedStatus("running", "");
  });
  auto start = std::chrono::steady_clock::now();
  CliRun run = Run({"status", daemon.mnt(), "--timeout", "0.2"});
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  release = true;
  CHECK(run.code == 3);
  CHECK(run.err.find("did not answer within 0.2 s") != std::string::npos);
  CHECK(took < 1.5);
}

TEST_CASE("CliCheckpointPrintsTheSeqOrTheDaemonsError") {
  std::atomic<bool> fail{false};
  FakeDaemon daemon([&](const json& request) -> json {
    if (request["cmd"] != "checkpoint") return {{"ok", false}, {"error", "unknown command"}};
    if (fail) return {{"ok", false}, {"error", "journal is read-only"}};
    return {{"ok", true}, {"cp_seq", 1234}};
  });
  CliRun done = Run({"checkpoint", daemon.mnt(), "--timeout=5"});
  CHECK(done.code == 0);
  CHECK(done.out == "checkpoint complete at seq 1234\n");
  fail = true;
  CliRun failed = Run({"checkpoint", daemon.mnt()});
  CHECK(failed.code == 2);
  CHECK(failed.out.empty());
  CHECK(failed.err.find("journal is read-only") != std::string::npos);
  daemon.Stop();
  CliRun gone = Run({"checkpoint", daemon.mnt()});
  CHECK(gone.code == 3);
  CHECK(gone.err.find("no mirrorfs daemon answers for " + daemon.mnt()) != std::string::npos);
}

TEST_CASE("CliStatusTableShowsTheMirrorAndAResync") {
  FakeDaemon daemon([](const json&) -> json {
    json status = CannedStatus("resync", "");
    status["mirror"] = {{"link", "resync"},
                        {"target", "10.0.0.2:7400"},
                        {"mode", "sync"},
                        {"on_disconnect", "block"},
                        {"received_seq", 900},
                        {"durable_seq", 880},
                        {"applied_seq", 700},
                        {"lag_records", 12},
                        {"lag_bytes", 49152},
                        {"lag_seconds", 0.5},
                        {"last_error", ""},
                        {"resync",
                         {{"baseline", false},
                          {"phase", "data"},
                          {"percent", 25.0},
                          {"bytes_done", 1 << 20},
                          {"bytes_total", 4 << 20},
                          {"bytes_sent", 65536},
                          {"seconds_left", 3.0}}}};
    return status;
  });
  CliRun run = Run({"status", daemon.mnt()});
  CHECK(run.code == 2);  // not "running" while the image is being resynced
  CAPTURE(run.out);
  CHECK(run.out.find("mirror:            resync to 10.0.0.2:7400 (mode sync, on_disconnect "
                     "block)\n") != std::string::npos);
  CHECK(run.out.find("mirror seqs:       received 900, durable 880, applied 700\n") !=
        std::string::npos);
  CHECK(run.out.find("mirror lag:        12 records, 48.0 KiB, 0.5 s\n") != std::string::npos);
  CHECK(run.out.find("mirror resync:     resync data 25%, 1.0 MiB of 4.0 MiB compared, 64.0 KiB "
                     "sent, 3 s left\n") != std::string::npos);
  CHECK(run.out.find("mirror error") == std::string::npos);  // empty: no row
}

TEST_CASE("CliVerifyExitsZeroWhenIdenticalOneWithDifferencesTwoWhenItCannotCompare") {
  std::atomic<int> answer{0};
  FakeDaemon daemon([&](const json& request) -> json {
    if (request["cmd"] != "verify") return {{"ok", false}, {"error", "unknown command"}};
    if (answer == 0) {
      return {{"ok", true},   {"identical", true},     {"cp_seq", 77},
              {"entries", 5}, {"difference_count", 0}, {"differences", json::array()}};
    }
    if (answer == 1) {
      return {{"ok", true},
              {"identical", false},
              {"cp_seq", 78},
              {"entries", 5},
              {"difference_count", 2},
              {"differences", {"a/b: content differs", "c: missing in the image"}}};
    }
    return {{"ok", false}, {"error", "link to mirrord down"}};
  });
  CliRun same = Run({"verify", daemon.mnt()});
  CHECK(same.code == 0);
  CHECK(same.out == "identical: 5 entries of BACKING and the image agree (checkpoint seq 77)\n");
  answer = 1;
  CliRun differ = Run({"verify", daemon.mnt()});
  CHECK(differ.code == 1);
  CHECK(differ.out ==
        "a/b: content differs\nc: missing in the image\n2 difference(s) between "
        "BACKING and the image (checkpoint seq 78)\n");
  answer = 2;
  CliRun cannot = Run({"verify", daemon.mnt()});
  CHECK(cannot.code == 2);
  CHECK(cannot.err.find("link to mirrord down") != std::string::npos);
  daemon.Stop();
  CHECK(Run({"verify", daemon.mnt()}).code == 3);
}

TEST_CASE("CliUsageErrorsExitOneAndHelpExitsZero") {
  CHECK(Run({"status"}).code == 1);
  CHECK(Run({"status", "/a", "/b"}).code == 1);
  CHECK(Run({"status", "/a", "--bogus"}).code == 1);
  CHECK(Run({"checkpoint", "/a", "--json"}).code == 1);  // --json is for status
  CHECK(Run({"checkpoint", "/a", "--timeout"}).code == 1);
  CHECK(Run({"checkpoint", "/a", "--timeout", "0"}).code == 1);
  CHECK(Run({"checkpoint", "/a", "--timeout", "soon"}).code == 1);
  CliRun usage = Run({"status", "/a", "--bogus"});
  CHECK(usage.err.find("try 'mirrorfs status --help'") != std::string::npos);
  CHECK(Run({"mount"}).code == 1);
  for (const char* command : {"status", "checkpoint"}) {
    CAPTURE(command);
    CliRun help = Run({command, "--help"});
    CHECK(help.code == 0);
    CHECK(help.out.find(std::string("Usage: mirrorfs ") + command + " MOUNTPOINT") == 0);
    CHECK(help.out.find("Exit status:") != std::string::npos);
    CHECK(help.out.find("  3  no mirrorfs daemon answers") != std::string::npos);
  }
  CHECK(mirror::fs::IsCliCommand("status"));
  CHECK(mirror::fs::IsCliCommand("checkpoint"));
  CHECK(!mirror::fs::IsCliCommand("/srv/backing"));
  CHECK(!mirror::fs::IsCliCommand(nullptr));
}
