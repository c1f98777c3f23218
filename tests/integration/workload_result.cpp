// The workload's names and its result's summaries (see workload.h).
#include <string.h>

#include <sstream>

#include "workload.h"

namespace mirror::itest {

const char* WorkOpName(WorkOp op) {
  static constexpr const char* kNames[kWorkOpCount] = {
      "create",          "write",          "append",
      "truncate",        "punch_hole",     "zero_range",
      "alloc_keep",      "alloc_extend",   "copy_range",
      "rename_file",     "rename_dir",     "rename_noreplace",
      "rename_exchange", "link",           "symlink",
      "unlink",          "mkdir",          "rmdir",
      "chmod",           "chown",          "utimens",
      "setxattr",        "removexattr",    "mkfifo",
      "mknod",           "shared_write",   "keep_open",
      "kept_write",      "kept_close",     "fd_after_rename",
      "fd_after_reuse",  "create_as_user", "acl",
      "mmap_write"};
  size_t i = static_cast<size_t>(op);
  return i < kWorkOpCount ? kNames[i] : "?";
}

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "errno" + std::to_string(err);
}

uint64_t WorkloadResult::Errors(int err) const {
  uint64_t n = 0;
  for (const OpCounts& c : by_op) {
    auto it = c.errors.find(err);
    if (it != c.errors.end()) n += it->second;
  }
  return n;
}

uint64_t WorkloadResult::TotalOk() const {
  uint64_t n = 0;
  for (const OpCounts& c : by_op) n += c.ok;
  return n;
}

std::string WorkloadResult::Summary() const {
  std::ostringstream s;
  s << "ops=" << ops << " ok=" << TotalOk() << (mount_lost ? " mount_lost" : "")
    << (timed_out ? " timed_out" : "") << "\n";
  for (size_t i = 0; i < kWorkOpCount; ++i) {
    const OpCounts& c = by_op[i];
    s << "  " << WorkOpName(static_cast<WorkOp>(i)) << ": ok=" << c.ok;
    for (const auto& [err, n] : c.errors) s << " " << ErrnoName(err) << "=" << n;
    s << "\n";
  }
  return s.str();
}

std::string WorkloadResult::TraceText(size_t tail) const {
  std::string out;
  for (const std::vector<std::string>& t : traces) {
    size_t from = tail == 0 || t.size() <= tail ? 0 : t.size() - tail;
    for (size_t i = from; i < t.size(); ++i) out += t[i] + "\n";
  }
  return out;
}

}  // namespace mirror::itest
