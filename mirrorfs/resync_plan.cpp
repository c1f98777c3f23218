#include "mirrorfs/resync_plan.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <unordered_map>

namespace mirror::fs {
namespace {

using common::ManifestEntry;

constexpr common::Timespec kOmit{0, common::kTimeOmit};

common::Timespec FromNs(int64_t ns) {
  int64_t sec = ns / 1000000000;
  int64_t nsec = ns % 1000000000;
  if (nsec < 0) {
    nsec += 1000000000;
    --sec;
  }
  return {sec, static_cast<uint32_t>(nsec)};
}

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

uint32_t TypeOf(const ManifestEntry& e) { return e.mode & S_IFMT; }

// The image's entry must go (and be made again if BACKING has the path): another type,
// symlink target, device, or hard link structure.
bool MustReplace(const ManifestEntry& want, const ManifestEntry& have) {
  if (TypeOf(want) != TypeOf(have)) return true;
  if (S_ISLNK(want.mode) && want.target != have.target) return true;
  if ((S_ISCHR(want.mode) || S_ISBLK(want.mode)) && want.rdev != have.rdev) return true;
  return want.link_to != have.link_to;
}

class Planner {
 public:
  Planner(const common::Manifest& source, const common::Manifest& image, int64_t root_mtime_ns)
      : source_(source), image_(image), root_mtime_ns_(root_mtime_ns) {
    for (const ManifestEntry& e : image_) image_by_path_.emplace(e.path, &e);
    for (const ManifestEntry& e : source_) source_by_path_.emplace(e.path, &e);
  }

  ResyncPlan Run() {
    Remove();
    for (const ManifestEntry& want : source_) Reconcile(want);
    FixTimes();
    return std::move(plan_);
  }

 private:
  const ManifestEntry* ImageEntry(const std::string& path) const {
    auto it = image_by_path_.find(path);
    return it == image_by_path_.end() || removed_.count(path) ? nullptr : it->second;
  }

  // What the image has that BACKING has not (or not so), deepest first: the image's walk
  // order reversed puts every child before its directory.
  // A record's "parent mtime": the parent's time in BACKING (the directory-time pass at
  // the end sets it again anyway), or the image's for a parent that is going away.
  common::Timespec ParentTime(const std::string& path) const {
    const std::string parent = ParentOf(path);
    if (parent.empty()) return FromNs(root_mtime_ns_);
    auto s = source_by_path_.find(parent);
    if (s != source_by_path_.end()) return FromNs(s->second->mtime_ns);
    auto i = image_by_path_.find(parent);
    return FromNs(i != image_by_path_.end() ? i->second->mtime_ns : root_mtime_ns_);
  }

  void Remove() {
    std::set<std::string> doomed_dirs;
    for (const ManifestEntry& have : image_) {
      auto it = source_by_path_.find(have.path);
      bool doomed = it == source_by_path_.end() || MustReplace(*it->second, have);
      // Everything under a removed directory goes with it.
      for (std::string p = ParentOf(have.path); !doomed && !p.empty(); p = ParentOf(p)) {
        doomed = doomed_dirs.count(p) > 0;
      }
      if (!doomed) continue;
      if (S_ISDIR(have.mode)) doomed_dirs.insert(have.path);
      removed_.insert(have.path);
    }
    for (auto it = image_.rbegin(); it != image_.rend(); ++it) {
      if (!removed_.count(it->path)) continue;
      std::string_view path = plan_.Keep(it->path);
      if (S_ISDIR(it->mode)) {
        plan_.ops.push_back(common::RmdirOp{path, ParentTime(it->path)});
      } else {
        plan_.ops.push_back(common::UnlinkOp{path, ParentTime(it->path)});
      }
      touched_dirs_.insert(ParentOf(it->path));
      ++plan_.removed;
    }
  }

  void Reconcile(const ManifestEntry& want) {
    const ManifestEntry* have = ImageEntry(want.path);
    if (have == nullptr) return Create(want);
    bool fixed = false;
    std::string_view path = plan_.Keep(want.path);
    // A chown record carries the mode after it (apply leaves a symlink's alone).
    const uint32_t perms = want.mode & 07777;
    if (want.uid != have->uid || want.gid != have->gid) {
      plan_.ops.push_back(common::ChownOp{path, want.uid, want.gid, perms});
      fixed = true;
    } else if (!S_ISLNK(want.mode) && perms != (have->mode & 07777)) {
      plan_.ops.push_back(common::ChmodOp{path, perms});
      fixed = true;
    }
    fixed |= FixXattrs(path, want.xattrs, have->xattrs);
    if (fixed) ++plan_.fixed;
    if (S_ISREG(want.mode) && want.link_to.empty() &&
        (want.size != have->size || want.mtime_ns != have->mtime_ns)) {
      plan_.data.push_back({want.path, want.size, true, have->size});
      return;  // the data phase sets its times
    }
    if (want.mtime_ns != have->mtime_ns && !S_ISDIR(want.mode) && want.link_to.empty()) {
      plan_.ops.push_back(common::UtimensOp{path, kOmit, FromNs(want.mtime_ns)});
    }
  }

