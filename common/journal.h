// Journal: the source's NVRAM file. Every change made through a mirrorfs mount is
// appended here as a record (common/record.h bytes) before anything else happens to it,
// and freed up to a seq at each consistency point. Format: docs/formats.md, "Journal file"
// (constants in common/journal_format.h).
//
//   auto j = Journal::Create(path, {"src", "vol", 1}, {.size_bytes = 64 << 20});
//   MIRROR_ASSIGN_OR_RETURN(uint64_t seq, (*j)->Append(op));   // in the journal now
//   ...                                                      // at a consistency point:
//   MIRROR_RETURN_IF_ERROR((*j)->Sync());                    // durable
//   MIRROR_RETURN_IF_ERROR((*j)->Free(cp_seq));              // space reusable
//
// Guarantees:
// - Seqs are assigned in Append, unique and gap-free, starting at the header's tail seq.
// - Append returns only when its record and every earlier one are completely in the
//   medium (the committed prefix). After a process crash, Open finds every record whose
//   Append returned; after a machine crash, every record up to the last successful Sync.
// - A full ring never drops or overwrites a record: Append waits (in FIFO order) until
//   Free makes room, or Shutdown() aborts it.
// - A failed write or sync is sticky: every later Append, Sync and Free returns that
//   error until the journal is reopened (the bytes on the medium are then unknown, as
//   with LevelDB's log after a failed sync).
//
// Thread-safety: Append, Sync, Free, Shutdown, ReadFrom and stats may be called from
// any number of threads. Locks, in the order they may be taken:
//   header_mu_  serializes Free (header writes) and ReadFrom's walk from the tail, so the
//               tail cannot move while a walk starts there;
//   sync_mu_    serializes Sync;
//   mu_         the ring state (fields marked "guarded by mu_"); held only for
//               bookkeeping, never across a copy or a system call;
//   hint_mu_    serializes stores of the released-prefix hint; never held with mu_.
// header_mu_ and sync_mu_ are never held together. The destructor must not race with
// any call: join the callers first.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "common/journal_header.h"
#include "common/journal_medium.h"
#include "common/journal_ring.h"
#include "common/record.h"
#include "common/status.h"

namespace mirror::common {

struct JournalIdentity {
  std::string source_id;  // at most kJournalMaxIdBytes (127) bytes each
  std::string volume_id;
  uint64_t epoch = 0;  // stamped into every record
};

struct JournalOptions {
  uint64_t size_bytes = 64u << 20;  // Create only: a multiple of 4096, at least 1 MiB
  JournalMediumKind medium = JournalMediumKind::kMmap;
  // Records longer than limits.max_record_bytes are refused by Append, because the
  // reader would refuse them too. Open must use limits at least as large as the writer's.
  DecodeLimits limits;
  uint64_t first_seq = 1;  // Create only: the seq of the first record
};

// What Open found in the ring.
struct JournalRecovery {
  uint64_t records = 0;      // live records found from the tail
  uint64_t first_seq = 0;    // the header's tail seq (the first live record's, if any)
  uint64_t last_seq = 0;     // the last live record's seq; first_seq - 1 when none
  uint64_t stop_offset = 0;  // where the scan stopped: appends continue here
  std::string stop_reason;   // why ("offset 8192: end of data (zero length)", ...)
  // Records with a seq above last_seq that decode and carry the journal's epoch, found
  // in the free part of the ring: appends that were in flight at a crash (never
  // acknowledged) or good records after damage. Reported, then erased (their length
  // field zeroed), so that they can never pass for live records after new appends.
  uint64_t records_after_stop = 0;
  uint64_t extended_bytes = 0;  // zeros added because the file was shorter than its header says
  // The released-prefix hint as found, clamped to [first_seq - 1, last_seq]: live records
  // above it were held (AppendHeld) and not yet released when the writer stopped; their
  // changes may or may not have been made on the source.
  uint64_t released_hint = 0;
};

struct JournalStats {
  uint64_t capacity_bytes = 0;     // ring bytes (file size minus the header page)
  uint64_t used_bytes = 0;         // from the tail to the next append position
  uint64_t tail_seq = 0;           // oldest live record (or the next seq, when empty)
  uint64_t last_assigned_seq = 0;  // highest seq handed out (tail_seq - 1 when none yet)
  uint64_t committed_seq = 0;      // every record <= this one is completely written
  uint64_t released_seq = 0;       // every record <= this one is visible to readers
  uint64_t waiting_appenders = 0;  // Appends blocked on a full ring
  int64_t full_since_ns = 0;       // CLOCK_REALTIME when the oldest of them started; 0 if none
  std::string full_reason;         // "journal full: N of M bytes used; ..." while blocked
  Status sticky_error;             // OK unless a write or sync failed
};

class Journal;

// A record appended with AppendHeld: completely in the journal (a crash keeps it), but
// not visible to readers or to Free until Release or VoidAndRelease.
struct HeldRecord {
  uint64_t seq = 0;
  uint64_t offset = 0;  // file offset of the record
};

// Reads released records in seq order, starting at a live seq, up to the released
// seq at creation or at the last Refresh(). There is no full index: the journal keeps
// one record start per 64 KiB of ring in memory, and ReadFrom walks record headers from
// the nearest one before the start, so starting costs at most 64 KiB worth of header
// reads (one pread each with the pwrite medium); each Next() then reads and decodes
// (CRC included) one record.
//
// The views (bytes(), record()) point into the mapping or the cursor's scratch buffer
// and are valid until the next Next(), a move of the cursor, or a Free of that record.
// The caller must not Free records that a cursor is still reading (a freed record may be
// overwritten: Next() then reports Corruption). Owned by one thread; must not outlive
// the journal.
class JournalCursor {
 public:
  // true: moved to the next record. false: reached the limit. An error: the record at
  // the position does not decode (damage, or freed and reused under the cursor).
  Result<bool> Next();
  void Refresh();  // moves the limit to the journal's released seq now

