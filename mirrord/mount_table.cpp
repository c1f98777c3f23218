#include "mirrord/mount_table.h"

#include <climits>
#include <cstdlib>
#include <sstream>

namespace mirror::d {

std::string UnescapeMountField(std::string_view field) {
  std::string out;
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && field.size() - i >= 4 && octal(field[i + 1]) && octal(field[i + 2]) &&
        octal(field[i + 3])) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

std::optional<std::string> MirrorfsMountOver(const std::string& mounts,
                                             const std::string& real_dir) {
  std::istringstream in(mounts);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string source, target, type;
    if (!(fields >> source >> target >> type)) continue;
    if (type != "fuse.mirrorfs") continue;
    source = UnescapeMountField(source);
    char buf[PATH_MAX];
    const bool resolved = ::realpath(source.c_str(), buf) != nullptr;
    if (source == real_dir || (resolved && real_dir == buf)) return UnescapeMountField(target);
  }
  return std::nullopt;
}

}  // namespace mirror::d
