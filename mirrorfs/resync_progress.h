// How a resync's progress is shown: a bar on stderr when it is a terminal, else a log
// line every few seconds; sd_notify STATUS= under systemd; and the figures status
// reports (percent, rate, time left).
//
// Thread-safety: a ResyncReporter belongs to the resync thread; the functions are pure.
#pragma once

#include <chrono>
#include <string>

#include "mirrorfs/resync.h"

namespace mirror::fs {

struct ResyncFigures {
  double percent = 0;           // of the data phase's bytes (100 once done)
  double bytes_per_second = 0;  // data compared per second since the start
  double seconds_left = -1;     // -1: unknown yet
};
ResyncFigures FiguresOf(const ResyncProgress& p);
// "resync: data 45% (120 MiB of 300 MiB, 80 MiB/s, 2 s left), 12 of 40 files, 3 MiB sent"
std::string DescribeProgress(const ResyncProgress& p);

class ResyncReporter {
 public:
  ResyncReporter();
  void Report(const ResyncProgress& p);  // rate-limited
  void Done(const ResyncProgress& p);    // the last line, always

 private:
  void Notify(const std::string& line);  // sd_notify STATUS=, if NOTIFY_SOCKET is set

  bool tty_;
  std::string last_phase_;
  std::chrono::steady_clock::time_point last_line_{};
  std::chrono::steady_clock::time_point last_notify_{};
};

}  // namespace mirror::fs
