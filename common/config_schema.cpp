#include "common/config_schema.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common/config_units.h"

namespace mirror::common {
namespace {

using std::chrono::milliseconds;

// A schema is code, not input: a mistake in one is a bug to fix, not an error to return.
[[noreturn]] void SchemaBug(std::string_view name, std::string_view what) {
  std::fprintf(stderr, "mirror::common::Schema: option '%.*s': %.*s\n",
               static_cast<int>(name.size()), name.data(), static_cast<int>(what.size()),
               what.data());
  std::abort();
}

bool IsSnakeCase(std::string_view name) {
  if (name.empty() || name[0] < 'a' || name[0] > 'z') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string JoinAllowed(const std::vector<std::string>& allowed, std::string_view separator) {
  std::string out;
  for (const std::string& a : allowed) {
    if (!out.empty()) out += separator;
    out += a;
  }
  return out;
}

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
// neighbouring characters each cost one ("mdoe" is one step from "mode").
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string ShowLimit(OptionType type, uint64_t limit) {
  if (type == OptionType::kDuration) {
    return FormatDuration(milliseconds(static_cast<milliseconds::rep>(limit)));
  }
  std::string plain = std::to_string(limit);
  if (type == OptionType::kSize && FormatSize(limit) != plain) {
    plain += " (" + FormatSize(limit) + ")";
  }
  return plain;
}

}  // namespace

std::string_view OptionTypeLabel(OptionType type) {
  switch (type) {
    case OptionType::kString:
      return "STRING";
    case OptionType::kBool:
      return "BOOL";
    case OptionType::kUint:
      return "N";
    case OptionType::kSize:
      return "SIZE";
    case OptionType::kDuration:
      return "DURATION";
    case OptionType::kEnum:
      return "ENUM";
    case OptionType::kStringList:
      return "LIST";
    case OptionType::kObject:
      return "OBJECT";
    case OptionType::kObjectList:
      return "LIST OF OBJECTS";
  }
  return "?";
}

bool OptionSpec::settable_by_option() const {
  switch (type) {
    case OptionType::kStringList:
    case OptionType::kObjectList:
      return false;
    case OptionType::kObject:
      return !shorthand.empty();
    default:
      return true;
  }
}

std::string OptionSpec::Expected() const {
  switch (type) {
    case OptionType::kString:
      return "a string";
    case OptionType::kBool:
      return "a boolean";
    case OptionType::kUint:
      return "a non-negative integer";
    case OptionType::kSize:
      return "a size (an integer or a string like \"64M\")";
    case OptionType::kDuration:
      return "a duration (seconds or a string like \"500ms\")";
    case OptionType::kEnum:
      return "one of " + JoinAllowed(allowed, ", ");
    case OptionType::kStringList:
      return "an array of strings";
    case OptionType::kObject:
      if (!shorthand.empty()) return "an object or " + nested->Find(shorthand)->Expected();
      return "an object";
    case OptionType::kObjectList:
      return "an array of objects";
  }
  return "?";
}

Result<ScalarValue> OptionSpec::ParseText(std::string_view text) const {
  ScalarValue value;
  switch (type) {
    case OptionType::kString:
    case OptionType::kEnum:
      value = std::string(text);
      break;
    case OptionType::kBool: {
      std::optional<bool> b = ParseBool(text);
      if (!b) {
        return Status::InvalidArgument(QuoteForMessage(text) +
                                       " is not a boolean (use true or false)");
      }
      value = *b;
      break;
    }
    case OptionType::kUint: {
      MIRROR_ASSIGN_OR_RETURN(value, ParseUint(text));
      break;
    }
    case OptionType::kSize: {
      MIRROR_ASSIGN_OR_RETURN(value, ParseSize(text));
      break;
    }
    case OptionType::kDuration: {
      MIRROR_ASSIGN_OR_RETURN(value, ParseDuration(text));
      break;
    }
    case OptionType::kStringList:
    case OptionType::kObject:
    case OptionType::kObjectList:
      return Status::InvalidArgument("can only be set in a config file");
  }
  MIRROR_RETURN_IF_ERROR(CheckValue(value, QuoteForMessage(text)));
  return value;
}

Status OptionSpec::CheckValue(const ScalarValue& value, std::string_view shown) const {
  uint64_t number = 0;
  if (const auto* u = std::get_if<uint64_t>(&value)) number = *u;
  if (const auto* ms = std::get_if<milliseconds>(&value))
    number = static_cast<uint64_t>(ms->count());
  if (std::holds_alternative<uint64_t>(value) || std::holds_alternative<milliseconds>(value)) {
    std::string s(shown);
    if (number < min)
      return Status::InvalidArgument(s + " is below the minimum " + ShowLimit(type, min));
    if (number > max)
      return Status::InvalidArgument(s + " is above the maximum " + ShowLimit(type, max));
    return Status::Ok();
  }
  const auto* text = std::get_if<std::string>(&value);
  if (text == nullptr) return Status::Ok();  // bool: nothing to check
  if (type == OptionType::kEnum) {
    if (std::find(allowed.begin(), allowed.end(), *text) != allowed.end()) return Status::Ok();
    return Status::InvalidArgument(std::string(shown) + " is not one of " +
                                   JoinAllowed(allowed, ", "));
  }
  if (non_empty && text->empty()) return Status::InvalidArgument("must not be empty");
  if (max_length != 0 && text->size() > max_length) {
    return Status::InvalidArgument(std::string(shown) + " is longer than " +
                                   std::to_string(max_length) + " bytes");
  }
  if (pattern && !pattern(*text)) {
    return Status::InvalidArgument(std::string(shown) + " is not a valid " + pattern_what);
  }
  return Status::Ok();
}

Status OptionSpec::CheckCount(size_t entries) const {
  if (entries < min) {
    return Status::InvalidArgument("has " + std::to_string(entries) + " entries, at least " +
                                   std::to_string(min) + " needed");
  }
  if (entries > max) {
    return Status::InvalidArgument("has " + std::to_string(entries) + " entries, at most " +
                                   std::to_string(max) + " allowed");
  }
  return Status::Ok();
}

OptionSpec& OptionBuilder::spec() { return schema_->options_[index_]; }

OptionBuilder& OptionBuilder::Min(uint64_t min) {
  OptionType t = spec().type;
  if (t != OptionType::kUint && t != OptionType::kSize && t != OptionType::kStringList &&
      t != OptionType::kObjectList) {
    SchemaBug(spec().name, "Min(number) needs a uint, size or list option");
  }
  spec().min = min;
  return *this;
}

OptionBuilder& OptionBuilder::Max(uint64_t max) {
  OptionType t = spec().type;
  if (t != OptionType::kUint && t != OptionType::kSize && t != OptionType::kStringList &&
      t != OptionType::kObjectList) {
    SchemaBug(spec().name, "Max(number) needs a uint, size or list option");
  }
  spec().max = max;
  return *this;
}

OptionBuilder& OptionBuilder::Min(milliseconds min) {
  if (spec().type != OptionType::kDuration || min.count() < 0) {
    SchemaBug(spec().name, "Min(duration) needs a duration option and a limit >= 0");
  }
  spec().min = static_cast<uint64_t>(min.count());
  return *this;
}

OptionBuilder& OptionBuilder::Max(milliseconds max) {
  if (spec().type != OptionType::kDuration || max.count() < 0) {
    SchemaBug(spec().name, "Max(duration) needs a duration option and a limit >= 0");
  }
  spec().max = static_cast<uint64_t>(max.count());
  return *this;
}

OptionBuilder& OptionBuilder::NonEmpty() {
  if (spec().type != OptionType::kString && spec().type != OptionType::kStringList) {
    SchemaBug(spec().name, "NonEmpty() needs a string or string list option");
  }
  spec().non_empty = true;
  return *this;
}

OptionBuilder& OptionBuilder::MaxLength(size_t max_length) {
  if (spec().type != OptionType::kString && spec().type != OptionType::kStringList) {
    SchemaBug(spec().name, "MaxLength() needs a string or string list option");
  }
  spec().max_length = max_length;
  return *this;
}

OptionBuilder& OptionBuilder::Check(StringCheck check, std::string what) {
  if (spec().type != OptionType::kString && spec().type != OptionType::kStringList) {
    SchemaBug(spec().name, "Check() needs a string or string list option");
  }
  spec().pattern = std::move(check);
  spec().pattern_what = std::move(what);
  return *this;
}

OptionBuilder& OptionBuilder::Shorthand(std::string nested_key) {
  const OptionSpec* target =
      spec().type == OptionType::kObject ? spec().nested->Find(nested_key) : nullptr;
  if (target == nullptr || !target->settable_by_option() || target->type == OptionType::kObject) {
    SchemaBug(spec().name, "Shorthand() needs an object option and one of its scalar keys");
  }
  spec().shorthand = std::move(nested_key);
  return *this;
}

OptionBuilder Schema::Add(std::string name, OptionType type, std::string description,
                          Presence presence) {
  if (!IsSnakeCase(name)) SchemaBug(name, "names are snake_case");
  if (Find(name) != nullptr) SchemaBug(name, "registered twice");
  bool container = type == OptionType::kStringList || type == OptionType::kObject ||
                   type == OptionType::kObjectList;
  if (container && std::holds_alternative<Default>(presence)) {
    SchemaBug(name, "lists and objects take no Default (absent means empty)");
  }
  OptionSpec& spec = options_.emplace_back();
  spec.name = std::move(name);
  spec.type = type;
  spec.description = std::move(description);
  spec.presence = std::move(presence);
  return OptionBuilder(this, options_.size() - 1);
}

OptionBuilder Schema::String(std::string name, std::string description, Presence presence) {
  return Add(std::move(name), OptionType::kString, std::move(description), std::move(presence));
}

OptionBuilder Schema::Bool(std::string name, std::string description, Presence presence) {
  return Add(std::move(name), OptionType::kBool, std::move(description), std::move(presence));
}

OptionBuilder Schema::Uint(std::string name, std::string description, Presence presence) {
  return Add(std::move(name), OptionType::kUint, std::move(description), std::move(presence));
}

OptionBuilder Schema::Size(std::string name, std::string description, Presence presence) {
  return Add(std::move(name), OptionType::kSize, std::move(description), std::move(presence));
}

OptionBuilder Schema::Duration(std::string name, std::string description, Presence presence) {
  return Add(std::move(name), OptionType::kDuration, std::move(description), std::move(presence));
}

OptionBuilder Schema::StringList(std::string name, std::string description, Presence presence) {
  return Add(std::move(name), OptionType::kStringList, std::move(description), std::move(presence));
}

OptionBuilder Schema::Enum(std::string name, std::string description,
                           std::vector<std::string> allowed, Presence presence) {
  if (allowed.empty()) SchemaBug(name, "an enum needs at least one allowed value");
  OptionBuilder b =
      Add(std::move(name), OptionType::kEnum, std::move(description), std::move(presence));
  options_.back().allowed = std::move(allowed);
  return b;
}

OptionBuilder Schema::Object(std::string name, std::string description, const Schema& nested,
                             Presence presence) {
  OptionBuilder b =
      Add(std::move(name), OptionType::kObject, std::move(description), std::move(presence));
  options_.back().nested = std::make_shared<const Schema>(nested);
  return b;
}

OptionBuilder Schema::ObjectList(std::string name, std::string description, const Schema& nested,
                                 Presence presence) {
  OptionBuilder b =
      Add(std::move(name), OptionType::kObjectList, std::move(description), std::move(presence));
  options_.back().nested = std::make_shared<const Schema>(nested);
  return b;
}

std::optional<size_t> Schema::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < options_.size(); ++i) {
    if (options_[i].name == name) return i;
  }
  return std::nullopt;
}

