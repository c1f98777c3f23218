// Reading mirrord's image before any failover (issue 6, docs/operations.md): clients read
// STATE_DIR/<source>/image through a read-only bind mount. What they read is the source's
// content as of the last applied consistency point; writes fail with EROFS; and while a
// consistency point is applied, the image moves forward one record at a time in the
// source's order (invariant 2), so a reader that sees a file sees every file created
// before it, complete.
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mirror_checks.h"
#include "mirror_rig.h"
#include "tree_compare.h"

namespace mirror::itest {
namespace {

using namespace std::chrono_literals;

// A read-only bind mount of `source` at a fresh temp dir. The destructor unmounts it
// (MNT_DETACH when a plain umount fails, e.g. a reader still has a file open) and removes
// the dir, also when a check failed. Only this mount is touched.
class ReadOnlyBind {
 public:
  // nullptr with *error when the temp dir or either mount(2) step fails; what was done
  // is undone before returning.
  static std::unique_ptr<ReadOnlyBind> Make(const std::string& source, std::string* error) {
    std::unique_ptr<ReadOnlyBind> bind(new ReadOnlyBind);
    char tmpl[] = "/tmp/mirror-ro-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      *error = std::string("mkdtemp: ") + strerror(errno);
      return nullptr;
    }
    bind->dir_ = tmpl;
    if (mount(source.c_str(), bind->dir_.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      *error = "bind mount " + source + ": " + strerror(errno);
      return nullptr;
    }
    bind->mounted_ = true;
    // A bind mount takes the flags of the mount it copies; read-only needs a remount of
    // the new mount alone (what `mount -o remount,bind,ro` does).
    if (mount(nullptr, bind->dir_.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) !=
        0) {
      *error = std::string("remount read-only: ") + strerror(errno);
      return nullptr;
    }
    return bind;
  }

