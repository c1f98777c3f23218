#include "mirrord/source_store.h"

#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <utility>

#include "common/endian.h"
#include "common/fence_file.h"
#include "common/volume_attrs.h"

namespace mirror::d {

using common::Result;
using common::Status;
using common::WireError;

namespace {

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IOError("mkdir " + path, errno);
  }
  // stat, not lstat: `mirrord adopt` may make image/ a symlink to the admin's directory.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::IOError("stat " + path, errno);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(path + " is not a directory");
  return Status::Ok();
}

uint64_t SeqOf(std::string_view record) { return common::LoadLE<uint64_t>(record.data() + 16); }

}  // namespace

SourceStore::SourceStore(PrivateTag, std::string dir, std::string source_id,
                         const StoreOptions& options)
    : dir_(std::move(dir)), source_id_(std::move(source_id)), options_(options) {}

Result<std::unique_ptr<SourceStore>> SourceStore::Open(const std::string& dir,
                                                       const std::string& source_id,
                                                       const StoreOptions& options,
                                                       std::string* recovery_note) {
  if (options.limits.max_record_bytes > options.memory_half_bytes) {
    return Status::InvalidArgument("the largest record (" +
                                   std::to_string(options.limits.max_record_bytes) +
                                   " bytes) does not fit in a memory half (" +
                                   std::to_string(options.memory_half_bytes) + " bytes)");
  }
  auto store = std::make_unique<SourceStore>(PrivateTag{}, dir, source_id, options);
  std::string note;
  MIRROR_RETURN_IF_ERROR(store->Recover(&note).Annotate("source '" + source_id + "'"));
  if (recovery_note != nullptr) *recovery_note = note;
  store->flusher_ = std::thread([s = store.get()] { s->FlusherLoop(); });
  return store;
}

Status SourceStore::Recover(std::string* note) {
  MIRROR_RETURN_IF_ERROR(MakeDir(dir_));
  MIRROR_ASSIGN_OR_RETURN(lock_, LockStoreDir(dir_));
  MIRROR_RETURN_IF_ERROR(MakeDir(dir_ + "/image"));
  Result<SourceState> state = ReadStateFile(state_path());
  if (state.ok()) {
    if (state->source_id != source_id_) {
      return Status::Mismatch("state file " + state_path() + " belongs to source '" +
                              state->source_id + "'");
    }
    state_ = *state;
  } else if (state.status().code() == common::Code::kNotFound) {
    state_ = SourceState{};
    state_.source_id = source_id_;
    MIRROR_RETURN_IF_ERROR(WriteStateFile(state_path(), state_));
  } else {
    return state.status();
  }
  crash_replay_through_ = state_.replay_through;
  MIRROR_ASSIGN_OR_RETURN(common::ImageTree image, common::ImageTree::Open(dir_ + "/image"));
  image_.emplace(std::move(image));
  // Keeps mirrorfs from mounting the image that this store writes (volume_attrs.h).
  Status marked = state_.promoted ? Status::Ok() : common::WriteImageMark(dir_ + "/image", dir_);

  // A resync that crashed before it deleted the log it dropped.
  std::error_code ec;
  if (std::filesystem::remove_all(dropped_log_dir(), ec) == static_cast<std::uintmax_t>(-1)) {
    return Status::IOError("remove " + dropped_log_dir(), ec.value());
  }
  MIRROR_ASSIGN_OR_RETURN(log_, common::SegmentLog::Open(log_dir(), LogOptions()));
  *note = "log: " + log_->recovery().ToString();
  if (!marked.ok()) {
    *note += "; the image could not be marked as mirrord's (" + marked.ToString() +
             "): a mirrorfs mount over it would not be refused";
  }
  if (log_->next_seq() == 0 && state_.applied_seq > 0) {
    // A log that never held a record (a new directory) continues after what was applied.
    MIRROR_RETURN_IF_ERROR(log_->SetNextSeq(state_.applied_seq + 1));
  }
  if (log_->last_seq() < state_.applied_seq) {
    return Status::Corruption("state says seq " + std::to_string(state_.applied_seq) +
                              " was applied, but the log ends at seq " +
                              std::to_string(log_->last_seq()));
  }
  MIRROR_RETURN_IF_ERROR(RecoverMemory(note));
  received_seq_ = durable_seq_ = log_->last_seq();
  applied_seq_ = state_.applied_seq;
  if (received_seq_ > applied_seq_) NoteArrivalLocked(std::chrono::steady_clock::now());
  epoch_ = state_.epoch;
  volume_id_ = state_.volume_id;
  resync_active_ = state_.resync_active;
  resync_until_ = state_.resync_until;
  promoted_ = state_.promoted;
  promoted_seq_ = state_.promoted_seq;
  adopted_ = state_.adopted;
  if (state_.promoted) {
    fenced_message_ = common::FenceMessage(state_.epoch, state_.promoted_seq);
    *note += "; promoted at epoch " + std::to_string(state_.epoch) + " (takes no more records)";
  }
  if (resync_active_) *note += "; resync in progress (the image is not consistent)";
  log_bytes_ = log_->total_bytes();
  log_segments_ = log_->segment_count();
  return Status::Ok();
}

