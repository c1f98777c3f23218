#include "mirrorfs/seq_waiters.h"

#include <algorithm>

namespace mirror::fs {

void SeqWaiters::Remove(Waiter* w) {
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), w));
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
