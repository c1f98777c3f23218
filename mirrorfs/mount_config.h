// MountConfig: mirrorfs's own settings, from `-o key=value` options and the JSON file of
// `-o config=PATH` (common/config.h: an option overrides the file; docs/config.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/config_schema.h"
#include "common/status.h"
#include "mirrorfs/options.h"

namespace mirror::fs {

// How long a client's change waits before its call returns (DESIGN invariant 3).
enum class AckMode { kAsync, kSync, kDurable };
const char* AckModeName(AckMode mode);  // "async", "sync", "durable"

// Where and how the mount ships its records (issue 5); target empty: local-only.
struct MirrorConfig {
  std::string target;  // "HOST:PORT" as given
  std::string host;
  uint16_t port = 0;
  std::string secret;  // read from secret_file at load
  AckMode mode = AckMode::kSync;
  bool degrade = false;  // on_disconnect=degrade: writers go on while the link is down
  uint64_t max_lag = 0;  // async: writers wait while more journal bytes are unreceived
  bool enabled() const { return !target.empty(); }
};

struct MountConfig {
  std::string source_id;     // default: the hostname
  std::string journal_path;  // default: /var/lib/mirrorfs/<source_id>/journal
  uint64_t journal_size = 0;
  std::chrono::milliseconds cp_interval{0};  // 0: no periodic consistency points
  bool allow_other = false;  // from the file (on the command line they are libfuse's)
  bool ro = false;
  MirrorConfig mirror;
};

const common::Schema& MountSchema();

// InvalidArgument (a usage error, naming the key) for a bad value or a mirroring option
// without mirror=; IOError for an unreadable config file; the secret file's own error
// (annotated with the key) when it cannot be read or is open to others.
common::Result<MountConfig> LoadMountConfig(const MountOptions& options);

// The libfuse options the config adds (allow_other, ro from the file), without repeats.
void AddConfigFuseOptions(const MountConfig& config, MountOptions* options);

}  // namespace mirror::fs
