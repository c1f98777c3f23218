#include "mirrord/adopt_copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <utility>

#include "common/beneath.h"
#include "common/record.h"
#include "common/unique_fd.h"

namespace mirror::d {

using common::Result;
using common::Status;
using common::UniqueFd;

namespace {

// Makes `dest`/`rel` and every directory above it (0700) that is missing.
Status MakeDirs(const std::string& dest, std::string_view rel) {
  if (rel == "." || rel.empty()) return Status::Ok();
  std::string path = dest;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t slash = rel.find('/', start);
    if (slash == std::string_view::npos) slash = rel.size();
    path += "/";
    path += rel.substr(start, slash - start);
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::IOError("mkdir " + path, errno);
    }
    start = slash + 1;
  }
  return Status::Ok();
}

// Errors reading the tree go to *why (the path is reported, the others still copied);
// errors writing the copy are returned (the saved directory is not usable).
Status CopyRegular(int dir_fd, const std::string& leaf, const std::string& from,
                   const std::string& to, std::string* why) {
  UniqueFd in(::openat(dir_fd, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC));
  struct stat st {};
  if (!in || ::fstat(in.get(), &st) != 0) {
    *why = Status::IOError("open " + from, errno).message();
    return Status::Ok();
  }
  if (!S_ISREG(st.st_mode)) {
    *why = "it changed while it was copied";
    return Status::Ok();
  }
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return Status::IOError("create " + to, errno);
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *why = Status::IOError("read " + from, errno).message();
      ::unlink(to.c_str());
      return Status::Ok();
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out.get(), buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Status::IOError("write " + to, errno);
      done += w;
    }
  }
  (void)::fchown(out.get(), st.st_uid, st.st_gid);  // before fchmod: chown clears setuid
  if (::fchmod(out.get(), st.st_mode & 07777) != 0) return Status::IOError("chmod " + to, errno);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::futimens(out.get(), times) != 0) return Status::IOError("set times of " + to, errno);
  return Status::Ok();
}

Status CopySymlink(int dir_fd, const std::string& leaf, const std::string& from,
                   const std::string& to, const struct stat& st, std::string* why) {
  std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
  ssize_t n = ::readlinkat(dir_fd, leaf.c_str(), target.data(), target.size());
  if (n < 0 || static_cast<size_t>(n) >= target.size()) {
    *why = n < 0 ? Status::IOError("readlink " + from, errno).message()
                 : "it changed while it was copied";
    return Status::Ok();
  }
  target.resize(static_cast<size_t>(n));
  if (::symlink(target.c_str(), to.c_str()) != 0) return Status::IOError("symlink " + to, errno);
  (void)::lchown(to.c_str(), st.st_uid, st.st_gid);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  (void)::utimensat(AT_FDCWD, to.c_str(), times, AT_SYMLINK_NOFOLLOW);
  return Status::Ok();
}

const char* KindOf(mode_t mode) {
  if (S_ISFIFO(mode)) return "a fifo";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "of an unknown file type";
}

}  // namespace

Result<SavedCopies> SaveCurrentCopies(const std::string& root,
                                      const std::vector<std::string>& paths,
                                      const std::string& dest) {
  UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) return Status::IOError("open " + root, errno);
  if (::mkdir(dest.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IOError("mkdir " + dest, errno);
  }
  SavedCopies out;
  // Directories get their mode and times last: adding entries would change the times.
  std::vector<std::pair<std::string, struct stat>> dirs;
  const std::set<std::string> sorted(paths.begin(), paths.end());
  for (const std::string& path : sorted) {
    if (path == ".") {
      out.not_copied.push_back({path, "the volume root itself is not copied"});
      continue;
    }
    if (Status s = common::CheckEntryPath(path); !s.ok()) {
      out.not_copied.push_back({path, s.message()});
      continue;
    }
    const common::SplitPath split = common::SplitEntryPath(path);
    Result<UniqueFd> dir =
        common::OpenDirBeneath(root_fd.get(), split.parent, common::ResolveMethod::kAuto);
    if (!dir.ok()) {
      const Status& s = dir.status();
      if (s.code() == common::Code::kNotFound || s.error_number() == ENOTDIR) {
        out.gone.push_back(path);
      } else {
        out.not_copied.push_back({path, s.message()});
      }
      continue;
    }
    const std::string leaf(split.leaf);
    const std::string from = root + "/" + path;
    struct stat st {};
    if (::fstatat(dir->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        out.gone.push_back(path);
      } else {
        out.not_copied.push_back({path, Status::IOError("stat " + from, errno).message()});
      }
      continue;
    }
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode) && !S_ISDIR(st.st_mode)) {
      out.not_copied.push_back({path, std::string("it is ") + KindOf(st.st_mode)});
      continue;
    }
    MIRROR_RETURN_IF_ERROR(MakeDirs(dest, split.parent));
    const std::string to = dest + "/" + path;
    std::string why;
    if (S_ISREG(st.st_mode)) {
      MIRROR_RETURN_IF_ERROR(CopyRegular(dir->get(), leaf, from, to, &why));
    } else if (S_ISLNK(st.st_mode)) {
      MIRROR_RETURN_IF_ERROR(CopySymlink(dir->get(), leaf, from, to, st, &why));
    } else {
      MIRROR_RETURN_IF_ERROR(MakeDirs(dest, path));
      dirs.emplace_back(to, st);
    }
    if (why.empty()) {
      out.saved.push_back(path);
    } else {
      out.not_copied.push_back({path, why});
    }
  }
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    const auto& [to, st] = *it;
    (void)::lchown(to.c_str(), st.st_uid, st.st_gid);
    if (::chmod(to.c_str(), st.st_mode & 07777) != 0) return Status::IOError("chmod " + to, errno);
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::utimensat(AT_FDCWD, to.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::IOError("set times of " + to, errno);
    }
  }
  UniqueFd dest_fd(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dest_fd || ::syncfs(dest_fd.get()) != 0) return Status::IOError("syncfs " + dest, errno);
  return out;
}

}  // namespace mirror::d
