// NewMemoryStore(): an ObjectStore in a std::map, with the local store's semantics (Publish never
// replaces, List is sorted by key, keys validated against format.md §2).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "src/util/mutex.h"
#include "ickpt/store.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

class MemoryStore final : public ObjectStore {
 public:
  absl::Status Put(std::string_view key, std::string_view data) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    MutexLock lock(&mu_);
    objects_[std::string(key)] = std::string(data);
    return absl::OkStatus();
  }

  absl::Status Publish(std::string_view key, std::string_view data) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    MutexLock lock(&mu_);
    if (!objects_.emplace(std::string(key), std::string(data)).second) {
      return absl::AlreadyExistsError(
          StrCat("publish ", key, " in ", Describe(), ": object already exists"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Get(std::string_view key) override {
    return GetRange(key, 0, ~uint64_t{0});
  }

  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    MutexLock lock(&mu_);
    auto it = objects_.find(std::string(key));
    if (it == objects_.end()) return NotFound("get", key);
    const std::string& data = it->second;
    if (offset >= data.size()) return std::string();
    return data.substr(offset, std::min<uint64_t>(length, data.size() - offset));
  }

  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    MutexLock lock(&mu_);
    auto it = objects_.find(std::string(key));
    if (it == objects_.end()) return NotFound("size", key);
    return it->second.size();
  }

  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override {
    if (Contains(prefix, "..")) {
      return absl::InvalidArgumentError(
          StrCat("list ", Describe(), ": prefix \"", prefix, "\" contains \"..\""));
    }
    MutexLock lock(&mu_);
    std::vector<ObjectInfo> out;
    for (auto it = objects_.lower_bound(std::string(prefix));
         it != objects_.end() && it->first.starts_with(prefix); ++it) {
      out.push_back(ObjectInfo{it->first, it->second.size()});
    }
    return out;
  }

  absl::Status Delete(std::string_view key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    MutexLock lock(&mu_);
    objects_.erase(std::string(key));
    return absl::OkStatus();
  }

  std::string Describe() const override { return "memory:"; }

 private:
  absl::Status NotFound(std::string_view op, std::string_view key) const {
    return absl::NotFoundError(StrCat(op, " ", key, " in ", Describe(), ": no such object"));
  }

  Mutex mu_;
  std::map<std::string, std::string> objects_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<ObjectStore> NewMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace ickpt