  // The record Next() moved to; only after Next() returned true.
  uint64_t seq() const { return walker_.record().meta.seq; }
  uint64_t offset() const { return walker_.record_offset(); }
  // Where the record after it starts (for Journal::BytesAfter).
  uint64_t end_offset() const { return walker_.offset(); }
  std::string_view bytes() const { return walker_.record_bytes(); }
  const Record& record() const { return walker_.record(); }
  uint64_t limit() const { return limit_; }

 private:
  friend class Journal;

  JournalCursor(const Journal* journal, RingWalker walker, uint64_t limit)
      : journal_(journal), walker_(std::move(walker)), limit_(limit) {}

  const Journal* journal_;
  RingWalker walker_;
  uint64_t limit_;
};

class Journal {
 public:
  // Creates a new journal file (AlreadyExists if `path` exists), preallocated to
  // options.size_bytes so the ring never meets ENOSPC, with an empty ring.
  static Result<std::unique_ptr<Journal>> Create(const std::string& path,
                                                 const JournalIdentity& identity,
                                                 const JournalOptions& options);
  // Opens an existing journal and recovers its ring (recovery() says what it found).
  // Mismatch when the file belongs to another source, volume or epoch; Corruption when
  // both header slots are damaged. options.size_bytes is ignored: the header says.
  static Result<std::unique_ptr<Journal>> Open(const std::string& path,
                                               const JournalIdentity& expected,
                                               const JournalOptions& options);
  // As Open, over a medium the caller made (tests wrap one to inject failures). The
  // medium must cover the whole file; options.medium is ignored.
  static Result<std::unique_ptr<Journal>> OpenWithMedium(std::unique_ptr<JournalMedium> medium,
                                                         const JournalIdentity& expected,
                                                         const JournalOptions& options);
  // Reads only the header: whose journal a file is, without opening it.
  static Result<JournalIdentity> ReadIdentity(const std::string& path);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends `rec` (built, not yet sealed): assigns the next seq, seals the record with
  // {seq, epoch, CLOCK_REALTIME now} and copies it in. Returns the seq once the record
  // and all earlier ones are committed. InvalidArgument at once for a record that can
  // never fit (longer than max_record_bytes()); Aborted after Shutdown(); the sticky
  // error after a failed write or sync. `rec` belongs to the caller again on return.
  Result<uint64_t> Append(EncodedRecord& rec);
  // Builds `op` into a thread_local EncodedRecord, then as above.
  Result<uint64_t> Append(const Op& op);

  // Write-ahead appends, for a writer that journals a change before making it (mirrorfs):
  // AppendHeld is Append, except that the record stays invisible to readers (and cannot
  // be freed) until the writer, having tried the change, calls Release (it was made) or
  // VoidAndRelease (it failed: the record becomes a VoidOp, a no-op that keeps its seq).
  // Readers see the contiguous prefix of released records; plain Appends count as
  // released once committed. Each held record must be released exactly once, by its
  // writer. Voiding is one aligned 4-byte store (the CRC inverted), so no crash tears it.
  // Release stores the released-prefix hint (docs/formats.md) before it returns, so a
  // writer that releases inside its own ordering section leaves, at any crash, exactly
  // its in-flight records above the hint.
  Result<HeldRecord> AppendHeld(EncodedRecord& rec);
  Status Release(const HeldRecord& held);
  Status VoidAndRelease(const HeldRecord& held);

  // Makes every record committed so far durable.
  Status Sync();

  // Frees every record <= through_seq (which must be <= the released seq; a seq below
  // the tail is a no-op). The header is rewritten and synced before the space is reused.
  // Cost: one header write and sync, plus a walk over at most 64 KiB of record headers.
  Status Free(uint64_t through_seq);

  // Wakes every Append waiting for space with Aborted; later Appends fail the same way.
  void Shutdown();

  // A cursor at `seq`, which must be live (tail_seq <= seq <= released seq) or the next
  // seq to release (an empty cursor to Refresh() later); NotFound otherwise.
  Result<JournalCursor> ReadFrom(uint64_t seq) const;

