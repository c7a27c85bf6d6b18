// Retention policies, pins and condemnations (format.md §13.1–§13.3).
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "src/repo/commit_record.h"
#include "src/repo/fencing.h"
#include "src/repo/keys.h"
#include "src/repo/repository_internal.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

absl::Time NowRounded() { return absl::FromUnixNanos(absl::ToUnixNanos(absl::Now())); }

// The highest generation under policy/, or nullopt. Keys that are not generations are not ours.
absl::StatusOr<std::optional<uint64_t>> HighestPolicyGeneration(ObjectStore& store) {
  absl::StatusOr<std::vector<ObjectInfo>> objects = store.List(kPolicyPrefix);
  if (!objects.ok()) return objects.status();
  std::optional<uint64_t> highest;
  for (const ObjectInfo& info : *objects) {
    if (std::optional<uint64_t> g = ParseIdKey(info.key, kPolicyPrefix)) {
      highest = std::max(highest.value_or(0), *g);
    }
  }
  return highest;
}

}  // namespace

absl::Status ValidatePinName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.find('/') != std::string_view::npos ||
      !ValidateObjectKey(name).ok()) {
    return absl::InvalidArgumentError(StrCat("pin name '", name.substr(0, 80),
                                             "' is not valid: use 1 to 128 lowercase letters, "
                                             "digits, '.', '_' and '-', starting with a letter "
                                             "or digit"));
  }
  return absl::OkStatus();
}

RetentionPolicy DefaultRetentionPolicy() {
  RetentionPolicy p;
  p.keep_last = 3;
  return p;
}

absl::StatusOr<std::optional<RetentionPolicy>> ReadRetentionPolicy(const RepositoryReader& repo) {
  ObjectStore& store = *RepositoryInternal::store(repo);
  absl::StatusOr<std::optional<uint64_t>> generation = HighestPolicyGeneration(store);
  if (!generation.ok()) return generation.status();
  if (!generation->has_value()) return std::optional<RetentionPolicy>();
  const std::string key = PolicyKey(**generation);
  absl::StatusOr<std::string> bytes = store.Get(key);
  if (!bytes.ok()) {
    // Listed a moment ago: policies are never deleted, so a missing one is damage.
    if (absl::IsNotFound(bytes.status())) {
      return absl::DataLossError(StrCat("retention policy ", key, " was listed but is missing"));
    }
    return bytes.status();
  }
  absl::StatusOr<RetentionPolicy> policy = DecodePolicy(*bytes, key, **generation);
  if (!policy.ok()) return policy.status();
  return std::optional<RetentionPolicy>(*std::move(policy));
}

absl::StatusOr<RetentionPolicy> SetRetentionPolicy(Repository& repo,
                                                   const RetentionPolicy& policy) {
  if (absl::Status s = ValidateRetentionPolicy(policy); !s.ok()) return s;
  ObjectStore& store = *RepositoryInternal::store(repo);
  absl::StatusOr<std::optional<uint64_t>> highest = HighestPolicyGeneration(store);
  if (!highest.ok()) return highest.status();
  RetentionPolicy stored = policy;
  stored.created = NowRounded();
  // Two setters at once: publish never overwrites, so the later one takes the next generation.
  // The policy's bytes are unique enough (creation time to the nanosecond) for PublishUnique's
  // read-back after an ambiguous failure.
  for (uint64_t generation = highest->value_or(0) + 1, attempts = 0; attempts < 100;
       ++generation, ++attempts) {
    stored.generation = generation;
    absl::Status s = PublishUnique(store, PolicyKey(generation), EncodePolicy(stored));
    if (s.ok()) return stored;
    if (!absl::IsAlreadyExists(s)) {
      return absl::Status(
          s.code(), StrCat("storing retention policy generation ", generation, ": ", s.message()));
    }
  }
  return absl::AbortedError("storing a retention policy: 100 generations taken by other writers");
}