common::SegmentLogOptions SourceStore::LogOptions() const {
  common::SegmentLogOptions o;
  o.segment_bytes = options_.segment_bytes;
  o.limits = options_.limits;
  // The log is written once and read back once (at apply): no use in caching it.
  o.direct_io = true;
  return o;
}

Status SourceStore::RecoverMemory(std::string* note) {
  const std::string path = dir_ + "/memory";
  MemoryRecovery recovery;
  MIRROR_ASSIGN_OR_RETURN(
      memory_, MemoryFile::Open(path, options_.memory_half_bytes, options_.limits, &recovery));
  std::string gap;
  std::vector<std::string> records = MergeRuns(recovery, log_->last_seq(), &gap);
  *note += "; " + recovery.ToString();
  if (!records.empty()) {
    std::vector<std::string_view> views(records.begin(), records.end());
    MIRROR_RETURN_IF_ERROR(log_->AppendBatch(views));
    MIRROR_RETURN_IF_ERROR(log_->Sync());
    *note += "; " + std::to_string(records.size()) + " records moved from memory to the log";
  }
  if (!gap.empty()) *note += "; " + gap;
  if (memory_->half_bytes() != options_.memory_half_bytes) {
    memory_.reset();
    MIRROR_RETURN_IF_ERROR(MemoryFile::Create(path, options_.memory_half_bytes));
    MIRROR_ASSIGN_OR_RETURN(
        memory_, MemoryFile::Open(path, options_.memory_half_bytes, options_.limits, &recovery));
  }
  memory_->Reset();
  return Status::Ok();
}

SourceStore::~SourceStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    flush_wanted_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
}

uint64_t SourceStore::epoch() const {
  std::lock_guard<std::mutex> lock(mu_);
  return epoch_;
}

// ---- Sessions and receiving

Result<SessionInfo> SourceStore::StartSession(
    const std::string& volume_id, uint64_t epoch,
    std::function<void(uint64_t received, uint64_t durable)> on_durable, Refusal* refusal,
    bool wants_durable) {
  std::lock_guard<std::mutex> apply_lock(apply_mu_);
  SourceState next = state_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (std::optional<Refusal> closed = PromoteRefusalLocked()) {
      *refusal = *closed;
      return Status::Mismatch(refusal->message);
    }
    if (!volume_id_.empty() && volume_id_ != volume_id) {
      *refusal = {WireError::kProtocol, "source '" + source_id_ + "' mirrors volume '" +
                                            volume_id_ + "', not '" + volume_id + "'"};
      return Status::Mismatch(refusal->message);
    }
    if (epoch < epoch_) {
      *refusal = {WireError::kStaleEpoch, "fenced: epoch " + std::to_string(epoch) +
                                              " is older than the stored epoch " +
                                              std::to_string(epoch_)};
      return Status::Mismatch(refusal->message);
    }
    // From here on, the older session's records are refused.
    ++session_token_;
    on_durable_ = nullptr;
  }
  if (next.volume_id != volume_id || next.epoch != epoch) {
    next.volume_id = volume_id;
    next.epoch = epoch;
    if (Status s = StoreState(next); !s.ok()) {
      *refusal = {WireError::kInternal, s.ToString()};
      return s;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    volume_id_ = volume_id;
    epoch_ = epoch;
  }
  if (Status s = Flush(); !s.ok()) {
    *refusal = {WireError::kInternal, s.ToString()};
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  on_durable_ = std::move(on_durable);
  wants_durable_ = wants_durable;
  return SessionInfo{session_token_, epoch_, received_seq_, durable_seq_, applied_seq_, adopted_};
}

void SourceStore::EndSession(uint64_t token) {
  std::lock_guard<std::mutex> lock(mu_);
  if (token != session_token_) return;
  on_durable_ = nullptr;
  wants_durable_ = true;  // nobody is there to send a SYNC: flush what is left promptly
}

ReceiveResult SourceStore::Receive(uint64_t token, std::string_view records, uint32_t count) {
  ReceiveResult result;
  bool started_half = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    started_half = ReceiveLocked(token, records, count, &result);
    if (result.accepted > 0) NoteArrivalLocked(std::chrono::steady_clock::now());
  }
  // The flusher needs a wake only when a record went into an empty active half: it then
  // waits untimed, and must time the session's delay from that record on. While the half
  // holds records it already waits until oldest_unflushed_ + that delay, which records
  // appended behind the first do not move, so a wake per frame would only cost a context
  // switch. A switch of halves wakes it (SwitchLocked), and a flusher busy flushing looks
  // at the active half again before it waits. Notified after unlocking, so that it does
  // not wake only to block on mu_.
  if (started_half) flusher_cv_.notify_one();
  return result;
}

