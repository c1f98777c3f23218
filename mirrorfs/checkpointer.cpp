#include "mirrorfs/checkpointer.h"

#include <unistd.h>

#include <cerrno>

#include "common/clock.h"
#include "mirrorfs/log.h"

namespace mirror::fs {
namespace {

using Clock = std::chrono::steady_clock;
// How often the thread looks at the journal's fill and samples the rate.
constexpr std::chrono::milliseconds kPoll{50};
// An automatic CP waits this long for mirrord to apply (it frees what is durable anyway).
constexpr std::chrono::seconds kAutomaticSyncTimeout{60};
// A CP run without the thread (mount, unmount) waits this long, and only if connected.
constexpr std::chrono::seconds kInlineSyncTimeout{10};

}  // namespace

Checkpointer::Checkpointer(common::Journal& journal, int backing_fd,
                           std::chrono::milliseconds interval)
    : journal_(journal), backing_fd_(backing_fd), interval_(interval) {
  last_cp_ = rate_at_ = Clock::now();
  rate_seq_ = journal_.stats().last_assigned_seq;
}

Checkpointer::~Checkpointer() { Stop(); }

void Checkpointer::Start() {
  std::lock_guard lock(mu_);
  if (running_) return;
  running_ = true;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Checkpointer::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  std::lock_guard lock(mu_);
  running_ = false;
}

common::Result<uint64_t> Checkpointer::Request(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  uint64_t ticket = ++requested_;
  request_timeout_ = timeout;
  if (!running_) {
    started_ = ticket;
    lock.unlock();
    common::Status s = RunOne(MirrorWait::kIfConnected, kInlineSyncTimeout);
    lock.lock();
    finished_ = std::max(finished_, ticket);
    if (!s.ok()) return s;
    return stats_.cp_seq;
  }
  wake_.notify_all();
  if (!done_.wait_for(lock, timeout, [&] { return finished_ >= ticket || stop_; })) {
    return common::Status::DeadlineExceeded("consistency point not done after " +
                                            std::to_string(timeout.count()) + " ms");
  }
  if (finished_ < ticket) return common::Status::Aborted("the mount is stopping");
  if (!last_status_.ok()) return last_status_;
  return stats_.cp_seq;
}

Checkpointer::Stats Checkpointer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool Checkpointer::DueLocked(Clock::time_point now) const {
  if (started_ < requested_) return true;
  // After a failure, automatic CPs wait a second instead of retrying at every poll.
  if (!last_status_.ok() && now - last_cp_ < std::chrono::seconds(1)) return false;
  if (interval_.count() > 0 && now - last_cp_ >= interval_) return true;
  common::JournalStats js = journal_.stats();
  if (js.waiting_appenders > 0) return true;
  return js.used_bytes > js.capacity_bytes / 2;
}

void Checkpointer::SampleRate(Clock::time_point now) {
  double seconds = std::chrono::duration<double>(now - rate_at_).count();
  if (seconds < 1.0) return;
  uint64_t seq = journal_.stats().last_assigned_seq;
  stats_.ops_per_second = static_cast<double>(seq - rate_seq_) / seconds;
  rate_seq_ = seq;
  rate_at_ = now;
}

void Checkpointer::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    wake_.wait_for(lock, kPoll, [&] { return stop_ || started_ < requested_; });
    if (stop_) break;
    Clock::time_point now = Clock::now();
    SampleRate(now);
    if (!DueLocked(now)) continue;
    const bool requested = started_ < requested_;
    const std::chrono::milliseconds timeout = request_timeout_;
    uint64_t covered = requested_;
    started_ = covered;
    lock.unlock();
    common::Status s = requested ? RunOne(MirrorWait::kThroughLinkLoss, timeout)
                                 : RunOne(MirrorWait::kIfConnected, kAutomaticSyncTimeout);
    lock.lock();
    finished_ = std::max(finished_, covered);
    done_.notify_all();
  }
  done_.notify_all();
}

common::Status Checkpointer::RunOne(MirrorWait wait, std::chrono::milliseconds timeout) {
  std::lock_guard cp(cp_mu_);
  // Every record <= the released seq has made its change on BACKING.
  const uint64_t seq = journal_.released_seq();
  common::Status s = journal_.Sync();
  if (s.ok() && syncfs(backing_fd_) != 0) s = common::Status::IOError("syncfs BACKING", errno);
  common::Status mirrored;
  if (s.ok() && mirror_ != nullptr) {
    auto applied = mirror_->Sync(seq, wait == MirrorWait::kThroughLinkLoss, timeout);
    if (!applied.ok() && wait == MirrorWait::kThroughLinkLoss) {
      mirrored = applied.status().Annotate("mirror");
    }
  }
  const uint64_t freed = s.ok() ? FreeableThrough(seq) : 0;
  if (s.ok()) s = journal_.Free(freed);
  const bool freed_ok = s.ok();
  if (s.ok()) s = mirrored;
  std::lock_guard lock(mu_);
  last_cp_ = Clock::now();
  last_status_ = s;
  if (freed_ok) stats_.freed_seq = std::max(stats_.freed_seq, freed);
  if (s.ok()) {
    stats_.cp_seq = seq;
    stats_.cp_time_ns = common::RealtimeNs();
    ++stats_.cps;
    stats_.last_error.clear();
  } else {
    ++stats_.failures;
    stats_.last_error = s.ToString();
    Log(LogLevel::kError, "consistency point at seq " + std::to_string(seq) + " failed: " +
                              s.ToString() + " (will retry)");
  }
  return s;
}

uint64_t Checkpointer::FreeableThrough(uint64_t seq) {
  if (mirror_ == nullptr) return seq;
  const uint64_t durable = mirror_->durable_seq();
  if (durable >= seq) return seq;
  // A resync is about to restart the stream after everything journaled so far.
  if (mirror_->RestartPending()) return seq;
  // Writers are waiting for room that mirrord cannot give (the link is down and they may
  // go on): keep them going, give up the mirror's continuity, resync later.
  if (journal_.stats().waiting_appenders > 0 && mirror_->MayDropUnshipped()) {
    mirror_->MarkOutOfSync("the journal filled while the link was down: records " +
                           std::to_string(durable + 1) + ".." + std::to_string(seq) +
                           " were freed before mirrord had them; a resync is needed");
    return seq;
  }
  return durable;
}

}  // namespace mirror::fs
