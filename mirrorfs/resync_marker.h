// The out-of-sync marker: a file beside the journal (`<journal>.out-of-sync`) whose
// existence says that mirrord's image misses changes the journal no longer holds, so the
// next connection must resync; its one line says why. Written by rename; not fsynced (a
// lost marker is found again: mirrord's resume seq then falls below the journal's tail).
#pragma once

#include <string>

#include "common/status.h"

namespace mirror::fs {

// The marker's text; "" when there is none (or `path` is empty).
std::string ReadResyncMarker(const std::string& path);
// Writes (replaces) the marker with `why`; a no-op for an empty `path`.
common::Status WriteResyncMarker(const std::string& path, const std::string& why);

}  // namespace mirror::fs
