// The chain walk (format.md §9): from one state object of one participant in a checkpoint down to
// the full manifest its increments build on, newest first. The only walk over manifest chains in
// ickpt: region reads (region_reader.h), keyed reads (keyed_reader.h), the writer's merge of keyed
// state with its base (writer.h) and reachability (reachability.h) all use it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ickpt/repository.h"
#include "src/repo/commit_record.h"
#include "src/repo/manifest.h"

namespace ickpt {

// An object a checkpoint needs that is not in the store is damage: NotFound becomes DataLoss
// saying `what` is missing, marked as a missing object for RemovedOrDamaged; other failures keep
// their code and get `what` named in their message (DataLoss as it is).
absl::Status MissingAsDataLoss(const absl::Status& status, std::string_view what);
// `status` with `message` in place of its message, its code and marks kept.
absl::Status WithMessage(const absl::Status& status, std::string_view message);

// format.md §13.4: a missing object (MissingAsDataLoss) met while reading checkpoint `id` is its
// removal by garbage collection if `id`'s commit record is gone now: then NotFound saying so.
// Otherwise `status` unchanged (an object present but corrupt is damage whatever happened). Every
// reader of a checkpoint's objects ends with it (region_reader, keyed_reader).
absl::Status RemovedOrDamaged(const RepositoryReader& repo, uint64_t id, absl::Status status);

// The participant `name` of `commit`, or NotFound naming it and the checkpoint.
absl::StatusOr<const ParticipantRecord*> FindParticipant(const CommitRecord& commit,
                                                         std::string_view name);
// The state object `name` of `participant`, or nullptr.
const StateObjectRecord* FindStateObject(const ParticipantRecord& participant,
                                         std::string_view name);

// Reads the manifest a commit record names, checking its key, its sha256 and that it describes
// that state object of that checkpoint; DataLoss naming the manifest and the checkpoint if not.
absl::StatusOr<Manifest> ReadManifest(const RepositoryReader& repo, uint64_t checkpoint_id,
                                      const StateObjectRecord& record);

// The consolidations in force (format.md §14.1): for each consolidated checkpoint id, the highest
// generation listed under merges/<id>/, and its record once read. From one listing of merges/;
// records are read on first use and kept. Not thread-safe.
class Consolidations {
 public:
  // Lists merges/ (one listing). Errors: the store's.
  static absl::StatusOr<Consolidations> List(const RepositoryReader& repo);
  // From a listing of merges/ the caller made (keys that are not consolidation records ignored).
  static Consolidations FromListing(const std::vector<ObjectInfo>& objects);

  // The generation in force for checkpoint `id`; nullopt if it has none.
  std::optional<uint64_t> generation(uint64_t id) const;
  // The record in force for `id`, read (and checked against its key) on first use; nullptr if `id`
  // has none. DataLoss naming the record if it is damaged, missing once listed included (a
  // superseded generation is never in force, and GC deletes only superseded ones or those of
  // removed checkpoints, so a missing record in force means the checkpoint's removal or damage:
  // the caller's RemovedOrDamaged decides).
  absl::StatusOr<const ConsolidationRecord*> Record(const RepositoryReader& repo, uint64_t id);
  // Every (id, generation) in force, by id.
  const std::map<uint64_t, uint64_t>& in_force() const { return in_force_; }

  // GC (format.md §14.4): a walk through a consolidation in force last modified after `cutoff`
  // visits the consolidation's manifest and then goes on down the chain it replaces, which a
  // writer whose location tables predate the consolidation may still reuse (docs/policy.md §4).
  void KeepChainsOfThoseModifiedAfter(absl::Time cutoff);
  bool keeps_chain(uint64_t id) const;

 private:
  std::map<uint64_t, uint64_t> in_force_;
  std::map<uint64_t, absl::Time> modified_;  // of the record in force
  std::optional<absl::Time> keep_chain_after_;
  std::map<uint64_t, std::unique_ptr<ConsolidationRecord>> records_;
};

// One manifest of a chain.
struct ChainLink {
  size_t step = 0;  // 0 for the checkpoint the walk started from, then 1, 2, ... towards the full
  uint64_t checkpoint_id = 0;
  const StateObjectRecord* record = nullptr;  // valid during the visit only
  Manifest manifest;
  // The generation of the consolidation this link's manifest came from (format.md §14.2); 0 if it
  // came from the checkpoint's commit record. A consolidated link is full and ends the walk.
  uint64_t consolidation = 0;
};

// Calls visit(link) for every manifest of the chain of state object `object` of `participant`,
// from `commit` down to its full manifest, newest first. Before each visit it has checked the
// link (format.md §9): the manifest's key, sha256 and content (ReadManifest); its type is `type`
// and its participant `participant`; its depth is one less than the newer link's and its base
// precedes it; the base's commit record exists and names the object for the participant; the
// chain ends within kMaxChainLength links. A checkpoint with a consolidation in force (§14.2)
// gives its manifest from the consolidation record, full, and ends the walk there; `consolidations`
// are the consolidations to use (nullptr: the walk lists merges/ itself, once). Errors: NotFound if
// `commit` itself lacks the participant or the object; DataLoss naming the object and checkpoint
// for every broken link; FailedPrecondition if `commit` names the object with another type; a
// visitor's error stops the walk and is returned.
absl::Status WalkChain(const RepositoryReader& repo, const CommitRecord& commit,
                       std::string_view participant, std::string_view object, StateObjectType type,
                       absl::FunctionRef<absl::Status(ChainLink& link)> visit,
                       Consolidations* consolidations = nullptr);

// format.md §14.2: whether `status` is a missing object (MissingAsDataLoss) that a second
// resolution of the checkpoint may avoid.
bool IsMissingObject(const absl::Status& status);

}  // namespace ickpt
