// Which fuse.mirrorfs mount serves a directory, from the mount table (the text of
// /proc/self/mounts): `mirrord adopt` refuses a BACKING that a mirrorfs still serves.
//
// Thread-safety: pure functions (MirrorfsMountOver resolves paths with realpath).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mirror::d {

// A field of /proc/self/mounts: space, tab, newline and backslash are octal escapes.
std::string UnescapeMountField(std::string_view field);

// The mount point of a fuse.mirrorfs mount in `mounts` whose source (fsname, i.e.
// BACKING) is `real_dir` or resolves to it; nullopt when there is none.
std::optional<std::string> MirrorfsMountOver(const std::string& mounts,
                                             const std::string& real_dir);

}  // namespace mirror::d
