// One source's store: STATE_DIR/<source_id>/ with its memory file (`memory`), segment log
// (`log/`), image (`image/`) and state file (`state`). mirrord/README.md has the layout.
//
// The life of a record:
//   Receive  -> checked (mirrord/record_check.h) and copied into the memory's active half:
//               "received" (received_seq);
//   flusher  -> when the active half is full, a sync is asked for, or the oldest record
//               in it waited flush_delay (lazy_flush_delay when the session's source
//               does not wait for durable ACKs), the halves switch and the flusher thread appends
//               the sealed half to the log and fdatasyncs it: "durable" (durable_seq),
//               then clears the half. Nothing counts as durable before the fsync.
//   Sync(cp) -> everything through cp durable, then applied to image/ in seq order
//               (common/apply.h), the image synced, applied_seq stored in the state file,
//               and the wholly applied segments deleted (unless retention keeps them).
//
// Crash safety (kill -9 at any moment): Open recovers the log (torn tail dropped), then
// the memory file (complete records of both halves, deduplicated against the log),
// appends what the log lacks and fsyncs, so received == durable after Open. Apply
// resumes after the stored applied_seq; records up to the stored replay_through may have
// been applied before the crash and are applied in replay mode. After each record that
// is not replay-safe (a rename) the image is synced and applied_seq stored at once.
//
// Resync (docs/formats.md, "Wire protocol: what mirrord does"): Resync() drops every
// record received but not applied and restarts the sequence at the source's next seq;
// the state file says resync_active until the records the source sent after it (through
// ResyncDone's seq) are applied. The log is dropped by renaming log/ to log.dropped/
// before the state file names the new seqs, so a crash at any point leaves either the
// old log with the old state, or no log (a new, empty one continues after applied_seq).
//
// Promote (docs/operations.md): the image becomes a primary. Every record received is
// made durable and applied, the epoch raised, the state file says promoted (with the
// last seq the image holds) and the image root gets the volume id and the new epoch
// (common/volume_attrs.h). From then on every session, record and sync is refused with
// stale-epoch "fenced: promoted at epoch N (image at seq S)" (common/fence_file.h). It refuses,
// unless forced, while the image cannot be consistent: before any source connected, during a resync
// (a baseline is one), or after the store broke; forced, it says what may be missing.
//
// Image queries (ImageManifest, ImageSums) first apply through the given seq, as Sync
// does, then read the image under the apply lock, so what they see is exactly the image
// at that seq.
//
// Sessions: one connection at a time feeds a store. StartSession() makes the store the
// new connection's: an older session's Receive is refused from then on (its socket is
// about to close), and everything received is flushed, so the durable_seq it returns is
// where the source resumes.
//
// One process at a time: Open takes the store's lock (store_lock.h) and holds it.
//
// Thread-safety: all public methods are thread-safe. Receive and StartSession are quick
// except for StartSession's flush; Sync and Flush block (call them off the I/O threads).
// Callbacks (room, durable) run on the flusher thread with no store lock held; they must
// not call back into the store synchronously (post instead).
// Lock order: apply_mu_ before log_mu_ before mu_ (the flusher holds mu_ and log_mu_
// one after the other, never together).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/apply.h"
#include "common/manifest.h"
#include "common/record.h"
#include "common/segment_log.h"
#include "common/status.h"
#include "mirrord/memory_file.h"
#include "mirrord/record_check.h"
#include "mirrord/state_file.h"
#include "mirrord/store_lock.h"

