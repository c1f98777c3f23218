#include "mirrorfs/mount_config.h"

#include <unistd.h>

#include <algorithm>

#include "common/config.h"
#include "common/secret_file.h"

namespace mirror::fs {
namespace {

using common::Default;

bool IsSourceId(std::string_view id) {
  if (id.empty() || id.size() > 64 || id[0] == '.' || id[0] == '-') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

std::string Hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  std::string host(name);
  return host.substr(0, host.find('.'));  // the short name: stable across domain changes
}

common::Status LoadMirrorConfig(const common::Config& c, MirrorConfig* out) {
  if (!c.Has("mirror")) {
    for (const char* key : {"secret_file", "on_disconnect"}) {
      if (c.Has(key)) {
        return common::Status::InvalidArgument(std::string(key) +
                                               "= needs mirror=HOST:PORT (without it the "
                                               "mount is local-only)");
      }
    }
    return common::Status::Ok();
  }
  out->target = c.GetString("mirror");
  MIRROR_RETURN_IF_ERROR(
      common::SplitHostPort(out->target, &out->host, &out->port).Annotate("mirror"));
  if (!c.Has("secret_file")) {
    return common::Status::InvalidArgument(
        "mirror= needs secret_file=PATH (the source's secret, as mirrord has it)");
  }
  auto secret = common::ReadSecretFile(c.GetString("secret_file"));
  if (!secret.ok()) return secret.status().Annotate("secret_file");
  out->secret = std::move(secret).value();
  const std::string mode = c.GetString("mode");
  out->mode = mode == "async"     ? AckMode::kAsync
              : mode == "durable" ? AckMode::kDurable
                                  : AckMode::kSync;
  out->degrade = c.Has("on_disconnect") ? c.GetString("on_disconnect") == "degrade"
                                        : out->mode == AckMode::kAsync;
  out->max_lag = c.GetSize("max_lag");
  return common::Status::Ok();
}

}  // namespace

const char* AckModeName(AckMode mode) {
  switch (mode) {
    case AckMode::kAsync:
      return "async";
    case AckMode::kDurable:
      return "durable";
    default:
      return "sync";
  }
}

const common::Schema& MountSchema() {
  static const common::Schema schema = [] {
    common::Schema s;
    s.String("source_id", "this source's name at the destination (default: the hostname)")
        .Check(IsSourceId, "1-64 of A-Z a-z 0-9 . _ - (not starting with . or -)");
    s.String("journal", "the journal file (default: /var/lib/mirrorfs/<source_id>/journal)")
        .NonEmpty();
    s.Size("journal_size", "size of a new journal file", Default("256M"))
        .Min(uint64_t{1} << 20)
        .Max(uint64_t{1} << 40);
    s.Duration("cp_interval", "time between consistency points (0: only when needed)",
               Default("5s"))
        .Max(std::chrono::milliseconds(24LL * 3600 * 1000));
    s.Bool("allow_other", "let users other than root use the mount", Default(false));
    s.Bool("ro", "mount read-only", Default(false));
    s.String("mirror", "HOST:PORT of mirrord to ship every change to (none: local-only)")
        .Check(common::IsHostPort, "HOST:PORT");
    s.String("secret_file", "file with this source's secret, as mirrord has it (with mirror=)")
        .NonEmpty();
    s.Enum("mode",
           "when a change returns: sync (mirrord has it in memory), durable (on "
           "mirrord's disk), async (in the local journal)",
           {"sync", "async", "durable"}, Default("sync"));
    s.Enum("on_disconnect",
           "while mirrord is unreachable: block (writers wait) or degrade "
           "(writers go on; default for mode=async, else block)",
           {"block", "degrade"});
    s.Size("max_lag",
           "mode=async: writers wait while more journal bytes than this are not "
           "yet received by mirrord",
           Default("64M"))
        .Min(uint64_t{1} << 20);
    return s;
  }();
  return schema;
}

common::Result<MountConfig> LoadMountConfig(const MountOptions& options) {
  std::string file;
  std::vector<std::string> opts;
  for (const auto& [key, value] : options.own_options) {
    if (key == "config") {
      file = value;
    } else {
      opts.push_back(key + "=" + value);
    }
  }
  MIRROR_ASSIGN_OR_RETURN(common::Config c, common::LoadConfig(MountSchema(), file, opts));
  MountConfig out;
  MIRROR_RETURN_IF_ERROR(LoadMirrorConfig(c, &out.mirror));
  out.source_id = c.Has("source_id") ? c.GetString("source_id") : Hostname();
  if (!IsSourceId(out.source_id)) {
    return common::Status::InvalidArgument("source_id: the hostname '" + out.source_id +
                                           "' is not a valid source id; set source_id=");
  }
  out.journal_path = c.Has("journal") ? c.GetString("journal")
                                      : "/var/lib/mirrorfs/" + out.source_id + "/journal";
  out.journal_size = c.GetSize("journal_size");
  out.cp_interval = c.GetDuration("cp_interval");
  out.allow_other = c.GetBool("allow_other");
  out.ro = c.GetBool("ro");
  return out;
}

void AddConfigFuseOptions(const MountConfig& config, MountOptions* options) {
  auto add = [options](const std::string& opt) {
    auto& v = options->fuse_options;
    if (std::find(v.begin(), v.end(), opt) == v.end()) v.push_back(opt);
  };
  if (config.allow_other) add("allow_other");
  if (config.ro) add("ro");
}

}  // namespace mirror::fs
