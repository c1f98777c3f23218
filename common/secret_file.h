// Two small inputs both daemons read: a shared secret from its file, and a HOST:PORT.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace mirror::common {

inline constexpr size_t kMaxSecretBytes = 4096;

// Reads a secret file: regular, not readable or writable by group or others, not empty,
// at most kMaxSecretBytes; one trailing newline is dropped.
Result<std::string> ReadSecretFile(const std::string& path);

// Splits "host:port" or "[v6]:port". InvalidArgument naming the text otherwise.
Status SplitHostPort(const std::string& text, std::string* host, uint16_t* port);

}  // namespace mirror::common
