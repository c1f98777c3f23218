// Small helpers shared by the benchmark programs: timing, medians, table printing.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace mirror::bench {

inline double Seconds() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  if (n == 0) return 0;
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Runs `body` (which returns work units done) `runs` times; returns the median rate.
template <class Body>
double MedianRate(int runs, Body body) {
  std::vector<double> rates;
  for (int i = 0; i < runs; ++i) {
    double start = Seconds();
    double units = body();
    rates.push_back(units / (Seconds() - start));
  }
  return Median(rates);
}

inline bool HasFlag(int argc, char** argv, const std::string& flag) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == flag) return true;
  }
  return false;
}

// Keeps the compiler from dropping a computed value.
template <class T>
inline void Consume(const T& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

}  // namespace mirror::bench
