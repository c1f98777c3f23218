// The identity a volume's root directory carries, as trusted.* xattrs that clients never
// see (mirrorfs hides and protects trusted.mirrorfs.*; manifests skip them):
//
//   trusted.mirrorfs.volume_id  a random UUID, written by mirrorfs at the first mount of a
//                               BACKING; a journal is bound to it.
//   trusted.mirrorfs.epoch      decimal text; written by `mirrord promote` on the image it
//                               promotes (the raised epoch). A mirrorfs journal created
//                               over this directory takes it as its epoch (1 without it).
//   trusted.mirrorfs.image_of   the store directory whose image this is: mirrord marks the
//                               image root of every store it holds that is not promoted
//                               (promote removes it). mirrorfs refuses to mount such a
//                               directory: mirrord writes it, a mount would diverge it.
//
// Promote also writes the source's volume id on the image, so that the promoted image
// continues the same volume at a higher epoch (docs/operations.md).
//
// Thread-safety: plain functions on paths; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace mirror::common {

inline constexpr char kVolumeIdXattr[] = "trusted.mirrorfs.volume_id";
inline constexpr char kEpochXattr[] = "trusted.mirrorfs.epoch";
inline constexpr char kImageOfXattr[] = "trusted.mirrorfs.image_of";

// The volume id at `dir`'s root; nullopt when it has none. IOError when unreadable.
Result<std::optional<std::string>> ReadVolumeId(const std::string& dir);
// The epoch at `dir`'s root; nullopt when it has none. Corruption when it is not a number.
Result<std::optional<uint64_t>> ReadVolumeEpoch(const std::string& dir);
// Writes (replaces) both, then fsyncs `dir`.
Status WriteVolumeIdentity(const std::string& dir, const std::string& volume_id, uint64_t epoch);

// The image mark: the store `dir` is the image of, nullopt when unmarked.
Result<std::optional<std::string>> ReadImageMark(const std::string& dir);
// Sets it to `store` (replacing); ClearImageMark removes it (OK when absent).
Status WriteImageMark(const std::string& dir, const std::string& store);
Status ClearImageMark(const std::string& dir);

}  // namespace mirror::common
