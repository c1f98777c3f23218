// `mirrord promote SOURCE [--state-dir DIR] [--config FILE] [--force] [--json]
// [--mountpoint MNT]`: makes SOURCE's image a primary (SourceStore::Promote; the runbook
// is docs/operations.md).
//
// With mirrord running, the request goes through its control socket, so the running
// daemon applies, raises the epoch and refuses the source's connection at once. With
// mirrord stopped (nothing listens on DIR/mirrord.sock), the store is opened directly,
// under its lock (store_lock.h), recovered and promoted.
//
// Exit codes: 0 promoted, or already promoted (a no-op that says so); 1 usage error;
// 2 refused: the image cannot be consistent now (it says why; --force promotes anyway and
// says what may be missing); 3 failed: no such source, the store is locked by a mirrord
// whose control socket does not answer, or an I/O or apply error.
//
// Thread-safety: plain functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "mirrord/source_store.h"

namespace mirror::d {

inline constexpr int kPromoteDone = 0;
inline constexpr int kPromoteUsage = 1;
inline constexpr int kPromoteRefused = 2;
inline constexpr int kPromoteFailed = 3;

// The outcome as one JSON object (the control reply, and what --json prints):
// {"ok":true,"source","outcome":"promoted"|"already"|"refused"|"failed","reason",
//  "epoch","promoted_seq","received_seq","forced","warnings":[...],"image",
//  "mount_command"}. `image` is the store's image directory.
nlohmann::json PromoteOutcomeJson(const std::string& source, const std::string& image, bool forced,
                                  const common::Result<PromoteResult>& result);

// Runs the command; `args` are the words after "promote".
int PromoteCommand(const std::vector<std::string>& args);

}  // namespace mirror::d
