// The option table: which keys a config accepts, their types, defaults and limits.
//
// One Schema serves both ways in (docs/config.md): a JSON config file and `-o key=value`
// options. Each option has a snake_case name, a type, a description (for --help and the
// docs), a presence (a Default, Required, or neither: then Config::Has says whether it
// was given) and constraints. Build one like this:
//
//   Schema s;
//   s.String("source_id", "Name of this source", Required()).NonEmpty().MaxLength(64);
//   s.Size("journal_size", "Size of the journal file", Default("256M")).Min(1 << 20);
//   s.Duration("cp_interval", "Time between consistency points", Default("5s"));
//   s.Enum("mode", "Acknowledgement level", {"sync", "async", "durable"}, Default("sync"));
//   s.String("mirror", "Where mirrord listens", Required()).Check(IsHostPort, "HOST:PORT");
//   s.ObjectList("sources", "Sources allowed to connect", source_schema).Min(1);
//
// Defaults are written as -o values ("256M", "5s", "true") and checked like them when a
// config is finished. Registering a name twice, a name that is not snake_case, or a
// constraint that does not fit the type is a programming error: it aborts with a message.
//
// Thread-safety: building is single-threaded; a built Schema is immutable and may be
// shared. Nested schemas are copied in when registered.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/config_units.h"  // IsHostPort, IsAbsolutePath for Check()
#include "common/status.h"

namespace mirror::common {

enum class OptionType {
  kString,
  kBool,
  kUint,
  kSize,        // bytes; "64K" etc. (config_units.h)
  kDuration,    // milliseconds; "500ms", "5s" etc.
  kEnum,        // one of a fixed set of strings
  kStringList,  // JSON array of strings; file only
  kObject,      // nested Schema; absent means {} (its own defaults apply)
  kObjectList,  // JSON array of objects of a nested Schema; file only
};

// "SIZE", "DURATION", ... as shown in --help and docs.
std::string_view OptionTypeLabel(OptionType type);

// The value an absent option takes, written as on the command line: "256M", "5s", "sync".
struct Default {
  explicit Default(const char* value) : text(value) {}
  explicit Default(std::string value) : text(std::move(value)) {}
  template <class T>
  requires std::is_integral_v<T>
  explicit Default(T value) {
    if constexpr (std::is_same_v<T, bool>) {
      text = value ? "true" : "false";
    } else {
      text = std::to_string(value);
    }
  }
  std::string text;
};
// The option must be given; there is no default.
struct Required {};
// Neither (std::monostate): optional without a default, see Config::Has.
using Presence = std::variant<std::monostate, Default, Required>;

// A parsed scalar: bool (kBool), uint64_t (kUint, kSize), milliseconds (kDuration),
// std::string (kString, kEnum).
using ScalarValue = std::variant<bool, uint64_t, std::chrono::milliseconds, std::string>;
using StringCheck = std::function<bool(std::string_view)>;

class Schema;

struct OptionSpec {
  std::string name;
  OptionType type = OptionType::kString;
  std::string description;
  Presence presence;
  // Value limits (kUint, kSize; milliseconds for kDuration) or entry counts (lists).
  uint64_t min = 0;
  uint64_t max = std::numeric_limits<uint64_t>::max();
  bool non_empty = false;  // kString, and each string of a kStringList
  size_t max_length = 0;   // likewise; 0 means no limit
  StringCheck pattern;     // likewise; `pattern_what` names what it accepts
  std::string pattern_what;
  std::vector<std::string> allowed;      // kEnum
  std::shared_ptr<const Schema> nested;  // kObject, kObjectList
  std::string shorthand;                 // kObject: the nested key that a non-object value sets

  bool required() const { return std::holds_alternative<Required>(presence); }
  const Default* default_value() const { return std::get_if<Default>(&presence); }
  // Lists and objects without a shorthand can only come from a file.
  bool settable_by_option() const;
  // "a size (an integer or a string like \"64M\")", for "expected ..., got ..." errors.
  std::string Expected() const;

  // Parses `text` as this option's value (the -o syntax; also how JSON strings are read
  // for string, enum, size and duration options) and checks the constraints.
  Result<ScalarValue> ParseText(std::string_view text) const;
  // Checks limits, length, pattern and enum membership; `shown` is the value as the user
  // wrote it. Errors are InvalidArgument without origin or key: the caller adds them.
  Status CheckValue(const ScalarValue& value, std::string_view shown) const;
  Status CheckCount(size_t entries) const;  // lists: min/max entries
};

// Returned by the Schema's adders to chain constraints onto the option just added. Valid
// until the next option is added to the same Schema.
class OptionBuilder {
 public:
  OptionBuilder(Schema* schema, size_t index) : schema_(schema), index_(index) {}
  OptionBuilder& Min(uint64_t min);
  OptionBuilder& Max(uint64_t max);
  OptionBuilder& Min(std::chrono::milliseconds min);
  OptionBuilder& Max(std::chrono::milliseconds max);
  OptionBuilder& NonEmpty();
  OptionBuilder& MaxLength(size_t max_length);
  OptionBuilder& Check(StringCheck check, std::string what);
  OptionBuilder& Shorthand(std::string nested_key);

 private:
  OptionSpec& spec();

  Schema* schema_;
  size_t index_;
};

class Schema {
 public:
  OptionBuilder String(std::string name, std::string description, Presence presence = {});
  OptionBuilder Bool(std::string name, std::string description, Presence presence = {});
  OptionBuilder Uint(std::string name, std::string description, Presence presence = {});
  OptionBuilder Size(std::string name, std::string description, Presence presence = {});
  OptionBuilder Duration(std::string name, std::string description, Presence presence = {});
  OptionBuilder Enum(std::string name, std::string description, std::vector<std::string> allowed,
                     Presence presence = {});
  OptionBuilder StringList(std::string name, std::string description, Presence presence = {});
  OptionBuilder Object(std::string name, std::string description, const Schema& nested,
                       Presence presence = {});
  OptionBuilder ObjectList(std::string name, std::string description, const Schema& nested,
                           Presence presence = {});

  const std::vector<OptionSpec>& options() const { return options_; }
  std::optional<size_t> IndexOf(std::string_view name) const;
  const OptionSpec* Find(std::string_view name) const;
  // The known name closest to `unknown` (edit distance at most 2, counting a swap of
  // neighbours as one), or "" when none is close enough to suggest.
  std::string_view Suggest(std::string_view unknown) const;
  // One line per option, "  name=TYPE  description (default: X)"; nested options are
  // listed as "parent.name"; `prefix` is prepended to every name.
  std::string HelpText(std::string_view prefix = "") const;

 private:
  friend class OptionBuilder;
  OptionBuilder Add(std::string name, OptionType type, std::string description, Presence presence);

  std::vector<OptionSpec> options_;
};

}  // namespace mirror::common
