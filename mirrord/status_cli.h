// `mirrord status [SOURCE] [--json]`: what the control socket's status reply says, for
// people and for scripts, and the exit code (CONVENTIONS.md row 11):
//   0 healthy: every selected source connected and not broken
//   1 lagging/degraded: a selected source is not connected (nothing is mirrored now), is
//     resyncing (its image is not consistent), or its oldest unapplied record is older
//     than --max-lag seconds (when given)
//   (a promoted source counts as healthy: its image is a primary now, served by a
//   mirrorfs over it, whose own status tells its health)
//   2 broken: a selected source's store failed (log write, fsync or apply); see last_error
//   3 unknown: the daemon is not reachable, or SOURCE is not one of its sources
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace mirror::d {

inline constexpr int kStatusHealthy = 0;
inline constexpr int kStatusLagging = 1;
inline constexpr int kStatusBroken = 2;
inline constexpr int kStatusUnknown = 3;

// The reply's "sources", narrowed to `source` when given (empty array if unknown).
nlohmann::json SelectSources(const nlohmann::json& reply, const std::optional<std::string>& source);
// `max_lag_seconds` < 0: no lag limit.
int StatusExitCode(const nlohmann::json& sources, double max_lag_seconds = -1);
// One block per source, "key: value" lines, for people.
std::string FormatStatusText(const nlohmann::json& sources);

}  // namespace mirror::d
