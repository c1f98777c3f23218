// SourceStore's image queries for resync, baseline and verify: the manifest of the image
// and the block sums of one of its files, each after applying what the source sent
// before asking.
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

#include "common/beneath.h"
#include "common/frame.h"
#include "common/record.h"
#include "common/unique_fd.h"
#include "mirrord/source_store.h"

namespace mirror::d {

using common::Result;
using common::Status;
using common::UniqueFd;

static_assert(sizeof(common::BlockSum) == common::kBlockSumBytes);

namespace {

constexpr const char* kNotFound = "not found";
constexpr const char* kNotRegular = "not a regular file";

// The regular file at `path` beneath `root_fd`, resolved as apply resolves paths: the
// parent with no symlink in any component, the last component not followed. On a
// failure, `*error` is the answer's text and the fd is empty.
UniqueFd OpenRegularBeneath(int root_fd, const std::string& path, std::string* error) {
  if (Status s = common::CheckEntryPath(path); !s.ok()) {
    *error = "path " + path + ": " + s.message();
    return UniqueFd();
  }
  const common::SplitPath split = common::SplitEntryPath(path);
  Result<UniqueFd> dir =
      common::OpenDirBeneath(root_fd, split.parent, common::ResolveMethod::kAuto);
  if (!dir.ok()) {
    // A missing parent, or a parent that is not a directory: there is no such entry.
    const int err = dir.status().error_number();
    *error = dir.status().code() == common::Code::kNotFound || err == ENOENT || err == ENOTDIR
                 ? kNotFound
                 : dir.status().ToString();
    return UniqueFd();
  }
  const std::string leaf(split.leaf);
  struct stat st {};
  if (::fstatat(dir->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    *error = errno == ENOENT ? kNotFound : Status::IOError("stat " + path, errno).ToString();
    return UniqueFd();
  }
  // Checked before opening: opening a FIFO or a device could block or act on hardware.
  if (!S_ISREG(st.st_mode)) {
    *error = kNotRegular;
    return UniqueFd();
  }
  UniqueFd fd(::openat(dir->get(), leaf.c_str(),
                       O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    *error = errno == ENOENT ? kNotFound : Status::IOError("open " + path, errno).ToString();
    return UniqueFd();
  }
  return fd;
}

}  // namespace

ManifestAnswer SourceStore::ImageManifest(uint64_t through_seq,
                                          const common::ManifestOptions& options) {
  ManifestAnswer answer;
  std::lock_guard<std::mutex> apply_lock(apply_mu_);
  Refusal refusal;
  if (Result<uint64_t> applied = SyncLocked(through_seq, &refusal, nullptr); !applied.ok()) {
    answer.refusal = refusal;
    return answer;
  }
  Result<common::Manifest> manifest = common::BuildManifest(dir_ + "/image", options);
  if (!manifest.ok()) {
    answer.error = manifest.status().ToString();
  } else {
    answer.manifest = std::move(manifest).value();
  }
  return answer;
}

SumsAnswer SourceStore::ImageSums(uint64_t through_seq, const std::string& path,
                                  uint32_t block_size) {
  SumsAnswer answer;
  std::lock_guard<std::mutex> apply_lock(apply_mu_);
  Refusal refusal;
  if (Result<uint64_t> applied = SyncLocked(through_seq, &refusal, nullptr); !applied.ok()) {
    answer.refusal = refusal;
    return answer;
  }
  UniqueFd fd = OpenRegularBeneath(image_->root_fd(), path, &answer.error);
  if (!fd) return answer;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    answer.error = Status::IOError("fstat " + path, errno).ToString();
    return answer;
  }
  if (!S_ISREG(st.st_mode)) {
    answer.error = kNotRegular;
    return answer;
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  const uint64_t blocks = (size + block_size - 1) / block_size;
  if (blocks > common::kMaxBlockSumsBytes / common::kBlockSumBytes) {
    answer.error = "file of " + std::to_string(size) + " bytes has " + std::to_string(blocks) +
                   " blocks of " + std::to_string(block_size) +
                   " bytes, more than one SUMS holds (" +
                   std::to_string(common::kMaxBlockSumsBytes / common::kBlockSumBytes) +
                   "); ask with a larger block size";
    return answer;
  }
  Result<std::vector<common::BlockSum>> sums = common::FileBlockSums(fd.get(), block_size);
  if (!sums.ok()) {
    answer.error = sums.status().ToString();
    return answer;
  }
  // Only apply changes the image, and it waits for our lock: the file cannot change.
  if (sums->size() != blocks) {
    answer.error = "file " + path + " changed while its sums were computed";
    return answer;
  }
  answer.size = size;
  answer.sums.reserve(sums->size() * common::kBlockSumBytes);
  for (const common::BlockSum& b : *sums) {
    answer.sums.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return answer;
}

}  // namespace mirror::d