  ~ReadOnlyBind() {
    if (mounted_ && umount2(dir_.c_str(), 0) != 0) umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  ReadOnlyBind(const ReadOnlyBind&) = delete;
  ReadOnlyBind& operator=(const ReadOnlyBind&) = delete;

  const std::string& path() const { return dir_; }

 private:
  ReadOnlyBind() = default;
  std::string dir_;
  bool mounted_ = false;
};

// The whole file at `path` in *data; 0, or the errno of the failing call.
int ReadAll(const std::string& path, std::string* data) {
  data->clear();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[16384];
  int err = 0;
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n <= 0) break;
    data->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return err;
}

// errno of an attempt to create `path` for writing (0 if it succeeded).
int CreateErrno(const std::string& path) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

TEST_CASE("ImageReadsThroughAReadOnlyBindMount") {
  MirrorRig rig;
  RigOptions o;
  o.mode = "sync";
  std::string error;
  REQUIRE_MESSAGE(rig.Start(o, &error), error);
  const std::string mnt = rig.mount().mountpoint();
  REQUIRE(mkdir((mnt + "/d").c_str(), 0755) == 0);
  REQUIRE(WriteWholeFile(mnt + "/d/a.txt", "first version\n"));
  std::string big;
  for (int i = 0; big.size() < 200000; ++i) big += "line " + std::to_string(i) + "\n";
  REQUIRE(WriteWholeFile(mnt + "/d/big", big));
  REQUIRE(symlink("a.txt", (mnt + "/d/link").c_str()) == 0);
  REQUIRE(chmod((mnt + "/d/a.txt").c_str(), 0640) == 0);
  std::string out;
  REQUIRE_MESSAGE(rig.Checkpoint(&out) == 0, out);

  std::unique_ptr<ReadOnlyBind> ro = ReadOnlyBind::Make(rig.image(), &error);
  REQUIRE_MESSAGE(ro != nullptr, error);
  struct statvfs vfs {};
  REQUIRE(statvfs(ro->path().c_str(), &vfs) == 0);
  CHECK((vfs.f_flag & ST_RDONLY) != 0);

  // The source's content, read through the bind mount.
  std::string data;
  CHECK(ReadAll(ro->path() + "/d/a.txt", &data) == 0);
  CHECK(data == "first version\n");
  CHECK(ReadAll(ro->path() + "/d/big", &data) == 0);
  CHECK(data == big);
  CHECK(ReadAll(ro->path() + "/d/link", &data) == 0);
  CHECK(data == "first version\n");
  TreeSnapshot want, got;
  REQUIRE_MESSAGE(SnapshotTree(rig.mount().backing() + "/d", &want, &error), error);
  REQUIRE_MESSAGE(SnapshotTree(ro->path() + "/d", &got, &error), error);
  std::vector<std::string> diffs = CompareTrees(want, got, CompareOptions{.mtime = true});
  CHECK_MESSAGE(diffs.empty(), JoinFirst(diffs));

  // Nothing can be written through it; the image stays as mirrord made it.
  CHECK(CreateErrno(ro->path() + "/d/new") == EROFS);
  CHECK(CreateErrno(ro->path() + "/d/a.txt") == EROFS);
  CHECK((mkdir((ro->path() + "/d/sub").c_str(), 0755) == 0 ? 0 : errno) == EROFS);
  CHECK((unlink((ro->path() + "/d/big").c_str()) == 0 ? 0 : errno) == EROFS);
  CHECK((chmod((ro->path() + "/d/big").c_str(), 0600) == 0 ? 0 : errno) == EROFS);
  struct stat st {};
  CHECK(lstat((rig.image() + "/d/new").c_str(), &st) != 0);

  // The bind mount is live, not a snapshot: the next consistency point shows through it.
  REQUIRE(WriteWholeFile(mnt + "/d/a.txt", "second version\n"));
  REQUIRE_MESSAGE(rig.Checkpoint(&out) == 0, out);
  CHECK(ReadAll(ro->path() + "/d/a.txt", &data) == 0);
  CHECK(data == "second version\n");
}

// What the writer puts into step-K: lines that name K, 6000 bytes, written in two halves
// (two write records), so a half-applied file is visible as such.
constexpr size_t kStepBytes = 6000;
std::string StepContent(int k) {
  std::string s;
  char line[32];
  for (int i = 0; s.size() < kStepBytes; ++i) {
    snprintf(line, sizeof(line), "step-%04d line %04d\n", k, i);
    s += line;
  }
  s.resize(kStepBytes);
  return s;
}

std::string StepName(int k) {
  char name[32];
  snprintf(name, sizeof(name), "step-%04d", k);
  return name;
}

// The writer's numbers visible in `dir` (names step-NNNN only), or an empty set.
std::set<int> VisibleSteps(const std::string& dir) {
  std::set<int> steps;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return steps;
  while (struct dirent* e = readdir(d)) {
    int k = -1;
    char tail = 0;
    if (sscanf(e->d_name, "step-%d%c", &k, &tail) == 1 && k >= 0) steps.insert(k);
  }
  closedir(d);
  return steps;
}

// What the reader thread saw; read by the main thread after join().
struct ReaderLog {
  int scans = 0;
  std::set<int> maxima;    // highest visible step of each scan (-1: none)
  int partial_newest = 0;  // scans whose newest file was not complete yet
  std::vector<std::string> violations;
  int last_scan_max = -1;           // of the last scan
  bool last_scan_complete = false;  // every file of the last scan complete
};

// One scan: the directory listing gives the newest visible step K; then every step J < K
// is opened by name, newest first. Sound with concurrent creates: K was listed, so K
// existed during the listing; with the prefix property every J < K existed then too and
// nothing removes them.
void ScanOnce(const std::string& dir, ReaderLog* log) {
  const std::set<int> steps = VisibleSteps(dir);
  ++log->scans;
  const int newest = steps.empty() ? -1 : *steps.rbegin();
  log->maxima.insert(newest);
  bool complete = true;
  std::string data;
  if (newest >= 0) {
    if (ReadAll(dir + "/" + StepName(newest), &data) != 0 || data != StepContent(newest)) {
      ++log->partial_newest;
      complete = false;
    }
  }
  for (int j = newest - 1; j >= 0; --j) {
    const int err = ReadAll(dir + "/" + StepName(j), &data);
    if (err != 0 || data != StepContent(j)) {
      complete = false;
      if (log->violations.size() < 20) {
        log->violations.push_back(StepName(newest) + " visible but " + StepName(j) + " " +
                                  (err != 0
                                       ? std::string("unreadable: ") + strerror(err)
                                       : "incomplete (" + std::to_string(data.size()) + " bytes)"));
      }
    }
  }
  log->last_scan_max = newest;
  log->last_scan_complete = complete;
}

TEST_CASE("ImageReadersSeeAPrefixOfTheSourcesChanges") {
  constexpr int kSteps = 400;
  constexpr int kCheckpointEvery = 50;
  MirrorRig rig;
  RigOptions o;
  o.mode = "sync";  // cp_interval=1s (the rig's default): automatic CPs in between too
  std::string error;
  REQUIRE_MESSAGE(rig.Start(o, &error), error);
  const std::string mnt = rig.mount().mountpoint();
  REQUIRE(mkdir((mnt + "/steps").c_str(), 0755) == 0);
  std::string out;
  REQUIRE_MESSAGE(rig.Checkpoint(&out) == 0, out);
  std::unique_ptr<ReadOnlyBind> ro = ReadOnlyBind::Make(rig.image(), &error);
  REQUIRE_MESSAGE(ro != nullptr, error);
  const std::string seen_dir = ro->path() + "/steps";

  // The reader: bounded by a scan count and a time, stopped by the main thread.
  std::atomic<bool> stop{false};
  ReaderLog log;
  std::thread reader([&] {
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    while (!stop.load() && log.scans < 100000 && std::chrono::steady_clock::now() < deadline) {
      ScanOnce(seen_dir, &log);
    }
  });

  // The writer (this thread): step-K in order, two writes each, checkpoints in between;
  // bounded by kSteps and 60 s.
  const auto write_deadline = std::chrono::steady_clock::now() + 60s;
  int written = 0;
  std::vector<std::string> write_errors;
  for (int k = 0; k < kSteps && std::chrono::steady_clock::now() < write_deadline; ++k) {
    const std::string content = StepContent(k);
    const std::string path = mnt + "/steps/" + StepName(k);
    int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    const size_t half = content.size() / 2;
    const bool ok = fd >= 0 && write(fd, content.data(), half) == static_cast<ssize_t>(half) &&
                    write(fd, content.data() + half, content.size() - half) ==
                        static_cast<ssize_t>(content.size() - half);
    if (fd >= 0) close(fd);
    if (!ok) {
      write_errors.push_back(StepName(k) + ": " + strerror(errno));
      break;
    }
    ++written;
    if ((k + 1) % kCheckpointEvery == 0 && rig.Checkpoint(&out) != 0) {
      write_errors.push_back("checkpoint after " + StepName(k) + ": " + out);
      break;
    }
  }
  const int cp_rc = rig.Checkpoint(&out);
  // One more scan after the final checkpoint, then stop (bounded: one scan).
  stop = true;
  reader.join();
  ScanOnce(seen_dir, &log);

  REQUIRE_MESSAGE(write_errors.empty(), JoinFirst(write_errors));
  REQUIRE(written == kSteps);
  REQUIRE_MESSAGE(cp_rc == 0, out);
  MESSAGE(log.scans << " scans, " << log.maxima.size() << " distinct newest steps, "
                    << log.partial_newest << " scans saw the newest file half applied");
  CHECK_MESSAGE(log.violations.empty(), JoinFirst(log.violations));
  // The reader saw the image move forward while it was applied (not only empty and
  // final), else the prefix check above proved nothing.
  int intermediate = 0;
  for (int m : log.maxima) intermediate += (m >= 0 && m < kSteps - 1) ? 1 : 0;
  CHECK_MESSAGE(intermediate >= 2, "intermediate states seen: " << intermediate);
  CHECK(log.last_scan_max == kSteps - 1);
  CHECK(log.last_scan_complete);
  std::vector<std::string> diffs = rig.Differences("steps");
  CHECK_MESSAGE(diffs.empty(), JoinFirst(diffs));
  CHECK_MESSAGE(rig.Verify(&out) == 0, out);
}

}  // namespace
}  // namespace mirror::itest
