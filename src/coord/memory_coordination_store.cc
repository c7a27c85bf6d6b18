// The in-process coordination store (memory_coordination_store.h). The rules that mimic etcd are
// taken from etcd 3.4's server: a write request advances the revision only if it changed a key
// (mvcc's storeTxnWrite.End), transaction branches are checked for duplicate keys before anything
// runs (v3rpc checkIntervals), the leases of the chosen branch's puts are checked before it runs
// (applier checkRequests), and a value comparison on a missing key is false (applyCompare).
//
// Thread safety: mu_ guards everything; Mutex::Unlock wakes every WaitForChange to re-check.
#include "src/coord/memory_coordination_store.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt::coord {
namespace {

// How many changes WaitForChange can look back over; older ones are dropped (a "compaction").
constexpr size_t kMaxHistory = 100000;

std::string Quote(std::string_view key) {
  return StrCat("\"", absl::CHexEscape(ToAbsl(key.substr(0, 200))), "\"");
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Whether `op` writes `key` (for the duplicate check of a transaction branch).
bool Covers(const TxnOp& op, std::string_view key) {
  return op.type == TxnOp::Type::kDeletePrefix ? StartsWith(key, op.key) : key == op.key;
}

// etcd rejects a branch that puts one key twice or puts a key that one of its deletes covers.
absl::Status CheckBranch(const std::vector<TxnOp>& ops, std::string_view branch) {
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].key.empty() && ops[i].type != TxnOp::Type::kDeletePrefix) {
      return absl::InvalidArgumentError(StrCat("transaction ", branch, " op ", i, ": empty key"));
    }
    if (ops[i].type != TxnOp::Type::kPut) continue;
    for (size_t j = 0; j < ops.size(); ++j) {
      if (j != i && (ops[j].type != TxnOp::Type::kPut || j < i) && Covers(ops[j], ops[i].key)) {
        return absl::InvalidArgumentError(StrCat("transaction ", branch, " writes key ",
                                                 Quote(ops[i].key), " twice (ops ", std::min(i, j),
                                                 " and ", std::max(i, j), ")"));
      }
    }
  }
  return absl::OkStatus();
}

template <typename T>
bool CompareWith(const T& actual, const T& wanted, Compare::Result result) {
  switch (result) {
    case Compare::Result::kEqual:
      return actual == wanted;
    case Compare::Result::kNotEqual:
      return actual != wanted;
    case Compare::Result::kLess:
      return actual < wanted;
    case Compare::Result::kGreater:
      return actual > wanted;
  }
  return false;
}

absl::Status LeaseNotFound(int64_t lease) {
  return absl::NotFoundError(StrCat("lease ", lease, " not found (expired or revoked)"));
}

}  // namespace

absl::Status MemoryCoordinationStore::EnterLocked() {
  if (unavailable_) {
    return absl::UnavailableError(StrCat(Describe(), " is unavailable (test hook)"));
  }
  ExpireDueLeasesLocked(absl::Now());
  return absl::OkStatus();
}

void MemoryCoordinationStore::ExpireDueLeasesLocked(absl::Time now) {
  std::vector<int64_t> due;
  for (const auto& [id, lease] : leases_) {
    if (lease.expiry <= now) due.push_back(id);
  }
  // In id order, so that the revisions of the deletions do not depend on the hash map's order.
  std::sort(due.begin(), due.end());
  for (int64_t id : due) RevokeLocked(id);
}

void MemoryCoordinationStore::RevokeLocked(int64_t lease) {
  auto it = leases_.find(lease);
  if (it == leases_.end()) return;
  const std::set<std::string> keys = std::move(it->second.keys);
  leases_.erase(it);
  if (keys.empty()) return;
  const int64_t revision = revision_ + 1;
  for (const std::string& key : keys) DeleteAtLocked(key, revision);
  revision_ = revision;
}

void MemoryCoordinationStore::PutAtLocked(const std::string& key, std::string_view value,
                                          int64_t lease, int64_t revision) {
  auto [it, created] = kvs_.try_emplace(key);
  KeyValue& kv = it->second;
  if (created) {
    kv.key = key;
    kv.create_revision = revision;
  } else if (kv.lease != 0 && kv.lease != lease) {
    if (auto old = leases_.find(kv.lease); old != leases_.end()) old->second.keys.erase(key);
  }
  kv.value = std::string(value);
  kv.mod_revision = revision;
  ++kv.version;
  kv.lease = lease;
  if (lease != 0) leases_[lease].keys.insert(key);
  RecordChangeLocked(key, revision);
}

bool MemoryCoordinationStore::DeleteAtLocked(const std::string& key, int64_t revision) {
  auto it = kvs_.find(key);
  if (it == kvs_.end()) return false;
  if (it->second.lease != 0) {
    if (auto lease = leases_.find(it->second.lease); lease != leases_.end()) {
      lease->second.keys.erase(key);
    }
  }
  kvs_.erase(it);
  RecordChangeLocked(key, revision);
  return true;
}

