// NewMemoryStore(): an ObjectStore in a std::map, with the local store's semantics (Publish never
// replaces, listings are sorted by key, keys validated against format.md §2). Objects carry the
// time of their Put or Publish; the store leaves no debris.
//
// Thread safety: one mutex guards the map.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ickpt/store.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

class MemoryStore final : public ObjectStore {
 public:
  absl::Status Put(std::string_view key, std::string_view data) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    MutexLock lock(&mu_);
    objects_[std::string(key)] = Object{std::string(data), absl::Now()};
    return absl::OkStatus();
  }

  absl::Status Publish(std::string_view key, std::string_view data) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    MutexLock lock(&mu_);
    if (!objects_.emplace(std::string(key), Object{std::string(data), absl::Now()}).second) {
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
    const std::string& data = it->second.data;
    if (offset >= data.size()) return std::string();
    return data.substr(offset, std::min<uint64_t>(length, data.size() - offset));
  }

  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    MutexLock lock(&mu_);
    auto it = objects_.find(std::string(key));
    if (it == objects_.end()) return NotFound("size", key);
    return it->second.data.size();
  }

  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override {
    if (Contains(prefix, "..")) {
      return absl::InvalidArgumentError(
          StrCat("list ", Describe(), ": prefix \"", prefix, "\" contains \"..\""));
    }
    if (max_keys == 0) max_keys = kDefaultListPage;
    MutexLock lock(&mu_);
    // The first key that is both >= prefix and > start_after.
    auto it = objects_.lower_bound(std::string(prefix));
    if (std::string_view(start_after) >= prefix) {
      it = objects_.upper_bound(std::string(start_after));
    }
    ObjectPage page;
    for (; it != objects_.end() && it->first.starts_with(prefix); ++it) {
      if (page.objects.size() == max_keys) {
        page.truncated = true;
        break;
      }
      page.objects.push_back(ObjectInfo{it->first, it->second.data.size(), it->second.modified});
    }
    return page;
  }

  absl::Status Delete(std::string_view key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    MutexLock lock(&mu_);
    objects_.erase(std::string(key));
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> RemoveDebris(absl::Duration older_than) override {
    if (older_than < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(StrCat("remove debris in ", Describe(), ": negative age ",
                                               absl::FormatDuration(older_than)));
    }
    return 0;  // every write is one map operation: nothing is ever left half-done
  }

  bool publishes_without_overwrite() const override { return true; }

  std::string Describe() const override { return "memory:"; }

 private:
  struct Object {
    std::string data;
    absl::Time modified;
  };

  absl::Status NotFound(std::string_view op, std::string_view key) const {
    return absl::NotFoundError(StrCat(op, " ", key, " in ", Describe(), ": no such object"));
  }

  Mutex mu_;
  std::map<std::string, Object> objects_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<ObjectStore> NewMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace ickpt
