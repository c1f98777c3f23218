// Ops: records a scenario's syscalls (return value, errno, observed data) so the
// same scenario run in two directory trees can be compared step by step.
//
// A scenario calls the real syscall and hands its result to Call()/Fd() at once,
// so errno is read before anything else can change it:
//   ops.Call("unlink dir", ::unlink(ops.P("d").c_str()));
// Observations that are not syscall results (stat fields, file bytes) go in Note().
// Paths are relative to the scenario's work directory. Everything is recorded in
// order; Serialize()/Parse() carry the record from the forked child to the parent.
//
// Thread-safety: none (one scenario, one thread).
#pragma once

#include <sys/stat.h>

#include <string>
#include <vector>

namespace mirror::itest {

struct Step {
  std::string name;
  long ret = 0;
  int err = 0;        // errno when ret < 0, else 0
  std::string data;   // observed bytes or fields, compared too
};

class Ops {
 public:
  explicit Ops(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  std::string P(const std::string& rel) const { return dir_ + "/" + rel; }

  // Records `ret` (and errno if ret < 0) exactly; returns ret.
  long Call(const char* name, long ret);
  // For calls returning a descriptor: records 0 or -1/errno; returns the fd.
  int Fd(const char* name, int fd);
  void Note(const char* name, std::string data);

  // Convenience steps built from the primitives above.
  int Open(const char* name, const std::string& rel, int flags, mode_t mode = 0);
  void Close(int fd);  // recorded as "close"; ignores fd < 0
  // lstat (or stat with follow) -> "type/mode uid gid size nlink" or the errno.
  void Stat(const char* name, const std::string& rel, bool follow = false);
  // atime and mtime as seconds.nanoseconds, or the errno.
  void Times(const char* name, const std::string& rel);
  // Whole content of a file (opened O_RDONLY), or the errno of open.
  void Content(const char* name, const std::string& rel);
  // Writes `bytes` to a new/truncated file with `mode`; records open+write.
  void MakeFile(const std::string& rel, const std::string& bytes, mode_t mode = 0644);

  const std::vector<Step>& steps() const { return steps_; }
  std::string Serialize() const;
  static bool Parse(const std::string& bytes, std::vector<Step>* out);

 private:
  std::string dir_;
  std::vector<Step> steps_;
};

// "name: ret=-1 errno=EEXIST data=..." for diagnostics.
std::string DescribeStep(const Step& step);

}  // namespace mirror::itest
