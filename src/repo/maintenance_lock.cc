#include "src/repo/maintenance_lock.h"

#include <unistd.h>

#include <optional>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "src/repo/keys.h"
#include "src/util/hash.h"
#include "src/util/log.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

struct LockObject {
  uint64_t generation = 0;
  ObjectInfo info;
};

// Every locks/maintenance-<generation> object, ascending.
absl::StatusOr<std::vector<LockObject>> ListLocks(ObjectStore& store) {
  absl::StatusOr<std::vector<ObjectInfo>> objects = store.List(kMaintenanceLockPrefix);
  if (!objects.ok()) return objects.status();
  std::vector<LockObject> locks;
  for (ObjectInfo& info : *objects) {
    if (std::optional<uint64_t> g = ParseIdKey(info.key, kMaintenanceLockPrefix)) {
      locks.push_back(LockObject{*g, std::move(info)});
    }
  }
  return locks;  // keys of 20 digits list in generation order
}

}  // namespace

absl::StatusOr<absl::Time> StoreModificationTime(ObjectStore& store, std::string_view key) {
  absl::StatusOr<ObjectPage> page = store.ListPage(key, "", 1);
  if (!page.ok()) return page.status();
  if (page->objects.empty() || page->objects[0].key != key) {
    return absl::NotFoundError(StrCat(key, " not found in ", store.Describe()));
  }
  return page->objects[0].modified;
}

MaintenanceLockHolder::MaintenanceLockHolder(ObjectStore& store, std::string key,
                                             uint64_t generation, MaintenanceLock lock,
                                             absl::Time store_now)
    : store_(store),
      key_(std::move(key)),
      generation_(generation),
      lock_(std::move(lock)),
      store_now_(store_now),
      renewed_local_(absl::Now()) {}

MaintenanceLockHolder::~MaintenanceLockHolder() {
  if (!released_) {
    if (absl::Status s = Release(); !s.ok()) {
      ICKPT_LOG_WARN("{}: releasing maintenance lock {}: {} (it expires by itself)",
                     store_.Describe(), key_, s.ToString());
    }
  }
}

absl::StatusOr<std::unique_ptr<MaintenanceLockHolder>> MaintenanceLockHolder::Acquire(
    ObjectStore& store, std::string operation, absl::Duration ttl) {
  MaintenanceLock lock;
  lock.holder = RandomHex128();
  lock.host = HostName();
  lock.pid = getpid();
  lock.operation = std::move(operation);
  lock.ttl = absl::Seconds(std::max<int64_t>(1, absl::ToInt64Seconds(ttl)));
  lock.created = absl::FromUnixNanos(absl::ToUnixNanos(absl::Now()));

  // The store's clock now: the modification time of a probe we write (§13.5).
  const std::string probe = StrCat(kProbePrefix, lock.holder);
  if (absl::Status s = store.Put(probe, lock.holder); !s.ok()) return s;
  absl::StatusOr<absl::Time> now = StoreModificationTime(store, probe);
  (void)store.Delete(probe);  // a leftover probe is harmless; the next GC removes old ones
  if (!now.ok()) return now.status();

  absl::StatusOr<std::vector<LockObject>> locks = ListLocks(store);
  if (!locks.ok()) return locks.status();
  uint64_t generation = 1;
  if (!locks->empty()) {
    const LockObject& top = locks->back();
    generation = top.generation + 1;
    absl::StatusOr<std::string> bytes = store.Get(top.info.key);
    absl::Duration top_ttl = lock.ttl;  // a damaged or vanished lock counts with our ttl
    std::string who = "an unreadable holder";
    if (bytes.ok()) {
      absl::StatusOr<MaintenanceLock> held = DecodeMaintenanceLock(*bytes, top.info.key);
      if (held.ok()) {
        top_ttl = held->ttl;
        who = StrCat("holder ", held->holder, " (", held->operation, ", host ", held->host,
                     ", pid ", held->pid, ")");
      } else {
        ICKPT_LOG_WARN("{}: {}", store.Describe(), held.status().ToString());
      }
    }
    if (*now < top.info.modified + top_ttl) {
      return absl::AbortedError(
          StrCat(store.Describe(), ": the maintenance lock ", top.info.key, " is held by ", who,
                 "; renewed ", absl::FormatDuration(*now - top.info.modified),
                 " ago, it expires after ", absl::FormatDuration(top_ttl), " without renewal"));
    }
  }
  const std::string key = MaintenanceLockKey(generation);
  absl::Status s = PublishUnique(store, key, EncodeMaintenanceLock(lock));
  if (absl::IsAlreadyExists(s)) {
    return absl::AbortedError(
        StrCat(store.Describe(), ": another process took the maintenance lock (", key, ")"));
  }
  if (!s.ok()) return s;
  // Older generations belong to holders that released or expired.
  for (const LockObject& old : *locks) (void)store.Delete(old.info.key);
  absl::StatusOr<absl::Time> held_since = StoreModificationTime(store, key);
  if (!held_since.ok()) return held_since.status();
  return std::unique_ptr<MaintenanceLockHolder>(
      new MaintenanceLockHolder(store, key, generation, std::move(lock), *held_since));
}

absl::Status MaintenanceLockHolder::RenewIfDue() {
  if (absl::Now() - renewed_local_ < lock_.ttl / 3) return absl::OkStatus();
  return Renew();
}

absl::Status MaintenanceLockHolder::Renew() {
  absl::StatusOr<std::vector<LockObject>> locks = ListLocks(store_);
  if (!locks.ok()) return locks.status();
  if (locks->empty() || locks->back().generation != generation_) {
    return absl::AbortedError(StrCat(store_.Describe(), ": the maintenance lock ", key_,
                                     " was taken over by another process (it presumed this one "
                                     "dead after its ttl of ",
                                     absl::FormatDuration(lock_.ttl), ")"));
  }
  ++lock_.renewals;
  // The holder alone writes its lock, so put (replace) is safe here (format.md §8.5).
  if (absl::Status s = store_.Put(key_, EncodeMaintenanceLock(lock_)); !s.ok()) return s;
  renewed_local_ = absl::Now();
  absl::StatusOr<absl::Time> now = StoreModificationTime(store_, key_);
  if (!now.ok()) return now.status();
  store_now_ = *now;
  return absl::OkStatus();
}

absl::Status MaintenanceLockHolder::Release() {
  released_ = true;
  return store_.Delete(key_);
}

}  // namespace ickpt