bool SourceStore::ReceiveLocked(uint64_t token, std::string_view records, uint32_t count,
                                ReceiveResult* out) {
  ReceiveResult& result = *out;
  bool started_half = false;
  if ((result.error = PromoteRefusalLocked())) return false;
  if (token != session_token_) {
    result.error = Refusal{WireError::kProtocol, "replaced by a newer connection of the source"};
    return false;
  }
  if (!error_.ok()) {
    result.error = Refusal{WireError::kInternal, "store is broken: " + error_.ToString()};
    return false;
  }
  IncomingRecordRules rules;
  rules.epoch = epoch_;
  rules.allow_devices = options_.allow_devices;
  rules.limits = options_.limits;
  if (options_.limits.max_record_bytes > memory_->half_bytes()) {
    rules.limits.max_record_bytes = static_cast<uint32_t>(memory_->half_bytes());
  }
  size_t pos = 0;
  for (uint32_t i = 0; i < count; ++i) {
    rules.expected_seq = received_seq_ + 1;
    uint32_t length = 0;
    std::optional<Refusal> refused = CheckIncomingRecord(records.substr(pos), rules, &length);
    if (refused) {
      result.error = std::move(refused);
      return started_half;
    }
    std::string_view rec = records.substr(pos, length);
    if (!memory_->TryAppend(rec)) {
      if (memory_->has_sealed()) {
        result.need_room = true;
        return started_half;
      }
      SwitchLocked();
      if (!memory_->TryAppend(rec)) {  // cannot happen: a record fits in an empty half
        result.error = Refusal{WireError::kInternal, "record does not fit in an empty half"};
        return started_half;
      }
    }
    if (memory_->active_records() == 1) {
      oldest_unflushed_ = std::chrono::steady_clock::now();
      started_half = true;
    }
    received_seq_ = SeqOf(rec);
    received_bytes_ += length;
    pos += length;
    ++result.accepted;
  }
  return started_half;
}

void SourceStore::NoteArrivalLocked(std::chrono::steady_clock::time_point now) {
  // One entry per window keeps the deque short whatever the record rate.
  constexpr auto kLagWindow = std::chrono::milliseconds(100);
  constexpr size_t kMaxArrivals = 4096;
  if (!arrivals_.empty() &&
      (now - arrivals_.back().second < kLagWindow || arrivals_.size() >= kMaxArrivals)) {
    arrivals_.back().first = received_seq_;
    return;
  }
  arrivals_.emplace_back(received_seq_, now);
}

void SourceStore::WhenRoom(std::function<void()> ready) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!memory_->has_sealed() || stop_) {
    lock.unlock();
    ready();
    return;
  }
  room_waiters_.push_back(std::move(ready));
}

// ---- Flushing

void SourceStore::SwitchLocked() {
  memory_->Switch();
  flusher_cv_.notify_one();
}

