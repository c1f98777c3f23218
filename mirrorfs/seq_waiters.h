// Writers that wait for an acknowledgement, each until its own sequence number: an
// acknowledgement wakes exactly the writers it covers. With one condition variable for
// all of them, every ACK of a small frame woke every waiting writer, and most went back
// to sleep (in mode=sync with 4 writers, about 3 useless wakeups per record).
//
//   waiters.Wait(seq, [&] { return acked.load() >= seq || GiveUp(); });   // a writer
//   acked.store(s); waiters.Advance(s);                                    // on an ACK
//   link_down = true; waiters.WakeAll();                                  // anything else
//
// Thread-safety: all methods are thread-safe. `done` runs under the waiters' own mutex,
// so it must not take a lock that is held while calling Advance or WakeAll.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace mirror::fs {

class SeqWaiters {
 public:
  // Blocks until `done()` is true; it is checked first, then after every wakeup that
  // Advance (for a value >= seq) or WakeAll sends. A template: a writer waits once per
  // write, and a std::function of its lambda would allocate.
  template <class Done>
  void Wait(uint64_t seq, Done&& done) {
    std::unique_lock lock(mu_);
    if (done()) return;
    Waiter me{seq, {}};
    waiters_.push_back(&me);
    // Advance and WakeAll run under mu_, after the value `done` reads moved, so no
    // wakeup is lost between the check and the wait; a spurious one costs a check.
    while (!done()) me.cv.wait(lock);
    Remove(&me);
  }
  // Wakes the waiters for a seq <= `seq`. Call after the value `done` reads moved.
  void Advance(uint64_t seq);
  // Wakes every waiter (a condition other than the seq changed).
  void WakeAll();
  size_t size() const;

 private:
  struct Waiter {
    uint64_t seq;
    std::condition_variable cv;
  };
  void Remove(Waiter* w);  // with mu_ held

  mutable std::mutex mu_;
  std::vector<Waiter*> waiters_;  // guarded by mu_; each lives on its thread's stack
};

}  // namespace mirror::fs