namespace mirror::d {

struct StoreOptions {
  uint64_t memory_half_bytes = 8ull << 20;  // each of the two halves
  common::DecodeLimits limits;              // max record size; must fit in a half
  uint64_t segment_bytes = 64ull << 20;
  bool allow_devices = false;
  // Longest wait before a half switches: for a source that waits for durable ACKs (HELLO
  // flag kHelloWantsDurable), and for one that does not (a full half, a SYNC or a Flush
  // switch at once in both cases).
  std::chrono::milliseconds flush_delay{0};
  std::chrono::milliseconds lazy_flush_delay{2};
  std::chrono::milliseconds retention{0};    // keep applied segments this long (0: delete)
};

// What Receive did with a batch of records.
struct ReceiveResult {
  uint32_t accepted = 0;         // records taken, from the start of the batch
  bool need_room = false;        // memory full: retry the rest after the room callback
  std::optional<Refusal> error;  // the next record was refused: close the connection
};

struct SessionInfo {
  uint64_t token = 0;
  uint64_t epoch = 0;  // the store's (possibly raised) epoch
  uint64_t received_seq = 0;
  uint64_t durable_seq = 0;
  uint64_t applied_seq = 0;
  // The image follows no stream of the source (`mirrord adopt` made it; the first
  // RESYNC ends that): the source must resync, and WELCOME tells it so (resume_seq 0).
  bool needs_resync = false;
};

struct StoreStats {
  std::string source_id;
  std::string volume_id;
  std::string dir;
  uint64_t epoch = 0;
  uint64_t received_seq = 0;
  uint64_t durable_seq = 0;
  uint64_t applied_seq = 0;
  uint64_t received_bytes = 0;  // since start
  uint64_t memory_used_bytes = 0;
  uint64_t memory_capacity_bytes = 0;
  double lag_seconds = 0;  // age of the oldest received record not yet applied
  uint64_t log_bytes = 0;
  uint64_t log_segments = 0;
  bool broken = false;  // a write, fsync or apply failed: needs an admin
  std::string last_error;
  bool resync_active = false;  // the image is not consistent (see state_file.h)
  uint64_t resync_until = 0;   // 0 until RESYNC_DONE came
  bool promoted = false;       // the image is a primary: nothing more is applied
  uint64_t promoted_seq = 0;
};

// What Resync did, for the log.
struct ResyncInfo {
  uint64_t applied_seq = 0;   // the image's seq, unchanged
  uint64_t received_seq = 0;  // before: records in (applied_seq, received_seq] were dropped
  uint64_t next_seq = 0;      // the stream restarts here: received = durable = applied = next - 1
  std::string cleared_error;  // an earlier apply failure that the dropped records caused
};

// What Promote did. `refused` non-empty: nothing changed, and it says why (without force).
struct PromoteResult {
  std::string refused;
  bool already = false;               // promoted before: nothing changed
  uint64_t epoch = 0;                 // the raised epoch
  uint64_t promoted_seq = 0;          // the last record the image holds
  uint64_t received_seq = 0;          // the last record received
  std::vector<std::string> warnings;  // forced: what may be missing or wrong
};

// What an image query gives. `refusal` set: applying the records before it failed, as a
// SYNC would have (answer ERROR and close). Else `error` (empty: OK) and the result.
struct ManifestAnswer {
  std::optional<Refusal> refusal;
  std::string error;
  common::Manifest manifest;
};
struct SumsAnswer {
  std::optional<Refusal> refusal;
  std::string error;  // "not found", "not a regular file", or the reason
  uint64_t size = 0;
  std::string sums;  // common::BlockSum bytes, one per block
};

class SourceStore {
 public:
  // Opens (creating what is missing) and recovers the store in `dir`. `*recovery_note`
  // gets one line about what recovery found, for the log.
  static common::Result<std::unique_ptr<SourceStore>> Open(const std::string& dir,
                                                           const std::string& source_id,
                                                           const StoreOptions& options,
                                                           std::string* recovery_note = nullptr);
  // Stops the flusher after flushing what memory holds (best effort).
  ~SourceStore();
  SourceStore(const SourceStore&) = delete;
  SourceStore& operator=(const SourceStore&) = delete;

  const std::string& source_id() const { return source_id_; }
  const std::string& dir() const { return dir_; }
  const StoreOptions& options() const { return options_; }
  uint64_t epoch() const;

  // Makes the store the session's (see above). `volume_id` must match the stored one (the
  // first session stores it); a newer `epoch` is stored. `on_durable` is called after
  // every flush while this session is current, with received and durable seqs.
  // `wants_durable`: the source waits for durable ACKs, so records are flushed after
  // flush_delay rather than lazy_flush_delay.
  common::Result<SessionInfo> StartSession(
      const std::string& volume_id, uint64_t epoch,
      std::function<void(uint64_t received, uint64_t durable)> on_durable, Refusal* refusal,
      bool wants_durable = true);
  // Ends a session if it is still the current one (its callbacks are dropped).
  void EndSession(uint64_t token);

