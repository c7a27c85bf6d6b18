// FaultInjectionStore: an ObjectStore wrapper for tests that fails chosen calls, loses replies,
// corrupts data on read and adds latency.
//
// Every call except Describe() and publishes_without_overwrite() counts as one call: each ListPage
// (so a List counts once per page) and each RemoveDebris too. FailNthCall(n, status) makes the nth
// call from now (1-based) return `status` without reaching the target; FailNthCallMatching does the
// same counting only calls whose key (the prefix, for ListPage; "" for RemoveDebris) starts with
// `key_prefix`. LoseReplyOfNthCallMatching counts the same way, but the call does reach the target
// (a write lands) and then returns Unavailable whatever the target answered: the ambiguous failure
// of format.md §12, "write landed, reply lost". Each such fault fires once. FlipByteOnRead stays in
// force until ClearFaults: it flips the lowest bit of byte `offset_in_result` of what Get/GetRange
// return for keys starting with `key_prefix` (if the result is that long), so a test can check that
// a reader notices corrupted data.
//
// Thread safety: all methods may be called concurrently. Latency is slept without holding a lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "ickpt/store.h"
#include "src/util/mutex.h"

namespace ickpt {

class FaultInjectionStore : public ObjectStoreWrapper {
 public:
  // `target` is not owned and must outlive this wrapper.
  explicit FaultInjectionStore(ObjectStore* target) : ObjectStoreWrapper(target) {}

  absl::Status Put(std::string_view key, std::string_view data) override;
  absl::Status Publish(std::string_view key, std::string_view data) override;
  absl::StatusOr<std::string> Get(std::string_view key) override;
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override;
  absl::StatusOr<uint64_t> Size(std::string_view key) override;
  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override;
  absl::Status Delete(std::string_view key) override;
  absl::StatusOr<uint64_t> RemoveDebris(absl::Duration older_than) override;
  bool publishes_without_overwrite() const override;
  std::string Describe() const override;

  void FailNthCall(int64_t n, absl::Status status);
  void FailNthCallMatching(std::string key_prefix, int64_t n, absl::Status status);
  // The nth call from now whose key starts with `key_prefix` reaches the target and then returns
  // Unavailable ("... reply lost ...", naming the key) instead of the target's answer.
  void LoseReplyOfNthCallMatching(std::string key_prefix, int64_t n);
  void FlipByteOnRead(std::string key_prefix, uint64_t offset_in_result);
  // Sleeps this long at the start of every call. Default: none.
  void SetLatency(absl::Duration latency);
  // Cancels every fault and the latency; counters keep counting.
  void ClearFaults();

  // Calls made so far, including failed ones.
  int64_t call_count() const;

 private:
  struct MatchingFault {
    std::string prefix;
    int64_t seen = 0;  // matching calls since the fault was set
    int64_t n = 0;
    absl::Status status;      // returned without reaching the target, unless `lose_reply`
    bool lose_reply = false;  // reach the target, then answer Unavailable
  };
  // What Before decided for one call.
  struct Injected {
    absl::Status status;      // not OK: return it without calling the target
    bool lose_reply = false;  // call the target, then return LostReply()
  };
  struct Flip {
    std::string prefix;
    uint64_t offset = 0;
  };

  // Counts a call on `key` and returns the injected failure if one fires.
  Injected Before(std::string_view key);
  // The answer of a call whose reply was lost.
  absl::Status LostReply(std::string_view op, std::string_view key) const;
  void AfterRead(std::string_view key, std::string* data);

  mutable Mutex mu_;
  int64_t call_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fail_at_ ABSL_GUARDED_BY(mu_) = 0;  // 0 = none
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
  std::vector<MatchingFault> matching_faults_ ABSL_GUARDED_BY(mu_);
  std::vector<Flip> flips_ ABSL_GUARDED_BY(mu_);
  absl::Duration latency_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

// A fault-injecting store that owns what it wraps, so that a Repository can own it (tests that
// inject faults under one repository handle).
class OwningFaultInjectionStore : public FaultInjectionStore {
 public:
  explicit OwningFaultInjectionStore(std::unique_ptr<ObjectStore> target)
      : FaultInjectionStore(target.get()), owned_(std::move(target)) {}

 private:
  std::unique_ptr<ObjectStore> owned_;
};

}  // namespace ickpt
