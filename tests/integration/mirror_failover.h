// Helpers of the failover and failback tests (issue 6): running `mirrord promote` and
// `mirrord adopt`, mounting an existing directory (a promoted image, an old BACKING) with
// mirrorfs, and reading what a mount or a journal says about itself.
//
// Thread-safety: one owner (the test's main thread).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fuse_mount.h"

namespace mirror::itest {

struct CommandOutcome {
  int exit_code = -1;
  std::string output;   // stdout and stderr
  nlohmann::json json;  // the --json object (discarded when it did not parse)
};
using PromoteOutcome = CommandOutcome;

// `mirrord promote SOURCE --state-dir DIR [extra] [--json]`.
CommandOutcome Promote(const std::string& state_dir, const std::string& source,
                       const std::vector<std::string>& extra = {}, bool json = true);
// `mirrord adopt SOURCE [args...] --state-dir DIR --json`.
CommandOutcome Adopt(const std::string& state_dir, const std::string& source,
                     const std::vector<std::string>& args);

// A mirrorfs mount (the binary of MIRROR_IT_FS) of `backing`, an existing directory, with
// `opts` (a journal in the mount's own temp dir unless given). nullptr and *error on
// failure. The FuseMount unmounts and stops it; it never removes `backing`.
std::unique_ptr<FuseMount> MountDir(const std::string& backing,
                                    const std::vector<std::string>& opts, std::string* error);
// `mirrorfs status MNT --json`, parsed (a discarded value when it failed).
nlohmann::json MountStatus(const FuseMount& mount);
// `mirrorfs checkpoint MNT`'s exit code.
int MountCheckpoint(const FuseMount& mount);
// The epoch in a journal's header (0 when unreadable).
uint64_t JournalEpoch(const std::string& journal_path);

}  // namespace mirror::itest
