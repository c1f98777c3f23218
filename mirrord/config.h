// mirrord's configuration: the JSON file (`mirrord serve --config FILE`) and the
// quick-start flags (`--listen --state-dir --secret-file`), as one typed struct.
// Keys, defaults and examples: mirrord/README.md.
//
// The file is checked against MirrordSchema() by common/config (errors name the file and
// the key, e.g. "/etc/mirrord/mirrord.json: key 'sources[1].allow_devices': expected a
// boolean"); then mirrord's own rules: every secret file readable by its owner only and not
// empty, source ids usable as directory names and unique, the largest record fitting in
// half of a source's memory. Flags override the file; without a file, --state-dir and
// --secret-file are required and any source id is accepted with the one secret.
//
// Thread-safety: a MirrordConfig is a value.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/config_schema.h"
#include "common/status.h"
#include "mirrord/source_store.h"

namespace mirror::d {

inline constexpr const char* kDefaultListen = "0.0.0.0:7400";
inline constexpr const char* kDefaultStateDir = "/var/lib/mirrord";
inline constexpr const char* kControlSocketName = "mirrord.sock";  // in the state dir

struct SourceConfig {
  std::string id;
  std::string secret;  // the bytes of secret_file, one trailing newline removed
  bool allow_devices = false;
  std::chrono::milliseconds retention{0};
};

struct MirrordConfig {
  std::vector<std::string> listen;  // "host:port", "[v6]:port"; port 0 picks a free one
  std::string state_dir;
  uint32_t max_frame_bytes = 0;
  uint32_t max_record_bytes = 0;
  uint64_t memory_bytes = 0;  // per source, both halves
  uint64_t segment_bytes = 0;
  std::chrono::milliseconds flush_delay{0};
  std::chrono::milliseconds lazy_flush_delay{0};
  std::chrono::milliseconds handshake_timeout{0};
  std::chrono::milliseconds idle_timeout{0};  // 0: none
  uint64_t max_connections = 0;               // connections served at once, authenticated or not
  uint32_t io_threads = 0;
  std::optional<std::string> any_source_secret;  // quick start: one secret, any source id
  std::vector<SourceConfig> sources;

  // The source with this id, or nullptr (any_source_secret applies then, if set).
  const SourceConfig* Find(std::string_view id) const;
  // What a store for `source_id` is opened with.
  StoreOptions StoreOptionsFor(std::string_view source_id) const;
};

struct QuickStartFlags {
  std::string config_path;          // --config
  std::vector<std::string> listen;  // --listen (repeatable)
  std::string state_dir;            // --state-dir
  std::string secret_file;          // --secret-file
};

const common::Schema& MirrordSchema();

common::Result<MirrordConfig> LoadMirrordConfig(const QuickStartFlags& flags);

// True for an id that can name its directory in the state dir: 1-127 bytes, no '/' or
// NUL, not starting with '.', not the control socket's name.
bool ValidSourceId(std::string_view id);

}  // namespace mirror::d
