// A comparable picture of a directory tree, for the apply and confinement tests:
// every node's type, mode, owner, size, mtime, content (or symlink target), xattrs and
// hard-link group. Atimes are left out (reading a tree moves them); so is a
// directory's size (ext4 never shrinks a directory, so it depends on history); so are the
// trusted.mirrorfs.* xattrs, the daemons' own bookkeeping (mirrord marks an image's root
// as its own), as in every other tree comparison of the project.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace mirror::test {

struct NodeInfo {
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  int64_t size = 0;  // 0 for directories
  int64_t mtime_sec = 0;
  int64_t mtime_nsec = 0;
  uint64_t rdev = 0;
  uint64_t nlink = 0;      // not for directories (it counts subdirectories)
  std::string content;     // file bytes or symlink target
  std::string link_group;  // the first path of the same inode, for nlink > 1
  std::map<std::string, std::string> xattrs;
  friend bool operator==(const NodeInfo&, const NodeInfo&) = default;
};
using TreeSnapshot = std::map<std::string, NodeInfo>;

inline std::map<std::string, std::string> ListXattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  ssize_t n = llistxattr(path.c_str(), nullptr, 0);
  if (n <= 0) return out;
  std::string names(static_cast<size_t>(n), '\0');
  n = llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) throw std::runtime_error("llistxattr " + path);
  for (size_t pos = 0; pos < static_cast<size_t>(n);) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (name.rfind("trusted.mirrorfs.", 0) == 0) continue;
    ssize_t len = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (len < 0) throw std::runtime_error("lgetxattr " + path + " " + name);
    std::string value(static_cast<size_t>(len), '\0');
    len = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (len < 0) throw std::runtime_error("lgetxattr " + path + " " + name);
    value.resize(static_cast<size_t>(len));
    out[name] = value;
  }
  return out;
}

inline std::string ReadNoAtime(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_NOATIME | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

inline NodeInfo DescribeNode(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) throw std::runtime_error("lstat " + path);
  NodeInfo info;
  info.mode = st.st_mode;
  info.uid = st.st_uid;
  info.gid = st.st_gid;
  info.mtime_sec = st.st_mtim.tv_sec;
  info.mtime_nsec = st.st_mtim.tv_nsec;
  info.rdev = st.st_rdev;
  if (!S_ISDIR(st.st_mode)) {
    info.size = st.st_size;
    info.nlink = st.st_nlink;
  }
  if (S_ISREG(st.st_mode)) info.content = ReadNoAtime(path);
  if (S_ISLNK(st.st_mode)) info.content = std::filesystem::read_symlink(path).string();
  info.xattrs = ListXattrs(path);
  return info;
}

// Keys are paths relative to `root`, "." for the root itself.
inline TreeSnapshot SnapshotTree(const std::string& root) {
  TreeSnapshot snap;
  snap["."] = DescribeNode(root);
  std::map<std::pair<uint64_t, uint64_t>, std::string> first_of_inode;
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    paths.push_back(std::filesystem::relative(entry.path(), root).string());
  }
  std::sort(paths.begin(), paths.end());
  for (const std::string& rel : paths) {
    std::string full = root + "/" + rel;
    NodeInfo info = DescribeNode(full);
    if (!S_ISDIR(info.mode) && info.nlink > 1) {
      struct stat st {};
      lstat(full.c_str(), &st);
      auto key = std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
      info.link_group = first_of_inode.emplace(key, rel).first->second;
    }
    snap[rel] = std::move(info);
  }
  return snap;
}

// The first difference between two snapshots, for a readable failure ("" if equal).
inline std::string FirstDifference(const TreeSnapshot& want, const TreeSnapshot& got) {
  for (const auto& [path, info] : want) {
    auto it = got.find(path);
    if (it == got.end()) return "missing: " + path;
    if (!(it->second == info)) {
      const NodeInfo& g = it->second;
      std::ostringstream os;
      os << "differs: " << path << " mode " << std::oct << info.mode << "/" << g.mode << std::dec
         << " uid " << info.uid << "/" << g.uid << " gid " << info.gid << "/" << g.gid << " size "
         << info.size << "/" << g.size << " mtime " << info.mtime_sec << "." << info.mtime_nsec
         << "/" << g.mtime_sec << "." << g.mtime_nsec << " nlink " << info.nlink << "/" << g.nlink
         << " group '" << info.link_group << "'/'" << g.link_group << "' content "
         << (info.content == g.content ? "same" : "differs") << " xattrs " << info.xattrs.size()
         << "/" << g.xattrs.size();
      return os.str();
    }
  }
  for (const auto& [path, info] : got) {
    if (!want.count(path)) return "unexpected: " + path;
  }
  return "";
}

}  // namespace mirror::test