std::vector<std::string> MemoryCoordinationStore::KeysWithPrefixLocked(
    std::string_view prefix) const {
  std::vector<std::string> keys;
  for (auto it = kvs_.lower_bound(prefix); it != kvs_.end() && StartsWith(it->first, prefix);
       ++it) {
    keys.push_back(it->first);
  }
  return keys;
}

bool MemoryCoordinationStore::CompareHoldsLocked(const Compare& compare) const {
  auto it = kvs_.find(compare.key);
  if (it == kvs_.end()) {
    // etcd: a missing key has no value to compare (not even an empty one), so the compare fails.
    if (compare.target == Compare::Target::kValue) return false;
    return CompareWith(int64_t{0}, compare.number, compare.result);
  }
  const KeyValue& kv = it->second;
  switch (compare.target) {
    case Compare::Target::kCreateRevision:
      return CompareWith(kv.create_revision, compare.number, compare.result);
    case Compare::Target::kModRevision:
      return CompareWith(kv.mod_revision, compare.number, compare.result);
    case Compare::Target::kVersion:
      return CompareWith(kv.version, compare.number, compare.result);
    case Compare::Target::kValue:
      return CompareWith(std::string_view(kv.value), std::string_view(compare.value),
                         compare.result);
  }
  return false;
}

bool MemoryCoordinationStore::ApplyLocked(const std::vector<TxnOp>& ops) {
  const int64_t revision = revision_ + 1;
  bool changed = false;
  for (const TxnOp& op : ops) {
    switch (op.type) {
      case TxnOp::Type::kPut:
        PutAtLocked(op.key, op.value, op.lease, revision);
        changed = true;
        break;
      case TxnOp::Type::kDelete:
        changed |= DeleteAtLocked(op.key, revision);
        break;
      case TxnOp::Type::kDeletePrefix:
        for (const std::string& key : KeysWithPrefixLocked(op.key)) {
          changed |= DeleteAtLocked(key, revision);
        }
        break;
    }
  }
  if (changed) revision_ = revision;
  return changed;
}

void MemoryCoordinationStore::RecordChangeLocked(const std::string& key, int64_t revision) {
  history_.emplace_back(revision, key);
  while (history_.size() > kMaxHistory) {
    // Drop whole revisions: a revision is either fully remembered or compacted.
    const int64_t dropped = history_.front().first;
    while (!history_.empty() && history_.front().first == dropped) history_.pop_front();
    compacted_revision_ = dropped;
  }
}

int64_t MemoryCoordinationStore::LatestChangeLocked(const KeyRange& range,
                                                    int64_t after_revision) const {
  for (auto it = history_.rbegin(); it != history_.rend() && it->first > after_revision; ++it) {
    if (range.Contains(it->second)) return it->first;
  }
  return 0;
}

absl::Time MemoryCoordinationStore::NextExpiryLocked() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, lease] : leases_) next = std::min(next, lease.expiry);
  return next;
}

absl::StatusOr<int64_t> MemoryCoordinationStore::Put(std::string_view key, std::string_view value,
                                                     int64_t lease) {
  if (key.empty()) return absl::InvalidArgumentError("put: empty key");
  MutexLock lock(&mu_);
  if (absl::Status s = EnterLocked(); !s.ok()) return s;
  if (lease != 0 && !leases_.contains(lease)) return LeaseNotFound(lease);
  PutAtLocked(std::string(key), value, lease, ++revision_);
  return revision_;
}

absl::StatusOr<RangeResult> MemoryCoordinationStore::Get(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("get: empty key");
  MutexLock lock(&mu_);
  if (absl::Status s = EnterLocked(); !s.ok()) return s;
  RangeResult result;
  if (auto it = kvs_.find(key); it != kvs_.end()) result.kvs.push_back(it->second);
  result.revision = revision_;
  return result;
}

absl::StatusOr<RangeResult> MemoryCoordinationStore::GetPrefix(std::string_view prefix) {
  MutexLock lock(&mu_);
  if (absl::Status s = EnterLocked(); !s.ok()) return s;
  RangeResult result;
  for (auto it = kvs_.lower_bound(prefix); it != kvs_.end() && StartsWith(it->first, prefix);
       ++it) {
    result.kvs.push_back(it->second);
  }
  result.revision = revision_;
  return result;
}

absl::StatusOr<MultiRangeResult> MemoryCoordinationStore::GetRanges(
    const std::vector<KeyRange>& ranges) {
  if (ranges.empty()) return absl::InvalidArgumentError("read of ranges: no range");
  for (const KeyRange& range : ranges) {
    if (range.key.empty()) return absl::InvalidArgumentError("read of ranges: empty key");
  }
  MutexLock lock(&mu_);
  if (absl::Status s = EnterLocked(); !s.ok()) return s;
  MultiRangeResult result;
  for (const KeyRange& range : ranges) {
    std::vector<KeyValue>& kvs = result.ranges.emplace_back();
    for (auto it = kvs_.lower_bound(range.key); it != kvs_.end() && range.Contains(it->first);
         ++it) {
      kvs.push_back(it->second);
      if (range.keys_only) kvs.back().value.clear();
    }
  }
  result.revision = revision_;
  return result;
}

