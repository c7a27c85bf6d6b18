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
  return Write("put", [&] { return target_->Put(key, value, lease); });
}

absl::StatusOr<RangeResult> FaultCoordinationStore::Get(std::string_view key) {
  return Read("get", [&] { return target_->Get(key); });
}

absl::StatusOr<RangeResult> FaultCoordinationStore::GetPrefix(std::string_view prefix) {
  return Read("prefix read", [&] { return target_->GetPrefix(prefix); });
}

absl::StatusOr<MultiRangeResult> FaultCoordinationStore::GetRanges(
    const std::vector<KeyRange>& ranges) {
  return Read("range read", [&] { return target_->GetRanges(ranges); });
}

absl::StatusOr<int64_t> FaultCoordinationStore::Delete(std::string_view key) {
  return Write("delete", [&] { return target_->Delete(key); });
}

absl::StatusOr<TxnResult> FaultCoordinationStore::Txn(const std::vector<Compare>& compares,
                                                      const std::vector<TxnOp>& success,
                                                      const std::vector<TxnOp>& failure) {
  return Write("transaction", [&] { return target_->Txn(compares, success, failure); });
}

absl::StatusOr<int64_t> FaultCoordinationStore::GrantLease(absl::Duration ttl) {
  return Read("lease grant", [&] { return target_->GrantLease(ttl); });
}

absl::Status FaultCoordinationStore::KeepAlive(int64_t lease) {
  return Read("keep-alive", [&] { return target_->KeepAlive(lease); });
}

absl::Status FaultCoordinationStore::RevokeLease(int64_t lease) {
  return Read("revoke", [&] { return target_->RevokeLease(lease); });
}

absl::StatusOr<int64_t> FaultCoordinationStore::WaitForChangeIn(const KeyRange& range,
                                                                int64_t after_revision,
                                                                absl::Duration timeout,
                                                                const WaitCancel* cancel) {
  return Read("wait",
              [&] { return target_->WaitForChangeIn(range, after_revision, timeout, cancel); });
}

}  // namespace ickpt::coord
