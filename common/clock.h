// Wall-clock time in nanoseconds, as records carry it (RecordMeta::timestamp_ns).
#pragma once

#include <time.h>

#include <cstdint>

namespace mirror::common {

inline int64_t RealtimeNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace mirror::common
