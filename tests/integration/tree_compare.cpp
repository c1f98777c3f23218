// Tree snapshots: lstat + content + xattrs per entry, compared field by field.
#include "tree_compare.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <sstream>

namespace mirror::itest {
namespace {

constexpr size_t kMaxEntries = 100000;
constexpr int kMaxDepth = 64;

std::string JoinPath(const std::string& a, const std::string& b) {
  return a == "." ? b : a + "/" + b;
}

bool ReadXattrs(const std::string& path, std::map<std::string, std::string>* out,
                std::string* error) {
  ssize_t len = llistxattr(path.c_str(), nullptr, 0);
  if (len < 0) {
    if (errno == ENOTSUP) return true;
    *error = "llistxattr " + path + ": " + strerror(errno);
    return false;
  }
  std::string names(static_cast<size_t>(len), '\0');
  len = llistxattr(path.c_str(), names.data(), names.size());
  if (len < 0) {
    *error = "llistxattr " + path + ": " + strerror(errno);
    return false;
  }
  names.resize(static_cast<size_t>(len));
  for (size_t pos = 0; pos < names.size();) {
    std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    if (name.empty()) continue;
    char value[65536];
    ssize_t vlen = lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
    if (vlen < 0) {
      *error = "lgetxattr " + path + " " + name + ": " + strerror(errno);
      return false;
    }
    (*out)[name] = std::string(value, static_cast<size_t>(vlen));
  }
  return true;
}

bool ReadContent(const std::string& path, std::string* out, std::string* error) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *error = "open " + path + ": " + strerror(errno);
    return false;
  }
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) *error = "read " + path + ": " + strerror(errno);
    if (n <= 0) {
      close(fd);
      return n == 0;
    }
    out->append(buf, static_cast<size_t>(n));
  }
}

struct Walker {
  std::string root;
  dev_t dev = 0;
  TreeSnapshot* out = nullptr;
  std::map<std::pair<dev_t, ino_t>, std::string> first_path;
  std::string error;

  bool Visit(const std::string& rel, int depth) {
    if (out->size() >= kMaxEntries || depth > kMaxDepth) {
      error = "tree too large or deep at " + rel;
      return false;
    }
    std::string path = rel == "." ? root : root + "/" + rel;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
      error = "lstat " + path + ": " + strerror(errno);
      return false;
    }
    TreeEntry& e = (*out)[rel];
    e.mode = st.st_mode;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.size = st.st_size;
    e.nlink = st.st_nlink;
    e.atime = st.st_atim;
    e.mtime = st.st_mtim;
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) e.rdev = st.st_rdev;
    if (!S_ISDIR(st.st_mode)) {
      auto [it, fresh] = first_path.emplace(std::make_pair(st.st_dev, st.st_ino), rel);
      e.link_group = it->second;
    }
    if (S_ISLNK(st.st_mode)) {
      char buf[PATH_MAX];
      ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
      if (n < 0) {
        error = "readlink " + path + ": " + strerror(errno);
        return false;
      }
      e.target.assign(buf, static_cast<size_t>(n));
    }
    if (S_ISREG(st.st_mode) && !ReadContent(path, &e.content, &error)) return false;
    if (!ReadXattrs(path, &e.xattrs, &error)) return false;
    if (!S_ISDIR(st.st_mode) || (depth > 0 && st.st_dev != dev)) return true;
    return VisitChildren(rel, path, depth);
  }

  bool VisitChildren(const std::string& rel, const std::string& path, int depth) {
    DIR* dir = opendir(path.c_str());
    if (dir == nullptr) {
      error = "opendir " + path + ": " + strerror(errno);
      return false;
    }
    std::vector<std::string> names;
    while (struct dirent* d = readdir(dir)) {
      if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0) names.push_back(d->d_name);
      if (names.size() > kMaxEntries) break;
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (!Visit(JoinPath(rel, name), depth + 1)) return false;
    }
    return true;
  }
};

std::string Escape(const std::string& bytes, size_t limit = 64) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < limit; ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    }
  }
  if (bytes.size() > limit) out += "...(" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

