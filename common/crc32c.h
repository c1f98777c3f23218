// CRC32C (Castagnoli), as used by iSCSI, ext4 and LevelDB.
//
// Extend() picks at run time between the SSE4.2 `crc32` instruction and a portable
// slicing-by-8 table; both are exposed so tests and benchmarks can compare them.
// All functions are thread-safe and allocation-free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mirror::common::crc32c {

// Returns the CRC32C of data[0, n) appended to data whose CRC32C is `crc`
// (use 0 for a fresh start). Extend(Extend(0, a), b) == Value(a + b).
uint32_t Extend(uint32_t crc, const void* data, size_t n);
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);
// Only callable when HardwareAvailable(); otherwise it falls back to the portable one.
uint32_t ExtendHardware(uint32_t crc, const void* data, size_t n);
bool HardwareAvailable();

// Stored CRCs are masked, so that a CRC of bytes that themselves contain CRCs
// (a record inside a frame, a frame inside a log) does not look like a checksum
// of nothing. Same rotation and constant as LevelDB.
inline constexpr uint32_t kMaskDelta = 0xa282ead8u;
inline constexpr uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
inline constexpr uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace mirror::common::crc32c
