#include "common/file_replace.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"

namespace mirror::common {

Status SyncDirectory(const std::string& dir) {
  UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::IOError("open directory " + dir, errno);
  if (::fsync(fd.get()) != 0) return Status::IOError("fsync directory " + dir, errno);
  return Status::Ok();
}

Status ReplaceFile(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return Status::IOError("create " + tmp, errno);
    while (!content.empty()) {
      ssize_t n = ::write(fd.get(), content.data(), content.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Status s = Status::IOError("write " + tmp, n < 0 ? errno : EIO);
        ::unlink(tmp.c_str());
        return s;
      }
      content.remove_prefix(static_cast<size_t>(n));
    }
    if (::fsync(fd.get()) != 0) {
      Status s = Status::IOError("fsync " + tmp, errno);
      ::unlink(tmp.c_str());
      return s;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Status::IOError("rename " + tmp, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  const size_t slash = path.find_last_of('/');
  return SyncDirectory(slash == std::string::npos ? "." : path.substr(0, slash + 1));
}

}  // namespace mirror::common
