// Argument helpers of mirrord's commands (serve, status, promote, adopt).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

namespace mirror::d {

// Takes the value of `--name VALUE` or `--name=VALUE` at args[*i] (advancing *i past a
// separate value). False when args[*i] is not that option or its value is missing.
inline bool TakeValue(const std::vector<std::string>& args, size_t* i, const std::string& name,
                      std::string* out) {
  const std::string& a = args[*i];
  if (a == name) {
    if (*i + 1 >= args.size()) return false;
    *out = args[++*i];
    return true;
  }
  if (a.rfind(name + "=", 0) == 0) {
    *out = a.substr(name.size() + 1);
    return true;
  }
  return false;
}

}  // namespace mirror::d