absl::Status PinCheckpoint(Repository& repo, uint64_t id, std::string_view name) {
  if (absl::Status s = ValidatePinName(name); !s.ok()) return s;
  ObjectStore& store = *RepositoryInternal::store(repo);
  // §13.2: the checkpoint must be committed and not condemned, checked immediately before the
  // publish (a GC that condemns it meanwhile sees the pin before it can remove it, §13.4).
  absl::StatusOr<uint64_t> size = store.Size(CommitKey(id));
  if (absl::IsNotFound(size.status())) {
    return absl::NotFoundError(StrCat("checkpoint ", id, " not found: cannot pin it"));
  }
  if (!size.ok()) return size.status();
  size = store.Size(CondemnedKey(id));
  if (size.ok()) {
    return absl::FailedPreconditionError(
        StrCat("checkpoint ", id,
               " is condemned by retention and will be removed; it can no longer be pinned "
               "(a policy that keeps it pardons it at the next gc)"));
  }
  if (!absl::IsNotFound(size.status())) return size.status();
  // §13.1, §15.3: a fenced checkpoint is not part of the history; a pin of it would keep nothing.
  absl::StatusOr<Fencing> fencing = ReadFencing(repo);
  if (!fencing.ok()) return fencing.status();
  if (fencing->MayFence(id)) {
    absl::StatusOr<std::optional<uint64_t>> epoch = ReadCommitEpoch(repo, id);
    if (absl::IsNotFound(epoch.status())) {
      return absl::NotFoundError(StrCat("checkpoint ", id, " not found: cannot pin it"));
    }
    if (!epoch.ok()) return epoch.status();
    if (epoch->has_value()) {
      if (std::optional<uint64_t> by = fencing->FencedBy(id, **epoch)) {
        return FencedCheckpointError(id, *by, "pinned");
      }
    }
  }
  Pin pin{std::string(name), id, NowRounded()};
  absl::Status s = PublishUnique(store, PinKey(name), EncodePin(pin));
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(
        StrCat("pin '", name, "' exists already: unpin it first to move it"));
  }
  return s;
}

absl::Status UnpinCheckpoint(Repository& repo, std::string_view name) {
  if (absl::Status s = ValidatePinName(name); !s.ok()) return s;
  ObjectStore& store = *RepositoryInternal::store(repo);
  const std::string key = PinKey(name);
  absl::StatusOr<uint64_t> size = store.Size(key);
  if (absl::IsNotFound(size.status())) {
    return absl::NotFoundError(StrCat("no pin named '", name, "'"));
  }
  if (!size.ok()) return size.status();
  return store.Delete(key);
}

absl::StatusOr<std::vector<Pin>> ListPins(const RepositoryReader& repo) {
  ObjectStore& store = *RepositoryInternal::store(repo);
  absl::StatusOr<std::vector<ObjectInfo>> objects = store.List(kPinsPrefix);
  if (!objects.ok()) return objects.status();
  std::vector<Pin> pins;
  for (const ObjectInfo& info : *objects) {
    const std::string_view name = std::string_view(info.key).substr(kPinsPrefix.size());
    if (!ValidatePinName(name).ok()) continue;  // not a pin this format writes
    absl::StatusOr<std::string> bytes = store.Get(info.key);
    if (absl::IsNotFound(bytes.status())) continue;  // unpinned since the listing
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<Pin> pin = DecodePin(*bytes, info.key, name);
    if (!pin.ok()) return pin.status();
    pins.push_back(*std::move(pin));
  }
  return pins;
}

absl::StatusOr<std::vector<uint64_t>> ListCondemned(const RepositoryReader& repo) {
  ObjectStore& store = *RepositoryInternal::store(repo);
  absl::StatusOr<std::vector<ObjectInfo>> objects = store.List(kCondemnedPrefix);
  if (!objects.ok()) return objects.status();
  std::vector<uint64_t> ids;
  for (const ObjectInfo& info : *objects) {
    if (std::optional<uint64_t> id = ParseIdKey(info.key, kCondemnedPrefix)) ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace ickpt
