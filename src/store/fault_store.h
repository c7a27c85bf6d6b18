// FaultInjectionStore: an ObjectStore wrapper for tests that fails chosen calls, corrupts data on
// read and adds latency.
//
// Every call except Describe() counts as one call. FailNthCall(n, status) makes the nth call from
// now (1-based) return `status` without reaching the target; FailNthCallMatching does the same
// counting only calls whose key (or List prefix) starts with `key_prefix`. Each such fault fires
// once. FlipByteOnRead stays in force until ClearFaults: it flips the lowest bit of byte
// `offset_in_result` of what Get/GetRange return for keys starting with `key_prefix` (if the
// result is that long), so a test can check that a reader notices corrupted data.
//
// Thread safety: all methods may be called concurrently. Latency is slept without holding a lock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "src/util/mutex.h"
#include "absl/time/time.h"
#include "ickpt/store.h"

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
  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  absl::Status Delete(std::string_view key) override;
  std::string Describe() const override;

  void FailNthCall(int64_t n, absl::Status status);
  void FailNthCallMatching(std::string key_prefix, int64_t n, absl::Status status);
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
    absl::Status status;
  };
  struct Flip {
    std::string prefix;
    uint64_t offset = 0;
  };

  // Counts a call on `key` and returns an injected failure if one fires.
  absl::Status Before(std::string_view key);
  void AfterRead(std::string_view key, std::string* data);

  mutable Mutex mu_;
  int64_t call_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fail_at_ ABSL_GUARDED_BY(mu_) = 0;  // 0 = none
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
  std::vector<MatchingFault> matching_faults_ ABSL_GUARDED_BY(mu_);
  std::vector<Flip> flips_ ABSL_GUARDED_BY(mu_);
  absl::Duration latency_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

}  // namespace ickpt
