// Keeps one coordination-store lease alive on a thread of its own (every ttl / 3), and says when it
// was lost (docs/protocol.md §4, §6): a coordinator or participant whose lease is gone must stop
// acting under it at once, since its keys (leadership, membership) are gone too.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "src/coord/coordination_store.h"
#include "src/util/mutex.h"

namespace ickpt::coord {

// InvalidArgument unless `ttl` is whole seconds, at least 1 s (what a lease can have, and what
// Coordinator and Participant options accept).
absl::Status ValidateLeaseTtl(absl::Duration ttl);

class LeaseKeeper {
 public:
  LeaseKeeper(CoordinationStore* store, absl::Duration ttl);
  // Revokes the lease (its keys go at once) and joins the thread.
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Grants a new lease (replacing any previous one, which is revoked) and keeps it alive.
  // Returns its id. Errors: the store's.
  absl::StatusOr<int64_t> Renew();
  // The current lease, 0 before the first Renew().
  int64_t lease() const;
  // The current lease expired or could not be kept alive within its ttl: whatever was written
  // under it may be gone. Cleared by Renew().
  bool lost() const;
  // Stops keeping the lease alive and revokes it (best effort).
  void Revoke();

 private:
  void Run();

  CoordinationStore* const store_;
  const absl::Duration ttl_;
  mutable Mutex mu_;
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  // When the lease was last known alive (granted or kept alive): lost once ttl has passed since.
  absl::Time alive_at_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ickpt::coord
