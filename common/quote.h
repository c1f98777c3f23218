// Quoting text for error messages and log lines: the one place that decides how a
// name, path or value from a file, a record or the wire is shown. Bytes outside
// printable ASCII become \xNN, so a record path holding a newline or an escape
// sequence cannot forge or garble a log line.
#pragma once

#include <string>
#include <string_view>

namespace mirror::common {

// `text` between `quote` characters; the quote and backslash are escaped with '\'.
std::string QuoteForMessage(std::string_view text, char quote = '"');

}  // namespace mirror::common