const OptionSpec* Schema::Find(std::string_view name) const {
  std::optional<size_t> i = IndexOf(name);
  return i ? &options_[*i] : nullptr;
}

std::string_view Schema::Suggest(std::string_view unknown) const {
  std::string_view best;
  size_t best_distance = 3;  // suggest only within distance 2
  for (const OptionSpec& o : options_) {
    size_t d = EditDistance(unknown, o.name);
    // A distance as long as the name itself would turn "x" into any short name.
    if (d < best_distance && d < o.name.size()) {
      best = o.name;
      best_distance = d;
    }
  }
  return best;
}

std::string Schema::HelpText(std::string_view prefix) const {
  std::string out;
  for (const OptionSpec& o : options_) {
    std::string name = std::string(prefix) + o.name;
    std::string label = o.type == OptionType::kEnum ? JoinAllowed(o.allowed, "|")
                                                    : std::string(OptionTypeLabel(o.type));
    std::string head = "  " + name + "=" + label;
    if (head.size() < 32) head.resize(32, ' ');
    out += head + "  " + o.description;
    if (o.required()) out += " (required)";
    if (const Default* d = o.default_value()) out += " (default: " + d->text + ")";
    out += "\n";
    if (o.type == OptionType::kObject) out += o.nested->HelpText(name + ".");
    if (o.type == OptionType::kObjectList) out += o.nested->HelpText(name + "[].");
  }
  return out;
}

}  // namespace mirror::common
