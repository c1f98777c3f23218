// ReplicationClient: ships the mount's journal to mirrord (issue 5; DESIGN invariants 3, 4).
//
// One thread runs a Boost.Asio loop with one connection at a time:
//   connect (TCP_NODELAY) -> handshake (common/handshake.h) -> cursor at WELCOME's
//   resume_seq -> RECORDS batches of released records, pipelined up to
//   kMaxInFlightBytes not yet acknowledged -> ACK (received, durable) and SYNC_DONE
//   (applied) update the acknowledged seqs and wake whoever waits for them.
// A broken link (refusal, reset, no answer for kDeadAfter) closes the connection; the
// next one is tried after a backoff (kMinBackoff doubling up to kMaxBackoff) and resumes
// where mirrord says. A refusal for a stale epoch fences the mount: no more attempts, the
// fence file (common/fence_file.h) is written, and a remount that finds it does not connect.
//
// Writers (AwaitWriter, after their change is made and their locks are released) wait as
// the mode says: sync until mirrord received their record, durable until it is on
// mirrord's disk, async only while more than max_lag journal bytes are unreceived. While
// the link is down, `degrade` lets them go on; `block` keeps them waiting.
//
// The journal is freed only below what mirrord holds durably (Checkpointer asks
// durable_seq() and Sync()). When the journal cannot resume mirrord's stream (mirrord
// wants a seq this journal freed, or has seqs this journal never had), or the
// out-of-sync marker says the image never got some changes (a journal overflow while
// degraded, a BACKING with data before its first mirrored mount), a resync (resync.h)
// runs on its own thread and the stream restarts where it says.
//
// Thread-safety: every public method may be called from any thread. Lock order: mu_ is
// held while calling nothing but ack_waiters_ (whose lock is a leaf); never while calling
// the journal or Asio.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/fence_file.h"
#include "common/journal.h"
#include "common/manifest.h"
#include "common/status.h"
#include "mirrorfs/mount_config.h"
#include "mirrorfs/resync.h"
#include "mirrorfs/seq_waiters.h"

namespace mirror::fs {

// kRefused: mirrord refuses a record for good (a device node it does not allow, a path
// it cannot apply, ...): like kDisconnected, retried slowly until its config changes.
enum class LinkState { kConnecting, kConnected, kDisconnected, kRefused, kFenced, kStopped };
const char* LinkStateName(LinkState state);  // "connecting", "connected", ...

struct ReplicationIdentity {
  std::string source_id;
  std::string volume_id;
  uint64_t epoch = 0;
  // A file whose existence means the mirror is out of sync (its text says why); kept
  // beside the journal so that a remount knows.
  std::string out_of_sync_marker;
  // The fence file (common/fence_file.h), also beside the journal: once mirrord fenced this
  // mount, it ships nothing more, also after a remount.
  std::string fence_file;
};

class ReplicationClient final : public ResyncLink {
 public:
  struct Stats {
    LinkState link = LinkState::kConnecting;
    uint64_t received_seq = 0;  // acknowledged by mirrord: in its memory
    uint64_t durable_seq = 0;   // on mirrord's disk
    uint64_t applied_seq = 0;   // in mirrord's image
    uint64_t sent_seq = 0;      // the last record written to the socket
    uint64_t lag_records = 0;   // released records not yet received
    uint64_t lag_bytes = 0;     // journal bytes after the last received record
    double lag_seconds = 0;     // age of the oldest record not yet received (0: none)
    uint64_t connects = 0;      // sessions started
    uint64_t waiting_writers = 0;
    std::string peer;        // "host:port" as configured
    std::string last_error;  // why the link last broke (kept after it recovers)
    bool resync_active = false;  // a resync (or baseline) is running
    std::string resync_reason;   // why the mirror needs / needed one
    ResyncProgress resync;       // its progress (the last one's after it ended)
    std::optional<common::FenceInfo> fence;  // set once fenced: where the promoted image stopped
  };

  // `journal` must outlive the client.
  ReplicationClient(common::Journal& journal, const MirrorConfig& config,
                    ReplicationIdentity identity);
  ~ReplicationClient();  // Stop()
  ReplicationClient(const ReplicationClient&) = delete;
  ReplicationClient& operator=(const ReplicationClient&) = delete;

  void Start();  // starts the thread (after daemonizing: no threads before the fork)
  void Stop();   // closes the link, wakes every waiter, joins the thread

  // Required before Start: a stream that cannot continue, or the out-of-sync marker,
  // starts a resync of `backing` on its own thread. `freeze` blocks every change to
  // BACKING while its lock is held. (Separate from the constructor because the client
  // must exist, for invariant 4, before the Filesystem that `freeze` locks.)
  void EnableResync(std::string backing, Resyncer::Freeze freeze);

  // New records were released: ship them (cheap when the shipper is already awake).
  void Notify() override;

  // ResyncLink, for the resync thread: each blocks until mirrord answered, the link
  // broke (Unavailable) or the client stops (Aborted).
  common::Status RestartStream(uint64_t next_seq) override;
  common::Result<common::Manifest> FetchManifest(bool content_hashes) override;
  common::Result<Sums> FetchSums(const std::string& path, uint32_t block_size) override;
  common::Status FinishResync(uint64_t through_seq) override;
  // Called by a writer whose change journaled records up to `seq`, after its locks are
  // released; returns when the mode allows (see above) or the client stops.
  void AwaitWriter(uint64_t seq);

