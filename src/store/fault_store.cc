#include "src/store/fault_store.h"

#include <utility>

#include "src/util/str.h"

namespace ickpt {

FaultInjectionStore::Injected FaultInjectionStore::Before(std::string_view key) {
  absl::Duration latency;
  Injected injected;
  {
    MutexLock lock(&mu_);
    latency = latency_;
    ++call_count_;
    if (fail_at_ != 0 && call_count_ == fail_at_) {
      fail_at_ = 0;
      injected.status = std::exchange(fail_status_, absl::OkStatus());
    }
    for (auto it = matching_faults_.begin(); it != matching_faults_.end();) {
      if (key.starts_with(it->prefix) && ++it->seen == it->n) {
        if (it->lose_reply) {
          injected.lose_reply = true;
        } else if (injected.status.ok()) {
          injected.status = it->status;
        }
        it = matching_faults_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (latency > absl::ZeroDuration()) absl::SleepFor(latency);
  return injected;
}

absl::Status FaultInjectionStore::LostReply(std::string_view op, std::string_view key) const {
  return absl::UnavailableError(StrCat(op, key.empty() ? "" : " ", key, " in ", Describe(),
                                       ": reply lost after the call reached the store (fault "
                                       "injection); it may or may not have taken effect"));
}

void FaultInjectionStore::AfterRead(std::string_view key, std::string* data) {
  MutexLock lock(&mu_);
  for (const Flip& flip : flips_) {
    if (key.starts_with(flip.prefix) && flip.offset < data->size()) {
      (*data)[flip.offset] = static_cast<char>((*data)[flip.offset] ^ 0x01);
    }
  }
}

absl::Status FaultInjectionStore::Put(std::string_view key, std::string_view data) {
  const Injected injected = Before(key);
  if (!injected.status.ok()) return injected.status;
  absl::Status s = ObjectStoreWrapper::Put(key, data);
  return injected.lose_reply ? LostReply("put", key) : s;
}

absl::Status FaultInjectionStore::Publish(std::string_view key, std::string_view data) {
  const Injected injected = Before(key);
  if (!injected.status.ok()) return injected.status;
  absl::Status s = ObjectStoreWrapper::Publish(key, data);
  return injected.lose_reply ? LostReply("publish", key) : s;
}

absl::StatusOr<std::string> FaultInjectionStore::Get(std::string_view key) {
  const Injected injected = Before(key);
  if (!injected.status.ok()) return injected.status;
  absl::StatusOr<std::string> data = ObjectStoreWrapper::Get(key);
  if (injected.lose_reply) return LostReply("get", key);
  if (data.ok()) AfterRead(key, &*data);
  return data;
}

absl::StatusOr<std::string> FaultInjectionStore::GetRange(std::string_view key, uint64_t offset,
                                                          uint64_t length) {
  const Injected injected = Before(key);
  if (!injected.status.ok()) return injected.status;
  absl::StatusOr<std::string> data = ObjectStoreWrapper::GetRange(key, offset, length);
  if (injected.lose_reply) return LostReply("get range of", key);
  if (data.ok()) AfterRead(key, &*data);
  return data;
}

absl::StatusOr<uint64_t> FaultInjectionStore::Size(std::string_view key) {
  const Injected injected = Before(key);
  if (!injected.status.ok()) return injected.status;
  absl::StatusOr<uint64_t> size = ObjectStoreWrapper::Size(key);
  if (injected.lose_reply) return LostReply("size of", key);
  return size;
}

absl::StatusOr<ObjectPage> FaultInjectionStore::ListPage(std::string_view prefix,
                                                         std::string_view start_after,
                                                         size_t max_keys) {
  const Injected injected = Before(prefix);
  if (!injected.status.ok()) return injected.status;
  absl::StatusOr<ObjectPage> page = ObjectStoreWrapper::ListPage(prefix, start_after, max_keys);
  if (injected.lose_reply) return LostReply("list", prefix);
  return page;
}

absl::Status FaultInjectionStore::Delete(std::string_view key) {
  const Injected injected = Before(key);
  if (!injected.status.ok()) return injected.status;
  absl::Status s = ObjectStoreWrapper::Delete(key);
  return injected.lose_reply ? LostReply("delete", key) : s;
}

absl::StatusOr<uint64_t> FaultInjectionStore::RemoveDebris(absl::Duration older_than) {
  const Injected injected = Before("");
  if (!injected.status.ok()) return injected.status;
  absl::StatusOr<uint64_t> removed = ObjectStoreWrapper::RemoveDebris(older_than);
  if (injected.lose_reply) return LostReply("remove debris", "");
  return removed;
}

bool FaultInjectionStore::publishes_without_overwrite() const {
  return ObjectStoreWrapper::publishes_without_overwrite();
}

std::string FaultInjectionStore::Describe() const {
  // The target's own name: messages and tests compare it, and the wrapper is invisible otherwise.
  return ObjectStoreWrapper::Describe();
}

void FaultInjectionStore::FailNthCall(int64_t n, absl::Status status) {
  MutexLock lock(&mu_);
  fail_at_ = call_count_ + n;
  fail_status_ = std::move(status);
}

void FaultInjectionStore::FailNthCallMatching(std::string key_prefix, int64_t n,
                                              absl::Status status) {
  MutexLock lock(&mu_);
  matching_faults_.push_back(MatchingFault{std::move(key_prefix), 0, n, std::move(status)});
}

void FaultInjectionStore::LoseReplyOfNthCallMatching(std::string key_prefix, int64_t n) {
  MutexLock lock(&mu_);
  matching_faults_.push_back(
      MatchingFault{std::move(key_prefix), 0, n, absl::OkStatus(), /*lose_reply=*/true});
}

void FaultInjectionStore::FlipByteOnRead(std::string key_prefix, uint64_t offset_in_result) {
  MutexLock lock(&mu_);
  flips_.push_back(Flip{std::move(key_prefix), offset_in_result});
}

void FaultInjectionStore::SetLatency(absl::Duration latency) {
  MutexLock lock(&mu_);
  latency_ = latency;
}

void FaultInjectionStore::ClearFaults() {
  MutexLock lock(&mu_);
  fail_at_ = 0;
  fail_status_ = absl::OkStatus();
  matching_faults_.clear();
  flips_.clear();
  latency_ = absl::ZeroDuration();
}

int64_t FaultInjectionStore::call_count() const {
  MutexLock lock(&mu_);
  return call_count_;
}

}  // namespace ickpt
