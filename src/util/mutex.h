// The project's mutex: std::mutex with Await(), annotated for clang's -Wthread-safety.
//
// Why not Mutex: Debian's abseil is not built with ThreadSanitizer, so TSan cannot see the
// synchronisation inside Mutex and reports every access it guards as a race. std::mutex is
// intercepted by TSan in any build. The interface mirrors absl's (Lock, Unlock, MutexLock, Await)
// so that code reads the same.
//
// Thread safety: this is the synchronisation primitive; every method is safe to call concurrently.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ickpt {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  // Wakes every Await() so it re-checks its condition: state guarded by this mutex can only have
  // changed while it was held.
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    changed_.notify_all();
    mu_.unlock();
  }

  // With the mutex held: releases it until `condition()` is true, then returns holding it.
  // `condition` is evaluated with the mutex held.
  template <typename Condition>
  void Await(Condition condition)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    changed_.wait(lock, condition);
    lock.release();  // still held: the caller unlocks
  }

  // Like Await(), but gives up at `deadline`: returns whether `condition()` held (it is checked
  // once more at the deadline). Returns holding the mutex either way. The wait is measured on the
  // steady clock, so a jump of the wall clock neither ends it early nor prolongs it.
  template <typename Condition>
  bool AwaitWithDeadline(Condition condition, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    // Clamped to a day: an infinite deadline would overflow the clock's representation.
    const absl::Duration left =
        std::min(std::max(deadline - absl::Now(), absl::ZeroDuration()), absl::Hours(24));
    const bool met = changed_.wait_until(
        lock, std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(left), condition);
    lock.release();  // still held: the caller unlocks
    return met;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
};

// Holds a Mutex for the scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mu_;
};

}  // namespace ickpt
