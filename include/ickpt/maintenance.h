// Retention and garbage collection (docs/format.md §13): policies, pins, and the collector that
// deletes what no kept checkpoint, pin or checkpoint in flight can reach; consolidation (§14),
// which replaces a checkpoint's chain by a complete manifest set. Writers never wait for either.
#pragma once

#include <cstdint>
#include <map>
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
// NotFound if `id` is not committed, FailedPrecondition if it is condemned (format.md §13.2) or
// fenced (§15.3), AlreadyExists if the name pins something already.
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
  // Commits fenced by a coordinator epoch (format.md §15.3): not part of the history, never kept;
  // condemned and removed as any checkpoint that is not kept.
  std::vector<uint64_t> fenced_checkpoints;
  // Deleted objects by kind.
  uint64_t deleted_commits = 0;
  uint64_t deleted_manifests = 0;
  uint64_t deleted_packs = 0;
  uint64_t deleted_acks = 0;
  uint64_t deleted_reservations = 0;
  uint64_t deleted_condemnations = 0;
  uint64_t deleted_probes = 0;  // store-clock probes left by collectors that crashed
  // Consolidation records not in force, or of removed checkpoints (format.md §14.4).
  uint64_t deleted_consolidations = 0;
  uint64_t removed_debris = 0;  // store leftovers (RemoveDebris), not counted in deleted_*
  std::vector<std::string> dangling_pins;     // pins of checkpoints that do not exist
  std::optional<uint64_t> policy_generation;  // the policy applied; nullopt: none, keep all
};

// One garbage collection (format.md §13.4) under the maintenance lock: Aborted if another
// process holds it or took it over meanwhile. DataLoss, before anything is deleted, if a commit
// record, a chain, a pin or the policy is damaged. A run killed at any point is safe; the next one
// finishes its work.
absl::StatusOr<GcReport> CollectGarbage(Repository& repo, const GcOptions& options = {});

struct ConsolidateOptions {
  // A pack of which the checkpoint uses less than this fraction of the raw bytes is mostly dead or
  // scattered: the checkpoint's blocks in it are copied into new packs (format.md §14.3). 0: never
  // copy; 1: copy out of every pack the checkpoint does not use whole. Default 0.5.
  double min_pack_use = 0.5;
  // Before publishing, read the checkpoint through the new manifests and through the resolution
  // they replace, and refuse (Internal) unless every block and entry is identical. Reads the
  // checkpoint twice. Default off.
  bool verify = false;
  // The maintenance lock's ttl (format.md §13.5), as GcOptions::lock_ttl.
  absl::Duration lock_ttl = absl::Minutes(5);
  // Blocks copied per batch (bounded memory): about this many bytes. Default 64 MiB.
  uint64_t batch_bytes = 64 << 20;
};

struct ConsolidationReport {
  uint64_t id = 0;
  // The generation published (merges/<id>/<generation>); 0 if nothing needed doing (the
  // checkpoint's manifests in force are already full and use no pack below min_pack_use).
  uint64_t generation = 0;
  uint64_t links_before = 0;      // manifests a restore read before, over every state object
  uint64_t links_after = 0;       // and after (one per state object)
  uint64_t packs_before = 0;      // distinct packs a restore read before
  uint64_t packs_after = 0;       // and after
  uint64_t repacked_bytes = 0;    // raw bytes of blocks copied into new packs
  uint64_t stored_bytes = 0;      // bytes newly written: packs and manifests
  uint64_t reused_manifests = 0;  // state objects whose manifest in force was referenced as is
  bool verified = false;          // ConsolidateOptions::verify compared both readings
};

// Consolidates committed checkpoint `id` (format.md §14.3) under the maintenance lock: a full
// manifest per state object that reuses the packs where blocks lie, blocks of little-used packs
// copied into new ones, published as the next generation of merges/<id>/. Errors: NotFound if `id`
// is not committed; FailedPrecondition if it is condemned or fenced (format.md §15.3; before or
// during the run); Aborted if the lock is held or another consolidation of `id` published first;
// DeadlineExceeded if it took longer than the policy's checkpoint timeout (nothing is published);
// DataLoss if the checkpoint is damaged; Internal if verify found a difference. What a failed run
// wrote is left to GC.
absl::StatusOr<ConsolidationReport> Consolidate(Repository& repo, uint64_t id,
                                                const ConsolidateOptions& options = {});

// The consolidation generation in force for each consolidated checkpoint (format.md §14.1).
absl::StatusOr<std::map<uint64_t, uint64_t>> ListConsolidations(const RepositoryReader& repo);

}  // namespace ickpt
