#include "mirrorfs/status_json.h"

#include <time.h>
#include <unistd.h>

#include <optional>

#include "common/clock.h"
#include "mirrorfs/resync_progress.h"

namespace mirror::fs {

namespace {

// Where the promoted image stopped, and how many of our records it never got.
nlohmann::json FenceStatus(const std::optional<common::FenceInfo>& fence, uint64_t last_seq) {
  if (!fence) return nullptr;
  nlohmann::json f = {{"epoch", fence->epoch},
                      {"promoted_seq", fence->promoted_seq},
                      {"message", fence->message},
                      {"time", fence->time}};
  f["only_here_records"] = fence->promoted_seq > 0 && last_seq > fence->promoted_seq
                               ? last_seq - fence->promoted_seq
                               : 0;
  return f;
}

nlohmann::json MirrorStatus(const ReplicationClient::Stats& st, const MirrorConfig& config,
                            uint64_t last_seq) {
  nlohmann::json m;
  m["target"] = config.target;
  m["mode"] = AckModeName(config.mode);
  m["on_disconnect"] = config.degrade ? "degrade" : "block";
  m["max_lag_bytes"] = config.max_lag;
  // While the link is down, "degraded" says that writers go on without it.
  const bool down = st.link == LinkState::kDisconnected || st.link == LinkState::kConnecting;
  m["link"] = down && config.degrade ? "degraded" : LinkStateName(st.link);
  m["received_seq"] = st.received_seq;
  m["durable_seq"] = st.durable_seq;
  m["applied_seq"] = st.applied_seq;
  m["sent_seq"] = st.sent_seq;
  m["lag_records"] = st.lag_records;
  m["lag_bytes"] = st.lag_bytes;
  m["lag_seconds"] = st.lag_seconds;
  m["waiting_writers"] = st.waiting_writers;
  m["connects"] = st.connects;
  m["last_error"] = st.last_error;
  if (st.resync_active) {
    m["link"] = st.resync.baseline ? "baseline" : "resync";
  } else if (!st.resync_reason.empty() && st.link != LinkState::kConnected) {
    m["link"] = "out-of-sync";
  }
  m["fenced"] = FenceStatus(st.fence, last_seq);
  m["resync_reason"] = st.resync_reason;
  if (st.resync_active || !st.resync.phase.empty()) {
    const ResyncFigures f = FiguresOf(st.resync);
    m["resync"] = {{"active", st.resync_active},
                   {"baseline", st.resync.baseline},
                   {"phase", st.resync.phase},
                   {"percent", f.percent},
                   {"bytes_per_second", f.bytes_per_second},
                   {"seconds_left", f.seconds_left},
                   {"entries", st.resync.entries},
                   {"files_total", st.resync.files_total},
                   {"files_done", st.resync.files_done},
                   {"bytes_total", st.resync.bytes_total},
                   {"bytes_done", st.resync.bytes_done},
                   {"bytes_sent", st.resync.bytes_sent},
                   {"seconds", st.resync.seconds}};
  }
  return m;
}

// The mount's state as the mirror makes it: "running" only while connected.
std::string MirrorState(LinkState link, bool degrade) {
  switch (link) {
    case LinkState::kConnected:
      return "running";
    case LinkState::kConnecting:
    case LinkState::kDisconnected:
      return degrade ? "degraded" : "mirror-down";
    default:
      return std::string("mirror-") + LinkStateName(link);
  }
}

}  // namespace

nlohmann::json BuildStatus(const StatusSources& s) {
  const common::JournalStats js = s.journal->stats();
  const Checkpointer::Stats cp = s.checkpointer->stats();
  std::string state = "running";
  if (!js.sticky_error.ok()) {
    state = "journal-error";
  } else if (js.waiting_appenders > 0) {
    state = "journal-full";
  } else if (!cp.last_error.empty()) {
    state = "cp-failing";
  }
  // Once: it reads the journal for the lag in seconds.
  std::optional<ReplicationClient::Stats> ms;
  if (s.mirror != nullptr) ms = s.mirror->stats();
  if (ms && state == "running") {
    state = ms->resync_active ? (ms->resync.baseline ? "baseline" : "resync")
                              : MirrorState(ms->link, s.mirror_config->degrade);
  }
  const int64_t now_ns = common::RealtimeNs();
  nlohmann::json j;
  j["ok"] = true;
  j["state"] = state;
  j["source_id"] = s.config->source_id;
  j["volume_id"] = s.volume_id;
  j["backing"] = s.backing;
  j["mountpoint"] = s.mountpoint;
  j["mirror"] =
      ms ? MirrorStatus(*ms, *s.mirror_config, js.last_assigned_seq) : nlohmann::json(nullptr);
  j["last_seq"] = js.last_assigned_seq;
  j["cp_seq"] = cp.cp_seq;
  j["freed_seq"] = cp.freed_seq;
  j["cp_age_seconds"] = cp.cp_time_ns == 0 ? -1.0 : static_cast<double>(now_ns - cp.cp_time_ns) / 1e9;
  j["cp_count"] = cp.cps;
  j["cp_failures"] = cp.failures;
  j["cp_last_error"] = cp.last_error;
  j["journal_path"] = s.journal->path();
  j["journal_bytes"] = js.capacity_bytes;
  j["journal_used_bytes"] = js.used_bytes;
  j["journal_waiting_writers"] = js.waiting_appenders;
  j["journal_full_reason"] = js.full_reason;
  j["journal_error"] = js.sticky_error.ok() ? "" : js.sticky_error.ToString();
  j["ops_per_second"] = cp.ops_per_second;
  j["recovered_records"] = s.recovery.replayed;
  j["recovery_failed_records"] = s.recovery.failed;
  j["recovery"] = s.recovery.kind;
  j["unjournaled_changes"] = s.sink->unjournaled();
  j["pid"] = static_cast<int64_t>(getpid());
  j["uptime_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - s.started).count();
  return j;
}

}  // namespace mirror::fs
