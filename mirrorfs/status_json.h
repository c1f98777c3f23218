// The mount's status as JSON: what `mirrorfs status MNT [--json]` prints (docs/control.md).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "common/journal.h"
#include "mirrorfs/checkpointer.h"
#include "mirrorfs/journal_sink.h"
#include "mirrorfs/mount_config.h"
#include "mirrorfs/recovery.h"
#include "mirrorfs/replication_client.h"

namespace mirror::fs {

struct StatusSources {
  const MountConfig* config = nullptr;
  std::string volume_id;
  std::string backing;
  std::string mountpoint;
  const common::Journal* journal = nullptr;
  const Checkpointer* checkpointer = nullptr;
  const JournalSink* sink = nullptr;
  const ReplicationClient* mirror = nullptr;  // null: local-only
  const MirrorConfig* mirror_config = nullptr;
  RecoveryReport recovery;
  std::chrono::steady_clock::time_point started;
};

// state: "running", "journal-full" (writers wait for a consistency point), "journal-error"
// (the journal failed: every change is refused with EIO), "cp-failing" (the last
// consistency point failed; retried); with mirror=, while the link is not connected:
// "degraded" (on_disconnect=degrade: writers go on), "mirror-down" (block: writers wait),
// "mirror-refused", "mirror-fenced". "mirror": null when
// local-only, else the link (docs/control.md).
nlohmann::json BuildStatus(const StatusSources& s);

}  // namespace mirror::fs
