// Checks of stored objects one by one, for `ickpt verify`: every object of the repository, read in
// full and checked against its own rules (format.md §3-§7), whether or not a checkpoint reaches it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"

namespace ickpt {

// Every object in the repository, sorted by key, with its size and modification time.
absl::StatusOr<std::vector<ObjectInfo>> ListRepositoryObjects(const RepositoryReader& repo);

// Reads object `key` in full and checks it: a pack's frames, index and name (§4), a manifest's
// trailer and name (§5), a commit record (§6) and that it holds its own id, an id reservation is
// empty (§7), an acknowledgement decodes (§11), the config (§3), a retention policy, a pin, a
// condemnation and the maintenance lock (§13), a consolidation record (§14), an epoch record
// (§15). OK for keys of reserved prefixes
// and unknown keys (a reader of this version ignores them). DataLoss or NotFound naming the object
// if it is damaged or missing; other errors for I/O.
absl::Status CheckStoredObject(const RepositoryReader& repo, const std::string& key);

// Whether CheckStoredObject checks `key`: an object of a kind this version defines (packs,
// manifests, commit records, id reservations, acknowledgements, the config, policies, pins,
// condemnations, maintenance locks, consolidation records, epoch records).
bool IsCheckedObjectKey(std::string_view key);

// Reads pack `key`'s index (§4): DataLoss or NotFound if it is damaged or missing.
absl::Status CheckPackIndex(const RepositoryReader& repo, const std::string& key);

}  // namespace ickpt
