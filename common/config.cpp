#include "common/config.h"

#include <cstdio>
#include <cstdlib>
#include <optional>

#include "common/config_json.h"
#include "common/config_units.h"

namespace mirror::common {
namespace {

using config_internal::DescribeJson;
using config_internal::IndexKey;
using config_internal::JoinKey;
using config_internal::Json;
using std::chrono::milliseconds;

[[noreturn]] void Misuse(std::string_view key, std::string_view what) {
  std::fprintf(stderr, "mirror::common::Config: key '%.*s' %.*s\n", static_cast<int>(key.size()),
               key.data(), static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace

// Fills Configs from JSON and -o text. Every error names the origin and the key path
// ("limits.max_frame", "sources[1].id").
class ConfigLoader {
 public:
  explicit ConfigLoader(std::string_view origin) : origin_(origin) {}

  static Config Empty(std::shared_ptr<const Schema> schema) { return Config(std::move(schema)); }
  static void Store(Config::Value& out, ScalarValue value) {
    std::visit([&out](auto&& x) { out.emplace<std::decay_t<decltype(x)>>(std::move(x)); },
               std::move(value));
  }

  Status FillObject(Config& config, const Json& object, const std::string& path) const;
  Status Finish(Config& config, const std::string& path) const;
  Status Apply(Config& config, std::string_view key, std::optional<std::string_view> value) const;

 private:
  Status FillValue(Config& config, size_t index, const Json& v, const std::string& path) const;
  Status FillScalar(const OptionSpec& spec, const Json& v, Config::Value& out) const;
  Status FillList(const OptionSpec& spec, const Json& v, const std::string& path,
                  Config::Value& out) const;
  Status FillDefault(const OptionSpec& spec, const std::string& path, Config::Value& out) const;

  Status KeyError(std::string_view path, const Status& detail) const {
    return detail.Annotate(std::string(origin_) + ": key '" + std::string(path) + "'");
  }
  Status TypeError(const OptionSpec& spec, const Json& v, std::string_view path) const {
    return KeyError(
        path, Status::InvalidArgument("expected " + spec.Expected() + ", got " + DescribeJson(v)));
  }
  Status UnknownKey(const Schema& schema, std::string_view parent, std::string_view name,
                    Code code) const;

  std::string_view origin_;
};

Config::Config() : Config(std::make_shared<const Schema>()) {}

Config::Config(std::shared_ptr<const Schema> schema)
    : schema_(std::move(schema)), values_(schema_->options().size()) {}

const Config::Value& Config::Get(std::string_view key, OptionType type) const {
  std::optional<size_t> i = schema_->IndexOf(key);
  if (!i) Misuse(key, "is not in the schema");
  OptionType actual = schema_->options()[*i].type;
  if (actual != type && !(type == OptionType::kString && actual == OptionType::kEnum)) {
    Misuse(key, "is read with the getter of another type");
  }
  const Value& v = values_[*i];
  if (std::holds_alternative<std::monostate>(v)) Misuse(key, "has no value (check Has first)");
  return v;
}

bool Config::Has(std::string_view key) const {
  std::optional<size_t> i = schema_->IndexOf(key);
  if (!i) Misuse(key, "is not in the schema");
  return !std::holds_alternative<std::monostate>(values_[*i]);
}

const std::string& Config::GetString(std::string_view key) const {
  return std::get<std::string>(Get(key, OptionType::kString));
}
bool Config::GetBool(std::string_view key) const {
  return std::get<bool>(Get(key, OptionType::kBool));
}
uint64_t Config::GetUint(std::string_view key) const {
  return std::get<uint64_t>(Get(key, OptionType::kUint));
}
uint64_t Config::GetSize(std::string_view key) const {
  return std::get<uint64_t>(Get(key, OptionType::kSize));
}
milliseconds Config::GetDuration(std::string_view key) const {
  return std::get<milliseconds>(Get(key, OptionType::kDuration));
}
const std::vector<std::string>& Config::GetStringList(std::string_view key) const {
  return std::get<std::vector<std::string>>(Get(key, OptionType::kStringList));
}
const Config& Config::GetObject(std::string_view key) const {
  return std::get<std::vector<Config>>(Get(key, OptionType::kObject)).front();
}
const std::vector<Config>& Config::GetObjectList(std::string_view key) const {
  return std::get<std::vector<Config>>(Get(key, OptionType::kObjectList));
}

Status ConfigLoader::UnknownKey(const Schema& schema, std::string_view parent,
                                std::string_view name, Code code) const {
  std::string msg = std::string(origin_) + ": unknown key '" + JoinKey(parent, name) + "'";
  std::string_view suggestion = schema.Suggest(name);
  if (!suggestion.empty()) msg += " (did you mean '" + JoinKey(parent, suggestion) + "'?)";
  return code == Code::kNotFound ? Status::NotFound(std::move(msg))
                                 : Status::InvalidArgument(std::move(msg));
}

Status ConfigLoader::FillObject(Config& config, const Json& object, const std::string& path) const {
  for (const auto& [name, v] : object.items()) {
    std::optional<size_t> i = config.schema_->IndexOf(name);
    if (!i) return UnknownKey(*config.schema_, path, name, Code::kInvalidArgument);
    MIRROR_RETURN_IF_ERROR(FillValue(config, *i, v, JoinKey(path, name)));
  }
  return Status::Ok();
}

Status ConfigLoader::FillValue(Config& config, size_t index, const Json& v,
                               const std::string& path) const {
  const OptionSpec& spec = config.schema_->options()[index];
  Config::Value& out = config.values_[index];
  switch (spec.type) {
    case OptionType::kStringList:
    case OptionType::kObjectList:
      return FillList(spec, v, path, out);
    case OptionType::kObject: {
      Config nested = Empty(spec.nested);
      if (v.is_object()) {
        MIRROR_RETURN_IF_ERROR(FillObject(nested, v, path));
      } else if (!spec.shorthand.empty() && !v.is_array()) {
        // {"retention": "7d"} stands for {"retention": {"<shorthand>": "7d"}}.
        MIRROR_RETURN_IF_ERROR(FillValue(nested, *spec.nested->IndexOf(spec.shorthand), v, path));
      } else {
        return TypeError(spec, v, path);
      }
      out = std::vector<Config>{std::move(nested)};
      return Status::Ok();
    }
    default: {
      Status s = FillScalar(spec, v, out);
      return s.ok() ? s : KeyError(path, s);
    }
  }
}

// Scalars: JSON strings go through the -o syntax for text-like types (so "64K" and "5s"
// work in files); numbers are accepted for integers, sizes (bytes) and durations (seconds).
Status ConfigLoader::FillScalar(const OptionSpec& spec, const Json& v, Config::Value& out) const {
  auto expected = [&] {
    return Status::InvalidArgument("expected " + spec.Expected() + ", got " + DescribeJson(v));
  };
  ScalarValue value;
  switch (spec.type) {
    case OptionType::kBool:
      if (!v.is_boolean()) return expected();
      value = v.get<bool>();
      break;
    case OptionType::kString:
    case OptionType::kEnum:
      if (!v.is_string()) return expected();
      break;
    case OptionType::kSize:
    case OptionType::kDuration:
      if (!v.is_string() && !v.is_number_unsigned()) return expected();
      break;
    case OptionType::kUint:
      if (!v.is_number_unsigned()) return expected();
      break;
    default:
      return expected();
  }
  if (v.is_string()) {
    MIRROR_ASSIGN_OR_RETURN(value, spec.ParseText(v.get_ref<const std::string&>()));
  } else if (v.is_number_unsigned()) {
    uint64_t n = v.get<uint64_t>();
    if (spec.type != OptionType::kDuration) {
      value = n;
    } else if (n > static_cast<uint64_t>(milliseconds::max().count()) / 1000) {
      return Status::InvalidArgument(v.dump() + " seconds is too large");
    } else {
      value = milliseconds(static_cast<milliseconds::rep>(n * 1000));
    }
    MIRROR_RETURN_IF_ERROR(spec.CheckValue(value, v.dump()));
  }
  Store(out, std::move(value));
  return Status::Ok();
}

Status ConfigLoader::FillList(const OptionSpec& spec, const Json& v, const std::string& path,
                              Config::Value& out) const {
  if (!v.is_array()) return TypeError(spec, v, path);
  std::vector<std::string> strings;
  std::vector<Config> objects;
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& element = v[i];
    std::string element_path = IndexKey(path, i);
    if (spec.type == OptionType::kStringList) {
      if (!element.is_string()) {
        return KeyError(element_path,
                        Status::InvalidArgument("expected a string, got " + DescribeJson(element)));
      }
      const std::string& s = element.get_ref<const std::string&>();
      Status st = spec.CheckValue(s, QuoteForMessage(s));
      if (!st.ok()) return KeyError(element_path, st);
      strings.push_back(s);
    } else {
      if (!element.is_object()) {
        return KeyError(element_path, Status::InvalidArgument("expected an object, got " +
                                                              DescribeJson(element)));
      }
      Config nested = Empty(spec.nested);
      MIRROR_RETURN_IF_ERROR(FillObject(nested, element, element_path));
      objects.push_back(std::move(nested));
    }
  }
  Status count = spec.CheckCount(v.size());
  if (!count.ok()) return KeyError(path, count);
  if (spec.type == OptionType::kStringList) {
    out = std::move(strings);
  } else {
    out = std::move(objects);
  }
  return Status::Ok();
}

Status ConfigLoader::FillDefault(const OptionSpec& spec, const std::string& path,
                                 Config::Value& out) const {
  if (const Default* d = spec.default_value()) {
    Result<ScalarValue> value = spec.ParseText(d->text);
    // Only a broken schema gets here; say so rather than blame the user's file.
    if (!value.ok()) return KeyError(path, value.status().Annotate("schema default is invalid"));
    Store(out, std::move(*value));
    return Status::Ok();
  }
  switch (spec.type) {
    case OptionType::kObject:
      out = std::vector<Config>{Empty(spec.nested)};
      break;
    case OptionType::kStringList:
      out = std::vector<std::string>{};
      break;
    case OptionType::kObjectList:
      out = std::vector<Config>{};
      break;
    default:
      return Status::Ok();  // optional without default: stays absent
  }
  if (spec.type == OptionType::kObject) return Status::Ok();
  Status count = spec.CheckCount(0);
  return count.ok() ? count : KeyError(path, count);
}

Status ConfigLoader::Finish(Config& config, const std::string& path) const {
  const std::vector<OptionSpec>& options = config.schema_->options();
  for (size_t i = 0; i < options.size(); ++i) {
    const OptionSpec& spec = options[i];
    Config::Value& v = config.values_[i];
    std::string key = JoinKey(path, spec.name);
    if (std::holds_alternative<std::monostate>(v)) {
      if (spec.required()) {
        return Status::InvalidArgument(std::string(origin_) + ": missing required key '" + key +
                                       "'");
      }
      MIRROR_RETURN_IF_ERROR(FillDefault(spec, key, v));
    }
    if (spec.type == OptionType::kObject) {
      MIRROR_RETURN_IF_ERROR(Finish(std::get<std::vector<Config>>(v).front(), key));
    } else if (spec.type == OptionType::kObjectList) {
      std::vector<Config>& list = std::get<std::vector<Config>>(v);
      for (size_t j = 0; j < list.size(); ++j) {
        MIRROR_RETURN_IF_ERROR(Finish(list[j], IndexKey(key, j)));
      }
    }
  }
  return Status::Ok();
}

Status ConfigLoader::Apply(Config& config, std::string_view key,
                           std::optional<std::string_view> value) const {
  // Resolve the dotted path first, so that a bad option leaves `config` unchanged.
  std::vector<size_t> indexes;
  const Schema* schema = config.schema_.get();
  const OptionSpec* spec = nullptr;
  std::string parent;
  for (size_t start = 0;;) {
    size_t dot = key.find('.', start);
    std::string_view name = key.substr(start, dot == std::string_view::npos ? dot : dot - start);
    std::optional<size_t> i = schema->IndexOf(name);
    if (!i) return UnknownKey(*schema, parent, name, Code::kNotFound);
    indexes.push_back(*i);
    spec = &schema->options()[*i];
    parent = JoinKey(parent, name);
    if (dot == std::string_view::npos) break;
    if (spec->type != OptionType::kObject) {
      return KeyError(parent, Status::InvalidArgument("has no nested keys"));
    }
    schema = spec->nested.get();
    start = dot + 1;
  }
  if (!spec->settable_by_option()) {
    if (spec->type == OptionType::kObject) {
      return KeyError(key, Status::InvalidArgument("is an object: set its keys (" +
                                                   std::string(key) + ".KEY=VALUE)"));
    }
    return KeyError(key, Status::InvalidArgument("can only be set in a config file"));
  }
  if (spec->type == OptionType::kObject) {  // "retention=7d": the object's shorthand key
    indexes.push_back(*spec->nested->IndexOf(spec->shorthand));
    spec = spec->nested->Find(spec->shorthand);
  }
  if (!value && spec->type != OptionType::kBool) {
    return KeyError(key, Status::InvalidArgument("needs a value (" + std::string(key) + "=" +
                                                 std::string(OptionTypeLabel(spec->type)) + ")"));
  }
  Result<ScalarValue> parsed = spec->ParseText(value.value_or("true"));
  if (!parsed.ok()) return KeyError(key, parsed.status());

  Config* target = &config;
  for (size_t n = 0; n + 1 < indexes.size(); ++n) {
    Config::Value& slot = target->values_[indexes[n]];
    if (std::holds_alternative<std::monostate>(slot)) {
      slot = std::vector<Config>{Empty(target->schema_->options()[indexes[n]].nested)};
    }
    target = &std::get<std::vector<Config>>(slot).front();
  }
  Store(target->values_[indexes.back()], std::move(*parsed));
  return Status::Ok();
}

namespace {

// Parses `text` and fills `config` from it; no defaults, no required keys yet.
Status FillFromJsonText(Config& config, std::string_view text, std::string_view origin) {
  MIRROR_ASSIGN_OR_RETURN(Json doc, config_internal::ParseConfigJson(text, origin));
  if (!doc.is_object()) {
    return Status::InvalidArgument(std::string(origin) +
                                   ": expected a JSON object at the top level, got " +
                                   DescribeJson(doc));
  }
  return ConfigLoader(origin).FillObject(config, doc, "");
}

}  // namespace

Result<Config> ParseJsonConfig(std::string_view text, const Schema& schema,
                               std::string_view origin) {
  Config config = ConfigLoader::Empty(std::make_shared<const Schema>(schema));
  MIRROR_RETURN_IF_ERROR(FillFromJsonText(config, text, origin));
  MIRROR_RETURN_IF_ERROR(ConfigLoader(origin).Finish(config, ""));
  return config;
}

Result<Config> LoadConfigFile(const std::string& path, const Schema& schema) {
  MIRROR_ASSIGN_OR_RETURN(std::string text, config_internal::ReadConfigFile(path));
  return ParseJsonConfig(text, schema, path);
}

Status ApplyOption(Config& config, std::string_view option, std::string_view origin) {
  size_t eq = option.find('=');
  if (eq == std::string_view::npos) return ConfigLoader(origin).Apply(config, option, std::nullopt);
  return ConfigLoader(origin).Apply(config, option.substr(0, eq), option.substr(eq + 1));
}

Status ApplyOption(Config& config, std::string_view key, std::string_view value,
                   std::string_view origin) {
  return ConfigLoader(origin).Apply(config, key, value);
}

Result<Config> LoadConfig(const Schema& schema, const std::string& path,
                          const std::vector<std::string>& options,
                          std::string_view options_origin) {
  Config config = ConfigLoader::Empty(std::make_shared<const Schema>(schema));
  if (!path.empty()) {
    MIRROR_ASSIGN_OR_RETURN(std::string text, config_internal::ReadConfigFile(path));
    MIRROR_RETURN_IF_ERROR(FillFromJsonText(config, text, path));
  }
  for (const std::string& option : options) {
    MIRROR_RETURN_IF_ERROR(ApplyOption(config, option, options_origin));
  }
  // A missing required key could have come from either; name the file when there is one.
  MIRROR_RETURN_IF_ERROR(ConfigLoader(path.empty() ? options_origin : path).Finish(config, ""));
  return config;
}

}  // namespace mirror::common
