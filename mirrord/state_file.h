// The per-source state file: STATE_DIR/<source>/state (format in the report for
// docs/formats.md, "mirrord state file").
//
// A small JSON object, replaced atomically: written to "state.tmp", fsynced, renamed over
// "state", and the directory fsynced. A reader therefore sees the old or the new state,
// never a mix. It carries a format version and a CRC32C of its canonical body, so that a
// damaged file is refused rather than trusted:
//
//   {"format":"mirrord-state","version":1,"source_id":"s1","volume_id":"v1","epoch":3,
//    "applied_seq":1200,"replay_through":1250,"promoted":false,"crc32c":123456789}
//
// `applied_seq` is the last record whose change the image holds on disk (stored after the
// image's sync). `replay_through` is the end of the batch being applied: records in
// (applied_seq, replay_through] may already be in the image after a crash and are applied
// again in replay mode (common/apply.h).
//
// `promoted` is set by `mirrord promote`: the image is now a primary (served read-write
// by a mirrorfs over it) and takes no more records; the epoch was raised, so the old
// source is fenced. Then "promoted_seq" follows it: the last record the image holds
// (received and applied at the promote). It is written only when promoted.
//
// While a resync runs (the source restarted its stream with RESYNC and sends the
// differences of its tree as records), two more keys follow "promoted":
// "resync_active":true and "resync_until" (the seq RESYNC_DONE named; 0 until it came).
// They are written only while a resync is active, so the file of a source that is not
// resyncing is byte for byte what earlier versions wrote; a file without them reads as
// not resyncing.
//
// `mirrord adopt` adds "adopted":true (after the resync keys) until the first RESYNC: the
// image follows no stream of the source yet. Written only while true.
//
// Thread-safety: functions are thread-safe for different paths; the store calls them
// for its own directory under its apply lock.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace mirror::d {

inline constexpr int kStateFormatVersion = 1;
inline constexpr const char* kStateFileName = "state";

struct SourceState {
  std::string source_id;
  std::string volume_id;  // empty until a source first connects
  uint64_t epoch = 0;
  uint64_t applied_seq = 0;
  uint64_t replay_through = 0;
  bool promoted = false;
  uint64_t promoted_seq = 0;  // when promoted: the last record the image holds
  // The image is not consistent: a resync began and its records are not all applied.
  bool resync_active = false;
  uint64_t resync_until = 0;  // while active: RESYNC_DONE's seq, 0 until it came
  // Set by `mirrord adopt`: the image follows no stream of the source, so its first
  // session is told to resync (WELCOME resume_seq 0); the first RESYNC clears it.
  bool adopted = false;
  friend bool operator==(const SourceState&, const SourceState&) = default;
};

// The state at `path`. NotFound when there is none; Corruption (naming the file and the
// field) when it does not parse, misses a field or fails its CRC; Mismatch for another
// version.
common::Result<SourceState> ReadStateFile(const std::string& path);

// Replaces the state at `path` atomically and durably (see above).
common::Status WriteStateFile(const std::string& path, const SourceState& state);

}  // namespace mirror::d
