// Targeted equivalence cases (issue 3): each pins down, in a few syscalls, a difference
// that the random runs of equivalence_test.cpp found between BACKING and the image
// replayed from mirrorfs's journal. Same environment as equivalence_test.cpp.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "equivalence_check.h"

namespace mirror::itest {
namespace {

std::string Step(const char* what, long rc) {
  return rc < 0 ? std::string(what) + ": " + strerror(errno) + "\n" : std::string();
}

TEST_CASE("WriteThroughAnFdReachesAHardLinkMadeBeforeTheRemount") {
  // The new daemon has looked up only d/a; d/b, made by the daemon before the remount,
  // is the inode's only name once d/a is unlinked. Writes and a truncate through the
  // fd still change the volume (d/b), so they must be journaled under that name.
  EquivalenceConfig config = EquivalenceConfigFromEnv();
  REQUIRE_MESSAGE(config.error.empty(), config.error);
  auto before = [](const std::string& mnt) {
    std::string err = Step("mkdir", ::mkdir((mnt + "/d").c_str(), 0755));
    int fd = ::open((mnt + "/d/a").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    err += Step("create d/a", fd);
    err += Step("write d/a", fd < 0 ? -1 : ::pwrite(fd, "0123456789abcdef", 16, 0));
    if (fd >= 0) ::close(fd);
    err += Step("link d/a d/b", ::link((mnt + "/d/a").c_str(), (mnt + "/d/b").c_str()));
    return err;
  };
  auto after = [](const std::string& mnt) {
    int fd = ::open((mnt + "/d/a").c_str(), O_RDWR);
    std::string err = Step("open d/a", fd);
    err += Step("unlink d/a", ::unlink((mnt + "/d/a").c_str()));
    err += Step("pwrite", fd < 0 ? -1 : ::pwrite(fd, "XYZ", 3, 4));
    err += Step("ftruncate", fd < 0 ? -1 : ::ftruncate(fd, 10));
    if (fd >= 0) ::close(fd);
    return err;
  };
  CaseOutcome out =
      RunScriptedRemountCase(config, "hard link from before the remount", before, after);
  MESSAGE(out.summary);
  CHECK_MESSAGE(out.problems.empty(), out.Report());
}

// Runs `fn` on a thread whose effective uid/gid are `id` (raw syscalls: only that
// thread switches), and returns what it returned.
std::string AsUser(uint32_t id, const std::function<std::string()>& fn) {
  std::string result;
  std::thread t([&] {
    if (syscall(SYS_setresgid, -1, id, -1) != 0 || syscall(SYS_setresuid, -1, id, -1) != 0) {
      result = std::string("setresuid: ") + strerror(errno);
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

// user::rwx user:1000:rw- group::r-x mask::r-x other::r-- in the kernel's xattr form.
std::string AccessAcl() {
  std::string blob;
  auto put = [&blob](const auto& v) { blob.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  auto entry = [&put](uint16_t tag, uint16_t perm, uint32_t id) {
    put(tag);
    put(perm);
    put(id);
  };
  put(uint32_t{2});
  entry(0x01, 7, 0xffffffffu);
  entry(0x02, 6, 1000);
  entry(0x04, 5, 0xffffffffu);
  entry(0x10, 5, 0xffffffffu);
  entry(0x20, 4, 0xffffffffu);
  return blob;
}

// One change made by uid 1000 to a file that root prepared (owner, mode, maybe an ACL).
struct SetidChange {
  const char* name;
  bool by_path;  // opens the path itself (needs the owner's write bit), else uses root's fd
  std::function<long(const std::string& path, int fd, int src)> run;
};

const std::vector<SetidChange>& SetidChanges() {
  static const std::vector<SetidChange> changes = {
      {"write", false, [](const std::string&, int fd, int) { return ::pwrite(fd, "abc", 3, 0); }},
      {"ftruncate", false,
       [](const std::string&, int fd, int) { return long{::ftruncate(fd, 100)}; }},
      {"fallocate", false,
       [](const std::string&, int fd, int) { return long{::fallocate(fd, 0, 0, 8192)}; }},
      {"copy", false,
       [](const std::string&, int fd, int src) {
         loff_t in = 0, out = 0;
         return ::copy_file_range(src, &in, fd, &out, 4, 0);
       }},
      {"otrunc", true,
       [](const std::string& path, int, int) {
         int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC);
         return fd < 0 ? -1L : long{::close(fd)};
       }},
      {"truncate", true,
       [](const std::string& path, int, int) { return long{::truncate(path.c_str(), 10)}; }}};
  return changes;
}

// Makes d/<name> owned by uid:gid with `mode` (and an access ACL if asked), then lets
// uid 1000 make `change`. Returns what failed.
std::string PrepareAndChange(const std::string& mnt, const std::string& name, uid_t uid, gid_t gid,
                             mode_t mode, bool acl, const SetidChange& change, int src) {
  std::string path = mnt + "/d/" + name;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
  std::string err = Step("create", fd);
  if (fd < 0) return err;
  // A write before the chmod: the daemon learns that the file has no setid bits, and
  // the chmod must make it look again (record_builder.cpp, Inode::no_setid_bits).
  err += Step("write as root", ::pwrite(fd, "0", 1, 0));
  err += Step("fchown", ::fchown(fd, uid, gid));
  err += Step("fchmod", ::fchmod(fd, mode));
  if (acl) {
    std::string blob = AccessAcl();
    err += Step("setfacl", ::fsetxattr(fd, "system.posix_acl_access", blob.data(), blob.size(), 0));
  }
  err += AsUser(1000, [&] { return Step(change.name, change.run(path, fd, src)); });
  ::close(fd);
  return err.empty() ? err : name + ": " + err;
}

TEST_CASE("UnprivilegedChangeThatClearsSetidBitsIsJournaled") {
  // A write, truncate, fallocate, copy_file_range or O_TRUNC open by a caller without
  // CAP_FSETID makes BACKING drop S_ISUID, and S_ISGID where the kernel's rule says so
  // (group exec, or a caller outside the file's group); the image must lose them too.
  // Files are owned by root (caller outside owner and group), by the caller, or by the
  // caller with another group; root's fd is used unless the change opens the path.
  EquivalenceConfig config = EquivalenceConfigFromEnv();
  REQUIRE_MESSAGE(config.error.empty(), config.error);
  struct Owner {
    const char* tag;
    uid_t uid;
    gid_t gid;
  };
  const Owner owners[] = {{"root", 0, 0}, {"own", 1000, 1000}, {"own4242", 1000, 4242}};
  const mode_t modes[] = {04755, 02755, 02644, 02555, 06775};
  auto script = [&owners, &modes](const std::string& mnt) {
    std::string err = Step("mkdir", ::mkdir((mnt + "/d").c_str(), 0777));
    int src = ::open((mnt + "/d/src").c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
    err += Step("write d/src", src < 0 ? -1 : ::pwrite(src, "wxyz", 4, 0));
    for (const SetidChange& change : SetidChanges()) {
      for (const Owner& owner : owners) {
        if (change.by_path && owner.uid != 1000) continue;
        for (mode_t mode : modes) {
          if (change.by_path && (mode & S_IWUSR) == 0) continue;
          char name[64];
          snprintf(name, sizeof(name), "%s_%s_%o", change.name, owner.tag, mode);
          err += PrepareAndChange(mnt, name, owner.uid, owner.gid, mode, false, change, src);
        }
      }
      // With a POSIX ACL, whose mask stands in the group bits (02754 here).
      err += PrepareAndChange(mnt, std::string(change.name) + "_own_acl", 1000, 1000, 02770, true,
                              change, src);
    }
    if (src >= 0) ::close(src);
    return err;
  };
  CaseOutcome out = RunScriptedCase(config, "setid bits cleared by an unprivileged change", script);
  MESSAGE(out.summary);
  CHECK_MESSAGE(out.problems.empty(), out.Report());
}

// A file capability (security.capability, v2): cap_net_bind_service, effective.
std::string FileCapability() {
  const uint32_t words[5] = {0x02000000u | 0x1u, 1u << 10, 0, 0, 0};
  return std::string(reinterpret_cast<const char*>(words), sizeof(words));
}

TEST_CASE("FileCapabilitiesSetAfterAWriteAreSeenAndKilledByTheNextWrite") {
  // The kernel asks for security.capability before every write, so the daemon remembers
  // "none" per inode after the first one. A setcap through the mount must make it ask
  // BACKING again: getcap shows the capability, and the next write (by anyone) kills it,
  // through a journaled removexattr, on BACKING and in the image alike.
  EquivalenceConfig config = EquivalenceConfigFromEnv();
  REQUIRE_MESSAGE(config.error.empty(), config.error);
  auto script = [](const std::string& mnt) {
    const std::string path = mnt + "/bin";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0777);
    std::string err = Step("create", fd);
    if (fd < 0) return err;
    err += Step("first write", ::pwrite(fd, "#!/bin/sh\n", 10, 0));
    const std::string caps = FileCapability();
    err += Step("setcap", ::fsetxattr(fd, "security.capability", caps.data(), caps.size(), 0));
    char value[64];
    ssize_t n = ::fgetxattr(fd, "security.capability", value, sizeof value);
    if (n != static_cast<ssize_t>(caps.size()) ||
        caps.compare(0, caps.size(), value, caps.size()) != 0) {
      err +=
          "getcap after setcap: " + std::string(n < 0 ? strerror(errno) : "another value") + "\n";
    }
    err += AsUser(1000, [fd] { return Step("write as 1000", ::pwrite(fd, "x", 1, 10)); });
    if (::fgetxattr(fd, "security.capability", value, sizeof value) >= 0) {
      err += "security.capability survived a write\n";
    }
    ::close(fd);
    return err;
  };
  CaseOutcome out = RunScriptedCase(config, "file capabilities set after a write", script);
  MESSAGE(out.summary);
  CHECK_MESSAGE(out.problems.empty(), out.Report());
}

TEST_CASE("SetgidDroppedForAnOwnerOutsideTheGroupIsJournaled") {
  // chmod or an access ACL set by an owner who is not in the file's group (and lacks
  // CAP_FSETID) leaves S_ISGID off on BACKING; the image, applied by root, must too.
  EquivalenceConfig config = EquivalenceConfigFromEnv();
  REQUIRE_MESSAGE(config.error.empty(), config.error);
  auto script = [](const std::string& mnt) {
    std::string err = Step("mkdir", ::mkdir((mnt + "/d").c_str(), 0777));
    for (const char* name : {"chmod", "acl", "chmod_dir", "acl_dir"}) {
      std::string path = mnt + "/d/" + name;
      bool dir = std::string(name).find("dir") != std::string::npos;
      int rc = dir ? ::mkdir(path.c_str(), 0755) : ::close(::creat(path.c_str(), 0644));
      err += Step("create", rc);
      err += Step("chown 1000:4242", ::chown(path.c_str(), 1000, 4242));
      bool acl = std::string(name).find("acl") != std::string::npos;
      // For the ACL, root sets S_ISGID (root keeps it); the owner then sets the ACL.
      if (acl) err += Step("chmod 02775 as root", ::chmod(path.c_str(), 02775));
      err += AsUser(1000, [&path, acl] {
        if (!acl) return Step("chmod 02775", ::chmod(path.c_str(), 02775));
        std::string blob = AccessAcl();
        return Step("setfacl", ::setxattr(path.c_str(), "system.posix_acl_access", blob.data(),
                                          blob.size(), 0));
      });
    }
    return err;
  };
  CaseOutcome out = RunScriptedCase(config, "setgid and an owner outside the group", script);
  MESSAGE(out.summary);
  CHECK_MESSAGE(out.problems.empty(), out.Report());
}

TEST_CASE("FallocateModesBeyondTheRecordFormatAreJournaledOrRefused") {
  // The record carries mode 0, KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE. COLLAPSE_RANGE and
  // INSERT_RANGE move data: the mount must journal their effect or refuse them; a
  // change that reaches BACKING without a record would show here.
  EquivalenceConfig config = EquivalenceConfigFromEnv();
  REQUIRE_MESSAGE(config.error.empty(), config.error);
  auto script = [](const std::string& mnt) {
    std::string err = Step("mkdir", ::mkdir((mnt + "/d").c_str(), 0755));
    const std::pair<const char*, int> modes[] = {{"collapse", FALLOC_FL_COLLAPSE_RANGE},
                                                 {"insert", FALLOC_FL_INSERT_RANGE},
                                                 {"unshare", FALLOC_FL_UNSHARE_RANGE}};
    std::string data(16384, 'x');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
    for (const auto& [name, mode] : modes) {
      std::string path = mnt + "/d/" + name;
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
      err += Step("create", fd);
      if (fd < 0) continue;
      err += Step("write", ::pwrite(fd, data.data(), data.size(), 0));
      // Refusals (EOPNOTSUPP, EINVAL) are fine; only what BACKING did matters.
      ::fallocate(fd, mode, 4096, 4096);
      ::close(fd);
    }
    return err;
  };
  CaseOutcome out = RunScriptedCase(config, "fallocate modes beyond the record format", script);
  MESSAGE(out.summary);
  CHECK_MESSAGE(out.problems.empty(), out.Report());
}

}  // namespace
}  // namespace mirror::itest