  // Everything <= this seq is on mirrord's disk (0 before the first connection).
  uint64_t durable_seq() const { return durable_seq_.load(std::memory_order_acquire); }
  // A consistency point's request (SYNC): waits until mirrord has applied everything
  // <= seq to its image and returns the applied seq. Unavailable when the link is
  // down and `wait_for_link` is false; DeadlineExceeded after `timeout`; Aborted
  // when fenced or stopping.
  common::Result<uint64_t> Sync(uint64_t seq, bool wait_for_link,
                                std::chrono::milliseconds timeout);

  Stats stats() const;

  // True when unshipped records may be dropped to keep writers going: the link is down
  // and on_disconnect=degrade.
  bool MayDropUnshipped() const;
  // True while a resync is about to restart the stream (mirrord will not need any record
  // journaled so far): a consistency point may free them all.
  bool RestartPending() const;
  // Gives up the stream's continuity (records were freed unshipped while the link was
  // down): writes the out-of-sync marker, so that the next connection (also after a
  // remount) resyncs. Logged once.
  void MarkOutOfSync(const std::string& why);
  // Writes the out-of-sync marker `marker` (unless it exists): the next connection
  // resyncs (a new journal over a BACKING that already holds data: a baseline).
  static common::Status MarkResyncNeeded(const std::string& marker, const std::string& why);

  // Defaults; tests and benchmarks may not change them (they are the product's).
  static constexpr uint32_t kMaxBatchBytes = 1u << 20;
  static constexpr uint64_t kMaxInFlightBytes = 16u << 20;
  static constexpr std::chrono::milliseconds kMinBackoff{100};
  static constexpr std::chrono::milliseconds kMaxBackoff{5000};
  static constexpr std::chrono::seconds kPingEvery{5};
  static constexpr std::chrono::seconds kDeadAfter{30};
  // mode=async: an idle shipper waits this long after a write for more to batch.
  static constexpr std::chrono::microseconds kAsyncShipDelay{1000};

 private:
  class Session;  // one connection (replication_session.cpp)
  friend class Session;

  void Run();
  // Session callbacks (the loop thread).
  void OnConnected(uint64_t received, uint64_t durable, uint64_t applied);
  void OnAck(uint64_t received, uint64_t durable);
  void OnApplied(uint64_t applied);
  void OnSent(uint64_t seq);
  void OnReceivedEndOffset(uint64_t end_offset);
  void OnSessionEnded(LinkState next, const std::string& why, bool was_streaming);
  void RecordFence(const std::string& why);  // writes the fence file
  void Connect();              // a new Session (loop thread)
  void ShipOnLoop();           // Notify's work (loop thread)
  // Resync: whether one is pending (the marker), its start (loop thread), its run
  // (resync thread), and the answers to its requests (loop thread).
  bool ResyncPending(std::string* why) const;
  void OnResyncNeeded(const std::string& why);
  void RunResync(std::string why);
  void OnRestartAcked(uint64_t seq);
  void OnManifestChunk(uint64_t token, bool last, const std::string& error,
                       std::string_view entries);
  void OnSums(uint64_t token, const std::string& error, uint64_t size, std::string_view sums);
  // One request to mirrord: `frame(token)` is sent once the records up to `gate` are.
  struct Request {
    bool done = false;
    common::Status status;
    std::string bytes;  // manifest entries, or block sums
    uint64_t size = 0;
    bool found = true;
  };
  common::Result<Request> Ask(const std::function<std::string(uint64_t token)>& frame,
                              uint64_t gate, std::chrono::milliseconds timeout);
  void FailRequestsLocked(const common::Status& why);
  bool MayGoOnLocked() const;  // writers need not wait (link down and degrade, ...)
  void SetLinkLocked(LinkState link);  // sets link_ and writers_go_on_
  uint64_t LagBytes() const;
  double LagSeconds(uint64_t received) const;

  common::Journal& journal_;
  const MirrorConfig config_;
  const ReplicationIdentity identity_;

  std::atomic<uint64_t> received_seq_{0};
  std::atomic<uint64_t> durable_seq_{0};
  std::atomic<uint64_t> applied_seq_{0};
  std::atomic<uint64_t> sent_seq_{0};
  std::atomic<bool> wake_posted_{false};  // a ship is already queued on the loop
  std::atomic<bool> writers_go_on_{false};  // MayGoOnLocked(), for waiters without mu_
  SeqWaiters ack_waiters_;                  // sync and durable writers, by their seq

  mutable std::mutex mu_;
  std::condition_variable acked_;            // seqs moved, link state changed, or stopping
  LinkState link_ = LinkState::kConnecting;  // guarded by mu_; set by SetLinkLocked
  bool stopping_ = false;                    // guarded by mu_
  uint64_t waiters_ = 0;                     // guarded by mu_
  uint64_t connects_ = 0;                    // guarded by mu_
  bool have_received_offset_ = false;        // guarded by mu_
  uint64_t received_end_offset_ = 0;         // ring offset after the last received record; mu_
  std::string last_error_;                   // guarded by mu_
  uint64_t next_token_ = 1;                  // guarded by mu_
  std::map<uint64_t, Request> requests_;     // guarded by mu_
  bool restart_pending_ = false;             // RESYNC sent, not acknowledged; mu_
  bool stream_superseded_ = false;           // resync needed, RESYNC not acknowledged; mu_
  bool resync_active_ = false;               // guarded by mu_
  std::string resync_reason_;                // guarded by mu_
  ResyncProgress resync_progress_;           // guarded by mu_
  std::optional<common::FenceInfo> fence_;   // guarded by mu_

  std::string backing_;  // set by EnableResync; empty: no resync
  Resyncer::Freeze freeze_;
  std::thread resync_thread_;  // joined before the next one starts, and in Stop

  uint64_t loop_sync_wanted_ = 0;  // the highest SYNC asked for; loop thread only

  struct Loop;  // the Asio objects, kept out of this header
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace mirror::fs