void SourceStore::FlusherLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (memory_->has_sealed() && error_.ok()) {
      FlushSealed(lock);
      continue;
    }
    const bool have = memory_->active_records() > 0 && error_.ok();
    if (stop_ && !have) break;
    // A source whose writers wait for durable ACKs gets its records flushed after
    // flush_delay; the others (sync, async), whose durability only matters at their next
    // SYNC (which flushes at once), after lazy_flush_delay. A longer lazy delay means
    // fewer, larger log writes, but needs memory to spare (docs/decisions.md).
    const auto due =
        oldest_unflushed_ + (wants_durable_ ? options_.flush_delay : options_.lazy_flush_delay);
    if (have && (flush_wanted_ || stop_ || std::chrono::steady_clock::now() >= due)) {
      SwitchLocked();
      continue;
    }
    if (!have) flush_wanted_ = false;
    if (have) {
      flusher_cv_.wait_until(lock, due);
    } else {
      flusher_cv_.wait(lock);
    }
  }
  // Anyone still waiting for room or durability learns that we stopped.
  std::vector<std::function<void()>> waiters = std::move(room_waiters_);
  room_waiters_.clear();
  durable_cv_.notify_all();
  lock.unlock();
  for (auto& w : waiters) w();
}

void SourceStore::FlushSealed(std::unique_lock<std::mutex>& lock) {
  const std::vector<std::string_view>& records = memory_->SealedRecords();
  const uint64_t last = records.empty() ? 0 : SeqOf(records.back());
  lock.unlock();
  Status s;
  uint64_t log_bytes = 0, log_segments = 0;
  {
    std::lock_guard<std::mutex> log_lock(log_mu_);
    if (log_ == nullptr) {
      s = Status::Aborted("no log (a resync failed to open a new one)");
    } else {
      s = log_->AppendDecodedBatch(records);  // each was decoded by Receive
      if (s.ok()) s = log_->Sync();
      log_bytes = log_->total_bytes();
      log_segments = log_->segment_count();
    }
  }
  lock.lock();
  log_bytes_ = log_bytes;
  log_segments_ = log_segments;
  if (!s.ok()) {
    // Sticky: the log refuses writes until reopened; the sealed half stays as it is
    // (a restart recovers it from the memory file).
    error_ = s.Annotate("flushing to the log");
    last_error_ = error_.ToString();
  } else {
    if (last != 0) durable_seq_ = last;
    memory_->ClearSealed();
  }
  std::vector<std::function<void()>> waiters = std::move(room_waiters_);
  room_waiters_.clear();
  auto on_durable = on_durable_;
  const uint64_t received = received_seq_, durable = durable_seq_;
  durable_cv_.notify_all();
  lock.unlock();
  for (auto& w : waiters) w();
  if (on_durable) on_durable(received, durable);
  lock.lock();
}

Status SourceStore::WaitDurable(uint64_t seq) {
  std::unique_lock<std::mutex> lock(mu_);
  if (durable_seq_ >= seq) return Status::Ok();
  flush_wanted_ = true;
  flusher_cv_.notify_one();
  durable_cv_.wait(lock, [&] { return durable_seq_ >= seq || !error_.ok() || stop_; });
  if (durable_seq_ >= seq) return Status::Ok();
  if (!error_.ok()) return error_;
  return Status::Aborted("store of source '" + source_id_ + "' is stopping");
}

Status SourceStore::Flush() {
  uint64_t target;
  {
    std::lock_guard<std::mutex> lock(mu_);
    target = received_seq_;
  }
  return WaitDurable(target);
}

std::pair<uint64_t, uint64_t> SourceStore::ReceivedAndDurable() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {received_seq_, durable_seq_};
}

StoreStats SourceStore::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  StoreStats st;
  st.source_id = source_id_;
  st.volume_id = volume_id_;
  st.dir = dir_;
  st.epoch = epoch_;
  st.received_seq = received_seq_;
  st.durable_seq = durable_seq_;
  st.applied_seq = applied_seq_;
  st.received_bytes = received_bytes_;
  if (!arrivals_.empty() && received_seq_ > applied_seq_) {
    st.lag_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - arrivals_.front().second)
            .count();
  }
  st.memory_used_bytes = memory_->active_bytes() + memory_->sealed_bytes();
  st.memory_capacity_bytes = 2 * memory_->half_bytes();
  st.log_bytes = log_bytes_;
  st.log_segments = log_segments_;
  st.broken = !error_.ok() || !last_error_.empty();
  st.last_error = last_error_;
  st.resync_active = resync_active_;
  st.resync_until = resync_until_;
  st.promoted = promoted_;
  st.promoted_seq = promoted_seq_;
  return st;
}

}  // namespace mirror::d
