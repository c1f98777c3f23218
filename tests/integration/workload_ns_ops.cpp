// The workload's namespace and attribute ops. Names keep their class: f<N> names are
// never directories, and sub<N>/e<N> names are directories (or, rarely, a file that an
// O_CREAT made through a dangling symlink to that name); renames and exchanges stay
// within a class, dirs move only between sub/e places of the same depth, so relative
// symlink targets (see SymlinkTarget) never leave s/.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>

#include "workload_worker.h"

namespace mirror::itest::workload_internal {
namespace {

std::string TimeText(const struct timespec& t) {
  if (t.tv_nsec == UTIME_NOW) return "NOW";
  if (t.tv_nsec == UTIME_OMIT) return "OMIT";
  return std::to_string(t.tv_sec) + "." + std::to_string(t.tv_nsec);
}

std::string IdText(uint32_t id) {
  return id == static_cast<uint32_t>(-1) ? "-1" : std::to_string(id);
}

}  // namespace

std::string Worker::SymlinkTarget(const std::string& link_rel) {
  // link_rel is s/dX/fN (depth 2) or s/dX/subY/fN (depth 3).
  bool deep = link_rel.find("/sub") != std::string::npos;
  std::string f = "f" + std::to_string(rng_.Below(8));
  std::string d = "d" + std::to_string(rng_.Below(4));
  std::string sub = "sub" + std::to_string(rng_.Below(3));
  switch (rng_.Below(5)) {
    case 0:
      return f;
    case 1:
      return deep ? "../" + f : "../" + d + "/" + f;
    case 2:
      return deep ? "../../" + d + "/" + f : "../" + d + "/" + sub + "/" + f;
    case 3:
      return deep ? "../" + sub : sub;  // a directory, or nothing
    default:
      return "nowhere/" + f;  // dangling
  }
}

Outcome Worker::Rename(WorkOp op, std::string* what) {
  bool dirs = op == WorkOp::kRenameDir || (op != WorkOp::kRenameFile && rng_.Percent(30));
  std::string from = dirs ? PickSubdir() : PickFile();
  std::string to = dirs ? PickSubdir() : PickFile();
  unsigned flags = op == WorkOp::kRenameNoReplace  ? RENAME_NOREPLACE
                   : op == WorkOp::kRenameExchange ? RENAME_EXCHANGE
                                                   : 0;
  *what = from + " -> " + to;
  if (renameat2(AT_FDCWD, Abs(from).c_str(), AT_FDCWD, Abs(to).c_str(), flags) != 0) {
    return Fail("renameat2");
  }
  return {};
}

Outcome Worker::Link(std::string* what) {
  std::string from = PickFile(), to = PickFile();
  *what = from + " -> " + to;
  if (link(Abs(from).c_str(), Abs(to).c_str()) != 0) return Fail("link");
  return {};
}

Outcome Worker::Symlink(std::string* what) {
  std::string path = PickFile();
  std::string target = SymlinkTarget(path);
  *what = path + " -> " + target;
  if (symlink(target.c_str(), Abs(path).c_str()) != 0) return Fail("symlink");
  return {};
}

Outcome Worker::MakeOrRemove(WorkOp op, std::string* what) {
  static constexpr mode_t kDirModes[] = {0755, 0700, 0775, 02775, 01777, 0750};
  static constexpr mode_t kFifoModes[] = {0644, 0600, 0666};
  bool dir_op = op == WorkOp::kMkdir || op == WorkOp::kRmdir;
  std::string path = dir_op ? PickSubdir() : PickFile();
  std::string p = Abs(path);
  *what = path;
  switch (op) {
    case WorkOp::kUnlink:
      if (unlink(p.c_str()) != 0) return Fail("unlink");
      return {};
    case WorkOp::kMkdir: {
      mode_t mode = rng_.Pick(kDirModes);
      *what += " mode=" + Hex(mode);
      if (mkdir(p.c_str(), mode) != 0) return Fail("mkdir");
      return {};
    }
    case WorkOp::kRmdir:
      if (rmdir(p.c_str()) != 0) return Fail("rmdir");
      return {};
    case WorkOp::kMkfifo: {
      mode_t mode = rng_.Pick(kFifoModes);
      *what += " mode=" + Hex(mode);
      if (mkfifo(p.c_str(), mode) != 0) return Fail("mkfifo");
      return {};
    }
    default: {  // kMknod: a socket, or the char device 1:3 (a null device)
      bool device = rng_.Percent(30);
      mode_t mode = device ? S_IFCHR | 0600 : S_IFSOCK | 0755;
      dev_t rdev = device ? makedev(1, 3) : 0;
      *what += device ? " chr 1:3" : " sock";
      if (mknod(p.c_str(), mode, rdev) != 0) return Fail("mknod");
      return {};
    }
  }
}

Outcome Worker::Chmod(std::string* what) {
  static constexpr mode_t kModes[] = {0644,  0600,  0755,  0700, 0444,  04755,
                                      02755, 06755, 01777, 0640, 02644, 0000};
  // The root keeps o+x and s/d3 stays world-writable: other users' ops would all fail
  // from then on.
  static constexpr mode_t kRootModes[] = {0755, 0711, 01777, 0775, 02755};
  static constexpr mode_t kPublicModes[] = {01777, 0777, 03777};
  std::string path = PickNode();
  mode_t mode = path == "."      ? rng_.Pick(kRootModes)
                : path == "s/d3" ? rng_.Pick(kPublicModes)
                                 : rng_.Pick(kModes);
  *what = path + " mode=" + Hex(mode);
  if (fchmodat(AT_FDCWD, Abs(path).c_str(), mode, 0) != 0) return Fail("fchmodat");
  return {};
}

Outcome Worker::Chown(std::string* what) {
  static constexpr uint32_t kIds[] = {0, 1000, 65534, 4242, static_cast<uint32_t>(-1)};
  std::string path = PickNode();
  uint32_t uid = rng_.Pick(kIds), gid = rng_.Pick(kIds);
  bool nofollow = rng_.Percent(30);
  *what = path + " uid=" + IdText(uid) + " gid=" + IdText(gid) + (nofollow ? " nofollow" : "");
  if (fchownat(AT_FDCWD, Abs(path).c_str(), uid, gid, nofollow ? AT_SYMLINK_NOFOLLOW : 0) != 0) {
    return Fail("fchownat");
  }
  return {};
}

Outcome Worker::Utimens(std::string* what) {
  std::string path = PickNode();
  bool null_times = rng_.Percent(10);
  bool nofollow = rng_.Percent(30);
  struct timespec ts[2];
  for (struct timespec& t : ts) {
    switch (rng_.Below(4)) {
      case 0:
        t = {0, UTIME_NOW};
        break;
      case 1:
        t = {0, UTIME_OMIT};
        break;
      default:  // explicit, between 2000 and 2031, any nanosecond
        t.tv_sec = static_cast<time_t>(946684800 + rng_.Below(1000000000));
        t.tv_nsec = static_cast<long>(rng_.Below(1000000000));
    }
  }
  *what = path +
          (null_times ? " NULL" : " atime=" + TimeText(ts[0]) + " mtime=" + TimeText(ts[1])) +
          (nofollow ? " nofollow" : "");
  if (utimensat(AT_FDCWD, Abs(path).c_str(), null_times ? nullptr : ts,
                nofollow ? AT_SYMLINK_NOFOLLOW : 0) != 0) {
    return Fail("utimensat");
  }
  return {};
}

namespace {

// A POSIX ACL in the kernel's xattr form (linux/posix_acl_xattr.h): a version, then
// {tag, perm, id} entries sorted by tag; named entries need a mask.
std::string AclBlob(Rng& rng, bool extended) {
  std::string blob;
  auto put = [&blob](const auto& v) { blob.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  auto entry = [&](uint16_t tag, uint32_t id) {
    put(tag);
    put(static_cast<uint16_t>(rng.Below(8)));  // rwx bits
    put(id);
  };
  constexpr uint32_t kNoId = 0xffffffffu;
  put(uint32_t{2});                  // POSIX_ACL_XATTR_VERSION
  entry(0x01, kNoId);                // USER_OBJ
  if (extended) entry(0x02, 1000);   // USER 1000
  entry(0x04, kNoId);                // GROUP_OBJ
  if (extended) entry(0x08, 4242);   // GROUP 4242
  if (extended) entry(0x10, kNoId);  // MASK
  entry(0x20, kNoId);                // OTHER
  return blob;
}

}  // namespace

Outcome Worker::Acl(std::string* what) {
  uint64_t kind = rng_.Below(100);  // <20 minimal, <60 extended, <85 default, else remove
  bool dir_default = kind >= 60 && kind < 85;
  bool remove_default = kind >= 85 && rng_.Percent(50);
  std::string path = dir_default || remove_default
                         ? (rng_.Percent(50) ? PickSubdir() : "s/d" + std::to_string(rng_.Below(4)))
                         : PickNode();
  const char* name =
      dir_default || remove_default ? "system.posix_acl_default" : "system.posix_acl_access";
  std::string p = Abs(path);
  *what = path + " " + name;
  if (kind >= 85) {
    *what += " remove";
    if (removexattr(p.c_str(), name) != 0) return Fail("removexattr");
    return {};
  }
  std::string blob = AclBlob(rng_, kind >= 20);
  *what += kind >= 20 ? " extended" : " minimal";
  if (setxattr(p.c_str(), name, blob.data(), blob.size(), 0) != 0) return Fail("setxattr");
  return {};
}

Outcome Worker::Xattr(WorkOp op, std::string* what) {
  static constexpr int kFlags[] = {0, 0, XATTR_CREATE, XATTR_REPLACE};
  std::string path = PickXattrNode();
  // trusted.* (root only; also on symlinks and special files) now and then.
  bool trusted = shared_->options->privileged && rng_.Percent(15);
  std::string name = (trusted ? "trusted.t" : "user.x") + std::to_string(rng_.Below(3));
  bool nofollow = rng_.Percent(30);
  std::string p = Abs(path);
  *what = path + " " + name + (nofollow ? " nofollow" : "");
  if (op == WorkOp::kRemovexattr) {
    int rc =
        nofollow ? lremovexattr(p.c_str(), name.c_str()) : removexattr(p.c_str(), name.c_str());
    if (rc != 0) return Fail("removexattr");
    return {};
  }
  size_t len = rng_.Percent(80) ? rng_.Below(64) : rng_.Below(4096);
  int flags = rng_.Pick(kFlags);
  std::string value = rng_.Bytes(len);
  *what += " len=" + std::to_string(len) + " flags=" + std::to_string(flags);
  int rc = nofollow ? lsetxattr(p.c_str(), name.c_str(), value.data(), len, flags)
                    : setxattr(p.c_str(), name.c_str(), value.data(), len, flags);
  if (rc != 0) return Fail("setxattr");
  return {};
}

}  // namespace mirror::itest::workload_internal
