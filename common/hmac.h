// HMAC-SHA256, constant-time comparison and random bytes: the primitives of the
// wire handshake (common/handshake.h). HMAC comes from OpenSSL's libcrypto; nothing
// here is hand-rolled cryptography.
//
// Thread-safety: all functions are thread-safe and keep no state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace mirror::common {

inline constexpr size_t kHmacSha256Bytes = 32;
using HmacSha256Digest = std::array<uint8_t, kHmacSha256Bytes>;

// HMAC-SHA256(key, message) (RFC 2104, FIPS 198-1). Fails only if libcrypto does.
Result<HmacSha256Digest> HmacSha256(std::string_view key, std::string_view message);

// True when a and b have the same size and bytes. The time taken depends only on
// the sizes, never on where the bytes differ, so a proof cannot be guessed byte by byte.
bool ConstantTimeEqual(std::string_view a, std::string_view b);

// Fills buf with n bytes from the kernel's CSPRNG (getrandom(2), blocking until the
// pool is initialised, retried on EINTR and short reads).
Status FillRandom(void* buf, size_t n);

// The bytes of a digest or nonce as a string_view (no copy).
template <size_t N>
std::string_view AsBytes(const std::array<uint8_t, N>& a) {
  return {reinterpret_cast<const char*>(a.data()), N};
}

}  // namespace mirror::common
