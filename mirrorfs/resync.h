// Resync (and baseline, a resync against an empty image): makes mirrord's image equal
// BACKING again when the record stream cannot simply continue (DESIGN "Link loss,
// baseline and resync"), while clients keep writing.
//
//   1. Namespace phase, with every change frozen (Filesystem::FreezeChanges): P = the
//      last journaled seq; RESYNC(P + 1) restarts mirrord's stream there (it drops what
//      it had not applied); mirrord's image manifest and BACKING's are compared
//      (resync_plan.h) and the plan's records are journaled, all at one point of the
//      stream, so they apply to the image exactly as it was compared.
//   2. Data phase, file by file, a block range at a time, each range frozen briefly: the
//      file's blocks are compared with the image's block sums (asked once per file) and
//      only differing blocks are journaled as writes (holes as punched holes); then its
//      size and times. Client changes between ranges are journaled between them, so the
//      image sees them in BACKING's order.
//   3. RESYNC_DONE(last seq): once mirrord applied it, its image is consistent again.
// Records go through the journal like any others: shipped, acknowledged, freed by
// consistency points.
//
// Thread-safety: Run() on one thread (the resync thread); progress() from any.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/journal.h"
#include "common/manifest.h"
#include "common/status.h"
#include "mirrorfs/resync_plan.h"

namespace mirror::fs {

// What the resync needs of the link to mirrord (ReplicationClient implements it).
class ResyncLink {
 public:
  virtual ~ResyncLink() = default;
  // RESYNC(next_seq), returns once mirrord acknowledged it.
  virtual common::Status RestartStream(uint64_t next_seq) = 0;
  virtual common::Result<common::Manifest> FetchManifest(bool content_hashes) = 0;
  struct Sums {
    bool found = false;
    uint64_t size = 0;
    std::vector<common::BlockSum> sums;
  };
  virtual common::Result<Sums> FetchSums(const std::string& path, uint32_t block_size) = 0;
  virtual common::Status FinishResync(uint64_t through_seq) = 0;
  virtual void Notify() = 0;  // new records to ship
};

struct ResyncProgress {
  std::string phase;         // "namespace", "data", "done"
  bool baseline = false;     // the image was empty
  uint64_t entries = 0;      // in BACKING's manifest
  uint64_t files_total = 0;  // files in the data phase
  uint64_t files_done = 0;
  uint64_t bytes_total = 0;  // their bytes
  uint64_t bytes_done = 0;   // compared so far
  uint64_t bytes_sent = 0;   // data journaled for the image (writes)
  double seconds = 0;        // since the start
};

class Resyncer {
 public:
  using Freeze = std::function<std::unique_lock<std::shared_mutex>()>;
  // `freeze` blocks every change to BACKING while its lock is held. All references must
  // outlive Run().
  Resyncer(common::Journal& journal, const std::string& backing, Freeze freeze, ResyncLink& link);

  // The whole resync; an error leaves the mirror needing another resync.
  common::Status Run();
  // A copy of the progress so far (updated as the phases go).
  ResyncProgress progress() const;
  // Called after every progress step (from the Run thread).
  void OnProgress(std::function<void(const ResyncProgress&)> report) {
    report_ = std::move(report);
  }

  static constexpr uint32_t kBlockSize = 64 * 1024;
  static constexpr uint64_t kRangeBytes = 1u << 20;  // data compared per frozen step
  // Sums of one file fit in one answer (common/frame.h kMaxBlockSumsBytes / 16): bigger
  // files get bigger blocks.
  static constexpr uint64_t kMaxBlocksPerFile = 262144;

 private:
  common::Status NamespacePhase(std::vector<DataTask>* tasks);
  common::Status SyncFile(const DataTask& task);
  common::Status Append(const common::Op& op);
  void Step(const std::function<void(ResyncProgress&)>& change);

  common::Journal& journal_;
  const std::string backing_;
  Freeze freeze_;
  ResyncLink& link_;
  int backing_fd_ = -1;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
  ResyncProgress progress_;  // guarded by mu_
  std::function<void(const ResyncProgress&)> report_;
};

}  // namespace mirror::fs
