#include "mirrord/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "common/config.h"
#include "common/frame.h"
#include "common/quote.h"
#include "common/secret_file.h"
#include "common/unique_fd.h"

namespace mirror::d {

using common::Default;
using common::Required;
using common::Result;
using common::Status;

namespace {

common::Schema BuildSchema() {
  common::Schema limits;
  limits
      .Size("max_frame", "Largest frame payload a source may send",
            Default(common::FormatSize(common::kDefaultMaxFramePayload)))
      .Min(64 * 1024)
      .Max(1u << 30);
  limits
      .Size("max_record", "Largest record a source may send",
            Default(common::FormatSize(common::kDefaultMaxRecordBytes)))
      .Min(4096)
      .Max(1u << 30);
  limits.Size("memory_size", "Memory file of each source (two halves)", Default("64M"))
      .Min(256 * 1024);
  limits.Size("segment_size", "Size at which a log segment rolls", Default("64M")).Min(64 * 1024);
  limits.Duration("flush_delay",
                  "Longest time a received record waits for its flush, for a source in "
                  "mode=durable",
                  Default("0ms"));
  limits.Duration("lazy_flush_delay",
                  "Longest time a received record waits for its flush, for a source in "
                  "mode=sync or async (a SYNC or a full half flushes at once)",
                  Default("2ms"));
  limits.Duration("handshake_timeout", "Time a connection has to authenticate", Default("10s"))
      .Min(std::chrono::milliseconds(100));
  limits.Uint("max_connections", "Connections served at once (more are closed)", Default(1024))
      .Min(1);
  limits.Duration("idle_timeout", "Close a connection silent this long (0: never)",
                  Default("120s"));

  common::Schema source;
  source.String("id", "Source id (as in its HELLO)", Required()).NonEmpty().MaxLength(127);
  source.String("secret_file", "File holding the source's shared secret", Required())
      .Check(common::IsAbsolutePath, "an absolute path");
  source.Bool("allow_devices", "Let the source create device nodes in its image", Default(false));
  source.Duration("retention", "Keep applied log segments this long (0: delete)", Default("0s"));

  common::Schema s;
  s.StringList("listen", "Addresses to listen on (HOST:PORT)");
  s.String("state_dir", "Where per-source state lives", Default(kDefaultStateDir))
      .Check(common::IsAbsolutePath, "an absolute path");
  s.String("secret_file", "One secret accepted for any source id (quick start)")
      .Check(common::IsAbsolutePath, "an absolute path");
  s.Uint("io_threads", "Threads serving connections (each connection stays on one)", Default(2))
      .Min(1)
      .Max(64);
  s.Object("limits", "Limits", limits);
  s.ObjectList("sources", "Sources allowed to connect", source);
  return s;
}

}  // namespace

bool ValidSourceId(std::string_view id) {
  if (id.empty() || id.size() > common::kMaxWireIdBytes || id[0] == '.') return false;
  if (id == kControlSocketName) return false;
  return id.find('/') == std::string_view::npos && id.find('\0') == std::string_view::npos;
}

const common::Schema& MirrordSchema() {
  static const common::Schema schema = BuildSchema();
  return schema;
}

const SourceConfig* MirrordConfig::Find(std::string_view id) const {
  for (const SourceConfig& s : sources) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

StoreOptions MirrordConfig::StoreOptionsFor(std::string_view source_id) const {
  StoreOptions o;
  o.memory_half_bytes = memory_bytes / 2 / 4096 * 4096;
  o.limits.max_record_bytes = max_record_bytes;
  o.segment_bytes = segment_bytes;
  o.flush_delay = flush_delay;
  o.lazy_flush_delay = lazy_flush_delay;
  if (const SourceConfig* s = Find(source_id)) {
    o.allow_devices = s->allow_devices;
    o.retention = s->retention;
  }
  return o;
}

namespace {

// The `sources` table: ids usable as directory names and unique, secrets readable.
Result<std::vector<SourceConfig>> LoadSources(const std::vector<common::Config>& sources,
                                              const std::string& origin) {
  std::vector<SourceConfig> out;
  std::set<std::string> ids;
  for (size_t i = 0; i < sources.size(); ++i) {
    const std::string key = origin + ": key 'sources[" + std::to_string(i) + "]";
    SourceConfig s;
    s.id = sources[i].GetString("id");
    if (!ValidSourceId(s.id)) {
      return Status::InvalidArgument(key + ".id': " + common::QuoteForMessage(s.id) +
                                     " cannot name a source directory");
    }
    if (!ids.insert(s.id).second) {
      return Status::InvalidArgument(key + ".id': source " + common::QuoteForMessage(s.id) +
                                     " is listed twice");
    }
    Result<std::string> secret = common::ReadSecretFile(sources[i].GetString("secret_file"));
    if (!secret.ok()) return secret.status().Annotate(key + ".secret_file'");
    s.secret = std::move(secret).value();
    s.allow_devices = sources[i].GetBool("allow_devices");
    s.retention = sources[i].GetDuration("retention");
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

Result<MirrordConfig> LoadMirrordConfig(const QuickStartFlags& flags) {
  MIRROR_ASSIGN_OR_RETURN(common::Config file,
                          common::LoadConfig(MirrordSchema(), flags.config_path, {}));
  MirrordConfig c;
  const std::string origin = flags.config_path.empty() ? "mirrord" : flags.config_path;
  if (file.Has("listen")) c.listen = file.GetStringList("listen");
  if (!flags.listen.empty()) c.listen = flags.listen;
  if (c.listen.empty()) c.listen = {kDefaultListen};
  for (const std::string& l : c.listen) {
    std::string host;
    uint16_t port = 0;
    MIRROR_RETURN_IF_ERROR(common::SplitHostPort(l, &host, &port).Annotate(origin));
  }
  c.state_dir = flags.state_dir.empty() ? file.GetString("state_dir") : flags.state_dir;
  if (flags.config_path.empty() && flags.state_dir.empty()) {
    return Status::InvalidArgument("--state-dir is required without --config");
  }
  const common::Config& limits = file.GetObject("limits");
  c.max_frame_bytes = static_cast<uint32_t>(limits.GetSize("max_frame"));
  c.max_record_bytes = static_cast<uint32_t>(limits.GetSize("max_record"));
  c.memory_bytes = limits.GetSize("memory_size");
  c.segment_bytes = limits.GetSize("segment_size");
  c.flush_delay = limits.GetDuration("flush_delay");
  c.lazy_flush_delay = limits.GetDuration("lazy_flush_delay");
  c.handshake_timeout = limits.GetDuration("handshake_timeout");
  c.idle_timeout = limits.GetDuration("idle_timeout");
  c.max_connections = limits.GetUint("max_connections");
  c.io_threads = static_cast<uint32_t>(file.GetUint("io_threads"));
  if (c.max_record_bytes > c.memory_bytes / 2) {
    return Status::InvalidArgument(origin + ": key 'limits.max_record' (" +
                                   std::to_string(c.max_record_bytes) +
                                   ") must fit in half of 'limits.memory_size'");
  }
  if (c.max_record_bytes + 12 > c.max_frame_bytes) {
    return Status::InvalidArgument(origin +
                                   ": key 'limits.max_frame' must hold one record of "
                                   "'limits.max_record' bytes");
  }
  std::string secret_file = flags.secret_file;
  if (secret_file.empty() && file.Has("secret_file")) secret_file = file.GetString("secret_file");
  if (!secret_file.empty()) {
    MIRROR_ASSIGN_OR_RETURN(std::string secret, common::ReadSecretFile(secret_file));
    c.any_source_secret = std::move(secret);
  }
  MIRROR_ASSIGN_OR_RETURN(c.sources, LoadSources(file.GetObjectList("sources"), origin));
  if (c.sources.empty() && !c.any_source_secret) {
    return Status::InvalidArgument(origin +
                                   ": no sources: give a 'sources' table or a secret file");
  }
  return c;
}

}  // namespace mirror::d
