#include "src/coord/lease_keeper.h"

#include <chrono>

#include "src/util/log.h"

namespace ickpt::coord {

absl::Status ValidateLeaseTtl(absl::Duration ttl) {
  if (ttl >= absl::Seconds(1) && ttl == absl::Seconds(absl::ToInt64Seconds(ttl))) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("the lease ttl must be whole seconds, at least 1 s");
}

LeaseKeeper::LeaseKeeper(CoordinationStore* store, absl::Duration ttl)
    : store_(store), ttl_(ttl), thread_([this] { Run(); }) {}

LeaseKeeper::~LeaseKeeper() {
  Revoke();
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::StatusOr<int64_t> LeaseKeeper::Renew() {
  int64_t old = 0;
  {
    MutexLock lock(&mu_);
    old = lease_;
    lease_ = 0;
  }
  if (old != 0) {
    // Best effort: an old lease that cannot be revoked expires by itself.
    store_->RevokeLease(old).IgnoreError();
  }
  absl::StatusOr<int64_t> lease = store_->GrantLease(ttl_);
  if (!lease.ok()) return lease.status();
  MutexLock lock(&mu_);
  lease_ = *lease;
  lost_ = false;
  alive_at_ = absl::Now();
  return *lease;
}

int64_t LeaseKeeper::lease() const {
  MutexLock lock(&mu_);
  return lease_;
}

bool LeaseKeeper::lost() const {
  MutexLock lock(&mu_);
  return lost_ || (lease_ != 0 && absl::Now() - alive_at_ >= ttl_);
}

void LeaseKeeper::Revoke() {
  int64_t lease = 0;
  {
    MutexLock lock(&mu_);
    lease = lease_;
    lease_ = 0;
  }
  // Best effort: a lease that cannot be revoked (the store is down) expires by itself.
  if (lease != 0) store_->RevokeLease(lease).IgnoreError();
}

void LeaseKeeper::Run() {
  const absl::Duration period = ttl_ / 3;
  for (;;) {
    int64_t lease = 0;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      lease = lease_;
    }
    if (lease != 0) {
      const absl::Time asked = absl::Now();
      absl::Status s = store_->KeepAlive(lease);
      MutexLock lock(&mu_);
      if (lease_ == lease) {
        if (s.ok()) {
          // The lease lives for ttl from when the store renewed it, which is after we asked.
          alive_at_ = asked;
        } else if (absl::IsNotFound(s)) {
          if (!lost_) ICKPT_LOG_WARN("lease {:x} expired: {}", lease, s.ToString());
          lost_ = true;
        } else {
          ICKPT_LOG_INFO("keeping lease {:x} alive: {}", lease, s.ToString());
        }
      }
    }
    // Sleep a period, in slices so that the destructor does not wait long.
    const absl::Time until = absl::Now() + period;
    for (;;) {
      {
        MutexLock lock(&mu_);
        if (stopping_) return;
        if (lease_ != lease) break;  // renewed: keep the new one alive at once
      }
      if (absl::Now() >= until) break;
      absl::SleepFor(std::min(absl::Milliseconds(50), until - absl::Now()));
    }
  }
}

}  // namespace ickpt::coord
