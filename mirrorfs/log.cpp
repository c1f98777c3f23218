#include "mirrorfs/log.h"

#include <unistd.h>

#include <string>

namespace mirror::fs {
namespace {
std::string& Mountpoint() {
  static std::string mountpoint;
  return mountpoint;
}
}  // namespace

void SetLogMountpoint(std::string_view mountpoint) { Mountpoint() = std::string(mountpoint); }

void Log(LogLevel level, std::string_view message) {
  std::string line = "<" + std::to_string(static_cast<int>(level)) + ">mirrorfs";
  if (!Mountpoint().empty()) line += "[" + Mountpoint() + "]";
  line += ": ";
  line += message;
  line += '\n';
  // One write keeps lines from different threads whole; a failed log write has nowhere to go.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace mirror::fs
