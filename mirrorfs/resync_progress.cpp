#include "mirrorfs/resync_progress.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/unique_fd.h"
#include "mirrorfs/log.h"

namespace mirror::fs {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kBarEvery{200};
constexpr std::chrono::seconds kLogEvery{5};
constexpr std::chrono::seconds kNotifyEvery{1};

std::string Mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", bytes / (1 << 20));
  return buf;
}

}  // namespace

ResyncFigures FiguresOf(const ResyncProgress& p) {
  ResyncFigures f;
  if (p.phase == "done") {
    f.percent = 100;
  } else if (p.bytes_total > 0) {
    f.percent = 100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total);
  }
  if (p.seconds > 0) f.bytes_per_second = static_cast<double>(p.bytes_done) / p.seconds;
  if (p.phase == "done") {
    f.seconds_left = 0;
  } else if (f.bytes_per_second > 0 && p.bytes_total >= p.bytes_done) {
    f.seconds_left = static_cast<double>(p.bytes_total - p.bytes_done) / f.bytes_per_second;
  }
  return f;
}

std::string DescribeProgress(const ResyncProgress& p) {
  const ResyncFigures f = FiguresOf(p);
  char head[96];
  std::snprintf(head, sizeof(head), "%s: %s %.0f%%", p.baseline ? "baseline" : "resync",
                p.phase.empty() ? "starting" : p.phase.c_str(), f.percent);
  std::string line = head;
  line += " (" + Mib(static_cast<double>(p.bytes_done)) + " of " +
          Mib(static_cast<double>(p.bytes_total)) + ", " + Mib(f.bytes_per_second) + "/s";
  if (f.seconds_left >= 0)
    line += ", " + std::to_string(static_cast<long>(f.seconds_left + 0.5)) + " s left";
  line += "), " + std::to_string(p.files_done) + " of " + std::to_string(p.files_total) +
          " files, " + std::to_string(p.entries) + " entries, " +
          Mib(static_cast<double>(p.bytes_sent)) + " sent";
  return line;
}

ResyncReporter::ResyncReporter() : tty_(isatty(STDERR_FILENO) == 1) {}

void ResyncReporter::Report(const ResyncProgress& p) {
  const Clock::time_point now = Clock::now();
  const bool phase_changed = p.phase != last_phase_;
  last_phase_ = p.phase;
  const std::string line = DescribeProgress(p);
  if (now - last_notify_ >= kNotifyEvery || phase_changed) {
    last_notify_ = now;
    Notify(line);
  }
  if (tty_) {
    if (now - last_line_ < kBarEvery && !phase_changed) return;
    last_line_ = now;
    std::fprintf(stderr, "\r%-110s", line.c_str());
    std::fflush(stderr);
    return;
  }
  if (now - last_line_ < kLogEvery && !phase_changed) return;
  last_line_ = now;
  Log(LogLevel::kInfo, "mirror: " + line);
}

void ResyncReporter::Done(const ResyncProgress& p) {
  const std::string line = DescribeProgress(p);
  if (tty_) std::fprintf(stderr, "\r%-110s\n", line.c_str());
  Log(LogLevel::kNotice, "mirror: " + line + " in " +
                             std::to_string(static_cast<long>(p.seconds + 0.5)) +
                             " s; mirroring continues");
  Notify("mirroring");
}

// The sd_notify protocol, without libsystemd: one datagram to $NOTIFY_SOCKET.
void ResyncReporter::Notify(const std::string& line) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return;
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  const size_t len = std::strlen(path);
  if (len >= sizeof(addr.sun_path)) return;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  common::UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return;
  const std::string msg = "STATUS=" + line;
  sendto(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
}

}  // namespace mirror::fs
