// Helpers shared by the unit tests: scratch directories and file bytes.
#pragma once

#include <string>

namespace mirror::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on
// destruction, also when the test fails.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::string& bytes);

}  // namespace mirror::test
