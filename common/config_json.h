// Internal to the config module (config.cpp): JSON config text in, a document out.
//
// Parses with nlohmann_json and turns its exceptions into Status values: a syntax error
// names the line and column, a duplicate key (which nlohmann would silently resolve to
// the last one) is refused with its key path. Also reads config files and spells key
// paths the way every config error does: "limits.max_frame", "sources[1].id".
// All functions are thread-safe.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace mirror::common::config_internal {

// ordered_json keeps the file's key order, so the first error reported is the first
// one in the file rather than the alphabetically first.
using Json = nlohmann::ordered_json;

inline constexpr size_t kMaxConfigFileBytes = 4u << 20;

// Errors: "<origin>: line 3, column 7: JSON syntax error ..." or
// "<origin>: duplicate key 'sources[0].id'". Never throws.
Result<Json> ParseConfigJson(std::string_view text, std::string_view origin);

// The whole file, at most kMaxConfigFileBytes; IOError with the path and strerror.
Result<std::string> ReadConfigFile(const std::string& path);

// What the user wrote, for "expected X, got Y": numbers as written ("-1", "1.5"), other
// values by kind ("a string", "an array", "null").
std::string DescribeJson(const Json& v);

std::string JoinKey(std::string_view parent, std::string_view name);  // "a" + "b" -> "a.b"
std::string IndexKey(std::string_view parent, size_t index);          // "a", 1 -> "a[1]"

}  // namespace mirror::common::config_internal
