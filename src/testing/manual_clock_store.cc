#include "src/testing/manual_clock_store.h"

#include <utility>

namespace ickpt::testing {

absl::Time ManualClock::Now() const {
  MutexLock lock(&mu_);
  return now_;
}

void ManualClock::Advance(absl::Duration d) {
  MutexLock lock(&mu_);
  now_ += d;
}

void ManualClockStore::Written(std::string_view key) {
  MutexLock lock(&clock_->mu_);
  clock_->written_[std::string(key)] = clock_->now_;
}

absl::Status ManualClockStore::Put(std::string_view key, std::string_view data) {
  absl::Status s = target()->Put(key, data);
  if (s.ok()) Written(key);
  return s;
}

absl::Status ManualClockStore::Publish(std::string_view key, std::string_view data) {
  absl::Status s = target()->Publish(key, data);
  if (s.ok()) Written(key);
  return s;
}

absl::StatusOr<ObjectPage> ManualClockStore::ListPage(std::string_view prefix,
                                                      std::string_view start_after,
                                                      size_t max_keys) {
  absl::StatusOr<ObjectPage> page = target()->ListPage(prefix, start_after, max_keys);
  if (!page.ok()) return page;
  MutexLock lock(&clock_->mu_);
  for (ObjectInfo& info : page->objects) {
    auto it = clock_->written_.find(info.key);
    // Written around the wrapper (before it existed): as old as the clock's start.
    info.modified = it != clock_->written_.end() ? it->second : absl::FromUnixSeconds(0);
  }
  return page;
}

absl::Status ManualClockStore::Delete(std::string_view key) {
  absl::Status s = target()->Delete(key);
  if (s.ok()) {
    MutexLock lock(&clock_->mu_);
    clock_->written_.erase(std::string(key));
  }
  return s;
}

}  // namespace ickpt::testing
