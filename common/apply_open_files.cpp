#include "common/apply_open_files.h"

namespace mirror::common {

int OpenFiles::Find(std::string_view path) const {
  for (const auto& [p, fd] : files_) {
    if (p == path) return fd.get();
  }
  return -1;
}

void OpenFiles::Keep(std::string path, UniqueFd fd) {
  if (files_.size() >= kMaxFiles) files_.erase(files_.begin());
  files_.emplace_back(std::move(path), std::move(fd));
}

}  // namespace mirror::common