  JournalStats stats() const;
  // Ring bytes from `offset` (a record boundary at or after the tail, e.g. a cursor's
  // end_offset()) to the next append position: how much was journaled after it.
  uint64_t BytesAfter(uint64_t offset) const;
  uint64_t committed_seq() const;
  uint64_t released_seq() const;
  const JournalIdentity& identity() const { return identity_; }
  const JournalRecovery& recovery() const { return recovery_; }
  const std::string& path() const { return medium_->name(); }
  // The longest record Append accepts: the smaller of limits.max_record_bytes and half
  // the ring (a record of at most half the ring fits wherever an empty ring's head is).
  uint64_t max_record_bytes() const { return max_record_bytes_; }

 private:
  // One Append between reserving space and being committed.
  struct Pending {
    bool done = false;
    uint64_t end_offset = 0;      // ring position after the record
    uint64_t reserved_total = 0;  // reserved_total_ after the record
  };
  // A record start remembered every kIndexStride ring bytes, so that Free and ReadFrom
  // walk at most that many bytes of headers instead of everything from the tail.
  struct IndexEntry {
    uint64_t seq = 0;
    uint64_t offset = 0;
  };
  static constexpr uint64_t kIndexStride = 64 * 1024;
  struct Reservation {
    uint64_t seq = 0;
    uint64_t offset = 0;       // where the record goes
    uint64_t wrap_marker = 0;  // where a wrap marker goes; 0: none
  };

  Journal(std::unique_ptr<JournalMedium> medium, JournalHeader header, int header_slot,
          const JournalOptions& options);
  Status Recover();

  uint64_t UsedLocked() const;
  uint64_t ConsumedLocked(uint64_t aligned) const;
  Status WaitForSpaceLocked(std::unique_lock<std::mutex>& lock, uint64_t aligned);
  Reservation ReserveLocked(uint64_t aligned, bool held);
  Result<Reservation> AppendRecord(EncodedRecord& rec, bool held);
  Status CheckAppendable(const EncodedRecord& rec) const;
  Status CopyIn(const EncodedRecord& rec, const Reservation& r);
  Result<uint64_t> Publish(const Reservation& r, const Status& copied);
  bool AdvanceReleasedLocked();
  void StoreReleasedHint();
  void SetStickyLocked(const Status& cause, std::string_view what);
  Status SyncRange(uint64_t end_offset, uint64_t bytes);
  Status WriteHeader(JournalHeader header);
  Status CheckUsableLocked() const;

  const std::unique_ptr<JournalMedium> medium_;
  const RingGeometry geo_;
  const JournalIdentity identity_;
  const DecodeLimits limits_;
  const uint64_t max_record_bytes_;
  JournalRecovery recovery_;  // written once, by Open

  mutable std::mutex header_mu_;
  JournalHeader header_;  // the newest header written; guarded by header_mu_
  int header_slot_;       // the slot holding it; guarded by header_mu_

  std::mutex sync_mu_;
  uint64_t synced_total_ = 0;  // reserved_total_ value made durable; guarded by sync_mu_

  mutable std::mutex mu_;
  std::condition_variable space_cv_;   // tail moved, shutdown or sticky error
  std::condition_variable commit_cv_;  // committed_seq_ moved, or sticky error
  uint64_t head_ = 0;                  // next append position; guarded by mu_
  uint64_t tail_offset_ = 0;           // guarded by mu_
  uint64_t tail_seq_ = 0;              // guarded by mu_
  uint64_t next_seq_ = 0;              // guarded by mu_
  uint64_t committed_seq_ = 0;         // guarded by mu_
  // committed_seq_, for Publish to poll without mu_: written under mu_, read lock-free.
  std::atomic<uint64_t> committed_published_{0};
  uint64_t committed_end_ = 0;      // ring position after the committed prefix; guarded by mu_
  uint64_t reserved_total_ = 0;     // ring bytes ever reserved (with wrap padding); guarded by mu_
  uint64_t committed_total_ = 0;    // the same, for the committed prefix; guarded by mu_
  std::deque<Pending> pending_;     // seqs committed_seq_+1 .. next_seq_-1; guarded by mu_
  std::deque<IndexEntry> index_;    // increasing seqs, all >= tail_seq_; guarded by mu_
  uint64_t bytes_since_index_ = 0;  // guarded by mu_
  uint64_t commit_sleepers_ = 0;    // Appends asleep on commit_cv_; guarded by mu_
  uint64_t released_seq_ = 0;  // guarded by mu_
  // Seqs released_seq_+1 .. next_seq_-1: true once released. Guarded by mu_.
  std::deque<bool> released_flags_;
  std::mutex hint_mu_;        // serializes hint stores; taken without mu_
  uint64_t hint_stored_ = 0;  // the last released seq stored as the hint; guarded by hint_mu_
  uint64_t space_waiters_ = 0;      // guarded by mu_
  uint64_t next_ticket_ = 0;        // FIFO order of space waiters; guarded by mu_
  uint64_t serving_ticket_ = 0;     // guarded by mu_
  int64_t full_since_ns_ = 0;       // guarded by mu_
  bool shutdown_ = false;           // guarded by mu_
  Status sticky_;                   // guarded by mu_
};

}  // namespace mirror::common
