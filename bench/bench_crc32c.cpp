// CRC32C throughput: the SSE4.2 path against the portable slicing-by-8 table, on
// buffers from one cache line to 1 MiB. Prints MB/s (median of 5 runs) and the ratio.
//
//   build/bench/bench_crc32c [--quick]
#include <cstdio>
#include <vector>

#include "bench/bench_util.h"
#include "common/crc32c.h"

using namespace mirror;

int main(int argc, char** argv) {
  const bool quick = bench::HasFlag(argc, argv, "--quick");
  const double bytes_per_run = quick ? 64e6 : 512e6;
  std::vector<unsigned char> buf(1 << 20);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(i * 131 + 7);

  std::printf("CRC32C throughput, median of 5 runs (hardware available: %s)\n",
              common::crc32c::HardwareAvailable() ? "yes" : "no");
  std::printf("%10s %14s %14s %8s\n", "size", "hardware MB/s", "portable MB/s", "ratio");
  for (size_t size : {64u, 4096u, 262144u, 1048576u}) {
    size_t iters = static_cast<size_t>(bytes_per_run / static_cast<double>(size));
    auto run = [&](auto fn) {
      return bench::MedianRate(5, [&] {
        uint32_t crc = 0;
        for (size_t i = 0; i < iters; ++i) crc = fn(crc, buf.data(), size);
        bench::Consume(crc);
        return static_cast<double>(iters * size) / 1e6;
      });
    };
    double hw = run(common::crc32c::ExtendHardware);
    double sw = run(common::crc32c::ExtendPortable);
    std::printf("%10zu %14.0f %14.0f %7.1fx\n", size, hw, sw, hw / sw);
  }
  return 0;
}
