// Deadline-bounded line I/O on a non-blocking stream socket: the one place where the
// control server and client wait for bytes. Internal to mirror_control (not installed).
//
// Every wait is a poll() bounded by `deadline`; a `wake_fd` (an eventfd the server signals
// at shutdown; -1 for none) ends it early. Thread-safety: stateless; one caller per fd.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace mirror::control {

using Clock = std::chrono::steady_clock;

// The protocol's limit on one request line, newline excluded (docs/control.md).
inline constexpr std::size_t kMaxRequestBytes = 64 * 1024;

enum class IoOutcome {
  kOk,        // done (ReadLine: a line, or bytes followed by EOF)
  kEof,       // ReadLine: the peer closed before sending a byte
  kTooLarge,  // ReadLine: more than `limit` bytes without a newline
  kTimeout,   // the deadline passed
  kWoken,     // wake_fd became readable
  kError,     // a system call failed; *err holds errno
};

// Fills *addr/*len for `path`; false if it is empty or does not fit sun_path.
bool MakeUnixAddress(const std::string& path, sockaddr_un* addr, socklen_t* len);

// Reads one line from `fd` into *line (without the '\n'; bytes after it are dropped).
// A peer that closes after sending some bytes but no newline yields those bytes (kOk).
IoOutcome ReadLine(int fd, std::size_t limit, Clock::time_point deadline, int wake_fd,
                   std::string* line, int* err);

// Writes all of `data` to `fd` (MSG_NOSIGNAL: a gone peer is EPIPE, never SIGPIPE).
IoOutcome WriteAll(int fd, std::string_view data, Clock::time_point deadline, int wake_fd,
                   int* err);

}  // namespace mirror::control
