// The fencing rule (format.md §15.3) and the latest committed checkpoint (§6.1).
#include "src/repo/fencing.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "src/util/str.h"

namespace ickpt {

Fencing::Fencing(std::vector<EpochRecord> records) : records_(std::move(records)) {
  std::sort(records_.begin(), records_.end(),
            [](const EpochRecord& a, const EpochRecord& b) { return a.epoch < b.epoch; });
  in_force_.assign(records_.size(), false);
  // §15.3, from the highest epoch down: a record is superseded if a record in force above it did
  // not see it (its `previous` is below it). Only the lowest `previous` above matters.
  uint64_t lowest_previous_above = std::numeric_limits<uint64_t>::max();
  for (size_t i = records_.size(); i-- > 0;) {
    const EpochRecord& r = records_[i];
    if (lowest_previous_above < r.epoch) continue;  // superseded: fences nothing
    in_force_[i] = true;
    lowest_previous_above = std::min(lowest_previous_above, r.previous);
    const uint64_t base = r.base.value_or(0);
    lowest_base_ = lowest_base_.has_value() ? std::min(*lowest_base_, base) : base;
  }
}

const EpochRecord* Fencing::Find(uint64_t epoch) const {
  auto it = std::lower_bound(records_.begin(), records_.end(), epoch,
                             [](const EpochRecord& r, uint64_t e) { return r.epoch < e; });
  return it != records_.end() && it->epoch == epoch ? &*it : nullptr;
}

bool Fencing::InForce(uint64_t epoch) const {
  const EpochRecord* r = Find(epoch);
  return r != nullptr && in_force_[static_cast<size_t>(r - records_.data())];
}

std::optional<uint64_t> Fencing::highest_epoch() const {
  if (records_.empty()) return std::nullopt;
  return records_.back().epoch;
}

std::optional<uint64_t> Fencing::FencedBy(uint64_t id, uint64_t epoch) const {
  if (!MayFence(id)) return std::nullopt;
  // Ascending, so the first match is the lowest epoch that fences.
  for (size_t i = 0; i < records_.size(); ++i) {
    const EpochRecord& r = records_[i];
    if (in_force_[i] && r.epoch > epoch && id > r.base.value_or(0)) return r.epoch;
  }
  return std::nullopt;
}

std::optional<uint64_t> FencedBy(const std::vector<EpochRecord>& epochs,
                                 const CommitRecord& record) {
  if (epochs.empty()) return std::nullopt;
  return Fencing(epochs).FencedBy(record.id, record.epoch);
}

absl::StatusOr<Fencing> ReadFencing(const RepositoryReader& repo) {
  absl::StatusOr<std::vector<EpochRecord>> records = repo.ListEpochs();
  if (!records.ok()) return records.status();
  return Fencing(*std::move(records));
}

absl::StatusOr<std::optional<uint64_t>> ReadCommitEpoch(const RepositoryReader& repo, uint64_t id) {
  absl::StatusOr<CommitRecord> record = repo.ReadCommit(id);
  if (record.ok()) return std::optional<uint64_t>(record->epoch);
  // A record that exists but cannot be judged (damaged, or of a newer major version) counts as not
  // fenced (§6.1): whoever reads it reports it.
  if (absl::IsDataLoss(record.status()) || absl::IsFailedPrecondition(record.status())) {
    return std::optional<uint64_t>();
  }
  return record.status();
}

absl::StatusOr<std::optional<uint64_t>> LatestUnfenced(const Fencing& fencing,
                                                       const std::vector<uint64_t>& ids,
                                                       CommitEpochReader read_epoch) {
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    // §15.6: at or below every base in force, no epoch record can fence it; nothing is read.
    if (!fencing.MayFence(*it)) return std::optional<uint64_t>(*it);
    absl::StatusOr<std::optional<uint64_t>> epoch = read_epoch(*it);
    if (absl::IsNotFound(epoch.status())) continue;  // removed by GC since the listing (§13.4)
    if (!epoch.ok()) return epoch.status();
    if (!epoch->has_value() || !fencing.FencedBy(*it, **epoch).has_value()) {
      return std::optional<uint64_t>(*it);
    }
  }
  return std::optional<uint64_t>();
}

absl::StatusOr<std::map<uint64_t, uint64_t>> FindFencedCommits(const RepositoryReader& repo,
                                                               const Fencing& fencing,
                                                               const std::vector<uint64_t>& ids) {
  std::map<uint64_t, uint64_t> fenced;
  for (uint64_t id : ids) {
    if (!fencing.MayFence(id)) continue;
    absl::StatusOr<std::optional<uint64_t>> epoch = ReadCommitEpoch(repo, id);
    if (absl::IsNotFound(epoch.status())) continue;
    if (!epoch.ok()) return epoch.status();
    if (!epoch->has_value()) continue;
    if (std::optional<uint64_t> by = fencing.FencedBy(id, **epoch)) fenced[id] = *by;
  }
  return fenced;
}

absl::Status FencedCheckpointError(uint64_t id, uint64_t epoch, std::string_view action) {
  return absl::FailedPreconditionError(StrCat(
      "checkpoint ", id, " is fenced by epoch ", epoch,
      " (committed in an older epoch, above the checkpoint epoch ", epoch,
      " began from): it is not part of the history (format.md §15.3) and cannot be ", action));
}

absl::Status CheckNotFenced(const RepositoryReader& repo, const CommitRecord& record,
                            std::string_view action) {
  absl::StatusOr<Fencing> fencing = ReadFencing(repo);
  if (!fencing.ok()) return fencing.status();
  if (std::optional<uint64_t> by = fencing->FencedBy(record.id, record.epoch)) {
    return FencedCheckpointError(record.id, *by, action);
  }
  return absl::OkStatus();
}

}  // namespace ickpt
