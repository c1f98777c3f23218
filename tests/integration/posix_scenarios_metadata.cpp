// Metadata scenarios: chmod, chown, setuid clearing, times, xattrs, ACLs, access.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "posix_scenarios.h"

namespace mirror::itest {
namespace {

constexpr uid_t kUser = 65534;
constexpr gid_t kUsersGroup = 100;  // a group uid 65534 is not a member of

// Setup shared by the non-owner scenarios: files root owns in the work dir.
void RootOwnedFiles(Ops& o) {
  o.MakeFile("root644", "r", 0644);
  o.MakeFile("root666", "w", 0666);
  o.Call("chmod root666", ::chmod(o.P("root666").c_str(), 0666));
  o.MakeFile("user_in_users", "u", 0644);
  o.Call("chown user_in_users", ::chown(o.P("user_in_users").c_str(), kUser, kUsersGroup));
}

void ChmodOwner(Ops& o) {
  o.MakeFile("f", "x");
  o.Call("chmod 0600", ::chmod(o.P("f").c_str(), 0600));
  o.Stat("after 0600", "f");
  o.Call("chmod 04755", ::chmod(o.P("f").c_str(), 04755));
  o.Stat("after 04755", "f");
  int fd = o.Open("open", "f", O_RDONLY);
  o.Call("fchmod 0640", ::fchmod(fd, 0640));
  o.Close(fd);
  o.Stat("after fchmod", "f");
  o.Call("chmod missing", ::chmod(o.P("missing").c_str(), 0644));
  o.Call("symlink l", ::symlink("f", o.P("l").c_str()));
  o.Call("chmod via symlink", ::chmod(o.P("l").c_str(), 0604));
  o.Stat("target after", "f");
}

void ChmodNonOwner(Ops& o) {
  o.Call("chmod root's file", ::chmod(o.P("root644").c_str(), 0777));
  o.Stat("root644", "root644");
  // Owner not in the file's group: S_ISGID is dropped silently (root keeps it).
  o.Call("chmod 02755 foreign group", ::chmod(o.P("user_in_users").c_str(), 02755));
  o.Stat("user_in_users", "user_in_users");
}

void ChownRules(Ops& o) {
  o.MakeFile("f", "x");
  o.Call("chown -1 -1", ::chown(o.P("f").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
  o.Call("chown to root", ::chown(o.P("f").c_str(), 0, static_cast<gid_t>(-1)));
  o.Call("chgrp to non-member group", ::chown(o.P("f").c_str(), static_cast<uid_t>(-1), kUsersGroup));
  o.Call("chown to own ids", ::chown(o.P("f").c_str(), getuid(), getgid()));
  o.Call("chown root's file", ::chown(o.P("root644").c_str(), kUser, kUser));
  o.Call("symlink l", ::symlink("f", o.P("l").c_str()));
  o.Call("lchown symlink", ::lchown(o.P("l").c_str(), getuid(), getgid()));
  o.Stat("f", "f");
  o.Stat("root644", "root644");
}

void ChownClearsSetid(Ops& o) {
  o.MakeFile("f", "x");
  o.Call("chmod 06755", ::chmod(o.P("f").c_str(), 06755));
  o.Stat("before", "f");
  o.Call("chown keep ids", ::chown(o.P("f").c_str(), getuid(), getgid()));
  o.Stat("after chown", "f");
  o.MakeFile("g", "y");
  o.Call("chmod g 02745", ::chmod(o.P("g").c_str(), 02745));  // setgid without group x
  o.Call("chown g", ::chown(o.P("g").c_str(), getuid(), getgid()));
  o.Stat("g after chown", "g");
}

void WriteClearsSetid(Ops& o) {
  o.MakeFile("f", "x");
  o.Call("chmod 06777", ::chmod(o.P("f").c_str(), 06777));
  int fd = o.Open("open", "f", O_WRONLY);
  o.Call("write", ::write(fd, "more", 4));
  o.Close(fd);
  o.Stat("own file after write", "f");
  o.Call("chmod root666 04777", ::chmod(o.P("root666").c_str(), 04777));
  fd = o.Open("open root666", "root666", O_WRONLY);
  o.Call("write root666", ::write(fd, "more", 4));
  o.Close(fd);
  o.Stat("root666 after write", "root666");
  o.Call("truncate root666", ::truncate(o.P("root666").c_str(), 1));
  o.Stat("root666 after truncate", "root666");
}

void WriteClearsSetidSetup(Ops& o) {
  RootOwnedFiles(o);
  o.Call("chmod root666 04777", ::chmod(o.P("root666").c_str(), 04777));
}

bool Recent(const struct timespec& t) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return t.tv_sec > now.tv_sec - 30 && t.tv_sec <= now.tv_sec + 1;
}

void NoteRecent(Ops& o, const char* name, const std::string& rel) {
  struct stat st = {};
  if (o.Call(name, ::lstat(o.P(rel).c_str(), &st)) < 0) return;
  o.Note(name, std::string("atime ") + (Recent(st.st_atim) ? "now" : "old") + " mtime " +
                   (Recent(st.st_mtim) ? "now" : "old"));
}

int Utimens(Ops& o, const char* rel, long a_sec, long a_nsec, long m_sec, long m_nsec,
            int flags = 0) {
  struct timespec t[2] = {{a_sec, a_nsec}, {m_sec, m_nsec}};
  return ::utimensat(AT_FDCWD, o.P(rel).c_str(), t, flags);
}

void UtimensOwner(Ops& o) {
  o.MakeFile("f", "x");
  o.Call("explicit", Utimens(o, "f", 1000000000, 123456789, 1500000000, 500000000));
  o.Times("after explicit", "f");
  o.Call("atime OMIT", Utimens(o, "f", 0, UTIME_OMIT, 1600000000, 7));
  o.Times("after atime OMIT", "f");
  o.Call("mtime OMIT", Utimens(o, "f", 1100000000, 0, 0, UTIME_OMIT));
  o.Times("after mtime OMIT", "f");
  o.Call("both OMIT", Utimens(o, "f", 0, UTIME_OMIT, 0, UTIME_OMIT));
  o.Times("after both OMIT", "f");
  o.Call("mtime NOW atime explicit", Utimens(o, "f", 1200000000, 0, 0, UTIME_NOW));
  NoteRecent(o, "after mtime NOW", "f");
  o.Call("NULL times", ::utimensat(AT_FDCWD, o.P("f").c_str(), nullptr, 0));
  NoteRecent(o, "after NULL", "f");
  int fd = o.Open("open", "f", O_RDONLY);
  struct timespec t[2] = {{900000000, 1}, {950000000, 2}};
  o.Call("futimens", ::futimens(fd, t));
  o.Close(fd);
  o.Times("after futimens", "f");
  o.Call("symlink l", ::symlink("f", o.P("l").c_str()));
  o.Call("symlink NOFOLLOW", Utimens(o, "l", 800000000, 0, 850000000, 0, AT_SYMLINK_NOFOLLOW));
  o.Times("symlink times", "l");
  o.Times("target untouched", "f");
  o.Call("bad nsec", Utimens(o, "f", 0, 1000000000, 0, 0));
  o.Call("missing", Utimens(o, "missing", 0, 0, 0, 0));
}

void UtimensNonOwner(Ops& o) {
  o.Call("NULL on writable", ::utimensat(AT_FDCWD, o.P("root666").c_str(), nullptr, 0));
  NoteRecent(o, "writable after NULL", "root666");
  o.Call("NOW,NOW on writable", Utimens(o, "root666", 0, UTIME_NOW, 0, UTIME_NOW));
  o.Call("explicit on writable", Utimens(o, "root666", 1, 0, 2, 0));
  o.Call("NULL on read-only", ::utimensat(AT_FDCWD, o.P("root644").c_str(), nullptr, 0));
  o.Call("NOW,NOW on read-only", Utimens(o, "root644", 0, UTIME_NOW, 0, UTIME_NOW));
  o.Call("explicit on read-only", Utimens(o, "root644", 1, 0, 2, 0));
  o.Call("NOW,OMIT on read-only", Utimens(o, "root644", 0, UTIME_NOW, 0, UTIME_OMIT));
  o.Call("OMIT,OMIT on read-only", Utimens(o, "root644", 0, UTIME_OMIT, 0, UTIME_OMIT));
  NoteRecent(o, "read-only after", "root644");
}

std::string SortedNames(const char* list, long len) {
  std::vector<std::string> names;
  for (long pos = 0; pos < len;) {
    names.emplace_back(list + pos);
    pos += static_cast<long>(names.back().size()) + 1;
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& n : names) out += n + ",";
  return out;
}

void XattrUser(Ops& o) {
  o.MakeFile("f", "x");
  std::string fp = o.P("f");
  const char* f = fp.c_str();
  o.Call("set CREATE", ::setxattr(f, "user.a", "v1", 2, XATTR_CREATE));
  o.Call("set CREATE existing", ::setxattr(f, "user.a", "v2", 2, XATTR_CREATE));
  o.Call("REPLACE missing", ::setxattr(f, "user.b", "v", 1, XATTR_REPLACE));
  o.Call("REPLACE existing", ::setxattr(f, "user.a", "value2", 6, XATTR_REPLACE));
  o.Call("set empty value", ::setxattr(f, "user.empty", "", 0, 0));
  char buf[1024] = {};
  o.Call("get size", ::getxattr(f, "user.a", nullptr, 0));
  long n = o.Call("get", ::getxattr(f, "user.a", buf, sizeof(buf)));
  o.Note("value", std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
  o.Call("get small buffer", ::getxattr(f, "user.a", buf, 2));
  o.Call("get missing", ::getxattr(f, "user.none", buf, sizeof(buf)));
  n = o.Call("list", ::listxattr(f, buf, sizeof(buf)));
  o.Note("names", SortedNames(buf, n));
  o.Call("list small buffer", ::listxattr(f, buf, 3));
  o.Call("remove", ::removexattr(f, "user.a"));
  o.Call("remove again", ::removexattr(f, "user.a"));
  o.Call("unknown namespace", ::setxattr(f, "bogus.x", "v", 1, 0));
  o.Call("trusted namespace", ::setxattr(f, "trusted.t", "v", 1, 0));
  o.Call("on root's 0644 file", ::setxattr(o.P("root644").c_str(), "user.x", "v", 1, 0));
  o.Call("symlink l", ::symlink("f", o.P("l").c_str()));
  o.Call("user.* on symlink", ::lsetxattr(o.P("l").c_str(), "user.s", "v", 1, 0));
  int fd = o.Open("open", "f", O_RDONLY);
  o.Call("fsetxattr", ::fsetxattr(fd, "user.fd", "via fd", 6, 0));
  n = o.Call("fgetxattr", ::fgetxattr(fd, "user.fd", buf, sizeof(buf)));
  o.Close(fd);
  std::string big(4000, 'b');
  o.Call("4000-byte value", ::setxattr(f, "user.big", big.data(), big.size(), 0));
}

void AppendLE(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The kernel's POSIX ACL xattr format: version 2, then (tag u16, perm u16, id u32).
std::string AclXattr(const std::vector<std::vector<uint32_t>>& entries) {
  std::string out;
  AppendLE(&out, 2, 4);
  for (const auto& e : entries) {
    AppendLE(&out, e[0], 2);
    AppendLE(&out, e[1], 2);
    AppendLE(&out, e[2], 4);
  }
  return out;
}

constexpr uint32_t kUserObj = 0x01, kNamedUser = 0x02, kGroupObj = 0x04, kMask = 0x10,
                   kOther = 0x20, kNoId = 0xffffffff;

void PosixAcl(Ops& o) {
  o.MakeFile("f", "x", 0644);
  std::string access = AclXattr({{kUserObj, 6, kNoId}, {kNamedUser, 4, 0}, {kGroupObj, 4, kNoId},
                                 {kMask, 6, kNoId}, {kOther, 0, kNoId}});
  std::string fp = o.P("f");
  o.Call("set access ACL", ::setxattr(fp.c_str(), "system.posix_acl_access", access.data(),
                                      access.size(), 0));
  o.Stat("mode follows ACL", "f");
  char buf[256];
  long n = o.Call("get access ACL", ::getxattr(fp.c_str(), "system.posix_acl_access", buf, sizeof(buf)));
  o.Note("ACL bytes equal", n > 0 && std::string(buf, static_cast<size_t>(n)) == access ? "yes" : "no");
  std::string bad = access;
  bad[0] = 9;  // unknown version
  o.Call("invalid ACL", ::setxattr(fp.c_str(), "system.posix_acl_access", bad.data(), bad.size(), 0));
  o.Call("mkdir d", ::mkdir(o.P("d").c_str(), 0777));
  std::string def = AclXattr({{kUserObj, 7, kNoId}, {kGroupObj, 5, kNoId}, {kOther, 0, kNoId}});
  o.Call("set default ACL", ::setxattr(o.P("d").c_str(), "system.posix_acl_default", def.data(),
                                       def.size(), 0));
  o.MakeFile("d/g", "y", 0666);
  o.Stat("file under default ACL", "d/g");
  o.Call("mkdir d/sub", ::mkdir(o.P("d/sub").c_str(), 0777));
  o.Stat("dir under default ACL", "d/sub");
  o.Call("sub inherited default", ::getxattr(o.P("d/sub").c_str(), "system.posix_acl_default", buf,
                                             sizeof(buf)));
  o.Call("remove access ACL", ::removexattr(fp.c_str(), "system.posix_acl_access"));
  o.Stat("mode after remove", "f");
  o.Call("ACL on root's file", ::setxattr(o.P("root644").c_str(), "system.posix_acl_access",
                                          access.data(), access.size(), 0));
}

void AccessSetup(Ops& o) {
  RootOwnedFiles(o);
  o.MakeFile("x700", "#!/bin/sh\n", 0700);
  o.MakeFile("none000", "", 0);
  o.Call("chmod none000", ::chmod(o.P("none000").c_str(), 0));
  o.Call("mkdir priv", ::mkdir(o.P("priv").c_str(), 0700));
  o.MakeFile("priv/in", "secret", 0644);
}

void AccessChecks(Ops& o) {
  for (const char* f : {"root644", "root666", "x700", "none000", "priv", "priv/in", "missing"}) {
    for (int mode : {F_OK, R_OK, W_OK, X_OK, R_OK | W_OK}) {
      std::string name = std::string("access ") + f + " " + std::to_string(mode);
      o.Call(name.c_str(), ::access(o.P(f).c_str(), mode));
    }
  }
}

}  // namespace

void AddMetadataScenarios(std::vector<Scenario>* out) {
  out->push_back({"chmod_owner", nullptr, ChmodOwner});
  out->push_back({"chmod_non_owner", RootOwnedFiles, ChmodNonOwner});
  out->push_back({"chown_rules", RootOwnedFiles, ChownRules});
  out->push_back({"chown_clears_setid", nullptr, ChownClearsSetid});
  out->push_back({"write_clears_setid", WriteClearsSetidSetup, WriteClearsSetid});
  out->push_back({"utimensat_owner", nullptr, UtimensOwner});
  out->push_back({"utimensat_non_owner", RootOwnedFiles, UtimensNonOwner});
  out->push_back({"xattr_user", RootOwnedFiles, XattrUser});
  out->push_back({"posix_acl", RootOwnedFiles, PosixAcl});
  out->push_back({"access_checks", AccessSetup, AccessChecks});
}

}  // namespace mirror::itest
