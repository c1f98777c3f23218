// The checked fd scenarios, in the thread's private directories p<t>/a and p<t>/b (no
// other thread touches them, so the expected content is known exactly):
// - FdAfterRename: a write through an fd whose file was renamed (once or twice, maybe
//   over another file, maybe into the other directory) lands in the renamed file.
// - FdAfterReuse: a write (and maybe a truncate) through an fd whose name was unlinked
//   and created again, or replaced by a rename, never changes the new file of that
//   name; a hard link made before the unlink still sees the writes.
// A mismatch is a violation (with seed, thread, op index); syscall failures are only
// outcomes (the mount may be gone).
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>

#include "workload_worker.h"

namespace mirror::itest::workload_internal {
namespace {

// `base` with `data` written at `off` (zero-filled gap), then cut to `size` if >= 0.
std::string Overlay(std::string base, const std::string& data, uint64_t off, int64_t size = -1) {
  if (base.size() < off + data.size()) base.resize(off + data.size(), '\0');
  base.replace(off, data.size(), data);
  if (size >= 0) base.resize(static_cast<size_t>(size), '\0');
  return base;
}

std::string FirstDifference(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  return "expected " + std::to_string(want.size()) + " bytes, got " + std::to_string(got.size()) +
         ", first difference at byte " + std::to_string(i);
}

Outcome WriteAt(int fd, const std::string& data, uint64_t off) {
  if (pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)) !=
      static_cast<ssize_t>(data.size())) {
    return Fail("pwrite");
  }
  return {};
}

}  // namespace

Outcome Worker::FdAfterRename(std::string* what) {
  std::string dir = "p" + std::to_string(thread_);
  std::string src = dir + "/a/r" + std::to_string(rng_.Below(3));
  std::string dst = rng_.Percent(50) ? dir + "/b/r" + std::to_string(rng_.Below(3))
                                     : dir + "/a/q" + std::to_string(rng_.Below(3));
  std::string final_name = rng_.Percent(30) ? dir + "/b/m" + std::to_string(rng_.Below(2)) : dst;
  std::string before = rng_.Bytes(1 + rng_.Below(8192));
  std::string data = rng_.Bytes(1 + rng_.Below(4096));
  uint64_t off = rng_.Below(before.size() + 4096);
  *what = src + " -> " + dst + (final_name != dst ? " -> " + final_name : "") +
          " off=" + std::to_string(off) + " len=" + std::to_string(data.size());
  Outcome out = PutFile(Abs(src), before);
  if (out.err != 0) return out;
  int fd = open(Abs(src).c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Fail("open");
  if (rename(Abs(src).c_str(), Abs(dst).c_str()) != 0) out = Fail("rename");
  if (out.err == 0 && final_name != dst && rename(Abs(dst).c_str(), Abs(final_name).c_str()) != 0) {
    out = Fail("rename again");
  }
  if (out.err == 0) out = WriteAt(fd, data, off);
  if (close(fd) != 0 && out.err == 0) out = Fail("close");
  if (out.err != 0) return out;
  std::string got;
  if (!GetFile(Abs(final_name), &got)) return Fail("read back");
  std::string want = Overlay(before, data, off);
  if (got != want) {
    Violation("fd_after_rename", "write through the fd of " + src + " after renaming it to " +
                                     final_name +
                                     " did not land there: " + FirstDifference(want, got));
  }
  return {};
}

Outcome Worker::FdAfterReuse(std::string* what) {
  std::string dir = "p" + std::to_string(thread_);
  std::string name = dir + "/a/u" + std::to_string(rng_.Below(3));
  bool by_rename = rng_.Percent(50);
  bool hard_link = rng_.Percent(25);
  bool truncate_too = rng_.Percent(30);
  std::string link_name = dir + "/b/h" + std::to_string(rng_.Below(2));
  std::string old_bytes = rng_.Bytes(1 + rng_.Below(8192));
  std::string new_bytes = rng_.Bytes(1 + rng_.Below(8192));
  std::string data = rng_.Bytes(1 + rng_.Below(4096));
  uint64_t off = rng_.Below(8192);
  int64_t cut = static_cast<int64_t>(rng_.Below(16384));
  *what = name + (by_rename ? " replaced by rename" : " unlinked and recreated") +
          (hard_link ? " linked as " + link_name : "") + " off=" + std::to_string(off) +
          " len=" + std::to_string(data.size()) +
          (truncate_too ? " cut=" + std::to_string(cut) : "");
  Outcome out = PutFile(Abs(name), old_bytes);
  if (out.err != 0) return out;
  if (hard_link) {
    unlink(Abs(link_name).c_str());  // left over from an earlier round, or absent
    if (link(Abs(name).c_str(), Abs(link_name).c_str()) != 0) return Fail("link");
  }
  int fd = open(Abs(name).c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Fail("open");
  if (by_rename) {
    std::string other = dir + "/b/v";
    out = PutFile(Abs(other), new_bytes);
    if (out.err == 0 && rename(Abs(other).c_str(), Abs(name).c_str()) != 0)
      out = Fail("rename over");
  } else {
    if (unlink(Abs(name).c_str()) != 0) out = Fail("unlink");
    if (out.err == 0) out = PutFile(Abs(name), new_bytes);
  }
  if (out.err == 0) out = WriteAt(fd, data, off);
  if (out.err == 0 && truncate_too && ftruncate(fd, cut) != 0) out = Fail("ftruncate");
  if (close(fd) != 0 && out.err == 0) out = Fail("close");
  if (out.err != 0) return out;
  std::string got;
  if (!GetFile(Abs(name), &got)) return Fail("read back");
  if (got != new_bytes) {
    Violation("fd_after_reuse",
              "write through the fd of the old " + name +
                  " changed the new file of that name: " + FirstDifference(new_bytes, got));
  }
  if (hard_link) {
    if (!GetFile(Abs(link_name), &got)) return Fail("read link");
    std::string want = Overlay(old_bytes, data, off, truncate_too ? cut : -1);
    if (got != want) {
      Violation("fd_after_reuse", "write through the fd of the old " + name +
                                      " is missing from its hard link " + link_name + ": " +
                                      FirstDifference(want, got));
    }
  }
  return {};
}

}  // namespace mirror::itest::workload_internal
