// Typed configuration: one option table (config_schema.h) filled from a JSON config file
// and from `-o key=value` options (docs/config.md).
//
//   MIRROR_ASSIGN_OR_RETURN(Config config, LoadConfig(schema, "/etc/mirrord/mirrord.json",
//                                                     {"journal_size=1G", "ro"}));
//   uint64_t journal_size = config.GetSize("journal_size");
//
// Precedence: a -o option overrides the file's value for the same key; defaults fill only
// what neither gave. Every value is checked against the schema on the way in; the first
// problem is returned as InvalidArgument naming the origin (file path or "-o option") and
// the key path, e.g.
//   /etc/mirrord/mirrord.json: key 'sources[1].allow_devices': expected a boolean, got a string
// An unreadable file is IOError. Nothing in this module throws (nlohmann_json's exceptions
// are caught inside).
//
// Typed access is cheap (a short linear search, no copies). Asking for a key the schema
// does not have, with the getter of another type, or for an absent optional key without
// default (check Has() first) is a programming error: it aborts with a message naming the
// key, in release builds too.
//
// Thread-safety: a Config is a value; const methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/config_schema.h"
#include "common/status.h"

namespace mirror::common {

class Config {
 public:
  Config();  // empty schema, no values; something to assign a loaded config to

  const Schema& schema() const { return *schema_; }

  // True when the key has a value: given, or defaulted. Objects always have one.
  bool Has(std::string_view key) const;
  const std::string& GetString(std::string_view key) const;  // kString and kEnum
  bool GetBool(std::string_view key) const;
  uint64_t GetUint(std::string_view key) const;
  uint64_t GetSize(std::string_view key) const;  // bytes
  std::chrono::milliseconds GetDuration(std::string_view key) const;
  const std::vector<std::string>& GetStringList(std::string_view key) const;
  const Config& GetObject(std::string_view key) const;
  const std::vector<Config>& GetObjectList(std::string_view key) const;

 private:
  friend class ConfigLoader;  // config.cpp: fills values from JSON and -o options
  // kObject holds exactly one Config, kObjectList any number.
  using Value = std::variant<std::monostate, bool, uint64_t, std::chrono::milliseconds, std::string,
                             std::vector<std::string>, std::vector<Config>>;

  explicit Config(std::shared_ptr<const Schema> schema);
  const Value& Get(std::string_view key, OptionType type) const;

  std::shared_ptr<const Schema> schema_;
  std::vector<Value> values_;  // values_[i] belongs to schema_->options()[i]
};

// Parses a JSON config (the text of a file) against `schema`: unknown keys, duplicate
// keys, wrong types, out-of-range values and missing required keys are errors that start
// with "<origin>: ". Fills defaults for absent optional keys.
Result<Config> ParseJsonConfig(std::string_view text, const Schema& schema,
                               std::string_view origin);

// Reads `path` (at most 4 MiB) and parses it as above with the path as origin.
Result<Config> LoadConfigFile(const std::string& path, const Schema& schema);

// Sets one option over whatever `config` holds: "key=value", or "key" alone for a
// boolean (true). `key` may be a dotted path into nested objects ("limits.max_frame");
// lists can only be set in a file. Booleans take true/false, yes/no, on/off, 1/0; sizes
// and durations the units of config_units.h. Errors start with "<origin>: ". An unknown
// key is NotFound (so a caller may pass the option on, e.g. to libfuse); every other
// error is InvalidArgument. On error `config` is unchanged.
Status ApplyOption(Config& config, std::string_view option, std::string_view origin);
Status ApplyOption(Config& config, std::string_view key, std::string_view value,
                   std::string_view origin);

// The usual way in: the file at `path` (none if empty), then each of `options` over it,
// then defaults; required keys may come from either. Errors as above; options use
// `options_origin`.
Result<Config> LoadConfig(const Schema& schema, const std::string& path,
                          const std::vector<std::string>& options,
                          std::string_view options_origin = "-o option");

}  // namespace mirror::common
