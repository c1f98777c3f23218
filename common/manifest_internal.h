// Internal to manifest*.cpp: the file hashing the walk and the block sums share.
// Not part of the library's interface; include common/manifest.h instead.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace mirror::common::manifest_internal {

inline constexpr size_t kHashChunkBytes = size_t{1} << 20;  // pread size when hashing

// SHA-256 (kManifestHashBytes raw bytes) of what `fd` holds from offset 0 to its end,
// read with pread in kHashChunkBytes pieces into *buffer (kept for the next file).
// `what` names the file in errors.
Result<std::string> Sha256OfFile(int fd, std::string_view what, std::vector<char>* buffer);

}  // namespace mirror::common::manifest_internal