  // Checks and takes records from `records` (whole records back to back, `count` of
  // them, as in a RECORDS frame) for session `token`.
  ReceiveResult Receive(uint64_t token, std::string_view records, uint32_t count);
  // Calls `ready` exactly once: at once (on the caller's thread) if memory has room now,
  // else on the flusher thread when a half is freed or the store stops.
  void WhenRoom(std::function<void()> ready);

  // Blocks until everything received is durable. Error if the log failed.
  common::Status Flush();

  // Consistency point: durable through cp_seq, applied through it, image synced, state
  // stored, applied segments deleted. Returns applied_seq (>= cp_seq). On failure
  // `*refusal` says what to answer the source. `*resync_ended` (when given) is set when
  // this Sync ended a resync (the image is consistent again).
  common::Result<uint64_t> Sync(uint64_t cp_seq, Refusal* refusal, bool* resync_ended = nullptr);

  // RESYNC from session `token`: the source's stream restarts at `next_seq` (>= 1). Drops
  // every record received and not applied (from memory and the log; nothing is applied),
  // sets received = durable = applied = next_seq - 1 and stores that with resync_active
  // in the state file; the log continues at next_seq. An earlier apply failure is
  // cleared (the records that caused it are gone). Blocks (flush, renames, fsyncs).
  common::Result<ResyncInfo> Resync(uint64_t token, uint64_t next_seq, Refusal* refusal);
  // RESYNC_DONE: the resync ends once applied_seq >= through_seq (at once if it is; else
  // at the Sync that gets there). through_seq beyond received_seq is refused (protocol).
  // Without an active resync it changes nothing. Returns true when the resync ended now.
  common::Result<bool> ResyncDone(uint64_t through_seq, Refusal* refusal);

  // MANIFEST_REQUEST: applies through `through_seq` (<= received_seq), then lists image/.
  ManifestAnswer ImageManifest(uint64_t through_seq, const common::ManifestOptions& options);
  // SUMS_REQUEST: applies through `through_seq`, then the block sums of the regular file
  // at `path` (an entry path) beneath image/, resolved as apply resolves paths (no
  // symlink in any component, none as the last one).
  SumsAnswer ImageSums(uint64_t through_seq, const std::string& path, uint32_t block_size);

  // See above. Blocks (flush, apply, fsyncs). Error: it failed part way (nothing was
  // promoted; the store may be broken, as after a failed Sync).
  common::Result<PromoteResult> Promote(bool force);
  // The refusal every session of a promoted store gets; empty when not promoted.
  std::string FencedMessage() const;
  // Stops the store for good without destroying it (pointers to it stay valid): its
  // flusher stops after a last flush, its lock is released (so that `mirrord adopt` may
  // change the directory), and every later session, record and sync is refused as a
  // passing trouble. The registry then opens a new store for the directory.
  void Retire();

  StoreStats Stats() const;
  // The two seqs an ACK carries, without the rest of Stats (built for every ACK).
  std::pair<uint64_t, uint64_t> ReceivedAndDurable() const;

 private:
  struct PrivateTag {};

 public:
  SourceStore(PrivateTag, std::string dir, std::string source_id, const StoreOptions& options);

 private:
  common::Status Recover(std::string* note);
  common::Status RecoverMemory(std::string* note);
  void FlusherLoop();
  // Flushes the sealed half: called by the flusher with `lock` held; unlocks around I/O.
  void FlushSealed(std::unique_lock<std::mutex>& lock);
  void SwitchLocked();  // mu_ held: active half -> sealed; wakes the flusher
  // Receive's work with mu_ held; true when a record went into an empty active half (the
  // caller then wakes the flusher, which waits untimed while that half is empty).
  bool ReceiveLocked(uint64_t token, std::string_view records, uint32_t count,
                     ReceiveResult* result);
  common::Status WaitDurable(uint64_t seq);
  void NoteArrivalLocked(std::chrono::steady_clock::time_point now);  // mu_ held
  common::Status StoreState(const SourceState& state);                // apply_mu_ held
  common::Result<uint64_t> SyncLocked(uint64_t cp_seq, Refusal* refusal,
                                      bool* resync_ended);  // apply_mu_ held
  common::Status EndResyncIfApplied(bool* ended);           // apply_mu_ held
  // Why the source may not use the store now (promoted, or a promote runs); mu_ held.
  std::optional<Refusal> PromoteRefusalLocked() const;
  // Promote's steps; apply_mu_ held.
  std::vector<std::string> PromoteBlockers() const;
  uint64_t ApplyAllForPromote(bool force, PromoteResult* result);
  // Resync's steps; apply_mu_ and log_mu_ held.
  common::Status DropLogLocked();
  common::Status OpenLogLocked(uint64_t next_seq);
  common::SegmentLogOptions LogOptions() const;
  common::Status ApplyThrough(uint64_t target, Refusal* refusal);     // apply_mu_ held
  common::Status DeleteApplied(uint64_t applied);                     // apply_mu_ held
  std::string state_path() const { return dir_ + "/" + kStateFileName; }
  std::string log_dir() const { return dir_ + "/log"; }
  // Where Resync moves the dropped log before it deletes it.
  std::string dropped_log_dir() const { return dir_ + "/log.dropped"; }

