// SourceStore's resync: drop what was received and not applied, restart the sequence,
// and end the resync once the source's differences are applied.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "common/file_replace.h"
#include "mirrord/source_store.h"

namespace mirror::d {

using common::Result;
using common::Status;
using common::WireError;

Result<ResyncInfo> SourceStore::Resync(uint64_t token, uint64_t next_seq, Refusal* refusal) {
  auto fail = [&](WireError code, const Status& s) {
    *refusal = {code, s.ToString()};
    return s;
  };
  if (next_seq == 0 || next_seq == UINT64_MAX) {
    return fail(WireError::kProtocol,
                Status::InvalidArgument("resync at seq " + std::to_string(next_seq) +
                                        ": not a valid sequence number"));
  }
  std::lock_guard<std::mutex> apply_lock(apply_mu_);
  ResyncInfo info;
  info.next_seq = next_seq;
  info.applied_seq = state_.applied_seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (token != session_token_) {
      return fail(WireError::kProtocol,
                  Status::Aborted("replaced by a newer connection of the source"));
    }
    if (!error_.ok()) {
      return fail(WireError::kInternal, error_.Annotate("store is broken"));
    }
    info.received_seq = received_seq_;
    info.cleared_error = last_error_;
  }
  // Everything received goes to the log first: then memory is empty (the halves are
  // cleared), so nothing there can be recovered into the new log after a crash. The
  // connection reads nothing meanwhile, so nothing new arrives.
  if (Status s = Flush(); !s.ok()) return fail(WireError::kInternal, s);

  std::lock_guard<std::mutex> log_lock(log_mu_);
  if (Status s = DropLogLocked(); !s.ok()) {
    // The old log is still in place (the rename failed) or gone (the fsync failed);
    // either way reopen what is there, as a restart would.
    Status reopened = OpenLogLocked(state_.applied_seq + 1);
    std::lock_guard<std::mutex> lock(mu_);
    if (reopened.ok()) {
      received_seq_ = durable_seq_ = log_->last_seq();
    } else {
      error_ = reopened.Annotate("reopening the log after a failed resync");
      last_error_ = error_.ToString();
    }
    return fail(WireError::kInternal, s);
  }
  // From here a crash restarts with no log: a new one continues after the stored
  // applied_seq. The state names the new seqs; the new log follows it.
  SourceState next = state_;
  next.applied_seq = next.replay_through = next_seq - 1;
  next.resync_active = true;
  next.resync_until = 0;
  next.adopted = false;
  Status stored = WriteStateFile(state_path(), next);
  if (stored.ok()) state_ = next;
  Status opened = OpenLogLocked(state_.applied_seq + 1);
  std::error_code ec;
  std::filesystem::remove_all(dropped_log_dir(), ec);  // Open removes it if this fails
  crash_replay_through_ = 0;  // nothing applied from here on was applied before
  {
    std::lock_guard<std::mutex> lock(mu_);
    received_seq_ = durable_seq_ = applied_seq_ = state_.applied_seq;
    resync_active_ = state_.resync_active;
    resync_until_ = state_.resync_until;
    adopted_ = state_.adopted;
    arrivals_.clear();
    if (stored.ok()) {
      last_error_.clear();
      last_error_code_ = WireError::kInternal;
    }
    if (!opened.ok()) {
      error_ = opened.Annotate("opening a new log after a resync");
      last_error_ = error_.ToString();
    }
    log_bytes_ = log_ ? log_->total_bytes() : 0;
    log_segments_ = log_ ? log_->segment_count() : 0;
  }
  if (!stored.ok()) return fail(WireError::kInternal, stored);
  if (!opened.ok()) return fail(WireError::kInternal, opened);
  return info;
}

Status SourceStore::DropLogLocked() {
  log_.reset();  // closes the segments
  std::error_code ec;
  std::filesystem::remove_all(dropped_log_dir(), ec);
  if (ec) return Status::IOError("remove " + dropped_log_dir(), ec.value());
  if (::rename(log_dir().c_str(), dropped_log_dir().c_str()) != 0) {
    return Status::IOError("rename " + log_dir() + " to " + dropped_log_dir(), errno);
  }
  // The rename must be on disk before the state file names seqs the old log lacks.
  return common::SyncDirectory(dir_);
}

Status SourceStore::OpenLogLocked(uint64_t next_seq) {
  Result<std::unique_ptr<common::SegmentLog>> log =
      common::SegmentLog::Open(log_dir(), LogOptions());
  if (!log.ok()) return log.status();
  log_ = std::move(log).value();
  // A log that never held a record accepts any first seq; make the choice durable.
  if (log_->next_seq() == 0) return log_->SetNextSeq(next_seq);
  return Status::Ok();
}

Result<bool> SourceStore::ResyncDone(uint64_t through_seq, Refusal* refusal) {
  std::lock_guard<std::mutex> apply_lock(apply_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (through_seq > received_seq_) {
      *refusal = {WireError::kProtocol, "resync done through seq " + std::to_string(through_seq) +
                                            ", but only seq " + std::to_string(received_seq_) +
                                            " was received"};
      return Status::InvalidArgument(refusal->message);
    }
  }
  if (!state_.resync_active) return false;
  SourceState next = state_;
  next.resync_until = through_seq;
  if (state_.applied_seq >= through_seq) {
    next.resync_active = false;
    next.resync_until = 0;
  }
  if (Status s = StoreState(next); !s.ok()) {
    *refusal = {WireError::kInternal, s.ToString()};
    return s;
  }
  return !next.resync_active;
}

}  // namespace mirror::d
