#include "mirrorfs/name_scan.h"

#include <dirent.h>
#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include "common/unique_fd.h"

namespace mirror::fs {

common::Result<std::string> ScanForPath(int root_fd, const struct stat& target,
                                        size_t max_entries) {
  std::deque<std::string> dirs = {""};
  size_t seen = 0;
  while (!dirs.empty()) {
    std::string dir = std::move(dirs.front());
    dirs.pop_front();
    common::UniqueFd fd(openat(root_fd, dir.empty() ? "." : dir.c_str(),
                               O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) continue;  // removed or unreadable: nothing to find there
    struct stat dst;
    if (fstat(fd.get(), &dst) != 0 || dst.st_dev != target.st_dev) continue;
    DIR* d = fdopendir(fd.get());
    if (d == nullptr) continue;
    fd.release();  // the DIR owns it now
    while (struct dirent* e = readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      if (++seen > max_entries) {
        closedir(d);
        return common::Status::NotFound("no name found in the first " +
                                        std::to_string(max_entries) + " entries of BACKING");
      }
      std::string path = dir.empty() ? e->d_name : dir + "/" + e->d_name;
      if (e->d_ino == target.st_ino) {
        struct stat st;
        if (fstatat(root_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            st.st_dev == target.st_dev && st.st_ino == target.st_ino) {
          closedir(d);
          return path;
        }
      }
      if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) dirs.push_back(std::move(path));
    }
    closedir(d);
  }
  return common::Status::NotFound("no name for the inode in BACKING");
}

}  // namespace mirror::fs