  const std::string dir_;
  const std::string source_id_;
  const StoreOptions options_;
  common::UniqueFd lock_;  // the store's lock (store_lock.h), held until destruction

  std::mutex apply_mu_;  // one Sync at a time; guards state_ writes and image_
  SourceState state_;    // as last stored; guarded by apply_mu_ (copies in mu_ for stats)
  std::optional<common::ImageTree> image_;  // guarded by apply_mu_
  uint64_t crash_replay_through_ = 0;       // guarded by apply_mu_

  mutable std::mutex mu_;
  std::condition_variable flusher_cv_;  // wakes the flusher
  std::condition_variable durable_cv_;  // wakes Flush/Sync waiters
  std::unique_ptr<MemoryFile> memory_;  // guarded by mu_ (sealed bytes: see memory_file.h)
  uint64_t received_seq_ = 0;           // guarded by mu_
  uint64_t durable_seq_ = 0;            // guarded by mu_
  uint64_t applied_seq_ = 0;            // guarded by mu_ (copy of state_.applied_seq)
  uint64_t epoch_ = 0;                  // guarded by mu_
  std::string volume_id_;               // guarded by mu_
  uint64_t received_bytes_ = 0;         // guarded by mu_
  // When unapplied records arrived, for lag_seconds: (last seq received in a window of
  // kLagWindow, start of the window), oldest first; entries <= applied_seq_ are dropped.
  std::deque<std::pair<uint64_t, std::chrono::steady_clock::time_point>> arrivals_;  // mu_
  uint64_t session_token_ = 0;                                        // guarded by mu_
  std::function<void(uint64_t, uint64_t)> on_durable_;                // guarded by mu_
  std::vector<std::function<void()>> room_waiters_;                   // guarded by mu_
  bool flush_wanted_ = false;                                         // guarded by mu_
  bool wants_durable_ = true;  // the current session's HELLO flag       guarded by mu_
  std::chrono::steady_clock::time_point oldest_unflushed_;            // guarded by mu_
  bool stop_ = false;                                                 // guarded by mu_
  common::Status error_;                                              // guarded by mu_; sticky
  std::string last_error_;                                            // guarded by mu_
  common::WireError last_error_code_ = common::WireError::kInternal;  // guarded by mu_
  uint64_t log_bytes_ = 0, log_segments_ = 0;                         // guarded by mu_
  // Not empty once promoted: every session, record and sync is refused with it.
  std::string fenced_message_;  // guarded by mu_
  // While a promote runs: sessions, records and syncs are refused as a passing trouble
  // (the source retries; only a promote that completes fences it).
  bool promoting_ = false;      // guarded by mu_
  bool retired_ = false;        // guarded by mu_; see Retire()
  bool adopted_ = false;        // guarded by mu_ (copy of state_.adopted)
  bool promoted_ = false;       // guarded by mu_ (copy of state_.promoted)
  uint64_t promoted_seq_ = 0;   // guarded by mu_ (copy of state_.promoted_seq)
  bool resync_active_ = false;  // guarded by mu_ (copy of state_.resync_active)
  uint64_t resync_until_ = 0;   // guarded by mu_ (copy of state_.resync_until)

  mutable std::mutex log_mu_;
  // guarded by log_mu_; null only after a Resync failed to open the new log (then error_
  // is set and the store is broken)
  std::unique_ptr<common::SegmentLog> log_;

  std::thread flusher_;
};

}  // namespace mirror::d
