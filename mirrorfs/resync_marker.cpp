#include "mirrorfs/resync_marker.h"

#include <cerrno>
#include <cstdio>
#include <fstream>

namespace mirror::fs {

std::string ReadResyncMarker(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  return line.empty() ? "marked out of sync" : line;
}

common::Status WriteResyncMarker(const std::string& path, const std::string& why) {
  if (path.empty()) return common::Status::Ok();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << why << "\n";
    out.flush();
    if (!out) return common::Status::IOError("write " + tmp, EIO);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return common::Status::IOError("rename " + tmp, errno);
  }
  return common::Status::Ok();
}

}  // namespace mirror::fs
