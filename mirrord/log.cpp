#include "mirrord/log.h"

#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/quote.h"

namespace mirror::d {

void Log(LogLevel level, std::string_view message) {
  std::string line = "<" + std::to_string(static_cast<int>(level)) + ">mirrord: ";
  // A message is one line: a newline inside would forge a second log entry.
  for (char ch : message) line.push_back(ch == '\n' || ch == '\r' ? ' ' : ch);
  line.push_back('\n');
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void LogSource(LogLevel level, std::string_view source_id, std::string_view message) {
  std::string line = "source " + common::QuoteForMessage(source_id, '\'') + ": ";
  line.append(message);
  Log(level, line);
}

}  // namespace mirror::d
