#include "mirrord/store_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

namespace mirror::d {

common::Result<common::UniqueFd> LockStoreDir(const std::string& dir) {
  const std::string path = dir + "/" + kStoreLockName;
  common::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return common::Status::IOError("open " + path, errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return common::Status::Unavailable(dir +
                                         " is in use by another process (a running mirrord, " +
                                         "or a promote or adopt of the same source)");
    }
    return common::Status::IOError("lock " + path, errno);
  }
  return fd;
}

}  // namespace mirror::d
