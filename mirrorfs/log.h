// Log lines on stderr with sd-daemon level prefixes ("<3>" = error, ...), so journald
// files them at the right priority when mirrorfs runs under systemd with -f.
//
// Thread-safe: each line is one write(2).
#pragma once

#include <string_view>

namespace mirror::fs {

enum class LogLevel { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

// Sets the mountpoint named in every line ("mirrorfs[/mnt/x]: ..."). Call before threads start.
void SetLogMountpoint(std::string_view mountpoint);
// Writes "<N>mirrorfs[MOUNTPOINT]: message\n" to stderr.
void Log(LogLevel level, std::string_view message);

}  // namespace mirror::fs