bool SameTime(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

}  // namespace

bool SnapshotTree(const std::string& root, TreeSnapshot* out, std::string* error) {
  out->clear();
  struct stat st;
  if (lstat(root.c_str(), &st) != 0) {
    *error = "lstat " + root + ": " + strerror(errno);
    return false;
  }
  // Children are visited in sorted order, so link_group is deterministic.
  Walker w;
  w.root = root;
  w.dev = st.st_dev;
  w.out = out;
  bool ok = w.Visit(".", 0);
  if (!ok) *error = w.error;
  return ok;
}

std::string DescribeEntry(const TreeEntry& e) {
  std::ostringstream s;
  s << "mode=" << std::oct << e.mode << std::dec << " uid=" << e.uid << " gid=" << e.gid
    << " size=" << e.size << " nlink=" << e.nlink;
  if (e.rdev != 0) s << " rdev=" << e.rdev;
  if (!e.target.empty()) s << " target=" << Escape(e.target);
  if (!e.link_group.empty()) s << " link_group=" << e.link_group;
  for (const auto& [name, value] : e.xattrs) s << " xattr:" << name << "=" << Escape(value, 32);
  return s.str();
}

std::vector<std::string> CompareTrees(const TreeSnapshot& expected, const TreeSnapshot& actual,
                                      const CompareOptions& options) {
  std::vector<std::string> diffs;
  for (const auto& item : expected) {
    const std::string& path = item.first;  // named, not bound: lambdas capture it
    const TreeEntry& e = item.second;
    auto it = actual.find(path);
    if (it == actual.end()) {
      diffs.push_back(path + ": missing (expected " + DescribeEntry(e) + ")");
      continue;
    }
    const TreeEntry& a = it->second;
    auto differ = [&](const char* field, const std::string& want, const std::string& got) {
      if (want != got) diffs.push_back(path + ": " + field + " expected " + want + " got " + got);
    };
    std::ostringstream want_mode, got_mode;
    want_mode << std::oct << e.mode;
    got_mode << std::oct << a.mode;
    differ("mode", want_mode.str(), got_mode.str());
    differ("uid", std::to_string(e.uid), std::to_string(a.uid));
    differ("gid", std::to_string(e.gid), std::to_string(a.gid));
    if (!S_ISDIR(e.mode) || options.dir_size) {
      differ("size", std::to_string(e.size), std::to_string(a.size));
    }
    differ("nlink", std::to_string(e.nlink), std::to_string(a.nlink));
    differ("rdev", std::to_string(e.rdev), std::to_string(a.rdev));
    differ("target", Escape(e.target), Escape(a.target));
    differ("link_group", e.link_group, a.link_group);
    if (e.content != a.content) {
      differ("content", Escape(e.content), Escape(a.content));
      if (Escape(e.content) == Escape(a.content)) diffs.push_back(path + ": content differs");
    }
    std::string want_x, got_x;
    for (const auto& [n, v] : e.xattrs) want_x += n + "=" + Escape(v, 32) + " ";
    for (const auto& [n, v] : a.xattrs) got_x += n + "=" + Escape(v, 32) + " ";
    differ("xattrs", "[" + want_x + "]", "[" + got_x + "]");
    if (options.mtime && !SameTime(e.mtime, a.mtime)) {
      differ("mtime", std::to_string(e.mtime.tv_sec) + "." + std::to_string(e.mtime.tv_nsec),
             std::to_string(a.mtime.tv_sec) + "." + std::to_string(a.mtime.tv_nsec));
    }
    if (options.atime && !SameTime(e.atime, a.atime)) {
      differ("atime", std::to_string(e.atime.tv_sec) + "." + std::to_string(e.atime.tv_nsec),
             std::to_string(a.atime.tv_sec) + "." + std::to_string(a.atime.tv_nsec));
    }
  }
  for (const auto& [path, a] : actual) {
    if (expected.count(path) == 0) diffs.push_back(path + ": unexpected (" + DescribeEntry(a) + ")");
  }
  return diffs;
}

}  // namespace mirror::itest
