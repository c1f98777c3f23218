#include "common/config_json.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <set>
#include <vector>

#include "common/config_units.h"
#include "common/unique_fd.h"

namespace mirror::common::config_internal {
namespace {

// The nlohmann exception text after "[json.exception.parse_error.101] parse error at line
// 1, column 2: "; we compute line and column ourselves from the byte position.
std::string SyntaxErrorDetail(std::string_view what) {
  size_t at = what.find("parse error");
  size_t colon = what.find(": ", at == std::string_view::npos ? 0 : at);
  std::string_view detail = colon == std::string_view::npos ? what : what.substr(colon + 2);
  constexpr std::string_view kSyntaxError = "syntax error ";
  std::string out = "JSON syntax error: ";
  if (detail.substr(0, kSyntaxError.size()) == kSyntaxError) {
    out = "JSON syntax error ";
    detail.remove_prefix(kSyntaxError.size());
  }
  // nlohmann quotes what it last read, which may be any bytes; keep the message one line
  // of printable ASCII.
  for (char c : detail) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", byte);
      out += hex;
    }
  }
  return out;
}

// `byte` is nlohmann's count of characters read, so the offending one is at byte - 1.
Status SyntaxError(std::string_view text, size_t byte, std::string_view what,
                   std::string_view origin) {
  size_t offset = byte == 0 ? 0 : std::min(byte - 1, text.size());
  size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
  size_t line_start = 0;
  if (offset > 0) {
    size_t nl = text.rfind('\n', offset - 1);
    line_start = nl == std::string_view::npos ? 0 : nl + 1;
  }
  return Status::InvalidArgument(std::string(origin) + ": line " + std::to_string(line) +
                                 ", column " + std::to_string(offset - line_start + 1) + ": " +
                                 SyntaxErrorDetail(what));
}

// nlohmann keeps the last of duplicate keys silently; a parser callback sees every key
// and remembers the first duplicate, with its path, so we can refuse the file.
class DuplicateKeyFinder {
 public:
  bool operator()(int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        stack_.push_back({event == Json::parse_event_t::array_start, 0, {}, {}});
        break;
      case Json::parse_event_t::key: {
        Frame& f = stack_.back();
        f.last_key = parsed.get_ref<const std::string&>();
        if (!f.keys.insert(f.last_key).second && first_.empty()) first_ = CurrentKeyPath();
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        stack_.pop_back();
        ElementDone();
        break;
      case Json::parse_event_t::value:
        ElementDone();
        break;
    }
    return true;
  }
  const std::string& first_duplicate() const { return first_; }

 private:
  // Frames hold only their own position (no paths), so memory stays linear in the
  // nesting depth of hostile input; the path is spelled out only for a duplicate.
  struct Frame {
    bool is_array;
    size_t next_index;
    std::set<std::string> keys;
    std::string last_key;
  };

  std::string CurrentKeyPath() const {
    std::string path;
    for (const Frame& f : stack_) {
      path = f.is_array ? IndexKey(path, f.next_index) : JoinKey(path, f.last_key);
    }
    return path;
  }
  void ElementDone() {
    if (!stack_.empty() && stack_.back().is_array) ++stack_.back().next_index;
  }

  std::vector<Frame> stack_;
  std::string first_;
};

}  // namespace

Result<Json> ParseConfigJson(std::string_view text, std::string_view origin) {
  DuplicateKeyFinder duplicates;
  Json doc;
  try {
    doc = Json::parse(text.begin(), text.end(),
                      [&duplicates](int depth, Json::parse_event_t event, Json& parsed) {
                        return duplicates(depth, event, parsed);
                      });
  } catch (const Json::parse_error& e) {
    return SyntaxError(text, e.byte, e.what(), origin);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(origin) + ": cannot parse JSON: " + e.what());
  }
  if (!duplicates.first_duplicate().empty()) {
    return Status::InvalidArgument(std::string(origin) + ": duplicate key '" +
                                   duplicates.first_duplicate() + "'");
  }
  return doc;
}

Result<std::string> ReadConfigFile(const std::string& path) {
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) return Status::IOError(path + ": cannot open config file", errno);
  std::string text;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(file.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError(path + ": cannot read config file", errno);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigFileBytes) {
      return Status::InvalidArgument(path + ": larger than " + FormatSize(kMaxConfigFileBytes) +
                                     "; not a config file?");
    }
  }
  return text;
}

std::string DescribeJson(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return v.dump();
    default:
      return "an unsupported value";
  }
}

std::string JoinKey(std::string_view parent, std::string_view name) {
  std::string out(parent);
  if (!out.empty()) out += '.';
  out += name;
  return out;
}

std::string IndexKey(std::string_view parent, size_t index) {
  return std::string(parent) + "[" + std::to_string(index) + "]";
}

}  // namespace mirror::common::config_internal
