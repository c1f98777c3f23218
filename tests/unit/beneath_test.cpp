// Path confinement (invariant 6): OpenDirBeneath with both resolvers, and every
// escape attempt through ImageTree::Apply refused with nothing outside changed.
#include "common/beneath.h"
#include "common/unique_fd.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <string>
#include <vector>

#include "common/apply.h"
#include "common/record.h"
#include "tests/unit/test_util.h"
#include "tests/unit/tree_snapshot.h"

using namespace mirror::common;
using mirror::test::FirstDifference;
using mirror::test::SnapshotTree;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;

namespace {

const ResolveMethod kMethods[] = {ResolveMethod::kOpenat2, ResolveMethod::kWalk,
                                  ResolveMethod::kAuto};

const char* Name(ResolveMethod m) {
  switch (m) {
    case ResolveMethod::kOpenat2:
      return "openat2";
    case ResolveMethod::kWalk:
      return "walk";
    case ResolveMethod::kAuto:
      return "auto";
  }
  return "?";
}

Timespec T(int64_t sec, uint32_t nsec) { return Timespec{sec, nsec}; }

UniqueFd OpenRoot(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(fd);
  return fd;
}

ino_t InodeOf(int fd) {
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  return st.st_ino;
}

ino_t InodeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(lstat(path.c_str(), &st) == 0);
  return st.st_ino;
}

// base/image is the root; base/outside holds what must never change; inside the
// image, "link" points out (absolute), "inlink" points to "d" (inside).
struct Layout {
  TempDir base;
  std::string image = base / "image";
  std::string outside = base / "outside";
  Layout() {
    REQUIRE(mkdir(image.c_str(), 0755) == 0);
    REQUIRE(mkdir(outside.c_str(), 0755) == 0);
    REQUIRE(mkdir((outside + "/sub").c_str(), 0755) == 0);
    WriteFileBytes(outside + "/secret", "s3cret");
    REQUIRE(mkdir((image + "/d").c_str(), 0755) == 0);
    WriteFileBytes(image + "/d/f", "inside");
    REQUIRE(symlink(outside.c_str(), (image + "/link").c_str()) == 0);
    REQUIRE(symlink("d", (image + "/inlink").c_str()) == 0);
    REQUIRE(symlink("../outside/secret", (image + "/d/up").c_str()) == 0);
  }
};

}  // namespace

TEST_CASE("OpenDirBeneathOpensNestedDirectoriesWithBothResolvers") {
  TempDir dir;
  std::filesystem::create_directories(dir / "a/b/c");
  UniqueFd root = OpenRoot(dir.path());
  for (ResolveMethod m : kMethods) {
    CAPTURE(Name(m));
    Result<UniqueFd> fd = OpenDirBeneath(root.get(), "a/b/c", m);
    REQUIRE_MESSAGE(fd.ok(), fd.status().ToString());
    CHECK(InodeOf(fd->get()) == InodeOf(dir / "a/b/c"));
    CHECK((fcntl(fd->get(), F_GETFL) & O_PATH) == 0);  // a real fd: futimens works
    CHECK((fcntl(fd->get(), F_GETFD) & FD_CLOEXEC) != 0);
    Result<UniqueFd> top = OpenDirBeneath(root.get(), ".", m);
    REQUIRE(top.ok());
    CHECK(InodeOf(top->get()) == InodeOf(dir.path()));
  }
}

TEST_CASE("OpenDirBeneathNamesTheComponentThatBreaksTheRule") {
  TempDir dir;
  std::filesystem::create_directories(dir / "a/b");
  WriteFileBytes(dir / "a/file", "x");
  REQUIRE(symlink("b", (dir / "a/in").c_str()) == 0);
  REQUIRE(symlink("/", (dir / "a/out").c_str()) == 0);
  UniqueFd root = OpenRoot(dir.path());
  for (ResolveMethod m : kMethods) {
    CAPTURE(Name(m));
    Result<UniqueFd> r = OpenDirBeneath(root.get(), "a/in/x", m);
    CHECK(r.status().code() == Code::kPermissionDenied);
    CHECK(r.status().message() == "component 'in' is a symlink; refused");
    r = OpenDirBeneath(root.get(), "a/out", m);
    CHECK(r.status().message() == "component 'out' is a symlink; refused");
    r = OpenDirBeneath(root.get(), "a/missing/x", m);
    CHECK(r.status().code() == Code::kNotFound);
    CHECK(r.status().error_number() == ENOENT);
    CHECK(r.status().message().rfind("component 'missing'", 0) == 0);
    r = OpenDirBeneath(root.get(), "a/file", m);
    CHECK(r.status().code() == Code::kIOError);
    CHECK(r.status().error_number() == ENOTDIR);
    CHECK(r.status().message() == "component 'file' is not a directory: Not a directory");
    for (const char* bad : {"..", "../x", "a/../..", "/etc", "", "a//b", "a/./b", "a/"}) {
      CAPTURE(bad);
      r = OpenDirBeneath(root.get(), bad, m);
      CHECK(r.status().code() == Code::kPermissionDenied);
      CHECK(r.status().message().rfind("escape attempt: ", 0) == 0);
    }
  }
}

