// RunAs: run a function in a forked child under another identity and bring its
// result back through a pipe, with a bounded wait.
//
// The child drops supplementary groups (setgroups), then setresgid, then setresuid,
// so it holds no privilege of the parent. It leaves via _exit: no atexit handlers,
// no static destructors, no doctest state. The function must not throw out of the
// child (an exception is reported as a failure, not propagated).
//
// The parent must be single-threaded when calling (fork). Thread-safety: none.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

namespace mirror::itest {

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  const char* name = "root";
};
inline constexpr Identity kRoot{0, 0, "root"};
inline constexpr Identity kNobody{65534, 65534, "nobody"};

struct ChildOutput {
  bool ok = false;        // child ran fn and exited 0 within the timeout
  std::string output;     // what fn returned
  std::string error;      // why ok is false
};

// Runs `fn` as `who` in a child; `fn`'s return value travels back as bytes.
ChildOutput RunAs(const Identity& who, const std::function<std::string()>& fn,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20));

// The result of one syscall-like call: its return value and errno (0 if ret >= 0).
struct CallResult {
  long ret = -1;
  int err = 0;
  bool ok = false;        // false: the child failed (see error), ret/err meaningless
  std::string error;
};

// Runs `fn` as `who`; fn returns a value and leaves errno set as a syscall would.
CallResult RunAsCall(const Identity& who, const std::function<long()>& fn,
                     std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace mirror::itest
