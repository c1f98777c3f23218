#include "mirrorfs/options.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <set>

namespace mirror::fs {
namespace {

using common::Status;

// Options that are mirrorfs's own (their values are used by other parts of mirrorfs).
const std::set<std::string>& OwnKeys() {
  static const std::set<std::string> keys = {
      "config", "source_id",   "journal", "journal_size",  "cp_interval",
      "mirror", "secret_file", "mode",    "on_disconnect", "max_lag"};
  return keys;
}

// Options libmount/mount.fuse3 may hand us that mean nothing to the FUSE mount, and those we
// always set ourselves.
bool IsDropped(const std::string& key) {
  static const std::set<std::string> dropped = {
      "user", "users", "nouser", "auto", "noauto", "nofail", "_netdev", "defaults",
      "default_permissions", "fsname", "subtype", "comment"};
  return dropped.count(key) != 0 || key.rfind("x-", 0) == 0;
}

// Splits "a,b\,c" at unescaped commas.
std::vector<std::string> SplitOptions(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      cur += s[++i];
    } else if (s[i] == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += s[i];
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string Absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return std::string(cwd) + "/" + path;
}

Status ApplyOption(const std::string& opt, MountOptions* o) {
  size_t eq = opt.find('=');
  std::string key = opt.substr(0, eq);
  std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
  if (key == "max_write") {
    char* end = nullptr;
    unsigned long v = std::strtoul(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || v < 4096 || v > (1u << 20)) {
      return Status::InvalidArgument("max_write must be 4096..1048576, got '" + value + "'");
    }
    o->max_write = static_cast<unsigned>(v);
  } else if (OwnKeys().count(key) != 0) {
    if (eq == std::string::npos) return Status::InvalidArgument("option " + key + " needs =VALUE");
    o->own_options[key] = value;
  } else if (key == "auto_unmount") {
    o->warnings.push_back("ignoring auto_unmount: a crashed mirror must not look empty");
  } else if (!IsDropped(key)) {
    o->fuse_options.push_back(opt);
  }
  return Status::Ok();
}

}  // namespace

common::Result<MountOptions> ParseMountOptions(int argc, char** argv) {
  MountOptions o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      o.show_help = true;
    } else if (a == "-V" || a == "--version") {
      o.show_version = true;
    } else if (a == "-f") {
      o.foreground = true;
    } else if (a == "-d" || a == "--debug") {
      o.debug = o.foreground = true;
    } else if (a == "-s") {
      o.single_thread = true;
    } else if (a == "-o" || a.rfind("-o", 0) == 0) {
      std::string list;
      if (a == "-o") {
        if (++i >= argc) return Status::InvalidArgument("-o needs an option list");
        list = argv[i];
      } else {
        list = a.substr(2);
      }
      for (const std::string& opt : SplitOptions(list)) MIRROR_RETURN_IF_ERROR(ApplyOption(opt, &o));
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      return Status::InvalidArgument("unknown option " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (o.show_help || o.show_version) return o;
  if (positional.size() != 2) {
    return Status::InvalidArgument("expected BACKING and MOUNTPOINT, got " +
                                   std::to_string(positional.size()) + " arguments");
  }
  o.backing = Absolute(positional[0]);
  o.mountpoint = Absolute(positional[1]);
  return o;
}

std::vector<std::string> FuseArguments(const MountOptions& options) {
  std::string fsname;
  for (char c : options.backing) {
    if (c == ',' || c == '\\') fsname += '\\';
    fsname += c;
  }
  // dev,suid as mount.fuse3 adds them, so a mount started by hand behaves like one from
  // fstab, and like BACKING; a later nodev/nosuid from the user still wins.
  std::string list = "fsname=" + fsname + ",subtype=mirrorfs,default_permissions,dev,suid";
  for (const std::string& opt : options.fuse_options) {
    list += ',';
    for (char c : opt) {
      if (c == ',' || c == '\\') list += '\\';
      list += c;
    }
  }
  std::vector<std::string> args = {"mirrorfs", "-o", list};
  if (options.debug) args.push_back("-d");
  return args;
}

std::string UsageText(const char* program) {
  return std::string("usage: ") + program +
         " BACKING MOUNTPOINT [-o opt[,opt...]] [-f] [-d] [-s]\n"
         "\n"
         "Mounts a FUSE file system at MOUNTPOINT that shows BACKING and records every change.\n"
         "\n"
         "  -o opt,...        mount options (see below)\n"
         "  -f                stay in the foreground\n"
         "  -d                libfuse debug output (implies -f)\n"
         "  -s                single-threaded\n"
         "  -h, --help        this text\n"
         "  -V, --version     the version\n"
         "\n"
         "mirrorfs options:\n"
         "  max_write=N       largest write request in bytes (default and maximum 1048576)\n"
         "  config=PATH, source_id=, journal=, journal_size=, cp_interval=\n"
         "                    journal settings (see mirrorfs(8))\n"
         "FUSE and kernel options are passed through: allow_other, ro, rw, nodev, nosuid,\n"
         "noexec, noatime, ... fsname=BACKING, subtype=mirrorfs and default_permissions are\n"
         "always set; dev and suid are set as mount.fuse3 sets them (give nodev or nosuid\n"
         "to turn them off); auto_unmount is never used.\n"
         "\n"
         "Exit status: 0 mounted, 1 usage error, 32 mount failure.\n";
}

}  // namespace mirror::fs
