// A store whose clock the test sets: the modification times it reports (format.md §12 item 4) are
// those of a manual clock at each put or publish, so tests of the garbage collector's grace period
// (format.md §13.4) can let hours pass instantly. Several wrappers of one target share a clock, as
// several clients of one store share the store's clock.
//
// Thread safety: safe for concurrent use, like the store it wraps.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "ickpt/store.h"
#include "src/util/mutex.h"

namespace ickpt::testing {

class ManualClock {
 public:
  absl::Time Now() const;
  void Advance(absl::Duration d);

 private:
  friend class ManualClockStore;
  mutable Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1'800'000'000);
  // When each key was last written through a wrapper sharing this clock.
  std::map<std::string, absl::Time, std::less<>> written_ ABSL_GUARDED_BY(mu_);
};

class ManualClockStore : public ObjectStoreWrapper {
 public:
  ManualClockStore(ObjectStore* target, std::shared_ptr<ManualClock> clock)
      : ObjectStoreWrapper(target), clock_(std::move(clock)) {}

  absl::Status Put(std::string_view key, std::string_view data) override;
  absl::Status Publish(std::string_view key, std::string_view data) override;
  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override;
  absl::Status Delete(std::string_view key) override;

 private:
  void Written(std::string_view key);
  std::shared_ptr<ManualClock> clock_;
};

}  // namespace ickpt::testing
