#include "mirrord/status_cli.h"

namespace mirror::d {

nlohmann::json SelectSources(const nlohmann::json& reply,
                             const std::optional<std::string>& source) {
  nlohmann::json out = nlohmann::json::array();
  auto it = reply.find("sources");
  if (it == reply.end() || !it->is_array()) return out;
  for (const nlohmann::json& s : *it) {
    if (!s.is_object()) continue;
    if (!source || s.value("id", "") == *source) out.push_back(s);
  }
  return out;
}

int StatusExitCode(const nlohmann::json& sources, double max_lag_seconds) {
  int code = kStatusHealthy;
  for (const nlohmann::json& s : sources) {
    const std::string state = s.value("state", "");
    if (state == "broken") return kStatusBroken;
    // A promoted image is served by a mirrorfs over it now: its health is that mount's.
    if (state == "promoted") continue;
    if (!s.value("connected", false) || s.value("resync", false)) code = kStatusLagging;
    if (max_lag_seconds >= 0 && s.value("lag_seconds", 0.0) > max_lag_seconds) {
      code = kStatusLagging;
    }
  }
  return code;
}

std::string FormatStatusText(const nlohmann::json& sources) {
  if (sources.empty()) return "no sources\n";
  std::string out;
  for (const nlohmann::json& s : sources) {
    auto num = [&](const char* key) { return std::to_string(s.value(key, uint64_t{0})); };
    out += "source " + s.value("id", "?") + ": " + s.value("state", "?") + "\n";
    if (s.value("connected", false)) out += "  peer: " + s.value("peer", "") + "\n";
    out += "  volume: " + s.value("volume_id", "") + "  epoch: " + num("epoch") + "\n";
    out += "  received: " + num("received_seq") + "  durable: " + num("durable_seq") +
           "  applied: " + num("applied_seq") + "  lag: " + num("lag_records") + " records, " +
           std::to_string(static_cast<uint64_t>(s.value("lag_seconds", 0.0))) + " s\n";
    out += "  memory: " + num("memory_used_bytes") + "/" + num("memory_capacity_bytes") +
           " bytes  log: " + num("log_bytes") + " bytes in " + num("log_segments") + " segments\n";
    out += "  image: " + s.value("image", "") + "\n";
    if (s.value("promoted", false)) {
      out += "  promoted: the image is a primary since seq " + num("promoted_seq") + " (epoch " +
             num("epoch") + "); the old source is fenced\n";
    }
    if (s.value("resync", false)) {
      const uint64_t until = s.value("resync_until_seq", uint64_t{0});
      out += "  resync: in progress, the image is not consistent" +
             (until == 0 ? std::string(" (the source is still sending differences)")
                         : " until seq " + std::to_string(until) + " is applied") +
             "\n";
    }
    const std::string err = s.value("last_error", "");
    if (!err.empty()) out += "  last error: " + err + "\n";
  }
  return out;
}

}  // namespace mirror::d
