// Path confinement: opening a directory beneath a root without ever leaving it
// (DESIGN.md invariant 6; docs/formats.md, "Apply rules").
//
// Record paths name real paths on the source volume, so no component of a path that
// apply resolves may be a symlink: not one that points out of the image, and not one
// that points back inside it either. Resolution also refuses to cross a mount point
// and never sees "..", an absolute path or a magic link.
//
// Two resolvers give the same answers:
//  - openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//    RESOLVE_NO_XDEV (Linux >= 5.6), the kernel enforcing the rule in one call;
//  - a walk, one openat(O_NOFOLLOW | O_DIRECTORY) per component, comparing each
//    directory's device and mount id with the root's, for older kernels.
// ResolveMethod::kAuto uses openat2 and switches to the walk for the life of the
// process the first time openat2 answers ENOSYS (or EPERM, from an old seccomp filter).
//
// Thread-safety: all functions are safe to call from any thread.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "common/unique_fd.h"

namespace mirror::common {

enum class ResolveMethod {
  kAuto,     // openat2, or the walk where the kernel lacks it
  kOpenat2,  // openat2 only (ENOSYS or EPERM is an IOError)
  kWalk,     // the component walk only (tests use it to cover old kernels)
};

// Opens the directory `dir_path` beneath `root_fd` as O_RDONLY | O_DIRECTORY |
// O_CLOEXEC (a real fd: futimens works on it). `dir_path` is "." for the root itself
// or a relative path that passes CheckEntryPath. `root_fd` is borrowed.
//
// Errors (messages name the component, not the whole path; callers annotate):
//  - PermissionDenied "escape attempt: ..." for a path that breaks the path rules
//    (absolute, "..", empty component, ...) or that crosses a mount point;
//  - PermissionDenied "component 'a' is a symlink; refused";
//  - NotFound (errno ENOENT) when a component is missing;
//  - IOError with the errno otherwise (ENOTDIR: "component 'a' is not a directory").
Result<UniqueFd> OpenDirBeneath(int root_fd, std::string_view dir_path, ResolveMethod method);

// An entry path split at its last '/': parent is "." for a top-level entry.
struct SplitPath {
  std::string_view parent;
  std::string_view leaf;
};
// `path` must have passed CheckEntryPath (not empty, no trailing '/').
SplitPath SplitEntryPath(std::string_view path);

// True once kAuto has given up on openat2 (for logs and status).
bool Openat2Unavailable();

}  // namespace mirror::common
