// Journal: appending, committing, syncing and freeing (Create/Open: journal_open.cpp).
#include "common/journal.h"

#include <time.h>

#include <algorithm>
#include <iterator>

#include "common/endian.h"
#include "common/journal_format.h"

namespace mirror::common {
namespace {

int64_t NowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// How many times Publish polls for an earlier appender before it sleeps.
constexpr int kCommitSpins = 200;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

uint64_t Journal::UsedLocked() const { return geo_.Distance(tail_offset_, head_); }

// Ring bytes an append of `aligned` bytes takes at the head, with the padding a wrap
// leaves before the end of the file.
uint64_t Journal::ConsumedLocked(uint64_t aligned) const {
  return head_ + aligned <= geo_.end ? aligned : (geo_.end - head_) + aligned;
}

Status Journal::CheckUsableLocked() const {
  if (!sticky_.ok()) return sticky_;
  if (shutdown_) return Status::Aborted("journal " + path() + " is shut down");
  return {};
}

void Journal::SetStickyLocked(const Status& cause, std::string_view what) {
  if (sticky_.ok()) {
    sticky_ = cause.Annotate("journal write-protected after failed " + std::string(what) +
                             " (reopen it to write again)");
  }
  space_cv_.notify_all();
  commit_cv_.notify_all();
}

// Waits, in FIFO order, until the record fits. A later appender queues behind an
// earlier waiter even when its smaller record would fit, so a large record cannot
// starve.
Status Journal::WaitForSpaceLocked(std::unique_lock<std::mutex>& lock, uint64_t aligned) {
  MIRROR_RETURN_IF_ERROR(CheckUsableLocked());
  auto fits = [&] {
    return UsedLocked() + ConsumedLocked(aligned) + kJournalMinGap <= geo_.capacity();
  };
  if (space_waiters_ == 0 && fits()) return {};
  const uint64_t ticket = next_ticket_++;
  if (space_waiters_++ == 0) full_since_ns_ = NowNs();
  space_cv_.wait(
      lock, [&] { return shutdown_ || !sticky_.ok() || (ticket == serving_ticket_ && fits()); });
  if (--space_waiters_ == 0) full_since_ns_ = 0;
  MIRROR_RETURN_IF_ERROR(CheckUsableLocked());
  ++serving_ticket_;
  space_cv_.notify_all();  // the next in line may fit as well
  return {};
}

Journal::Reservation Journal::ReserveLocked(uint64_t aligned, bool held) {
  Reservation r;
  r.seq = next_seq_++;
  uint64_t consumed = aligned;
  if (head_ + aligned > geo_.end) {
    // head_ < end always (it wraps to data_start when a record ends at the end), and
    // head_ is 8-aligned, so the 4-byte marker fits.
    r.wrap_marker = head_;
    consumed += geo_.end - head_;
    r.offset = geo_.data_start;
  } else {
    r.offset = head_;
  }
  const uint64_t after = r.offset + aligned;
  head_ = after == geo_.end ? geo_.data_start : after;
  reserved_total_ += consumed;
  pending_.push_back({false, head_, reserved_total_});
  released_flags_.push_back(!held);
  bytes_since_index_ += consumed;
  if (bytes_since_index_ >= kIndexStride) {
    index_.push_back({r.seq, r.offset});
    bytes_since_index_ = 0;
  }
  return r;
}

Status Journal::CopyIn(const EncodedRecord& rec, const Reservation& r) {
  if (r.wrap_marker != 0) {
    char marker[4];
    StoreLE(marker, kJournalWrapMarker);
    std::string_view piece[1] = {{marker, sizeof marker}};
    MIRROR_RETURN_IF_ERROR(medium_->Write(r.wrap_marker, piece));
  }
  std::string_view pieces[2] = {rec.head(), rec.bulk()};
  return medium_->Write(r.offset, pieces);
}

// Marks the record complete, moves the committed prefix over every complete record,
// and waits until the prefix covers this one.
Result<uint64_t> Journal::Publish(const Reservation& r, const Status& copied) {
  std::unique_lock lock(mu_);
  if (!copied.ok()) {
    // The record is not (wholly) in the medium: nothing at or after it may commit.
    SetStickyLocked(copied, "write");
    return sticky_;
  }
  pending_[r.seq - committed_seq_ - 1].done = true;
  if (r.seq == committed_seq_ + 1) {
    while (!pending_.empty() && pending_.front().done) {
      committed_end_ = pending_.front().end_offset;
      committed_total_ = pending_.front().reserved_total;
      ++committed_seq_;
      pending_.pop_front();
    }
    committed_published_.store(committed_seq_, std::memory_order_release);
    AdvanceReleasedLocked();
    // Skipping the notify when nobody sleeps keeps the condvar's cache line out of the
    // common path: with two appenders that line would move between cores every time.
    if (commit_sleepers_ > 0) commit_cv_.notify_all();
  }
  if (committed_seq_ >= r.seq) return r.seq;
  // An earlier appender is still copying, most often for well under a microsecond:
  // spin a little before sleeping, since a futex sleep and wake cost more than that.
  lock.unlock();
  for (int i = 0; i < kCommitSpins; ++i) {
    if (committed_published_.load(std::memory_order_acquire) >= r.seq) return r.seq;
    CpuRelax();
  }
  lock.lock();
  ++commit_sleepers_;
  commit_cv_.wait(lock, [&] { return committed_seq_ >= r.seq || !sticky_.ok(); });
  --commit_sleepers_;
  if (committed_seq_ < r.seq) return sticky_;
  return r.seq;
}

Status Journal::CheckAppendable(const EncodedRecord& rec) const {
  const uint64_t size = rec.size();
  if (size < kRecordHeaderSize)
    return Status::InvalidArgument("append of a record that was not built");
  if (size > max_record_bytes_) {
    return Status::InvalidArgument(
        "record of " + std::to_string(size) + " bytes can never fit in journal " + path() +
        " (at most " + std::to_string(max_record_bytes_) + " bytes: the smaller of the decode " +
        "limit and half the " + std::to_string(geo_.capacity()) + "-byte ring)");
  }
  return {};
}

Result<Journal::Reservation> Journal::AppendRecord(EncodedRecord& rec, bool held) {
  const uint64_t aligned = JournalAlignUp(rec.size());
  Reservation r;
  {
    std::unique_lock lock(mu_);
    MIRROR_RETURN_IF_ERROR(WaitForSpaceLocked(lock, aligned));
    r = ReserveLocked(aligned, held);
  }
  // Outside the lock: appenders seal (CRC) and copy at the same time.
  rec.Seal({r.seq, identity_.epoch, NowNs()});
  MIRROR_RETURN_IF_ERROR(Publish(r, CopyIn(rec, r)).status());
  if (!held) StoreReleasedHint();
  return r;
}

Result<uint64_t> Journal::Append(EncodedRecord& rec) {
  MIRROR_RETURN_IF_ERROR(CheckAppendable(rec));
  MIRROR_ASSIGN_OR_RETURN(Reservation r, AppendRecord(rec, /*held=*/false));
  return r.seq;
}

Result<HeldRecord> Journal::AppendHeld(EncodedRecord& rec) {
  MIRROR_RETURN_IF_ERROR(CheckAppendable(rec));
  MIRROR_ASSIGN_OR_RETURN(Reservation r, AppendRecord(rec, /*held=*/true));
  return HeldRecord{r.seq, r.offset};
}

Status Journal::Release(const HeldRecord& held) {
  bool moved = false;
  {
    std::lock_guard lock(mu_);
    if (held.seq <= released_seq_ || held.seq >= next_seq_) {
      return Status::InvalidArgument("journal " + path() + ": seq " + std::to_string(held.seq) +
                                     " is not a held record");
    }
    std::deque<bool>::reference flag = released_flags_[held.seq - released_seq_ - 1];
    if (flag) {
      return Status::InvalidArgument("journal " + path() + ": seq " + std::to_string(held.seq) +
                                     " released twice");
    }
    flag = true;
    moved = AdvanceReleasedLocked();
  }
  if (moved) StoreReleasedHint();
  return {};
}

Status Journal::VoidAndRelease(const HeldRecord& held) {
  {
    std::lock_guard lock(mu_);
    if (!sticky_.ok()) return sticky_;
  }
  // The record is committed and held, so nobody else reads or writes its bytes.
  std::string scratch;
  MIRROR_ASSIGN_OR_RETURN(std::string_view stored,
                          medium_->Read(held.offset + kRecordCrcOffset, 4, &scratch));
  char voided[4];
  StoreLE(voided, VoidedCrc(LoadLE<uint32_t>(stored.data())));
  std::string_view piece[1] = {{voided, sizeof voided}};
  Status s = medium_->Write(held.offset + kRecordCrcOffset, piece);
  if (!s.ok()) {
    std::lock_guard lock(mu_);
    SetStickyLocked(s, "write");
    return sticky_;
  }
  return Release(held);
}

// Moves the released prefix over every released, committed record.
bool Journal::AdvanceReleasedLocked() {
  bool moved = false;
  while (released_seq_ < committed_seq_ && !released_flags_.empty() && released_flags_.front()) {
    released_flags_.pop_front();
    ++released_seq_;
    moved = true;
  }
  return moved;
}

// Stores the released seq as the hint (one 8-byte store into the mapping). Monotonic:
// a slower thread never stores an older value over a newer one.
void Journal::StoreReleasedHint() {
  std::lock_guard hint_lock(hint_mu_);
  uint64_t released = 0;
  {
    std::lock_guard lock(mu_);
    released = released_seq_;
  }
  if (released <= hint_stored_) return;
  char bytes[8];
  StoreLE(bytes, released);
  std::string_view piece[1] = {{bytes, sizeof bytes}};
  // A failed store only makes the hint older: recovery then replays more, harmlessly.
  if (medium_->Write(kJournalReleasedHintOffset, piece).ok()) hint_stored_ = released;
}

Result<uint64_t> Journal::Append(const Op& op) {
  thread_local EncodedRecord rec;  // keeps its buffer's capacity between appends
  MIRROR_RETURN_IF_ERROR(rec.Build(op));
  return Append(rec);
}

// Syncs the last `bytes` ring bytes before `end_offset` (going backwards, wrapping).
Status Journal::SyncRange(uint64_t end_offset, uint64_t bytes) {
  if (bytes >= geo_.capacity()) return medium_->Sync(geo_.data_start, geo_.capacity());
  const uint64_t before_end = end_offset - geo_.data_start;  // bytes from the data start
  if (bytes <= before_end) return medium_->Sync(end_offset - bytes, bytes);
  if (before_end > 0) MIRROR_RETURN_IF_ERROR(medium_->Sync(geo_.data_start, before_end));
  const uint64_t rest = bytes - before_end;
  return medium_->Sync(geo_.end - rest, rest);
}

Status Journal::Sync() {
  std::lock_guard sync_lock(sync_mu_);
  uint64_t end_offset = 0, total = 0;
  {
    std::lock_guard lock(mu_);
    if (!sticky_.ok()) return sticky_;
    end_offset = committed_end_;
    total = committed_total_;
  }
  if (total == synced_total_) return {};
  Status s = SyncRange(end_offset, total - synced_total_);
  if (!s.ok()) {
    std::lock_guard lock(mu_);
    SetStickyLocked(s, "sync");
    return sticky_;
  }
  synced_total_ = total;
  return {};
}

Status Journal::WriteHeader(JournalHeader header) {
  header.generation = header_.generation + 1;
  const int slot = 1 - header_slot_;
  char bytes[kJournalSlotSize];
  EncodeHeaderSlot(header, bytes);
  std::string_view piece[1] = {{bytes, sizeof bytes}};
  MIRROR_RETURN_IF_ERROR(medium_->WriteDurably(kJournalSlotOffsets[slot], piece));
  header_ = std::move(header);
  header_slot_ = slot;
  return {};
}

Status Journal::Free(uint64_t through_seq) {
  std::lock_guard header_lock(header_mu_);
  uint64_t offset = 0, seq = 0;
  {
    std::lock_guard lock(mu_);
    if (!sticky_.ok()) return sticky_;
    if (through_seq > released_seq_) {
      return Status::InvalidArgument("cannot free journal " + path() + " through seq " +
                                     std::to_string(through_seq) + ": released only through " +
                                     std::to_string(released_seq_));
    }
    if (through_seq < tail_seq_) return {};
    offset = tail_offset_;
    seq = tail_seq_;
    // Start from the last remembered record start <= through_seq; the entries up to
    // it describe records this Free releases.
    while (!index_.empty() && index_.front().seq <= through_seq) {
      offset = index_.front().offset;
      seq = index_.front().seq;
      index_.pop_front();
    }
  }
  // The records to free are committed, so their headers are stable: walk them.
  RingWalker walker(medium_.get(), geo_, identity_.epoch, limits_, offset, seq);
  while (walker.next_seq() <= through_seq) {
    MIRROR_ASSIGN_OR_RETURN(bool more, walker.Next(RingWalker::Mode::kHeaderOnly));
    if (!more) {
      return Status::Corruption("journal " + path() +
                                " damaged in its committed part, freeing through seq " +
                                std::to_string(through_seq) + ": " + walker.stop_reason());
    }
  }
  JournalHeader next = header_;
  next.tail_offset = walker.offset();
  next.tail_seq = through_seq + 1;
  // The new tail is durable before any appender may overwrite the freed records:
  // a crash in between must not leave a header that points at reused space.
  Status s = WriteHeader(std::move(next));
  std::lock_guard lock(mu_);
  if (!s.ok()) {
    SetStickyLocked(s, "header write");
    return sticky_;
  }
  tail_offset_ = header_.tail_offset;
  tail_seq_ = header_.tail_seq;
  space_cv_.notify_all();
  return {};
}

void Journal::Shutdown() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  space_cv_.notify_all();
}

Result<JournalCursor> Journal::ReadFrom(uint64_t seq) const {
  std::lock_guard header_lock(header_mu_);  // keeps the tail where the walk starts
  uint64_t offset = 0, tail_seq = 0, start_seq = 0, committed = 0;
  {
    std::lock_guard lock(mu_);
    offset = tail_offset_;
    tail_seq = start_seq = tail_seq_;
    committed = released_seq_;
    // The nearest remembered record start at or before `seq` (entries past the
    // committed seq are never chosen: seq <= committed + 1 below, and an entry for
    // committed + 1 is not read before Refresh()).
    auto after = std::upper_bound(index_.begin(), index_.end(), seq,
                                  [](uint64_t s, const IndexEntry& e) { return s < e.seq; });
    if (after != index_.begin()) {
      offset = std::prev(after)->offset;
      start_seq = std::prev(after)->seq;
    }
  }
  if (seq < tail_seq) {
    return Status::NotFound("seq " + std::to_string(seq) + " was freed from journal " + path() +
                            " (its oldest record is seq " + std::to_string(tail_seq) + ")");
  }
  if (seq > committed + 1) {
    return Status::NotFound("seq " + std::to_string(seq) + " is beyond journal " + path() +
                            " (released through seq " + std::to_string(committed) + ")");
  }
  RingWalker walker(medium_.get(), geo_, identity_.epoch, limits_, offset, start_seq);
  while (walker.next_seq() < seq) {
    MIRROR_ASSIGN_OR_RETURN(bool more, walker.Next(RingWalker::Mode::kHeaderOnly));
    if (!more) {
      return Status::Corruption("journal " + path() + " damaged before seq " + std::to_string(seq) +
                                ": " + walker.stop_reason());
    }
  }
  // The cursor may outlive Frees that move the tail behind it: its limit is a seq.
  walker.set_budget(UINT64_MAX);
  return JournalCursor(this, std::move(walker), committed);
}

uint64_t Journal::committed_seq() const {
  std::lock_guard lock(mu_);
  return committed_seq_;
}

uint64_t Journal::released_seq() const {
  std::lock_guard lock(mu_);
  return released_seq_;
}

JournalStats Journal::stats() const {
  std::lock_guard lock(mu_);
  JournalStats s;
  s.capacity_bytes = geo_.capacity();
  s.used_bytes = UsedLocked();
  s.tail_seq = tail_seq_;
  s.last_assigned_seq = next_seq_ - 1;
  s.committed_seq = committed_seq_;
  s.released_seq = released_seq_;
  s.waiting_appenders = space_waiters_;
  s.full_since_ns = full_since_ns_;
  if (space_waiters_ > 0) {
    s.full_reason = "journal full: " + std::to_string(s.used_bytes) + " of " +
                    std::to_string(s.capacity_bytes) +
                    " bytes used; waiting for a consistency point to free space";
  }
  s.sticky_error = sticky_;
  return s;
}

uint64_t Journal::BytesAfter(uint64_t offset) const {
  std::lock_guard lock(mu_);
  if (UsedLocked() == 0) return 0;
  return std::min(geo_.Distance(offset, head_), UsedLocked());
}

Result<bool> JournalCursor::Next() {
  if (walker_.next_seq() > limit_) return false;
  MIRROR_ASSIGN_OR_RETURN(bool more, walker_.Next(RingWalker::Mode::kFullDecode));
  if (!more) {
    return Status::Corruption("journal " + journal_->path() + ": committed seq " +
                              std::to_string(walker_.next_seq()) +
                              " unreadable (freed under the cursor?): " + walker_.stop_reason());
  }
  return true;
}

void JournalCursor::Refresh() { limit_ = journal_->released_seq(); }

}  // namespace mirror::common
