// The lock of one source's store directory: STATE_DIR/<source>/lock, an exclusive
// flock held for as long as a process works on the store (a running mirrord holds the
// locks of all its open stores; `mirrord promote` and `mirrord adopt` on a stopped
// mirrord hold the one they change). The kernel drops it when the holder dies, so a
// kill -9 leaves nothing to clean up.
//
// Thread-safety: plain function; the returned fd is the lock (close it to release).
#pragma once

#include <string>

#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::d {

inline constexpr char kStoreLockName[] = "lock";

// Takes the lock of the store directory `dir` (which must exist) without waiting.
// Unavailable, naming the directory, when another process holds it.
common::Result<common::UniqueFd> LockStoreDir(const std::string& dir);

}  // namespace mirror::d
