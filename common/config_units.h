// Text forms of the values that config options take: sizes, durations, booleans, plain
// unsigned integers and HOST:PORT addresses, as written in a JSON config file or in a `-o
// key=value` option (docs/config.md, "Units").
//
//   size      digits, then an optional unit K, M, G or T (powers of 1024), optionally
//             followed by "B" or "iB"; case-insensitive: "4096", "64K", "64KiB", "1g".
//             No fractions, signs or spaces; values above 2^64-1 are refused.
//   duration  digits, then an optional unit ms, s, m, h or d; case-insensitive; a bare
//             number is seconds (as in systemd): "500ms", "5", "5s", "2m", "1h", "7d".
//             Stored as milliseconds; values above 2^63-1 ms are refused.
//   bool      true/false, yes/no, on/off, 1/0; case-insensitive.
//
// Errors are InvalidArgument with a message that quotes the text and says what is
// expected, e.g. `"12Q" is not a size (use a number with K, M, G or T)`; callers put the
// origin and key in front. All functions are pure and thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/quote.h"

#include "common/status.h"

namespace mirror::common {

Result<uint64_t> ParseUint(std::string_view text);
Result<uint64_t> ParseSize(std::string_view text);
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
std::optional<bool> ParseBool(std::string_view text);

// The shortest exact spelling in the largest unit that divides the value:
// 65536 -> "64K", 4097 -> "4097", 0 -> "0". ParseSize(FormatSize(n)) == n.
std::string FormatSize(uint64_t bytes);
// Likewise for durations: 500ms -> "500ms", 5000ms -> "5s", 7200000ms -> "2h".
std::string FormatDuration(std::chrono::milliseconds duration);

// Checks for Schema's Check(): "host:port" or "[v6addr]:port" with a port 1..65535 (host
// names: letters, digits, '.', '-', '_'), and a path that starts with '/'.
bool IsHostPort(std::string_view text);
bool IsAbsolutePath(std::string_view text);


}  // namespace mirror::common