TEST_CASE("SplitEntryPathSplitsAtTheLastSlash") {
  CHECK(SplitEntryPath("a").parent == ".");
  CHECK(SplitEntryPath("a").leaf == "a");
  CHECK(SplitEntryPath("a/b/c").parent == "a/b");
  CHECK(SplitEntryPath("a/b/c").leaf == "c");
}

TEST_CASE("MountPointInsideTheImageIsNotCrossed") {
  Layout l;
  std::string mnt = l.image + "/mnt";
  REQUIRE(mkdir(mnt.c_str(), 0755) == 0);
  if (mount(l.outside.c_str(), mnt.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    MESSAGE("cannot bind-mount here (" << std::strerror(errno) << "); skipped");
    return;
  }
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  UniqueFd root = OpenRoot(l.image);
  for (ResolveMethod m : kMethods) {
    CAPTURE(Name(m));
    Result<UniqueFd> r = OpenDirBeneath(root.get(), "mnt", m);
    CHECK(r.status().code() == Code::kPermissionDenied);
    CHECK(r.status().message().rfind("escape attempt: ", 0) == 0);
    r = OpenDirBeneath(root.get(), "mnt/sub", m);
    CHECK(r.status().code() == Code::kPermissionDenied);
    Result<ImageTree> tree = ImageTree::Open(l.image, m);
    REQUIRE(tree.ok());
    CHECK(tree->Apply(WriteOp{"mnt/secret", 0, T(1, 1), "pwned"}, {}).code() ==
          Code::kPermissionDenied);
  }
  CHECK(mirror::test::ReadFileBytes(l.outside + "/secret") == "s3cret");
}

namespace {

// Every record here must be refused with PermissionDenied, in strict and in replay
// mode, and leave both the outside and the image exactly as they were.
std::vector<Op> EscapeAttempts(const std::string& outside) {
  static std::string absolute;  // the ops hold views
  absolute = outside + "/secret";
  const Timespec t = T(1000, 1);
  return {
      // Hand-built records that never went through the decoder.
      WriteOp{"../outside/secret", 0, t, "pwned"},
      WriteOp{"/etc/mirror-apply-test-x", 0, t, "pwned"},
      WriteOp{absolute, 0, t, "pwned"},
      WriteOp{"d/../../outside/secret", 0, t, "pwned"},
      CreateOp{"../outside/new", S_IFREG | 0644, 0, 0, t, t},
      MkdirOp{"/tmp/mirror-apply-test-dir", S_IFDIR | 0755, 0, 0, t, t},
      UnlinkOp{"../outside/secret", t},
      RenameOp{"d/f", "../outside/stolen", 0, t, t},
      RenameOp{"../outside/secret", "d/stolen", 0, t, t},
      LinkOp{"../outside/secret", "d/hard", t},
      SymlinkOp{"../outside/sl", 0, 0, t, t, "x"},
      ChmodOp{"..", 0777},
      SetxattrOp{"../outside", "user.x", "v"},
      // A symlink pointing out, as the last component and as a directory.
      WriteOp{"link", 0, t, "pwned"},
      TruncateOp{"link", 0, t},
      FallocateOp{"link", 0, 0, 4096, t},
      ChmodOp{"link", 0777},
      WriteOp{"link/secret", 0, t, "pwned"},
      TruncateOp{"link/secret", 0, t},
      FallocateOp{"link/secret", 0, 0, 4096, t},
      CreateOp{"link/f", S_IFREG | 0644, 0, 0, t, t},
      MkdirOp{"link/dir", S_IFDIR | 0755, 0, 0, t, t},
      MknodOp{"link/fifo", S_IFIFO | 0644, 0, 0, 0, t, t},
      SymlinkOp{"link/sl", 0, 0, t, t, "x"},
      UnlinkOp{"link/secret", t},
      RmdirOp{"link/sub", t},
      ChmodOp{"link/secret", 0777},
      ChownOp{"link/secret", 1, 1, 0777},
      UtimensOp{"link/secret", t, t},
      SetxattrOp{"link/secret", "user.x", "v"},
      RemovexattrOp{"link/secret", "user.x"},
      // A relative symlink out, as the last component.
      WriteOp{"d/up", 0, t, "pwned"},
      ChmodOp{"d/up", 0777},
      // A symlink pointing inside is refused as a directory too.
      WriteOp{"inlink/f", 0, t, "pwned"},
      CreateOp{"inlink/g", S_IFREG | 0644, 0, 0, t, t},
      UnlinkOp{"inlink/f", t},
      ChmodOp{"inlink/f", 0777},
      // Renames and links whose source or target goes through a symlink.
      RenameOp{"d/f", "link/stolen", 0, t, t},
      RenameOp{"d/f", "inlink/moved", 0, t, t},
      RenameOp{"link/secret", "d/stolen", 0, t, t},
      RenameOp{"d/f", "link/secret", kRenameExchange, t, t},
      LinkOp{"link/secret", "d/hard", t},
      LinkOp{"d/f", "link/hard", t},
      LinkOp{"inlink/f", "d/hard", t},
      // Devices, unless allowed.
      MknodOp{"d/null", S_IFCHR | 0666, 0x103, 0, 0, t, t},
  };
}

void RunEscapeSuite(ResolveMethod method) {
  Layout l;
  const auto outside_before = SnapshotTree(l.outside);
  const auto image_before = SnapshotTree(l.image);
  Result<ImageTree> tree = ImageTree::Open(l.image, method);
  REQUIRE(tree.ok());
  ApplyOptions replay;
  replay.replay = true;
  for (const Op& op : EscapeAttempts(l.outside)) {
    for (const ApplyOptions& options : {ApplyOptions{}, replay}) {
      Status st = tree->Apply(op, options);
      CAPTURE(RecordTypeName(TypeOf(op)));
      CAPTURE(options.replay);
      CHECK_MESSAGE(st.code() == Code::kPermissionDenied, st.ToString());
    }
  }
  std::string diff = FirstDifference(outside_before, SnapshotTree(l.outside));
  CHECK_MESSAGE(diff.empty(), diff);
  diff = FirstDifference(image_before, SnapshotTree(l.image));
  CHECK_MESSAGE(diff.empty(), diff);
  CHECK_FALSE(std::filesystem::exists("/etc/mirror-apply-test-x"));
  CHECK_FALSE(std::filesystem::exists("/tmp/mirror-apply-test-dir"));

  // The messages say what was refused and where.
  Status st = tree->Apply(WriteOp{"link/secret", 0, T(1, 1), "x"}, {});
  CHECK(st.message() == "path 'link/secret': component 'link' is a symlink; refused");
  st = tree->Apply(WriteOp{"link", 0, T(1, 1), "x"}, {});
  CHECK(st.message() == "path 'link' is a symlink; write refused");
  st = tree->Apply(WriteOp{"../x", 0, T(1, 1), "x"}, {});
  CHECK(st.message().rfind("escape attempt: path '../x'", 0) == 0);

  // Attribute records on the outward symlink act on the link itself, never its target.
  const Timespec t = T(2000, 2);
  CHECK(tree->Apply(ChownOp{"link", 4321, 4321, 0}, {}).ok());
  CHECK(tree->Apply(UtimensOp{"link", t, t}, {}).ok());
  CHECK(tree->Apply(SetxattrOp{"link", "trusted.x", "v"}, {}).ok());
  CHECK(tree->Apply(RemovexattrOp{"link", "trusted.x"}, {}).ok());
  CHECK(tree->Apply(SetxattrOp{"link", "trusted.y", "w"}, {}).ok());
  diff = FirstDifference(outside_before, SnapshotTree(l.outside));
  CHECK_MESSAGE(diff.empty(), diff);
  auto link = mirror::test::DescribeNode(l.image + "/link");
  CHECK(link.uid == 4321);
  CHECK(link.mtime_sec == 2000);
  CHECK(link.xattrs.at("trusted.y") == "w");
  CHECK(link.xattrs.count("trusted.x") == 0);
}

}  // namespace

TEST_CASE("EscapeAttemptsAreRefusedWithOpenat2") { RunEscapeSuite(ResolveMethod::kOpenat2); }
TEST_CASE("EscapeAttemptsAreRefusedWithTheFallbackWalk") { RunEscapeSuite(ResolveMethod::kWalk); }
TEST_CASE("EscapeAttemptsAreRefusedWithAuto") { RunEscapeSuite(ResolveMethod::kAuto); }

TEST_CASE("ApplyWorksWithTheFallbackWalk") {
  TempDir dir;
  Result<ImageTree> tree = ImageTree::Open(dir.path(), ResolveMethod::kWalk);
  REQUIRE(tree.ok());
  const Timespec t = T(5, 5);
  REQUIRE(tree->Apply(MkdirOp{"a", S_IFDIR | 0755, 0, 0, t, t}, {}).ok());
  REQUIRE(tree->Apply(MkdirOp{"a/b", S_IFDIR | 0755, 0, 0, t, t}, {}).ok());
  REQUIRE(tree->Apply(CreateOp{"a/b/f", S_IFREG | 0644, 0, 0, t, t}, {}).ok());
  REQUIRE(tree->Apply(WriteOp{"a/b/f", 0, t, "walked"}, {}).ok());
  REQUIRE(tree->Apply(RenameOp{"a/b/f", "a/g", 0, t, T(6, 6)}, {}).ok());
  CHECK(mirror::test::ReadFileBytes(dir / "a/g") == "walked");
  struct stat st {};
  REQUIRE(stat((dir / "a").c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec == 6);
  CHECK(st.st_mtim.tv_nsec == 6);
}

namespace {

// In a child process, makes openat2 fail with `err` (a seccomp filter, as an old
// kernel or an old container runtime would), then checks that kAuto falls back to the
// walk, still confines, and that kOpenat2 reports the failure. Returns the exit code:
// 0 when all held, else the number of the first check that failed.
int RunWithoutOpenat2(const std::string& image, int err) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat2, 0, 1),
      BPF_STMT(BPF_RET | BPF_K,
               SECCOMP_RET_ERRNO | (static_cast<uint32_t>(err) & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {static_cast<unsigned short>(std::size(filter)), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 90;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return 91;
  UniqueFd root(open(image.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (Openat2Unavailable()) return 1;
  if (OpenDirBeneath(root.get(), "d", ResolveMethod::kOpenat2).status().error_number() != err)
    return 2;
  if (Openat2Unavailable()) return 3;
  if (!OpenDirBeneath(root.get(), "d", ResolveMethod::kAuto).ok()) return 4;
  if (!Openat2Unavailable()) return 5;
  Result<ImageTree> tree = ImageTree::Open(image);  // kAuto
  if (!tree.ok()) return 6;
  Status st = tree->Apply(WriteOp{"link/secret", 0, T(1, 1), "pwned"}, {});
  if (st.message() != "path 'link/secret': component 'link' is a symlink; refused") return 7;
  if (tree->Apply(WriteOp{"inlink/f", 0, T(1, 1), "pwned"}, {}).ok()) return 8;
  if (!tree->Apply(WriteOp{"d/f", 0, T(1, 1), "walked"}, {}).ok()) return 9;
  return 0;
}

}  // namespace

TEST_CASE("AutoFallsBackToTheWalkWhenOpenat2IsMissing") {
  for (int err : {ENOSYS, EPERM}) {
    CAPTURE(err);
    Layout l;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(RunWithoutOpenat2(l.image, err));
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(mirror::test::ReadFileBytes(l.outside + "/secret") == "s3cret");
    CHECK(mirror::test::ReadFileBytes(l.image + "/d/f") == "walked");
  }
  CHECK_FALSE(Openat2Unavailable());  // the parent process never saw it
}

// A record's path goes into error messages and from there into log lines: bytes that
// are not printable must not reach them raw (a newline would forge a log line).
TEST_CASE("ErrorsEscapeUnprintableBytesOfRecordPaths") {
  mirror::test::TempDir dir;
  auto root = mirror::common::UniqueFd(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(root);
  auto opened = mirror::common::OpenDirBeneath(root.get(), "no\nsuch\x1b[2J/dir",
                                               mirror::common::ResolveMethod::kAuto);
  REQUIRE_FALSE(opened.ok());
  const std::string& msg = opened.status().message();
  CHECK(msg.find('\n') == std::string::npos);
  CHECK(msg.find('\x1b') == std::string::npos);
  CHECK(msg.find("no\\x0asuch\\x1b[2J") != std::string::npos);
}
