// The chain walk (format.md §9): from one state object of one participant in a checkpoint down to
// the full manifest its increments build on, newest first. The only walk over manifest chains in
// ickpt: region reads (region_reader.h), keyed reads (keyed_reader.h), the writer's merge of keyed
// state with its base (writer.h) and reachability (reachability.h) all use it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "src/repo/manifest.h"

namespace ickpt {

// An object a checkpoint needs that is not in the store is damage: NotFound becomes DataLoss
// saying `what` is missing, marked as a missing object for RemovedOrDamaged; other errors pass
// through.
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

// One manifest of a chain.
struct ChainLink {
  size_t step = 0;  // 0 for the checkpoint the walk started from, then 1, 2, ... towards the full
  uint64_t checkpoint_id = 0;
  const StateObjectRecord* record = nullptr;  // valid during the visit only
  Manifest manifest;
};

// Calls visit(link) for every manifest of the chain of state object `object` of `participant`,
// from `commit` down to its full manifest, newest first. Before each visit it has checked the
// link (format.md §9): the manifest's key, sha256 and content (ReadManifest); its type is `type`
// and its participant `participant`; its depth is one less than the newer link's and its base
// precedes it; the base's commit record exists and names the object for the participant; the
// chain ends within kMaxChainLength links. Errors: NotFound if `commit` itself lacks the
// participant or the object; DataLoss naming the object and checkpoint for every broken link;
// FailedPrecondition if `commit` names the object with another type; a visitor's error stops the
// walk and is returned.
absl::Status WalkChain(const RepositoryReader& repo, const CommitRecord& commit,
                       std::string_view participant, std::string_view object, StateObjectType type,
                       absl::FunctionRef<absl::Status(ChainLink& link)> visit);

}  // namespace ickpt