  void Create(const ManifestEntry& want) {
    std::string_view path = plan_.Keep(want.path);
    const common::Timespec mtime = FromNs(want.mtime_ns);
    const common::Timespec parent = ParentTime(want.path);
    touched_dirs_.insert(ParentOf(want.path));
    ++plan_.created;
    if (!want.link_to.empty()) {
      plan_.ops.push_back(common::LinkOp{plan_.Keep(want.link_to), path, parent});
      return;  // the inode's owner, mode, xattrs and data come with its first name
    }
    if (S_ISDIR(want.mode)) {
      plan_.ops.push_back(common::MkdirOp{path, want.mode, want.uid, want.gid, mtime, parent});
    } else if (S_ISREG(want.mode)) {
      plan_.ops.push_back(common::CreateOp{path, want.mode, want.uid, want.gid, mtime, parent});
      if (want.size > 0) plan_.data.push_back({want.path, want.size, false, 0});
    } else if (S_ISLNK(want.mode)) {
      plan_.ops.push_back(
          common::SymlinkOp{path, want.uid, want.gid, mtime, parent, plan_.Keep(want.target)});
    } else {
      plan_.ops.push_back(
          common::MknodOp{path, want.mode, want.rdev, want.uid, want.gid, mtime, parent});
    }
    static const std::vector<std::pair<std::string, std::string>> kNone;
    FixXattrs(path, want.xattrs, kNone);
    // A new node's setuid/setgid bits may have been dropped by its creation as another
    // owner: state the mode once more.
    if (!S_ISLNK(want.mode) && (want.mode & 07000) != 0) {
      plan_.ops.push_back(common::ChmodOp{path, want.mode & 07777});
    }
  }

  bool FixXattrs(std::string_view path,
                 const std::vector<std::pair<std::string, std::string>>& want,
                 const std::vector<std::pair<std::string, std::string>>& have) {
    // Both lists are sorted by name (manifest.h), but short: a lookup by name is plenty.
    auto find = [](const auto& list, const std::string& name) {
      return std::find_if(list.begin(), list.end(), [&](const auto& x) { return x.first == name; });
    };
    bool fixed = false;
    for (const auto& x : want) {
      auto it = find(have, x.first);
      if (it != have.end() && it->second == x.second) continue;
      plan_.ops.push_back(common::SetxattrOp{path, plan_.Keep(x.first), plan_.Keep(x.second)});
      fixed = true;
    }
    for (const auto& x : have) {
      if (find(want, x.first) != want.end()) continue;
      plan_.ops.push_back(common::RemovexattrOp{path, plan_.Keep(x.first)});
      fixed = true;
    }
    return fixed;
  }

  // Directories last: every creation and removal above moved their mtimes.
  void FixTimes() {
    for (const ManifestEntry& want : source_) {
      if (!S_ISDIR(want.mode)) continue;
      const ManifestEntry* have = ImageEntry(want.path);
      if (have != nullptr && have->mtime_ns == want.mtime_ns && !touched_dirs_.count(want.path)) {
        continue;
      }
      plan_.ops.push_back(common::UtimensOp{plan_.Keep(want.path), kOmit, FromNs(want.mtime_ns)});
    }
  }

  const common::Manifest& source_;
  const common::Manifest& image_;
  const int64_t root_mtime_ns_;
  std::unordered_map<std::string, const ManifestEntry*> image_by_path_;
  std::unordered_map<std::string, const ManifestEntry*> source_by_path_;
  std::set<std::string> removed_;
  std::set<std::string> touched_dirs_;
  ResyncPlan plan_;
};

}  // namespace

std::string_view ResyncPlan::Keep(std::string s) {
  strings.push_back(std::move(s));
  return strings.back();
}

ResyncPlan PlanResync(const common::Manifest& source, const common::Manifest& image,
                      int64_t root_mtime_ns) {
  return Planner(source, image, root_mtime_ns).Run();
}

}  // namespace mirror::fs
