// The fence file: `<journal>.fenced`, written once by a mirrorfs when mirrord refuses its
// epoch (the destination was promoted: DESIGN invariant 7), and mirrord's refusal message
// it is read from: both ends of that format live here. One JSON object, written by rename
// and fsynced, so that the old source's admin, its status and `mirrord adopt` (failback,
// docs/operations.md) know where the promoted image stopped:
//
//   {"epoch":2,"promoted_seq":1234,"message":"fenced: promoted at epoch 2 (image at seq
//    1234)","time":"2026-11-25T13:01:02Z"}
//
// epoch and promoted_seq are 0 when mirrord's message did not carry them (an epoch
// raised by a newer source rather than a promote). While the file exists the mount
// ships nothing: its journal keeps every later change for the failback report.
//
// Thread-safety: plain functions on paths.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace mirror::common {

struct FenceInfo {
  uint64_t epoch = 0;         // the epoch the destination was promoted at (0: unknown)
  uint64_t promoted_seq = 0;  // the last record the promoted image holds (0: unknown)
  std::string message;        // mirrord's refusal
  std::string time;           // UTC, ISO 8601
};

// mirrord's refusal of a promoted source: "fenced: promoted at epoch N (image at seq S)".
std::string FenceMessage(uint64_t epoch, uint64_t promoted_seq);
// Reads epoch and seq back from a text holding that message (0 when it is not there).
FenceInfo ParseFenceMessage(const std::string& message);

// The file at `path`; nullopt when there is none. Corruption (naming the file) when it is
// not such a JSON object or a number is not a whole number (a guessed seq would make a
// failback report wrong).
Result<std::optional<FenceInfo>> ReadFenceFile(const std::string& path);
// Writes it, replacing any (fills `time` when empty).
Status WriteFenceFile(const std::string& path, FenceInfo info);

}  // namespace mirror::common
