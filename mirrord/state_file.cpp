#include "mirrord/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/crc32c.h"
#include "common/file_replace.h"
#include "common/unique_fd.h"

namespace mirror::d {
namespace {

using common::Result;
using common::Status;
using common::UniqueFd;
using Json = nlohmann::ordered_json;

constexpr size_t kMaxStateBytes = 64 * 1024;

// The CRC covers the compact dump of every field but "crc32c", in the order written.
uint32_t BodyCrc(const Json& body) {
  const std::string text = body.dump();
  return common::crc32c::Mask(common::crc32c::Value(text.data(), text.size()));
}

// The resync keys are written only while a resync is active, "promoted_seq" only once
// promoted, "adopted" only while true (see state_file.h).
Json Body(const SourceState& s, bool with_resync) {
  Json j;
  j["format"] = "mirrord-state";
  j["version"] = kStateFormatVersion;
  j["source_id"] = s.source_id;
  j["volume_id"] = s.volume_id;
  j["epoch"] = s.epoch;
  j["applied_seq"] = s.applied_seq;
  j["replay_through"] = s.replay_through;
  j["promoted"] = s.promoted;
  if (s.promoted) j["promoted_seq"] = s.promoted_seq;
  if (with_resync) {
    j["resync_active"] = s.resync_active;
    j["resync_until"] = s.resync_until;
  }
  if (s.adopted) j["adopted"] = true;
  return j;
}

Result<std::string> ReadSmallFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Status::FromErrno("open " + path, errno);
  std::string out;
  char buf[4096];
  while (out.size() <= kMaxStateBytes) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError("read " + path, errno);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
  return Status::Corruption("state file " + path + " is larger than " +
                            std::to_string(kMaxStateBytes) + " bytes");
}

}  // namespace

Result<SourceState> ReadStateFile(const std::string& path) {
  MIRROR_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  auto bad = [&](const std::string& what) {
    return Status::Corruption("state file " + path + ": " + what);
  };
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  auto field = [&](const char* key, Json::value_t type) -> const Json* {
    auto it = j.find(key);
    if (it == j.end()) return nullptr;
    if (it->type() != type) return nullptr;
    return &*it;
  };
  const Json* format = field("format", Json::value_t::string);
  if (format == nullptr || *format != "mirrord-state")
    return bad("key 'format' is not \"mirrord-state\"");
  const Json* version = field("version", Json::value_t::number_unsigned);
  if (version == nullptr) return bad("key 'version' is missing or not a number");
  if (*version != kStateFormatVersion) {
    return Status::Mismatch("state file " + path + ": version " + version->dump() +
                            " is not supported (this is " + std::to_string(kStateFormatVersion) +
                            ")");
  }
  SourceState s;
  struct U64Field {
    const char* key;
    uint64_t* out;
  };
  for (const char* key : {"source_id", "volume_id"}) {
    const Json* v = field(key, Json::value_t::string);
    if (v == nullptr) return bad("key '" + std::string(key) + "' is missing or not a string");
    (std::string_view(key) == "source_id" ? s.source_id : s.volume_id) = v->get<std::string>();
  }
  for (U64Field f : {U64Field{"epoch", &s.epoch}, U64Field{"applied_seq", &s.applied_seq},
                     U64Field{"replay_through", &s.replay_through}}) {
    const Json* v = field(f.key, Json::value_t::number_unsigned);
    if (v == nullptr) return bad("key '" + std::string(f.key) + "' is missing or not a number");
    *f.out = v->get<uint64_t>();
  }
  const Json* promoted = field("promoted", Json::value_t::boolean);
  if (promoted == nullptr) return bad("key 'promoted' is missing or not a boolean");
  s.promoted = promoted->get<bool>();
  if (s.promoted) {
    const Json* seq = field("promoted_seq", Json::value_t::number_unsigned);
    if (seq == nullptr) return bad("key 'promoted_seq' is missing or not a number");
    s.promoted_seq = seq->get<uint64_t>();
  }
  const bool with_resync = j.contains("resync_active") || j.contains("resync_until");
  if (with_resync) {
    const Json* active = field("resync_active", Json::value_t::boolean);
    if (active == nullptr) return bad("key 'resync_active' is missing or not a boolean");
    s.resync_active = active->get<bool>();
    const Json* until = field("resync_until", Json::value_t::number_unsigned);
    if (until == nullptr) return bad("key 'resync_until' is missing or not a number");
    s.resync_until = until->get<uint64_t>();
  }
  if (j.contains("adopted")) {
    const Json* adopted = field("adopted", Json::value_t::boolean);
    if (adopted == nullptr || !adopted->get<bool>()) return bad("key 'adopted' is not true");
    s.adopted = true;
  }
  const Json* crc = field("crc32c", Json::value_t::number_unsigned);
  if (crc == nullptr) return bad("key 'crc32c' is missing or not a number");
  const size_t keys = (with_resync ? 11 : 9) + (s.promoted ? 1 : 0) + (s.adopted ? 1 : 0);
  if (j.size() != keys) {
    return bad("unexpected keys (expected exactly " + std::to_string(keys) + ")");
  }
  if (crc->get<uint64_t>() != BodyCrc(Body(s, with_resync))) return bad("CRC mismatch");
  return s;
}

Status WriteStateFile(const std::string& path, const SourceState& state) {
  Json j = Body(state, state.resync_active);
  j["crc32c"] = BodyCrc(j);
  return common::ReplaceFile(path, j.dump() + "\n");
}

}  // namespace mirror::d
