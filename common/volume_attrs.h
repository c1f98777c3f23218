// The identity a volume's root directory carries, as trusted.* xattrs that clients never
// see (mirrorfs hides and protects trusted.mirrorfs.*; manifests skip them):
//
//   trusted.mirrorfs.volume_id  a random UUID, written by mirrorfs at the first mount of a
//                               BACKING; a journal is bound to it.
//   trusted.mirrorfs.epoch      decimal text; written by `mirrord promote` on the image it
//                               promotes (the raised epoch). A mirrorfs journal created
//                               over this directory takes it as its epoch (1 without it).
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

// The volume id at `dir`'s root; nullopt when it has none. IOError when unreadable.
Result<std::optional<std::string>> ReadVolumeId(const std::string& dir);
// The epoch at `dir`'s root; nullopt when it has none. Corruption when it is not a number.
Result<std::optional<uint64_t>> ReadVolumeEpoch(const std::string& dir);
// Writes (replaces) both, then fsyncs `dir`.
Status WriteVolumeIdentity(const std::string& dir, const std::string& volume_id, uint64_t epoch);

}  // namespace mirror::common
