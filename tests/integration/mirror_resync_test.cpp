// Baseline, resync and verify (issue 5) against a real mirrord: a BACKING that held data
// before its first mirrored mount is copied while clients write; a journal overflow
// while the link is down is repaired by a resync that sends less than the whole tree;
// `mirrorfs verify` says identical, and names a difference made behind its back.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "mirror_checks.h"
#include "mirror_rig.h"

namespace mirror::itest {
namespace {

using namespace std::chrono_literals;

// A tree with every kind of entry: 1500 small files in 30 dirs, hard links, symlinks,
// fifos, a device, xattrs, owners, a sparse 64 MiB file and a dense 16 MiB one.
void FillTree(const std::string& backing) {
  const std::string t = backing + "/t";
  REQUIRE(mkdir(t.c_str(), 0755) == 0);
  std::mt19937 rng(7);
  for (int d = 0; d < 30; ++d) {
    const std::string dir = t + "/d" + std::to_string(d);
    REQUIRE(mkdir(dir.c_str(), d % 3 == 0 ? 02775 : 0755) == 0);
    for (int f = 0; f < 50; ++f) {
      REQUIRE(WriteWholeFile(dir + "/f" + std::to_string(f),
                             std::string(100 + rng() % 9000, 'a' + f % 26)));
    }
    REQUIRE(link((dir + "/f0").c_str(), (dir + "/hard0").c_str()) == 0);
    REQUIRE(symlink("f1", (dir + "/sym1").c_str()) == 0);
    REQUIRE(mkfifo((dir + "/fifo").c_str(), 0640) == 0);
    REQUIRE(setxattr((dir + "/f2").c_str(), "user.tag", "v", 1, 0) == 0);
    REQUIRE(chown((dir + "/f3").c_str(), 1000 + d, 2000) == 0);
  }
  REQUIRE(mknod((t + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  int fd = open((t + "/sparse").c_str(), O_CREAT | O_WRONLY, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, 64 << 20) == 0);
  REQUIRE(pwrite(fd, "middle", 6, 32 << 20) == 6);
  close(fd);
  REQUIRE(WriteWholeFile(t + "/dense", std::string(16 << 20, 'D')));
}

TEST_CASE("BaselineOfAnExistingTreeWhileClientsWrite") {
  MirrorRig rig;
  RigOptions o;
  o.mode = "sync";
  std::string error;
  REQUIRE_MESSAGE(rig.Start(o, &error), error);
  REQUIRE_MESSAGE(rig.RestartAsNewVolume(FillTree, &error), error);
  // Clients write at once, while the baseline copies: overwrite, extend, create, rename,
  // remove, among the files being copied.
  const std::string t = rig.mount().mountpoint() + "/t";
  std::atomic<int> ops{0};
  std::thread writer([&] {
    std::mt19937 rng(11);
    const auto end = std::chrono::steady_clock::now() + 3s;
    for (int i = 0; i < 5000 && std::chrono::steady_clock::now() < end; ++i) {
      const std::string dir = t + "/d" + std::to_string(rng() % 30);
      switch (rng() % 5) {
        case 0:
          WriteWholeFile(dir + "/f" + std::to_string(rng() % 50), "rewritten " + std::to_string(i));
          break;
        case 1:
          WriteWholeFile(dir + "/f" + std::to_string(rng() % 50), std::string(3000, 'x'), O_APPEND);
          break;
        case 2:
          WriteWholeFile(dir + "/new" + std::to_string(i), "new " + std::to_string(i));
          break;
        case 3:
          rename((dir + "/f" + std::to_string(rng() % 50)).c_str(),
                 (dir + "/moved" + std::to_string(i)).c_str());
          break;
        default:
          unlink((dir + "/f" + std::to_string(rng() % 50)).c_str());
          break;
      }
      {
        int fd = open((t + "/dense").c_str(), O_WRONLY);
        if (fd >= 0) {
          pwrite(fd, "CLIENT", 6, static_cast<off_t>(rng() % (16 << 20)));
          close(fd);
        }
      }
      ++ops;
    }
  });
  std::string status;
  const bool saw = WaitStatus(rig, "\"link\":\"baseline\"", &status, 20s);
  writer.join();
  CHECK(ops.load() > 50);
  CHECK_MESSAGE(WaitStatus(rig, "\"phase\":\"done\"", &status), status);
  CHECK_MESSAGE(status.find("\"baseline\":true") != std::string::npos, status);
  CHECK_MESSAGE(saw, "status never showed link baseline");
  const std::string log = rig.mount().DaemonStderr();
  CHECK_MESSAGE(log.find("baseline") != std::string::npos, log);
  ExpectMirrored(rig, "t", "after the baseline");
  // The sparse file stayed sparse in the image.
  struct stat st;
  REQUIRE(stat((rig.image() + "/t/sparse").c_str(), &st) == 0);
  CHECK(st.st_blocks * 512 < (4 << 20));
}

// The journal (4 MiB) cannot hold what is written while the link is cut: the writes
// still succeed, the mirror needs a resync, and once the link is back the resync makes
// the image equal again, sending far less than the whole tree (an 8 MiB file is the same).
TEST_CASE("JournalOverflowWhileDegradedEndsInAResyncThatSendsOnlyTheDifference") {
  MirrorRig rig;
  RigOptions o;
  o.mode = "async";
  o.on_disconnect = "degrade";
  o.via_relay = true;
  o.journal_size = "4M";
  std::string error;
  REQUIRE_MESSAGE(rig.Start(o, &error), error);
  const std::string dir = rig.mount().mountpoint() + "/w";
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  REQUIRE(WriteWholeFile(dir + "/base", std::string(8 << 20, 'B')));
  std::string out;
  REQUIRE(rig.Checkpoint(&out) == 0);
  rig.relay().Cut();
  std::string status;
  REQUIRE_MESSAGE(WaitStatus(rig, "\"link\":\"degraded\"", &status, 20s), status);
  const std::string chunk(64 * 1024, 'y');
  for (int i = 0; i < 256; ++i) {  // 16 MiB, four times the journal
    REQUIRE(WriteWholeFile(dir + "/big" + std::to_string(i % 8), chunk));
  }
  CHECK_MESSAGE(WaitStatus(rig, "\"link\":\"out-of-sync\"", &status, 20s), status);
  struct stat st;
  CHECK(stat((rig.mount().journal_path() + ".out-of-sync").c_str(), &st) == 0);
  const uint64_t before = rig.relay().bytes_to_target();
  rig.relay().Forward();
  CHECK_MESSAGE(WaitStatus(rig, "\"phase\":\"done\"", &status), status);
  ExpectMirrored(rig, "w", "after the resync");
  const uint64_t sent = rig.relay().bytes_to_target() - before;
  CHECK_MESSAGE(sent < (4u << 20), "the resync sent " << sent << " bytes");
  CHECK(stat((rig.mount().journal_path() + ".out-of-sync").c_str(), &st) != 0);
}

// The journal is lost with changes mirrord never got (a machine that died with it): the
// new journal starts at seq 1 while mirrord holds far more; the mount resyncs.
TEST_CASE("ALostJournalEndsInAResyncNotInAWrongImage") {
  MirrorRig rig;
  RigOptions o;
  StartRigWithWorkDir(rig, o);
  const std::string dir = rig.mount().mountpoint() + "/w";
  for (int i = 0; i < 20; ++i) REQUIRE(WriteWholeFile(dir + "/f" + std::to_string(i), "v1"));
  std::string out;
  REQUIRE(rig.Checkpoint(&out) == 0);
  rig.mount().Stop();
  const std::string journal = rig.mount().journal_path();
  for (const char* suffix : {"", ".boot", ".out-of-sync"}) unlink((journal + suffix).c_str());
  // What the lost journal would have carried: changes BACKING has and the image has not.
  const std::string b = rig.mount().backing() + "/w";
  REQUIRE(WriteWholeFile(b + "/f3", "changed while the journal was lost"));
  REQUIRE(unlink((b + "/f4").c_str()) == 0);
  REQUIRE(WriteWholeFile(b + "/extra", "new"));
  std::string error;
  REQUIRE_MESSAGE(rig.mount().Restart(&error), error);
  std::string status;
  CHECK_MESSAGE(WaitStatus(rig, "\"phase\":\"done\"", &status), status);
  CHECK_MESSAGE(status.find("\"baseline\":false") != std::string::npos, status);
  ExpectMirrored(rig, "w", "after the resync of a lost journal");
}

TEST_CASE("VerifyNamesADifferenceMadeBehindItsBack") {
  MirrorRig rig;
  RigOptions o;
  std::string error;
  REQUIRE_MESSAGE(rig.Start(o, &error), error);
  const std::string dir = rig.mount().mountpoint() + "/w";
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  REQUIRE(WriteWholeFile(dir + "/a", "the same\n"));
  REQUIRE(WriteWholeFile(dir + "/b", "also the same\n"));
  std::string out;
  REQUIRE(rig.Verify(&out) == 0);
  CHECK_MESSAGE(out.find("identical") != std::string::npos, out);
  // Same size and mtime, other content: only the content hash can tell.
  const std::string victim = rig.image() + "/w/b";
  struct stat st;
  REQUIRE(stat(victim.c_str(), &st) == 0);
  {
    int fd = open(victim.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(pwrite(fd, "ALSO", 4, 0) == 4);
    close(fd);
  }
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  REQUIRE(utimensat(AT_FDCWD, victim.c_str(), times, 0) == 0);
  const int rc = rig.Verify(&out);
  CHECK_MESSAGE(rc == 1, "verify exited " << rc << ": " << out);
  CHECK_MESSAGE(out.find("w/b") != std::string::npos, out);
  CHECK_MESSAGE(out.find("w/a") == std::string::npos, out);
}

}  // namespace
}  // namespace mirror::itest
