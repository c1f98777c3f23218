// Little-endian loads and stores on unaligned bytes. Every on-disk and on-wire
// integer in mirrorfs is little-endian; these are the only functions that touch them.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

namespace mirror::common {

static_assert(std::endian::native == std::endian::little,
              "mirrorfs formats are little-endian; a big-endian port needs byte swaps here");

template <class T>
inline T LoadLE(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class T>
inline void StoreLE(void* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

template <class T>
inline void AppendLE(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

}  // namespace mirror::common
