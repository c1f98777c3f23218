// SourceStore's consistency point: apply the log to the image, store the applied seq,
// delete what retention does not keep.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "common/segment_reader.h"
#include "mirrord/source_store.h"

namespace mirror::d {

using common::Result;
using common::Status;
using common::WireError;

namespace {

// The wire error a failed apply is answered with.
WireError ApplyErrorCode(const Status& s) {
  if (s.code() != common::Code::kPermissionDenied) return WireError::kInternal;
  return s.message().find("device node") != std::string::npos ? WireError::kDeviceRefused
                                                              : WireError::kEscape;
}

}  // namespace

Status SourceStore::StoreState(const SourceState& state) {
  MIRROR_RETURN_IF_ERROR(WriteStateFile(state_path(), state));
  state_ = state;
  std::lock_guard<std::mutex> lock(mu_);
  applied_seq_ = state.applied_seq;
  resync_active_ = state.resync_active;
  resync_until_ = state.resync_until;
  promoted_ = state.promoted;
  promoted_seq_ = state.promoted_seq;
  adopted_ = state.adopted;
  while (!arrivals_.empty() && arrivals_.front().first <= applied_seq_) arrivals_.pop_front();
  return Status::Ok();
}

Result<uint64_t> SourceStore::Sync(uint64_t cp_seq, Refusal* refusal, bool* resync_ended) {
  std::lock_guard<std::mutex> apply_lock(apply_mu_);
  return SyncLocked(cp_seq, refusal, resync_ended);
}

Result<uint64_t> SourceStore::SyncLocked(uint64_t cp_seq, Refusal* refusal, bool* resync_ended) {
  if (resync_ended != nullptr) *resync_ended = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (std::optional<Refusal> closed = PromoteRefusalLocked()) {
      *refusal = *closed;
      return Status::Aborted(refusal->message);
    }
    if (cp_seq > received_seq_) {
      *refusal = {WireError::kProtocol, "sync through seq " + std::to_string(cp_seq) +
                                            ", but only seq " + std::to_string(received_seq_) +
                                            " was received"};
      return Status::InvalidArgument(refusal->message);
    }
    if (!last_error_.empty() && error_.ok()) {
      // An earlier apply failed: the image cannot move on without an admin.
      *refusal = {last_error_code_, last_error_};
      return Status::Aborted(last_error_);
    }
  }
  if (Status s = WaitDurable(cp_seq); !s.ok()) {
    *refusal = {WireError::kInternal, s.ToString()};
    return s;
  }
  if (cp_seq > state_.applied_seq) {
    if (Status s = ApplyThrough(cp_seq, refusal); !s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      last_error_ = s.ToString();
      last_error_code_ = refusal->code;
      return s;
    }
  }
  if (Status s = EndResyncIfApplied(resync_ended); !s.ok()) {
    *refusal = {WireError::kInternal, s.ToString()};
    return s;
  }
  if (Status s = DeleteApplied(state_.applied_seq); !s.ok()) {
    *refusal = {WireError::kInternal, s.ToString()};
    return s;
  }
  return state_.applied_seq;
}

Status SourceStore::EndResyncIfApplied(bool* ended) {
  if (!state_.resync_active || state_.resync_until == 0 ||
      state_.applied_seq < state_.resync_until) {
    return Status::Ok();
  }
  SourceState next = state_;
  next.resync_active = false;
  next.resync_until = 0;
  MIRROR_RETURN_IF_ERROR(StoreState(next));
  if (ended != nullptr) *ended = true;
  return Status::Ok();
}

Status SourceStore::ApplyThrough(uint64_t target, Refusal* refusal) {
  auto fail = [&](WireError code, const Status& s) {
    *refusal = {code, s.ToString()};
    return s;
  };
  const uint64_t from = state_.applied_seq + 1;
  // Records up to replay_through may already be in the image if we crash from here on.
  if (state_.replay_through < target) {
    SourceState next = state_;
    next.replay_through = target;
    if (Status s = StoreState(next); !s.ok()) return fail(WireError::kInternal, s);
  }
  std::unique_ptr<common::SegmentReader> reader;
  {
    std::lock_guard<std::mutex> log_lock(log_mu_);
    if (log_ == nullptr) return fail(WireError::kInternal, Status::Aborted("no log"));
    Result<std::unique_ptr<common::SegmentReader>> r = log_->NewReader(from, target);
    if (!r.ok()) return fail(WireError::kInternal, r.status());
    reader = std::move(r).value();
  }
  common::ApplyOptions options;
  options.allow_devices = options_.allow_devices;
  uint64_t done = state_.applied_seq;
  while (reader->Next()) {
    const common::Record& rec = reader->record();
    options.replay = rec.meta.seq <= crash_replay_through_;
    Status s = image_->Apply(rec, options);
    if (!s.ok()) {
      // Keep what was applied before the bad record.
      if (done > state_.applied_seq && image_->Sync().ok()) {
        SourceState next = state_;
        next.applied_seq = done;
        (void)StoreState(next);
      }
      return fail(ApplyErrorCode(s), s);
    }
    done = rec.meta.seq;
    if (!common::IsReplaySafe(rec.op)) {
      // A replay of this record could diverge: make it and its predecessors stick now.
      if (Status sync = image_->Sync(); !sync.ok()) return fail(WireError::kInternal, sync);
      SourceState next = state_;
      next.applied_seq = done;
      if (Status st = StoreState(next); !st.ok()) return fail(WireError::kInternal, st);
    }
  }
  if (!reader->status().ok()) return fail(WireError::kInternal, reader->status());
  if (done != target) {
    return fail(WireError::kInternal,
                Status::Corruption("log ended at seq " + std::to_string(done) + " before seq " +
                                   std::to_string(target)));
  }
  if (Status s = image_->Sync(); !s.ok()) return fail(WireError::kInternal, s);
  SourceState next = state_;
  next.applied_seq = target;
  if (Status s = StoreState(next); !s.ok()) return fail(WireError::kInternal, s);
  return Status::Ok();
}

Status SourceStore::DeleteApplied(uint64_t applied) {
  uint64_t through = applied;
  if (options_.retention.count() > 0) {
    // Keep every segment, from the oldest that is younger than the retention, on: delete
    // only through the seq before it.
    namespace fs = std::filesystem;
    std::vector<std::pair<uint64_t, std::string>> segments;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_ + "/log", ec)) {
      std::optional<uint64_t> first =
          common::ParseSegmentFileName(entry.path().filename().string());
      if (first) segments.emplace_back(*first, entry.path().string());
    }
    std::sort(segments.begin(), segments.end());
    const auto now = fs::file_time_type::clock::now();
    for (const auto& [first, path] : segments) {
      auto mtime = fs::last_write_time(path, ec);
      if (ec || now - mtime < options_.retention) {
        through = std::min(through, first - 1);
        break;
      }
    }
  }
  if (through == 0) return Status::Ok();
  std::lock_guard<std::mutex> log_lock(log_mu_);
  if (log_ == nullptr || log_->first_seq() == 0 || log_->first_seq() > through) return Status::Ok();
  Status s = log_->DeleteThrough(through);
  std::lock_guard<std::mutex> lock(mu_);
  log_bytes_ = log_->total_bytes();
  log_segments_ = log_->segment_count();
  return s;
}

}  // namespace mirror::d
