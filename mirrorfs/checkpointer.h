// Checkpointer: takes the mount's consistency points (CPs) on its own thread.
//
// A CP at seq S: every record <= S is released, so its change is in BACKING; the journal
// is synced (its records survive a machine crash), BACKING is synced (syncfs), and the
// journal frees everything <= S. With mirroring the CP also carries the sync request to
// mirrord (SYNC S: mirrord applies through S to its image) and frees only what mirrord
// holds durably (invariant 4): min(S, durable seq). A requested CP (`mirrorfs
// checkpoint`) waits for mirrord's answer, through link loss, until its timeout; an
// automatic one asks only while connected and frees what it can. If the journal is full,
// the link down and on_disconnect=degrade, the CP frees everything anyway and marks the
// mirror out of sync (a resync must follow).
//
// When: every `interval` (0: never by time), as soon as the journal passes half full or a
// writer waits for space, and on demand (Request: `mirrorfs checkpoint`, unmount).
// A failed CP is logged and kept in stats(); the next one retries.
//
// Thread-safety: all public methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "common/journal.h"
#include "common/status.h"
#include "mirrorfs/replication_client.h"

namespace mirror::fs {

class Checkpointer {
 public:
  struct Stats {
    uint64_t cp_seq = 0;        // everything <= this is synced (local-only: and freed)
    uint64_t freed_seq = 0;     // everything <= this is freed from the journal
    int64_t cp_time_ns = 0;     // CLOCK_REALTIME of the last successful CP; 0: none yet
    uint64_t cps = 0;           // successful CPs
    uint64_t failures = 0;
    std::string last_error;     // empty after a success
    double ops_per_second = 0;  // records journaled per second, over the last second
  };

  // `backing_fd` is any fd on BACKING's filesystem (for syncfs); both must outlive this.
  Checkpointer(common::Journal& journal, int backing_fd, std::chrono::milliseconds interval);
  ~Checkpointer();  // Stop()
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // With mirroring; before Start(). `mirror` must outlive the checkpointer.
  void AttachMirror(ReplicationClient* mirror) { mirror_ = mirror; }

  void Start();
  void Stop();  // joins the thread; later Requests run the CP on the caller's thread

  // Takes a CP that starts after this call and returns its seq once it is complete, or
  // the error that stopped it. DeadlineExceeded after `timeout`.
  common::Result<uint64_t> Request(std::chrono::milliseconds timeout);

  Stats stats() const;

 private:
  void Loop();
  bool DueLocked(std::chrono::steady_clock::time_point now) const;
  // How a CP waits for mirrord's answer to its SYNC.
  enum class MirrorWait { kIfConnected, kThroughLinkLoss };
  // One CP, on the calling thread; takes cp_mu_.
  common::Status RunOne(MirrorWait wait, std::chrono::milliseconds timeout);
  // What the journal may free after a CP at `seq` (invariant 4).
  uint64_t FreeableThrough(uint64_t seq);
  void SampleRate(std::chrono::steady_clock::time_point now);

  common::Journal& journal_;
  const int backing_fd_;
  const std::chrono::milliseconds interval_;
  ReplicationClient* mirror_ = nullptr;

  std::mutex cp_mu_;  // serializes CPs (thread and Stop-time callers)

  mutable std::mutex mu_;
  std::condition_variable wake_;  // a request, or stop
  std::condition_variable done_;  // a CP finished
  uint64_t requested_ = 0;        // Request tickets handed out; guarded by mu_
  uint64_t started_ = 0;          // tickets covered by a CP that has started; guarded by mu_
  uint64_t finished_ = 0;         // tickets covered by a CP that has finished; guarded by mu_
  std::chrono::milliseconds request_timeout_{0};  // of the latest Request; guarded by mu_
  common::Status last_status_;    // of the last CP; guarded by mu_
  Stats stats_;                   // guarded by mu_
  std::chrono::steady_clock::time_point last_cp_;  // guarded by mu_
  std::chrono::steady_clock::time_point rate_at_;  // guarded by mu_
  uint64_t rate_seq_ = 0;                          // guarded by mu_
  bool stop_ = false;                              // guarded by mu_
  bool running_ = false;                           // guarded by mu_
  std::thread thread_;
};

}  // namespace mirror::fs
