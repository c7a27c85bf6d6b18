// The maintenance lock and the store clock (format.md §13.5). At most one GC (later:
// consolidation) per repository at a time; the lock expires, so a crashed holder does not block
// forever. Writers never look at it: GC's safety does not depend on it (§13.4).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ickpt/store.h"
#include "src/repo/commit_record.h"

namespace ickpt {

// When the store last wrote `key` (its listing's modification time): NotFound if absent.
absl::StatusOr<absl::Time> StoreModificationTime(ObjectStore& store, std::string_view key);

class MaintenanceLockHolder {
 public:
  // Takes the lock for `operation` ("gc"): Aborted naming the holder if it is live, or if another
  // process took it in the same instant.
  static absl::StatusOr<std::unique_ptr<MaintenanceLockHolder>> Acquire(ObjectStore& store,
                                                                        std::string operation,
                                                                        absl::Duration ttl);
  ~MaintenanceLockHolder();  // releases, best effort, if Release() was not called
  MaintenanceLockHolder(const MaintenanceLockHolder&) = delete;
  MaintenanceLockHolder& operator=(const MaintenanceLockHolder&) = delete;

  // The store's clock at the last renewal (the lock object's modification time).
  absl::Time store_now() const { return store_now_; }
  const std::string& key() const { return key_; }
  // Renews the lock if a third of its ttl has passed since the last renewal (by this host's
  // monotonic clock). Aborted if another process has taken it over (it presumed us dead).
  absl::Status RenewIfDue();
  // Renews now, whatever the time.
  absl::Status Renew();
  // Deletes the lock.
  absl::Status Release();

 private:
  MaintenanceLockHolder(ObjectStore& store, std::string key, uint64_t generation,
                        MaintenanceLock lock, absl::Time store_now);
  ObjectStore& store_;
  std::string key_;
  uint64_t generation_;
  MaintenanceLock lock_;
  absl::Time store_now_;
  absl::Time renewed_local_;  // this host's clock at the last renewal; only differences are used
  bool released_ = false;
};

}  // namespace ickpt
