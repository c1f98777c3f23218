// SourceStore's promote: apply everything received, raise the epoch, mark the image a
// primary and fence every later session (source_store.h, "Promote").
#include "common/fence_file.h"
#include "common/volume_attrs.h"
#include "mirrord/source_store.h"

namespace mirror::d {

using common::Result;
using common::Status;
using common::WireError;

std::optional<Refusal> SourceStore::PromoteRefusalLocked() const {
  if (retired_) {
    return Refusal{WireError::kShuttingDown,
                   "the store of source '" + source_id_ + "' is being adopted; retry later"};
  }
  if (!fenced_message_.empty()) return Refusal{WireError::kStaleEpoch, fenced_message_};
  if (promoting_) {
    return Refusal{WireError::kShuttingDown,
                   "a promote of source '" + source_id_ + "' is running; retry later"};
  }
  return std::nullopt;
}

void SourceStore::Retire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired_ = true;
    stop_ = true;
    flush_wanted_ = true;
    ++session_token_;
    on_durable_ = nullptr;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  std::lock_guard<std::mutex> apply_lock(apply_mu_);  // no Sync or Promote holds the lock
  lock_.reset();
}

std::string SourceStore::FencedMessage() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fenced_message_;
}

std::vector<std::string> SourceStore::PromoteBlockers() const {
  std::vector<std::string> why;
  std::lock_guard<std::mutex> lock(mu_);
  if (volume_id_.empty() && received_seq_ == 0) {
    why.push_back("no source has ever connected: the image holds nothing of it");
  }
  if (resync_active_) {
    why.push_back(
        "a resync (or baseline) is in progress: the image is not consistent until the "
        "source's differences are applied" +
        (resync_until_ == 0 ? std::string(" (the source has not finished sending them)")
                            : " (through seq " + std::to_string(resync_until_) + ", applied " +
                                  std::to_string(applied_seq_) + ")"));
  }
  if (!error_.ok()) {
    why.push_back("the store's log failed (" + error_.ToString() +
                  "): records received after seq " + std::to_string(durable_seq_) +
                  " may be missing");
  } else if (!last_error_.empty()) {
    why.push_back("applying a record failed (" + last_error_ + "): the image stops at seq " +
                  std::to_string(applied_seq_));
  }
  return why;
}

// Makes everything received durable and applies it. Returns the last seq the image holds.
// Forced, a failure is a warning and the image stays where it got to; else `refused`.
uint64_t SourceStore::ApplyAllForPromote(bool force, PromoteResult* result) {
  auto give_up = [&](const std::string& why) {
    if (force) {
      result->warnings.push_back(why + "; records after seq " + std::to_string(state_.applied_seq) +
                                 " are missing");
    } else {
      result->refused = why;
    }
    return state_.applied_seq;
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    result->received_seq = received_seq_;
    if (!last_error_.empty() && error_.ok()) return give_up("applying failed: " + last_error_);
  }
  uint64_t target = result->received_seq;
  if (Status s = Flush(); !s.ok()) {
    if (!force) return give_up("making the received records durable failed: " + s.ToString());
    std::lock_guard<std::mutex> lock(mu_);
    target = durable_seq_;
    result->warnings.push_back("records after seq " + std::to_string(target) +
                               " never reached the log: " + s.ToString());
  }
  if (target > state_.applied_seq) {
    Refusal refusal;
    if (Status s = ApplyThrough(target, &refusal); !s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      last_error_ = s.ToString();
      last_error_code_ = refusal.code;
      return give_up("applying failed: " + s.ToString());
    }
  }
  return state_.applied_seq;
}

Result<PromoteResult> SourceStore::Promote(bool force) {
  std::lock_guard<std::mutex> apply_lock(apply_mu_);
  PromoteResult result;
  if (state_.promoted) {
    result.already = true;
    result.epoch = state_.epoch;
    result.promoted_seq = result.received_seq = state_.promoted_seq;
    return result;
  }
  std::vector<std::string> blockers = PromoteBlockers();
  if (!blockers.empty() && !force) {
    for (const std::string& b : blockers) {
      result.refused += (result.refused.empty() ? "" : "; ") + b;
    }
    return result;
  }
  result.warnings = std::move(blockers);
  result.epoch = state_.epoch + 1;
  {
    // From here on the source's session is over: nothing more is received.
    std::lock_guard<std::mutex> lock(mu_);
    promoting_ = true;
    ++session_token_;
    on_durable_ = nullptr;
  }
  const uint64_t seq = ApplyAllForPromote(force, &result);
  auto unfence = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    promoting_ = false;
  };
  if (!result.refused.empty()) {
    unfence();
    return result;
  }
  if (Status s = common::WriteVolumeIdentity(dir_ + "/image", state_.volume_id, result.epoch);
      !s.ok()) {
    unfence();
    return s.Annotate("marking the image with the new epoch");
  }
  // From now on a mirrorfs may serve it.
  if (Status s = common::ClearImageMark(dir_ + "/image"); !s.ok()) {
    unfence();
    return s;
  }
  SourceState next = state_;
  next.epoch = result.epoch;
  next.promoted = true;
  next.promoted_seq = seq;
  next.replay_through = next.applied_seq;
  next.resync_active = false;
  next.resync_until = 0;
  if (Status s = StoreState(next); !s.ok()) {
    unfence();
    return s;
  }
  result.promoted_seq = seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    epoch_ = result.epoch;
    promoting_ = false;
    fenced_message_ = common::FenceMessage(result.epoch, seq);
  }
  // The log holds nothing the image lacks (unless forced past a failure: keep it then).
  if (result.warnings.empty()) (void)DeleteApplied(seq);
  return result;
}

}  // namespace mirror::d
