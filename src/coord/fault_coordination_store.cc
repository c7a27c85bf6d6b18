#include "src/coord/fault_coordination_store.h"

#include "src/util/str.h"

namespace ickpt::coord {

void FaultCoordinationStore::Arm(double probability, uint64_t seed) {
  MutexLock lock(&mu_);
  probability_ = probability;
  rng_.seed(seed);
}

uint64_t FaultCoordinationStore::failed_before() const {
  MutexLock lock(&mu_);
  return failed_before_;
}

uint64_t FaultCoordinationStore::failed_after() const {
  MutexLock lock(&mu_);
  return failed_after_;
}

FaultCoordinationStore::Fault FaultCoordinationStore::Draw(bool write) {
  MutexLock lock(&mu_);
  if (probability_ <= 0) return Fault::kNone;
  std::uniform_real_distribution<double> uniform(0, 1);
  if (uniform(rng_) >= probability_) return Fault::kNone;
  // A write's reply is lost as often as its request.
  if (write && (rng_() & 1) != 0) {
    ++failed_after_;
    return Fault::kAfter;
  }
  ++failed_before_;
  return Fault::kBefore;
}

absl::Status FaultCoordinationStore::Injected(std::string_view call, Fault fault) const {
  return absl::UnavailableError(StrCat("injected: ", call,
                                       fault == Fault::kAfter ? " applied, its reply lost"
                                                              : " did not reach the store"));
}

absl::StatusOr<int64_t> FaultCoordinationStore::Put(std::string_view key, std::string_view value,
                                                    int64_t lease) {
  const Fault fault = Draw(/*write=*/true);
  if (fault == Fault::kBefore) return Injected("put", fault);
  absl::StatusOr<int64_t> r = target_->Put(key, value, lease);
  if (fault == Fault::kAfter && r.ok()) return Injected("put", fault);
  return r;
}

absl::StatusOr<RangeResult> FaultCoordinationStore::Get(std::string_view key) {
  if (const Fault fault = Draw(false); fault != Fault::kNone) return Injected("get", fault);
  return target_->Get(key);
}

absl::StatusOr<RangeResult> FaultCoordinationStore::GetPrefix(std::string_view prefix) {
  if (const Fault fault = Draw(false); fault != Fault::kNone) return Injected("prefix read", fault);
  return target_->GetPrefix(prefix);
}

absl::StatusOr<MultiRangeResult> FaultCoordinationStore::GetRanges(
    const std::vector<KeyRange>& ranges) {
  if (const Fault fault = Draw(false); fault != Fault::kNone) return Injected("range read", fault);
  return target_->GetRanges(ranges);
}

absl::StatusOr<int64_t> FaultCoordinationStore::Delete(std::string_view key) {
  const Fault fault = Draw(/*write=*/true);
  if (fault == Fault::kBefore) return Injected("delete", fault);
  absl::StatusOr<int64_t> r = target_->Delete(key);
  if (fault == Fault::kAfter && r.ok()) return Injected("delete", fault);
  return r;
}

absl::StatusOr<TxnResult> FaultCoordinationStore::Txn(const std::vector<Compare>& compares,
                                                      const std::vector<TxnOp>& success,
                                                      const std::vector<TxnOp>& failure) {
  const Fault fault = Draw(/*write=*/true);
  if (fault == Fault::kBefore) return Injected("transaction", fault);
  absl::StatusOr<TxnResult> r = target_->Txn(compares, success, failure);
  if (fault == Fault::kAfter && r.ok()) return Injected("transaction", fault);
  return r;
}

absl::StatusOr<int64_t> FaultCoordinationStore::GrantLease(absl::Duration ttl) {
  if (const Fault fault = Draw(false); fault != Fault::kNone) return Injected("lease grant", fault);
  return target_->GrantLease(ttl);
}

absl::Status FaultCoordinationStore::KeepAlive(int64_t lease) {
  if (const Fault fault = Draw(false); fault != Fault::kNone) return Injected("keep-alive", fault);
  return target_->KeepAlive(lease);
}

absl::Status FaultCoordinationStore::RevokeLease(int64_t lease) {
  if (const Fault fault = Draw(false); fault != Fault::kNone) return Injected("revoke", fault);
  return target_->RevokeLease(lease);
}

absl::StatusOr<int64_t> FaultCoordinationStore::WaitForChangeIn(const KeyRange& range,
                                                                int64_t after_revision,
                                                                absl::Duration timeout,
                                                                const WaitCancel* cancel) {
  if (const Fault fault = Draw(false); fault != Fault::kNone) return Injected("wait", fault);
  return target_->WaitForChangeIn(range, after_revision, timeout, cancel);
}

}  // namespace ickpt::coord
