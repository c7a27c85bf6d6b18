// A coordination store that fails chosen calls, for the protocol's fault tests (docs/testing.md):
// it wraps another store and, while armed, fails each call with a given probability with
// Unavailable, as a store that does not answer does. A read fails before it reaches the store. A
// write (Put, Delete, Txn) fails either before it reaches the store (the request was lost) or after
// the store applied it (the reply was lost): the ambiguous failure that coordination_store.h tells
// every caller to survive by reading again. Lease calls and waits fail before they reach the
// store. Test-only: compiled into the tests, not the library.
//
// Thread safety: safe for concurrent use, as the wrapped store is.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "src/coord/coordination_store.h"
#include "src/util/mutex.h"

namespace ickpt::coord {

class FaultCoordinationStore final : public CoordinationStore {
 public:
  explicit FaultCoordinationStore(std::shared_ptr<CoordinationStore> target)
      : target_(std::move(target)) {}

  // From now on each call fails with `probability` (0 disarms), the choices drawn from `seed`.
  void Arm(double probability, uint64_t seed);
  // Failures injected so far: before the call reached the store, and after a write was applied.
  uint64_t failed_before() const;
  uint64_t failed_after() const;

  std::string Describe() const override { return "faulty " + target_->Describe(); }
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              int64_t lease) override;
  absl::StatusOr<RangeResult> Get(std::string_view key) override;
  absl::StatusOr<RangeResult> GetPrefix(std::string_view prefix) override;
  absl::StatusOr<MultiRangeResult> GetRanges(const std::vector<KeyRange>& ranges) override;
  absl::StatusOr<int64_t> Delete(std::string_view key) override;
  absl::StatusOr<TxnResult> Txn(const std::vector<Compare>& compares,
                                const std::vector<TxnOp>& success,
                                const std::vector<TxnOp>& failure) override;
  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl) override;
  absl::Status KeepAlive(int64_t lease) override;
  absl::Status RevokeLease(int64_t lease) override;
  absl::StatusOr<int64_t> WaitForChangeIn(const KeyRange& range, int64_t after_revision,
                                          absl::Duration timeout,
                                          const WaitCancel* cancel) override;

 private:
  enum class Fault { kNone, kBefore, kAfter };
  // Draws the fate of one call; `write`: a write, which may also fail after it was applied.
  Fault Draw(bool write);
  absl::Status Injected(std::string_view call, Fault fault) const;
  // Runs `call`, a read or lease call or wait, unless the drawn fault stops it.
  template <typename Call>
  auto Read(std::string_view name, Call call) -> decltype(call()) {
    if (const Fault fault = Draw(/*write=*/false); fault != Fault::kNone) {
      return Injected(name, fault);
    }
    return call();
  }
  // Runs `call`, a write, under the drawn fault: not at all, or with its reply lost.
  template <typename Call>
  auto Write(std::string_view name, Call call) -> decltype(call()) {
    const Fault fault = Draw(/*write=*/true);
    if (fault == Fault::kBefore) return Injected(name, fault);
    auto result = call();
    if (fault == Fault::kAfter && result.ok()) return Injected(name, fault);
    return result;
  }

  std::shared_ptr<CoordinationStore> target_;
  mutable Mutex mu_;
  double probability_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  uint64_t failed_before_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_after_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ickpt::coord
