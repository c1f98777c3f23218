// SHA-256 of whole files (manifest content hashes) and of blocks (resync block sums).
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>

#include "common/manifest.h"
#include "common/manifest_internal.h"
#include "common/quote.h"

namespace mirror::common {
namespace manifest_internal {

namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// pread that retries EINTR; -1 with errno on failure.
ssize_t PreadRetry(int fd, char* buf, size_t n, off_t offset) {
  for (;;) {
    ssize_t got = ::pread(fd, buf, n, offset);
    if (got >= 0 || errno != EINTR) return got;
  }
}

}  // namespace

Result<std::string> Sha256OfFile(int fd, std::string_view what, std::vector<char>* buffer) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  // Same kind as hmac.cpp gives a libcrypto failure: nothing the caller can retry.
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    return Status::InvalidArgument("SHA-256 failed in libcrypto");
  buffer->resize(kHashChunkBytes);
  off_t offset = 0;
  for (;;) {
    ssize_t got = PreadRetry(fd, buffer->data(), buffer->size(), offset);
    if (got < 0) return Status::IOError("read " + QuoteForMessage(what, '\''), errno);
    if (got == 0) break;  // the end, as it is now (a growing file is hashed as far as read)
    if (EVP_DigestUpdate(ctx.get(), buffer->data(), static_cast<size_t>(got)) != 1)
      return Status::InvalidArgument("SHA-256 failed in libcrypto");
    offset += got;
  }
  std::string digest(EVP_MAX_MD_SIZE, '\0');
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(digest.data()), &len) != 1 ||
      len != kManifestHashBytes) {
    return Status::InvalidArgument("SHA-256 failed in libcrypto");
  }
  digest.resize(len);
  return digest;
}

}  // namespace manifest_internal

BlockSum SumOfBlock(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  BlockSum sum{};
  // EVP_Digest of SHA-256 does not fail short of a broken libcrypto; if it ever does, the
  // all-zero sum matches no real block, so the block is sent rather than wrongly skipped.
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) == 1 &&
      len >= sum.size()) {
    std::memcpy(sum.data(), digest, sum.size());
  }
  return sum;
}

Result<std::vector<BlockSum>> FileBlockSums(int fd, uint32_t block_size) {
  if (block_size < 4096 || !std::has_single_bit(block_size))
    return Status::InvalidArgument("block size " + std::to_string(block_size) +
                                   " is not a power of two >= 4096");
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::IOError("fstat for block sums", errno);
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument("block sums need a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  std::vector<BlockSum> sums;
  sums.reserve(static_cast<size_t>((size + block_size - 1) / block_size));
  // No larger than the file: a 2 GiB block size over a small file allocates little.
  std::string block(static_cast<size_t>(std::min<uint64_t>(block_size, size)), '\0');
  uint64_t offset = 0;
  while (offset < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(block_size, size - offset));
    size_t have = 0;
    while (have < want) {  // pread may return less than asked before the end
      ssize_t got = manifest_internal::PreadRetry(fd, block.data() + have, want - have,
                                                  static_cast<off_t>(offset + have));
      if (got < 0) return Status::IOError("read for block sums", errno);
      if (got == 0) break;  // the file shrank since fstat: it ends here
      have += static_cast<size_t>(got);
    }
    if (have == 0) break;
    sums.push_back(SumOfBlock(std::string_view(block.data(), have)));
    if (have < want) break;
    offset += have;
  }
  return sums;
}

}  // namespace mirror::common
