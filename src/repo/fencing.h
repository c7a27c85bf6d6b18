// The fencing rule of coordinator epochs (docs/format.md §15.3) and the latest committed checkpoint
// it defines (§6.1). The rule is computed here only: Repository::LatestCommitId, the commit checks
// (§15.4), GC's kept set (§13.1), restore, pins and consolidation all ask this file.
//
// Thread safety: a Fencing is immutable after construction; share it freely.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/repository.h"

namespace ickpt {

// A listing of epoch records judged by §15.3: which are in force, and what they fence.
class Fencing {
 public:
  // No epoch records: nothing is fenced.
  Fencing() = default;
  // `records` in any order, each epoch at most once (a listing of epochs/<epoch:020> is).
  explicit Fencing(std::vector<EpochRecord> records);

  // Every record, ascending by epoch, superseded ones included.
  const std::vector<EpochRecord>& records() const { return records_; }
  // The record of `epoch`, or nullptr.
  const EpochRecord* Find(uint64_t epoch) const;
  // Whether the record of `epoch` exists and is in force (not superseded, §15.3).
  bool InForce(uint64_t epoch) const;
  // The highest epoch of any record (in force or not), or nullopt without records.
  std::optional<uint64_t> highest_epoch() const;
  // Whether a commit of id `id` can be fenced whatever its epoch: some record in force has a base
  // below `id`. Only then does its epoch need reading (§15.6).
  bool MayFence(uint64_t id) const { return lowest_base_.has_value() && id > *lowest_base_; }
  // The lowest epoch in force that fences a commit of id `id` and epoch `epoch`, or nullopt.
  std::optional<uint64_t> FencedBy(uint64_t id, uint64_t epoch) const;

 private:
  std::vector<EpochRecord> records_;  // ascending by epoch
  std::vector<bool> in_force_;        // parallel to records_
  // The lowest base (null = 0) over the records in force; nullopt if none is.
  std::optional<uint64_t> lowest_base_;
};

// The epoch records of `repo`, judged (RepositoryReader::ListEpochs' errors).
absl::StatusOr<Fencing> ReadFencing(const RepositoryReader& repo);

// The epoch of commit `id` as far as fencing is concerned: its record's epoch, or nullopt if the
// record does not verify (damage counts as not fenced, §6.1: it is reported when read, never
// skipped). NotFound if the record is gone; other errors for I/O.
using CommitEpochReader = absl::FunctionRef<absl::StatusOr<std::optional<uint64_t>>(uint64_t id)>;
absl::StatusOr<std::optional<uint64_t>> ReadCommitEpoch(const RepositoryReader& repo, uint64_t id);

// format.md §6.1 over the listed commit ids `ids` (ascending): the highest that is not fenced, or
// nullopt. Walks down from the highest and reads an epoch (`read_epoch`) only for ids that
// `fencing` may fence; an id whose record went since the listing (NotFound: GC removed it) is
// skipped.
absl::StatusOr<std::optional<uint64_t>> LatestUnfenced(const Fencing& fencing,
                                                       const std::vector<uint64_t>& ids,
                                                       CommitEpochReader read_epoch);

// The fenced commits among `ids`, each with the epoch that fences it; reads the commit records
// that `fencing` may fence, and skips those removed since the listing.
absl::StatusOr<std::map<uint64_t, uint64_t>> FindFencedCommits(const RepositoryReader& repo,
                                                               const Fencing& fencing,
                                                               const std::vector<uint64_t>& ids);

// FailedPrecondition "checkpoint <id> is fenced by epoch <epoch> ..." for a reader asked for a
// fenced checkpoint by id (§15.3); `action` says what was refused ("restored", "pinned", ...).
absl::Status FencedCheckpointError(uint64_t id, uint64_t epoch, std::string_view action);

// FailedPrecondition if checkpoint `record` is fenced (ReadFencing's errors too): what restore,
// pinning and consolidation call before they act on a checkpoint named by id.
absl::Status CheckNotFenced(const RepositoryReader& repo, const CommitRecord& record,
                            std::string_view action);

}  // namespace ickpt
