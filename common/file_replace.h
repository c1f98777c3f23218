// Replacing small files atomically and durably (state files, markers, stamps): the new
// content is written to "<path>.tmp", fsynced, renamed over `path`, and the directory
// fsynced, so a reader (also after a crash) sees the old file or the new one, never a mix.
//
// Thread-safety: plain functions; callers serialize writers of one path.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace mirror::common {

// fsync of the directory `dir`, so that a rename or create in it survives a crash.
Status SyncDirectory(const std::string& dir);

// Replaces `path` with `content` as described above; the file is created 0600. IOError
// naming the step that failed (the temporary file is removed then).
Status ReplaceFile(const std::string& path, std::string_view content);

}  // namespace mirror::common
