// An in-process CoordinationStore with etcd's semantics (coordination_store.h): for tests, and for
// several participants of a group that live in one process. It mimics etcd where a caller could
// tell the difference: an empty store is at revision 1 and the first write gets revision 2; a write
// that changes nothing (deleting a missing key, a transaction whose branch writes nothing new, a
// lease revoked without keys) does not advance the revision; a kValue comparison on a missing key
// is false whatever its result; a transaction branch may not put one key twice nor put a key it
// also deletes.
//
// Leases expire by real time (absl::Now()). An expired lease's keys are deleted lazily, at the start
// of the next call or when a WaitForChange waiting on the store wakes at the expiry time, so the
// deletion is a write that a waiter sees like any other. The store remembers the keys written at
// the last 100,000 revisions' worth of changes for WaitForChange; a wait from further back returns
// at once with the current revision, as etcd does after a compaction.
//
// Test hooks: ExpireLease() ends a lease now (deterministic, instead of sleeping past its TTL);
// SetUnavailable(true) makes every call fail with Unavailable, like an etcd that cannot be reached.
//
// Thread safety: every method is safe to call concurrently; one mutex guards all state.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/coord/coordination_store.h"
#include "src/util/mutex.h"

namespace ickpt::coord {

class MemoryCoordinationStore final : public CoordinationStore {
 public:
  MemoryCoordinationStore() = default;

  std::string Describe() const override { return "in-process coordination store"; }

  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              int64_t lease = 0) override;
  absl::StatusOr<RangeResult> Get(std::string_view key) override;
  absl::StatusOr<RangeResult> GetPrefix(std::string_view prefix) override;
  absl::StatusOr<MultiRangeResult> GetRanges(const std::vector<KeyRange>& ranges) override;
  absl::StatusOr<int64_t> Delete(std::string_view key) override;
  absl::StatusOr<TxnResult> Txn(const std::vector<Compare>& compares,
                                const std::vector<TxnOp>& success,
                                const std::vector<TxnOp>& failure = {}) override;

  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl) override;
  absl::Status KeepAlive(int64_t lease) override;
  absl::Status RevokeLease(int64_t lease) override;

  absl::StatusOr<int64_t> WaitForChangeIn(const KeyRange& range, int64_t after_revision,
                                          absl::Duration timeout,
                                          const WaitCancel* cancel) override;

  // Test hook: the lease expires now, as if its time to live had passed: its keys are deleted (one
  // write) and KeepAlive reports NotFound. Nothing happens if the lease does not exist.
  void ExpireLease(int64_t lease);
  // Test hook: while set, every call fails with Unavailable (and a WaitForChange in progress
  // returns Unavailable), as when etcd cannot be reached. Leases keep expiring by time meanwhile.
  void SetUnavailable(bool unavailable);

  // The store's current revision (1 when empty, like etcd). For tests.
  int64_t revision() const;

 private:
  struct Lease {
    int64_t ttl_seconds = 0;
    absl::Time expiry;
    std::set<std::string> keys;  // attached keys
  };

  // Fails with Unavailable while SetUnavailable(true) is in effect; otherwise deletes the keys of
  // every lease whose expiry has passed.
  absl::Status EnterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireDueLeasesLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the lease and deletes its keys at one new revision (none if it had no keys).
  void RevokeLocked(int64_t lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Writes at revision `revision` (the caller advances revision_ once per write request).
  void PutAtLocked(const std::string& key, std::string_view value, int64_t lease,
                   int64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns whether the key existed.
  bool DeleteAtLocked(const std::string& key, int64_t revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The keys in [prefix, end of prefix), as etcd's range with range_end = prefix + 1.
  std::vector<std::string> KeysWithPrefixLocked(std::string_view prefix) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool CompareHoldsLocked(const Compare& compare) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs one transaction branch; returns whether it changed anything.
  bool ApplyLocked(const std::vector<TxnOp>& ops) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records that `key` changed at `revision`, for WaitForChange, and drops the oldest history.
  void RecordChangeLocked(const std::string& key, int64_t revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The highest revision above `after_revision` at which a key in `range` changed, or 0.
  int64_t LatestChangeLocked(const KeyRange& range, int64_t after_revision) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The earliest lease expiry, or InfiniteFuture.
  absl::Time NextExpiryLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  std::map<std::string, KeyValue, std::less<>> kvs_ ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<int64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);
  // Lease ids count up from here: far from any revision, so that a test mixing the two fails.
  int64_t next_lease_id_ ABSL_GUARDED_BY(mu_) = int64_t{0x1ea5e} << 32;
  bool unavailable_ ABSL_GUARDED_BY(mu_) = false;
  // (revision, key) of every change above compacted_revision_, oldest first.
  std::deque<std::pair<int64_t, std::string>> history_ ABSL_GUARDED_BY(mu_);
  int64_t compacted_revision_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ickpt::coord
