// mirrord's log lines: one line per event on stderr, with an sd-daemon level prefix
// ("<3>" = error, ...) so journald files them at the right priority, and the source id
// where there is one: "<4>mirrord: source s1: refused: sequence-gap: ...".
//
// Thread-safe: each line is one write(2). Text from peers must be quoted by the caller
// (common/quote.h) before it gets here.
#pragma once

#include <string_view>

namespace mirror::d {

enum class LogLevel { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

void Log(LogLevel level, std::string_view message);
void LogSource(LogLevel level, std::string_view source_id, std::string_view message);

}  // namespace mirror::d
