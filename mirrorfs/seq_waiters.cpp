#include "mirrorfs/seq_waiters.h"

#include <algorithm>

namespace mirror::fs {

void SeqWaiters::Wait(uint64_t seq, const std::function<bool()>& done) {
  std::unique_lock lock(mu_);
  if (done()) return;
  Waiter me{seq, {}};
  waiters_.push_back(&me);
  // A spurious wakeup only costs a check; Advance and WakeAll run under mu_, after the
  // value `done` reads moved, so no wakeup is lost between the check and the wait.
  while (!done()) me.cv.wait(lock);
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &me));
}

void SeqWaiters::Advance(uint64_t seq) {
  std::lock_guard lock(mu_);
  for (Waiter* w : waiters_) {
    if (w->seq <= seq) w->cv.notify_one();
  }
}

void SeqWaiters::WakeAll() {
  std::lock_guard lock(mu_);
  for (Waiter* w : waiters_) w->cv.notify_one();
}

size_t SeqWaiters::size() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

}  // namespace mirror::fs
