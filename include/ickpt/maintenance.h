// Retention and garbage collection (docs/format.md §13): policies, pins, and the collector that
// deletes what no kept checkpoint, pin or checkpoint in flight can reach. Writers never wait for
// it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ickpt/repository.h"

namespace ickpt {

// The policy in force (the highest generation), or nullopt if the repository has none (it keeps
// every committed checkpoint). DataLoss naming the object if it is damaged.
absl::StatusOr<std::optional<RetentionPolicy>> ReadRetentionPolicy(const RepositoryReader& repo);

// Stores `policy` as the next generation and returns it with generation and created filled in.
// InvalidArgument if it has neither rule, keep_last 0, or durations that are not whole seconds
// >= 1 s.
absl::StatusOr<RetentionPolicy> SetRetentionPolicy(Repository& repo, const RetentionPolicy& policy);

struct Pin {
  std::string name;
  uint64_t id = 0;
  absl::Time created;
};

// A pin name (format.md §13.2): 1 to 128 characters of lowercase letters, digits, '.', '_' and
// '-', starting with a letter or digit, and neither "." nor "..". InvalidArgument saying so if not.
absl::Status ValidatePinName(std::string_view name);

// Pins committed checkpoint `id` under `name` (ValidatePinName): InvalidArgument for a bad name,
// NotFound if `id` is not committed, FailedPrecondition if it is condemned (format.md §13.2),
// AlreadyExists if the name pins something already.
absl::Status PinCheckpoint(Repository& repo, uint64_t id, std::string_view name);
// Removes pin `name`: NotFound if there is none.
absl::Status UnpinCheckpoint(Repository& repo, std::string_view name);
// Every pin, by name. DataLoss naming a damaged pin.
absl::StatusOr<std::vector<Pin>> ListPins(const RepositoryReader& repo);
// The condemned checkpoints (format.md §13.3), ascending: still readable, removed by a later GC
// unless something kept comes to need them.
absl::StatusOr<std::vector<uint64_t>> ListCondemned(const RepositoryReader& repo);

struct GcOptions {
  // How long an unreferenced object, and a condemnation, must have existed before GC deletes
  // (format.md §13.4). Must exceed the policy's checkpoint_timeout: InvalidArgument otherwise.
  absl::Duration grace = absl::Hours(1);
  // Decide and report, delete nothing (the maintenance lock and the probe are still written).
  bool dry_run = false;
  // The maintenance lock's ttl (format.md §13.5): another GC may take over a lock not renewed
  // for this long. Renewed every ttl / 3 while GC runs. Whole seconds, >= 1 s (InvalidArgument).
  absl::Duration lock_ttl = absl::Minutes(5);
};

struct GcReport {
  bool dry_run = false;
  // Every object deleted (or, in a dry run, that would be), and their bytes.
  uint64_t deleted_objects = 0;
  uint64_t deleted_bytes = 0;
  std::vector<uint64_t> kept_checkpoints;       // kept by the policy, a pin or as the latest
  std::vector<uint64_t> needed_checkpoints;     // not kept, but a kept one's chain needs them
  std::vector<uint64_t> condemned_checkpoints;  // condemned by this run
  std::vector<uint64_t> pardoned_checkpoints;   // condemned before, needed again
  std::vector<uint64_t> removed_checkpoints;    // commit records deleted by this run
  // Deleted objects by kind.
  uint64_t deleted_commits = 0;
  uint64_t deleted_manifests = 0;
  uint64_t deleted_packs = 0;
  uint64_t deleted_acks = 0;
  uint64_t deleted_reservations = 0;
  uint64_t deleted_condemnations = 0;
  uint64_t deleted_probes = 0;  // store-clock probes left by collectors that crashed
  uint64_t removed_debris = 0;  // store leftovers (RemoveDebris), not counted in deleted_*
  std::vector<std::string> dangling_pins;     // pins of checkpoints that do not exist
  std::optional<uint64_t> policy_generation;  // the policy applied; nullopt: none, keep all
};

// One garbage collection (format.md §13.4) under the maintenance lock: Aborted if another
// process holds it or took it over meanwhile. DataLoss, before anything is deleted, if a commit
// record, a chain, a pin or the policy is damaged. A run killed at any point is safe; the next one
// finishes its work.
absl::StatusOr<GcReport> CollectGarbage(Repository& repo, const GcOptions& options = {});

}  // namespace ickpt
