#include "common/config_units.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <limits>

namespace mirror::common {
namespace {

using std::chrono::milliseconds;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Splits "64KiB" into the number 64 and the suffix "KiB". `overflow` is set when the
// digits alone do not fit in 64 bits; `digits` is false when there are none.
struct NumberAndSuffix {
  bool digits = false;
  bool overflow = false;
  uint64_t number = 0;
  std::string_view suffix;
};

NumberAndSuffix SplitNumber(std::string_view text) {
  NumberAndSuffix out;
  size_t i = 0;
  for (; i < text.size() && IsDigit(text[i]); ++i) {
    out.digits = true;
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (out.number > (std::numeric_limits<uint64_t>::max() - digit) / 10) out.overflow = true;
    out.number = out.number * 10 + digit;
  }
  out.suffix = text.substr(i);
  return out;
}

// "1.5G" is the likeliest way to get a size or duration wrong; say why it is refused.
bool LooksFractional(const NumberAndSuffix& n) {
  return n.digits && !n.suffix.empty() && n.suffix[0] == '.';
}

struct Unit {
  std::string_view name;
  uint64_t factor;
};

// Size suffixes after the letter: "", "B" or "iB" (all binary; see the header).
constexpr std::array<Unit, 5> kSizeUnits = {
    {{"", 1}, {"K", 1ull << 10}, {"M", 1ull << 20}, {"G", 1ull << 30}, {"T", 1ull << 40}}};

std::optional<uint64_t> SizeFactor(std::string_view suffix) {
  if (suffix.empty() || EqualsIgnoreCase(suffix, "B")) return 1;
  for (const Unit& unit : kSizeUnits) {
    if (unit.name.empty() || Lower(suffix[0]) != Lower(unit.name[0])) continue;
    std::string_view rest = suffix.substr(1);
    if (rest.empty() || EqualsIgnoreCase(rest, "B") || EqualsIgnoreCase(rest, "iB")) {
      return unit.factor;
    }
  }
  return std::nullopt;
}

constexpr std::array<Unit, 5> kDurationUnits = {
    {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {"d", 24 * 60 * 60 * 1000}}};

std::optional<uint64_t> DurationFactor(std::string_view suffix) {
  if (suffix.empty()) return 1000;  // a bare number is seconds
  for (const Unit& unit : kDurationUnits) {
    if (EqualsIgnoreCase(suffix, unit.name)) return unit.factor;
  }
  return std::nullopt;
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool IsV6Char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

Status NotA(std::string_view what, std::string_view text, std::string_view hint) {
  return Status::InvalidArgument(QuoteForMessage(text) + " is not " + std::string(what) + " (" +
                                 std::string(hint) + ")");
}

}  // namespace

Result<uint64_t> ParseUint(std::string_view text) {
  NumberAndSuffix n = SplitNumber(text);
  if (!n.digits || !n.suffix.empty()) return NotA("an integer", text, "use digits only");
  if (n.overflow) return Status::InvalidArgument(QuoteForMessage(text) + " is too large");
  return n.number;
}

Result<uint64_t> ParseSize(std::string_view text) {
  NumberAndSuffix n = SplitNumber(text);
  if (LooksFractional(n)) {
    return NotA("a size", text, "fractions are not allowed: use a smaller unit, e.g. 1536M");
  }
  std::optional<uint64_t> factor = SizeFactor(n.suffix);
  if (!n.digits || !factor) return NotA("a size", text, "use a number with K, M, G or T");
  if (n.overflow || n.number > std::numeric_limits<uint64_t>::max() / *factor) {
    return Status::InvalidArgument(QuoteForMessage(text) +
                                   " is too large (more than 2^64-1 bytes)");
  }
  return n.number * *factor;
}

Result<milliseconds> ParseDuration(std::string_view text) {
  NumberAndSuffix n = SplitNumber(text);
  if (LooksFractional(n)) {
    return NotA("a duration", text, "fractions are not allowed: use a smaller unit, e.g. 1500ms");
  }
  std::optional<uint64_t> factor = DurationFactor(n.suffix);
  if (!n.digits || !factor) return NotA("a duration", text, "use a number with ms, s, m, h or d");
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<milliseconds::rep>::max());
  if (n.overflow || n.number > kMax / *factor) {
    return Status::InvalidArgument(QuoteForMessage(text) + " is too large");
  }
  return milliseconds(static_cast<milliseconds::rep>(n.number * *factor));
}

std::optional<bool> ParseBool(std::string_view text) {
  for (std::string_view yes : {"true", "yes", "on", "1"}) {
    if (EqualsIgnoreCase(text, yes)) return true;
  }
  for (std::string_view no : {"false", "no", "off", "0"}) {
    if (EqualsIgnoreCase(text, no)) return false;
  }
  return std::nullopt;
}

std::string FormatSize(uint64_t bytes) {
  for (size_t i = kSizeUnits.size() - 1; i > 0; --i) {
    const Unit& unit = kSizeUnits[i];
    if (bytes != 0 && bytes % unit.factor == 0) {
      return std::to_string(bytes / unit.factor) + std::string(unit.name);
    }
  }
  return std::to_string(bytes);
}

std::string FormatDuration(milliseconds duration) {
  uint64_t ms = static_cast<uint64_t>(duration.count() < 0 ? 0 : duration.count());
  if (ms == 0) return "0s";
  for (size_t i = kDurationUnits.size() - 1; i > 0; --i) {
    const Unit& unit = kDurationUnits[i];
    if (ms % unit.factor == 0) return std::to_string(ms / unit.factor) + std::string(unit.name);
  }
  return std::to_string(ms) + "ms";
}

bool IsHostPort(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.empty() || !std::all_of(host.begin(), host.end(), IsV6Char)) return false;
  } else if (host.empty() || !std::all_of(host.begin(), host.end(), IsHostChar)) {
    return false;
  }
  Result<uint64_t> number = ParseUint(port);
  return number.ok() && *number >= 1 && *number <= 65535;
}

bool IsAbsolutePath(std::string_view text) { return !text.empty() && text[0] == '/'; }

}  // namespace mirror::common
