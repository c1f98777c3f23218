#include "common/volume_attrs.h"

#include <fcntl.h>
#include <sys/xattr.h>

#include <cerrno>

#include "common/unique_fd.h"

namespace mirror::common {
namespace {

// The value of `name` on `dir`, nullopt when absent.
Result<std::optional<std::string>> ReadAttr(const std::string& dir, const char* name) {
  char buf[4096];
  ssize_t n = ::getxattr(dir.c_str(), name, buf, sizeof(buf));
  if (n < 0) {
    if (errno == ENODATA) return std::optional<std::string>();
    return Status::IOError("read " + std::string(name) + " of " + dir, errno);
  }
  return std::optional<std::string>(std::string(buf, static_cast<size_t>(n)));
}

}  // namespace

Result<std::optional<std::string>> ReadVolumeId(const std::string& dir) {
  return ReadAttr(dir, kVolumeIdXattr);
}

Result<std::optional<uint64_t>> ReadVolumeEpoch(const std::string& dir) {
  MIRROR_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadAttr(dir, kEpochXattr));
  if (!text) return std::optional<uint64_t>();
  uint64_t value = 0;
  bool ok = !text->empty() && text->size() <= 19;
  for (char c : *text) {
    if (c < '0' || c > '9') ok = false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (!ok || value == 0) {
    return Status::Corruption(std::string(kEpochXattr) + " of " + dir + " is not an epoch: '" +
                              *text + "'");
  }
  return std::optional<uint64_t>(value);
}

Status WriteVolumeIdentity(const std::string& dir, const std::string& volume_id, uint64_t epoch) {
  const std::string epoch_text = std::to_string(epoch);
  if (!volume_id.empty() &&
      ::setxattr(dir.c_str(), kVolumeIdXattr, volume_id.data(), volume_id.size(), 0) != 0) {
    return Status::IOError("write " + std::string(kVolumeIdXattr) + " on " + dir, errno);
  }
  if (::setxattr(dir.c_str(), kEpochXattr, epoch_text.data(), epoch_text.size(), 0) != 0) {
    return Status::IOError("write " + std::string(kEpochXattr) + " on " + dir, errno);
  }
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) return Status::IOError("fsync " + dir, errno);
  return Status::Ok();
}

Result<std::optional<std::string>> ReadImageMark(const std::string& dir) {
  return ReadAttr(dir, kImageOfXattr);
}

Status WriteImageMark(const std::string& dir, const std::string& store) {
  if (::setxattr(dir.c_str(), kImageOfXattr, store.data(), store.size(), 0) != 0) {
    return Status::IOError("write " + std::string(kImageOfXattr) + " on " + dir, errno);
  }
  return Status::Ok();
}

Status ClearImageMark(const std::string& dir) {
  if (::removexattr(dir.c_str(), kImageOfXattr) != 0 && errno != ENODATA) {
    return Status::IOError("remove " + std::string(kImageOfXattr) + " from " + dir, errno);
  }
  return Status::Ok();
}

}  // namespace mirror::common