absl::StatusOr<int64_t> MemoryCoordinationStore::Delete(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("delete: empty key");
  MutexLock lock(&mu_);
  if (absl::Status s = EnterLocked(); !s.ok()) return s;
  if (DeleteAtLocked(std::string(key), revision_ + 1)) ++revision_;
  return revision_;
}

absl::StatusOr<TxnResult> MemoryCoordinationStore::Txn(const std::vector<Compare>& compares,
                                                       const std::vector<TxnOp>& success,
                                                       const std::vector<TxnOp>& failure) {
  if (absl::Status s = CheckBranch(success, "success branch"); !s.ok()) return s;
  if (absl::Status s = CheckBranch(failure, "failure branch"); !s.ok()) return s;
  for (const Compare& compare : compares) {
    if (compare.key.empty()) return absl::InvalidArgumentError("transaction compare: empty key");
  }
  MutexLock lock(&mu_);
  if (absl::Status s = EnterLocked(); !s.ok()) return s;
  TxnResult result;
  result.succeeded = true;
  for (const Compare& compare : compares) result.succeeded &= CompareHoldsLocked(compare);
  const std::vector<TxnOp>& ops = result.succeeded ? success : failure;
  for (const TxnOp& op : ops) {
    if (op.type == TxnOp::Type::kPut && op.lease != 0 && !leases_.contains(op.lease)) {
      return LeaseNotFound(op.lease);
    }
  }
  ApplyLocked(ops);
  result.revision = revision_;
  return result;
}

absl::StatusOr<int64_t> MemoryCoordinationStore::GrantLease(absl::Duration ttl) {
  if (ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        StrCat("lease time to live ", absl::FormatDuration(ttl), " is below 1 s"));
  }
  const int64_t seconds = absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1)));
  MutexLock lock(&mu_);
  if (absl::Status s = EnterLocked(); !s.ok()) return s;
  const int64_t id = ++next_lease_id_;
  Lease& lease = leases_[id];
  lease.ttl_seconds = seconds;
  lease.expiry = absl::Now() + absl::Seconds(seconds);
  return id;
}

absl::Status MemoryCoordinationStore::KeepAlive(int64_t lease) {
  MutexLock lock(&mu_);
  if (absl::Status s = EnterLocked(); !s.ok()) return s;
  auto it = leases_.find(lease);
  if (it == leases_.end()) return LeaseNotFound(lease);
  it->second.expiry = absl::Now() + absl::Seconds(it->second.ttl_seconds);
  return absl::OkStatus();
}

absl::Status MemoryCoordinationStore::RevokeLease(int64_t lease) {
  MutexLock lock(&mu_);
  if (absl::Status s = EnterLocked(); !s.ok()) return s;
  RevokeLocked(lease);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MemoryCoordinationStore::WaitForChangeIn(const KeyRange& range,
                                                                 int64_t after_revision,
                                                                 absl::Duration timeout,
                                                                 const WaitCancel* cancel) {
  const absl::Time deadline = absl::Now() + std::max(timeout, absl::ZeroDuration());
  MutexLock lock(&mu_);
  while (true) {
    if (absl::Status s = EnterLocked(); !s.ok()) return s;
    if (after_revision < compacted_revision_) return revision_;
    if (const int64_t changed = LatestChangeLocked(range, after_revision); changed != 0) {
      return changed;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline || (cancel != nullptr && cancel->canceled())) return after_revision;
    // Wake for a write (every Unlock signals), at the deadline, or when a lease is due: its
    // deletion is a change nobody else may be around to make. A cancel does not signal the
    // mutex: look at it every 20 ms.
    absl::Time wake = std::min(deadline, NextExpiryLocked());
    if (cancel != nullptr) wake = std::min(wake, now + absl::Milliseconds(20));
    mu_.AwaitWithDeadline(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return unavailable_ || after_revision < compacted_revision_ ||
                 LatestChangeLocked(range, after_revision) != 0 ||
                 (cancel != nullptr && cancel->canceled());
        },
        wake);
  }
}

void MemoryCoordinationStore::ExpireLease(int64_t lease) {
  MutexLock lock(&mu_);
  RevokeLocked(lease);
}

void MemoryCoordinationStore::SetUnavailable(bool unavailable) {
  MutexLock lock(&mu_);
  unavailable_ = unavailable;
}

int64_t MemoryCoordinationStore::revision() const {
  MutexLock lock(&mu_);
  return revision_;
}

}  // namespace ickpt::coord
