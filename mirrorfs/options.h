// Command line of the mount: `mirrorfs BACKING MOUNTPOINT [-o opt[,opt...]] [-f] [-d] [-s]`,
// also as mount.fuse3 calls it (`mirrorfs BACKING MOUNTPOINT -o opts`).
//
// Options are split into ours (max_write=, and the journal/config keys kept in
// `own_options` for the rest of mirrorfs), options mount.fuse3/libmount use but that mean
// nothing to a FUSE mount (dropped), and everything else, which goes to libfuse/the kernel
// (allow_other, ro, nodev, nosuid, noexec, ...). auto_unmount is refused (CONVENTIONS 5).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace mirror::fs {

struct MountOptions {
  std::string backing;     // absolute path
  std::string mountpoint;  // absolute path
  bool foreground = false;
  bool debug = false;          // -d: libfuse debug output; implies foreground
  bool single_thread = false;  // -s
  bool show_help = false;
  bool show_version = false;
  unsigned max_write = 1u << 20;           // bytes per write request, 4 KiB .. 1 MiB
  std::vector<std::string> fuse_options;   // handed to libfuse as -o
  std::map<std::string, std::string> own_options;  // config=, source_id=, journal=, ...
  std::vector<std::string> warnings;       // e.g. ignored auto_unmount
};

// Parses argv. InvalidArgument (a one-line reason) on a usage error. Relative paths are
// made absolute against the current directory; existence is not checked here.
common::Result<MountOptions> ParseMountOptions(int argc, char** argv);

// The argv for fuse_session_new: always fsname=<backing>, subtype=mirrorfs and
// default_permissions, then the pass-through options.
std::vector<std::string> FuseArguments(const MountOptions& options);

// `--help` text.
std::string UsageText(const char* program);

}  // namespace mirror::fs
