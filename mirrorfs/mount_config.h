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

struct MountConfig {
  std::string source_id;     // default: the hostname
  std::string journal_path;  // default: /var/lib/mirrorfs/<source_id>/journal
  uint64_t journal_size = 0;
  std::chrono::milliseconds cp_interval{0};  // 0: no periodic consistency points
  bool allow_other = false;  // from the file (on the command line they are libfuse's)
  bool ro = false;
};

const common::Schema& MountSchema();

// InvalidArgument (a usage error, naming the key) for a bad value or a mirroring option,
// which this version does not support yet; IOError for an unreadable config file.
common::Result<MountConfig> LoadMountConfig(const MountOptions& options);

// The libfuse options the config adds (allow_other, ro from the file), without repeats.
void AddConfigFuseOptions(const MountConfig& config, MountOptions* options);

}  // namespace mirror::fs
