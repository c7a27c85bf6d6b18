// The project's mutex: std::mutex with Await(), annotated for clang's -Wthread-safety.
//
// Why not Mutex: Debian's abseil is not built with ThreadSanitizer, so TSan cannot see the
// synchronisation inside Mutex and reports every access it guards as a race. std::mutex is
// intercepted by TSan in any build. The interface mirrors absl's (Lock, Unlock, MutexLock, Await)
// so that code reads the same.
//
// Thread safety: this is the synchronisation primitive; every method is safe to call concurrently.
#pragma once

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

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
