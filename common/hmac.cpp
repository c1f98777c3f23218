#include "common/hmac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <cerrno>
#include <climits>

namespace mirror::common {

Result<HmacSha256Digest> HmacSha256(std::string_view key, std::string_view message) {
  if (key.size() > static_cast<size_t>(INT_MAX))
    return Status::InvalidArgument("HMAC key is too long");
  HmacSha256Digest out{};
  unsigned int out_len = 0;
  // OpenSSL rejects a null key pointer even with length 0; a static byte stands in.
  static const unsigned char kEmpty = 0;
  const void* key_ptr = key.empty() ? &kEmpty : static_cast<const void*>(key.data());
  const auto* msg_ptr =
      message.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(message.data());
  if (HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()), msg_ptr, message.size(), out.data(),
           &out_len) == nullptr ||
      out_len != out.size()) {
    return Status::InvalidArgument("HMAC-SHA256 failed in libcrypto");
  }
  return out;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;  // sizes are public (fixed-size proofs)
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Status FillRandom(void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("getrandom", errno);
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return {};
}

}  // namespace mirror::common
