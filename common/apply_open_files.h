// The regular files that data records (write, truncate, fallocate) opened in an image,
// kept open for the next data record on the same path. A random-write workload applies
// thousands of records to a handful of files; without this each record costs a
// resolve beneath the root, a stat, an open and two closes around its one pwrite.
//
// A cached fd stands for "the file at this path" only while no name in the image
// changes: ImageTree forgets every file before any record that may change a name, when
// a record fails, and at Sync (common/apply.h). Part of ImageTree; not thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/unique_fd.h"

namespace mirror::common {

class OpenFiles {
 public:
  // Enough for the files a workload writes at once; a linear search stays cheap.
  static constexpr size_t kMaxFiles = 16;

  // The fd opened for `path`, or -1.
  int Find(std::string_view path) const;
  // Keeps `fd` for `path` (not yet kept), closing the oldest file when full.
  void Keep(std::string path, UniqueFd fd);
  // Closes every file.
  void Clear() { files_.clear(); }
  size_t size() const { return files_.size(); }

 private:
  std::vector<std::pair<std::string, UniqueFd>> files_;  // oldest first
};

}  // namespace mirror::common
