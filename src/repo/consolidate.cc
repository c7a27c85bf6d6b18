// Consolidation, format.md §14.3: a committed checkpoint's complete manifest set, written in the
// background without the application, so that restoring it (or anything built on it) reads no
// ancestor and few, mostly sequential packs.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "src/repo/chain.h"
#include "src/repo/commit_record.h"
#include "src/repo/fencing.h"
#include "src/repo/keyed_changes.h"
#include "src/repo/keyed_reader.h"
#include "src/repo/keys.h"
#include "src/repo/maintenance_lock.h"
#include "src/repo/pack.h"
#include "src/repo/region_reader.h"
#include "src/repo/repository_internal.h"
#include "src/repo/writer.h"
#include "src/util/hash.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// A keyed change set with no changes: WriteKeyed then writes the base (the checkpoint's chain,
// read back group by group) as one full manifest.
class NoKeyedChanges final : public KeyedChanges {
 public:
  explicit NoKeyedChanges(uint32_t key_groups) : key_groups_(key_groups) {}
  bool full() const override { return false; }
  uint32_t key_groups() const override { return key_groups_; }
  size_t size() const override { return 0; }
  ChangedEntry entry(size_t) const override { return ChangedEntry{}; }
  std::pair<size_t, size_t> GroupRange(uint32_t) const override { return {0, 0}; }
  size_t tombstone_count() const override { return 0; }
  uint64_t raw_bytes() const override { return 0; }

 private:
  uint32_t key_groups_;
};

// Collects the blocks of one batch (sorted block numbers) back to back; blocks outside the batch
// (a second resolution after a missing object reads everything, §14.2) are dropped.
class BatchSink final : public RestoreSink {
 public:
  BatchSink(uint32_t block_size, const std::vector<uint64_t>& blocks)
      : block_size_(block_size), blocks_(blocks), data_(blocks.size() * block_size, '\0') {}

  absl::Status Write(uint64_t offset, std::string_view data) override {
    for (size_t at = 0; at < data.size(); at += block_size_) {
      const uint64_t block = (offset + at) / block_size_;
      auto it = std::lower_bound(blocks_.begin(), blocks_.end(), block);
      if (it == blocks_.end() || *it != block) continue;
      const size_t n = std::min<size_t>(block_size_, data.size() - at);
      std::memcpy(data_.data() + (it - blocks_.begin()) * block_size_, data.data() + at, n);
    }
    return absl::OkStatus();
  }
  absl::Status WriteZeros(uint64_t, uint64_t) override { return absl::OkStatus(); }
  const char* data() const { return data_.data(); }

 private:
  uint32_t block_size_;
  const std::vector<uint64_t>& blocks_;
  std::string data_;
};

// One xxh3 per block: compares two readings of a region without holding either.
class BlockDigestSink final : public RestoreSink {
 public:
  BlockDigestSink(uint32_t block_size, uint64_t block_count)
      : block_size_(block_size),
        digests_(block_count, 0),
        zero_digest_(Xxh3(std::string(block_size, '\0'))) {}
  absl::Status Write(uint64_t offset, std::string_view data) override {
    for (size_t at = 0; at < data.size(); at += block_size_) {
      digests_[(offset + at) / block_size_] = Xxh3(data.substr(at, block_size_));
    }
    return absl::OkStatus();
  }
  absl::Status WriteZeros(uint64_t offset, uint64_t length) override {
    for (uint64_t b = offset / block_size_; b < (offset + length) / block_size_; ++b) {
      digests_[b] = zero_digest_;
    }
    return absl::OkStatus();
  }
  const std::vector<uint64_t>& digests() const { return digests_; }

 private:
  uint32_t block_size_;
  std::vector<uint64_t> digests_;  // distinct blocks per writer thread: no lock needed
  uint64_t zero_digest_;
};

// Keyed entries as key → xxh3(value).
class EntryDigestSink final : public KeyedRestoreSink {
 public:
  bool Contains(std::string_view key) const override { return digests_.contains(key); }
  absl::Status Put(std::string_view key, std::string_view value) override {
    digests_.emplace(std::string(key), Xxh3(value));
    return absl::OkStatus();
  }
  const std::map<std::string, uint64_t, std::less<>>& digests() const { return digests_; }

 private:
  std::map<std::string, uint64_t, std::less<>> digests_;
};

// The locations a full region manifest gives each block (format.md §5).
ResolvedObject ResolveFullManifest(const ResolvedObject& shape, const Manifest& m,
                                   PackTable* packs) {
  ResolvedObject out;
  out.participant = shape.participant;
  out.name = shape.name;
  out.block_size = m.block_size;
  out.block_count = m.block_count;
  out.chain = {m.checkpoint_id};
  out.locations.assign(m.block_count, BlockLocation{BlockLocation::kZero, 0});
  std::vector<uint32_t> pack_index(m.packs.size());
  for (size_t i = 0; i < m.packs.size(); ++i) pack_index[i] = packs->Intern(m.packs[i]);
  for (const Extent& e : m.extents) {
    if (e.pack_ref == 0) continue;
    for (uint64_t b = e.first_block; b < e.first_block + e.block_count; ++b) {
      out.locations[b] = BlockLocation{pack_index[e.pack_ref - 1],
                                       e.raw_offset + (b - e.first_block) * m.block_size};
    }
  }
  return out;
}

size_t DistinctPacks(const std::vector<BlockLocation>& locations) {
  std::set<uint32_t> packs;
  for (const BlockLocation& loc : locations) {
    if (!loc.is_zero()) packs.insert(loc.pack);
  }
  return packs.size();
}

// What consolidating one state object produced.
struct ObjectResult {
  StateObjectRecord record;  // the manifest in force afterwards, with the checkpoint's statistics
  bool reused = false;       // the manifest in force was already what consolidation would write
};

class Consolidator {
 public:
  Consolidator(Repository& repo, const CommitRecord& commit, Consolidations& consolidations,
               const ConsolidateOptions& options, MaintenanceLockHolder& lock,
               ConsolidationReport& report)
      : repo_(repo),
        store_(*RepositoryInternal::store(repo)),
        commit_(commit),
        consolidations_(consolidations),
        options_(options),
        lock_(lock),
        report_(report) {}

  absl::StatusOr<ObjectResult> Region(const ParticipantRecord& p, const StateObjectRecord& so);
  absl::StatusOr<ObjectResult> Keyed(const ParticipantRecord& p, const StateObjectRecord& so);

 private:
  // The record of the manifest in force for `so` of `p`: the consolidation's, or the commit's.
  absl::StatusOr<StateObjectRecord> InForce(const ParticipantRecord& p,
                                            const StateObjectRecord& so);
  // `so` (the checkpoint's statistics, §14.1) naming the full manifest `written`.
  StateObjectRecord WithManifest(const StateObjectRecord& so, const StateObjectRecord& written,
                                 uint64_t stored_bytes) const;

  Repository& repo_;
  ObjectStore& store_;
  const CommitRecord& commit_;
  Consolidations& consolidations_;
  const ConsolidateOptions& options_;
  MaintenanceLockHolder& lock_;
  ConsolidationReport& report_;
};

absl::StatusOr<StateObjectRecord> Consolidator::InForce(const ParticipantRecord& p,
                                                        const StateObjectRecord& so) {
  absl::StatusOr<const ConsolidationRecord*> consolidation =
      consolidations_.Record(repo_, commit_.id);
  if (!consolidation.ok()) return consolidation.status();
  if (*consolidation == nullptr) return so;
  absl::StatusOr<const ParticipantRecord*> mp = FindParticipant((*consolidation)->record, p.name);
  if (!mp.ok()) return absl::DataLossError(std::string(mp.status().message()));
  const StateObjectRecord* record = FindStateObject(**mp, so.name);
  if (record == nullptr) {
    return absl::DataLossError(StrCat("consolidation of checkpoint ", commit_.id, " lacks '",
                                      so.name, "' of participant '", p.name, "'"));
  }
  return *record;
}

StateObjectRecord Consolidator::WithManifest(const StateObjectRecord& so,
                                             const StateObjectRecord& written,
                                             uint64_t stored_bytes) const {
  StateObjectRecord out = so;
  out.manifest = written.manifest;
  out.manifest_sha256 = written.manifest_sha256;
  out.manifest_bytes = written.manifest_bytes;
  out.kind = CheckpointKind::kFull;
  out.depth = 0;
  out.tombstones = 0;  // a full keyed manifest holds none
  out.stored_bytes = stored_bytes;
  return out;
}

absl::StatusOr<ObjectResult> Consolidator::Region(const ParticipantRecord& p,
                                                  const StateObjectRecord& so) {
  PackTable packs;
  absl::StatusOr<ResolvedObject> resolved =
      ResolveObject(repo_, commit_, p.name, so.name, &packs, &consolidations_);
  if (!resolved.ok()) return resolved.status();
  ResolvedObject& object = *resolved;
  const uint32_t bs = object.block_size;
  report_.links_before += object.chain.size();
  report_.packs_before += DistinctPacks(object.locations);

  // How much of each pack the checkpoint uses; packs used less than min_pack_use are copied out.
  std::vector<uint64_t> used(packs.size(), 0);
  for (const BlockLocation& loc : object.locations) {
    if (!loc.is_zero()) used[loc.pack] += bs;
  }
  std::vector<bool> copy_out(packs.size(), false);
  bool any_copy = false;
  if (options_.min_pack_use > 0) {
    for (uint32_t i = 0; i < packs.size(); ++i) {
      if (used[i] == 0) continue;
      const std::string key = PackKey(ToHex(packs.digest(i)));
      absl::StatusOr<PackIndex> index = ReadPackIndex(&store_, key);
      if (!index.ok()) {
        return RemovedOrDamaged(
            repo_, commit_.id,
            MissingAsDataLoss(index.status(), StrCat("pack ", key, " of checkpoint ", commit_.id)));
      }
      if (static_cast<double>(used[i]) <
          options_.min_pack_use * static_cast<double>(index->raw_size)) {
        copy_out[i] = true;
        any_copy = true;
      }
    }
  }
  if (object.chain.size() == 1 && !any_copy) {
    // Already one full manifest using its packs well: reference it, never put it again (§14.3).
    absl::StatusOr<StateObjectRecord> in_force = InForce(p, so);
    if (!in_force.ok()) return in_force.status();
    ++report_.reused_manifests;
    ++report_.links_after;
    report_.packs_after += DistinctPacks(object.locations);
    return ObjectResult{*in_force, /*reused=*/true};
  }

  const std::vector<BlockLocation> before = object.locations;
  const size_t packs_known_before = packs.size();
  std::vector<uint64_t> to_copy;
  for (uint64_t b = 0; b < object.block_count; ++b) {
    const BlockLocation& loc = object.locations[b];
    if (!loc.is_zero() && loc.pack < packs_known_before && copy_out[loc.pack]) to_copy.push_back(b);
  }
  CheckpointWriter writer(&repo_, WriterOptions{p.name, 2});
  uint64_t pack_bytes = 0;
  const size_t per_batch = std::max<uint64_t>(1, options_.batch_bytes / bs);
  for (size_t first = 0; first < to_copy.size(); first += per_batch) {
    const std::vector<uint64_t> batch(
        to_copy.begin() + first, to_copy.begin() + std::min(to_copy.size(), first + per_batch));
    ResolvedObject part;
    part.participant = object.participant;
    part.name = object.name;
    part.block_size = bs;
    part.block_count = object.block_count;
    part.chain = object.chain;
    part.locations.assign(object.block_count, BlockLocation{BlockLocation::kZero, 0});
    for (uint64_t b : batch) part.locations[b] = before[b];
    BatchSink sink(bs, batch);
    absl::StatusOr<ReadStats> read = ReadObjectData(repo_, part, packs, &sink);
    if (!read.ok()) return read.status();
    // Runs of adjacent blocks, in order, as WriteRegionBlocks wants them.
    auto runs = [&](absl::FunctionRef<void(uint64_t, uint64_t)> fn) {
      for (size_t i = 0; i < batch.size();) {
        size_t j = i + 1;
        while (j < batch.size() && batch[j] == batch[j - 1] + 1) ++j;
        fn(batch[i], j - i);
        i = j;
      }
    };
    absl::StatusOr<std::vector<std::pair<uint64_t, BlockLocation>>> fresh =
        writer.WriteRegionBlocks(commit_.id, so.name, bs, sink.data(), runs, &packs, &pack_bytes);
    if (!fresh.ok()) return fresh.status();
    for (const auto& [block, loc] : *fresh) object.locations[block] = loc;
    report_.repacked_bytes += batch.size() * uint64_t{bs};
    if (absl::Status s = lock_.RenewIfDue(); !s.ok()) return s;
  }
  absl::StatusOr<StateObjectRecord> written =
      writer.WriteFullRegionManifest(commit_.id, so.name, bs, object.locations, packs);
  if (!written.ok()) return written.status();
  ++report_.links_after;
  report_.packs_after += DistinctPacks(object.locations);
  report_.stored_bytes += pack_bytes + written->manifest_bytes;

  if (options_.verify) {
    // Read both: the resolution the consolidation replaces, and the manifest as stored.
    BlockDigestSink old_digests(bs, object.block_count);
    ResolvedObject old_object = object;
    old_object.locations = before;
    if (absl::StatusOr<ReadStats> r = ReadObjectData(repo_, old_object, packs, &old_digests);
        !r.ok()) {
      return r.status();
    }
    absl::StatusOr<Manifest> stored = ReadManifest(repo_, commit_.id, *written);
    if (!stored.ok()) return stored.status();
    PackTable new_packs;
    const ResolvedObject new_object = ResolveFullManifest(object, *stored, &new_packs);
    BlockDigestSink new_digests(bs, object.block_count);
    if (absl::StatusOr<ReadStats> r = ReadObjectData(repo_, new_object, new_packs, &new_digests);
        !r.ok()) {
      return r.status();
    }
    if (old_digests.digests() != new_digests.digests()) {
      return absl::InternalError(StrCat("consolidation of checkpoint ", commit_.id, ": region '",
                                        so.name, "' of participant '", p.name,
                                        "' reads differently through manifest ", written->manifest,
                                        "; nothing is published"));
    }
  }
  return ObjectResult{WithManifest(so, *written, pack_bytes + written->manifest_bytes), false};
}

absl::StatusOr<ObjectResult> Consolidator::Keyed(const ParticipantRecord& p,
                                                 const StateObjectRecord& so) {
  absl::StatusOr<ResolvedKeyed> keyed = ResolveKeyedOf(repo_, commit_, p.name, so.name);
  if (!keyed.ok()) return keyed.status();
  const KeyedChain& chain = keyed->chains.front();
  std::set<std::string> chain_packs;
  for (const Manifest& m : chain.manifests) {
    for (const Sha256Digest& d : m.packs) chain_packs.insert(ToHex(d));
  }
  report_.links_before += chain.manifests.size();
  report_.packs_before += chain_packs.size();
  if (chain.manifests.size() == 1) {
    absl::StatusOr<StateObjectRecord> in_force = InForce(p, so);
    if (!in_force.ok()) return in_force.status();
    ++report_.reused_manifests;
    ++report_.links_after;
    report_.packs_after += chain_packs.size();
    return ObjectResult{*in_force, /*reused=*/true};
  }
  // The chain merged group by group into one full manifest (format.md §5.3), checked by the
  // writer against the checkpoint's entry count and bytes.
  NoKeyedChanges no_changes(so.key_groups);
  KeyedCapture capture;
  capture.name = so.name;
  capture.kind = CheckpointKind::kFull;
  capture.depth = 0;
  capture.entries = so.entries;
  capture.entry_bytes = so.logical_bytes;
  capture.group_first = chain.group_first;
  capture.group_end = chain.group_end;
  capture.changes = &no_changes;
  capture.pause_ns = so.pause_ns;
  CheckpointWriter writer(&repo_, WriterOptions{p.name, 2});
  absl::StatusOr<StateObjectRecord> written =
      writer.WriteKeyed(CheckpointIds{commit_.id, commit_.id}, capture, &commit_);
  if (!written.ok()) return written.status();
  absl::StatusOr<Manifest> stored = ReadManifest(repo_, commit_.id, *written);
  if (!stored.ok()) return stored.status();
  ++report_.links_after;
  report_.packs_after += stored->packs.size();
  report_.stored_bytes += written->stored_bytes;
  if (absl::Status s = lock_.RenewIfDue(); !s.ok()) return s;

  if (options_.verify) {
    EntryDigestSink old_entries, new_entries;
    if (absl::StatusOr<KeyedReadStats> r = ReadKeyed(repo_, *keyed, {}, &old_entries); !r.ok()) {
      return r.status();
    }
    ResolvedKeyed consolidated = *keyed;
    KeyedChain& one = consolidated.chains.front();
    one.checkpoint_ids = {commit_.id};
    one.manifest_keys = {written->manifest};
    one.manifests = {*stored};
    if (absl::StatusOr<KeyedReadStats> r = ReadKeyed(repo_, consolidated, {}, &new_entries);
        !r.ok()) {
      return r.status();
    }
    if (old_entries.digests() != new_entries.digests()) {
      return absl::InternalError(StrCat("consolidation of checkpoint ", commit_.id,
                                        ": keyed state '", so.name, "' of participant '", p.name,
                                        "' reads differently through manifest ", written->manifest,
                                        "; nothing is published"));
    }
  }
  return ObjectResult{WithManifest(so, *written, written->stored_bytes), false};
}

absl::Status CheckOptions(const ConsolidateOptions& options) {
  if (!(options.min_pack_use >= 0 && options.min_pack_use <= 1)) {
    return absl::InvalidArgumentError(
        StrCat("min_pack_use ", options.min_pack_use, " is not in [0, 1]"));
  }
  if (options.lock_ttl < absl::Seconds(1) ||
      options.lock_ttl != absl::Seconds(absl::ToInt64Seconds(options.lock_ttl))) {
    return absl::InvalidArgumentError(StrCat("lock ttl ", absl::FormatDuration(options.lock_ttl),
                                             " is not a whole number of seconds >= 1 s"));
  }
  if (options.batch_bytes == 0) return absl::InvalidArgumentError("batch_bytes is 0");
  return absl::OkStatus();
}

// §14.3 (as §8.6): a consolidation is published only for a checkpoint that is committed, not
// condemned and not fenced (§15.3: not part of the history, GC removes it), checked immediately
// before the publish.
absl::Status CheckStillWanted(Repository& repo, uint64_t id, bool started) {
  absl::StatusOr<CommitRecord> commit = repo.ReadCommit(id);
  if (absl::IsNotFound(commit.status())) {
    return absl::NotFoundError(StrCat("checkpoint ", id, " is not committed",
                                      started ? " (GC removed it while it was consolidated)" : ""));
  }
  if (!commit.ok()) return commit.status();
  if (absl::Status s = CheckNotFenced(repo, *commit, "consolidated"); !s.ok()) return s;
  absl::StatusOr<std::string> condemned = RepositoryInternal::store(repo)->Get(CondemnedKey(id));
  if (condemned.ok()) {
    return absl::FailedPreconditionError(StrCat("checkpoint ", id,
                                                " is condemned (format.md §13.3): retention no "
                                                "longer keeps it, so it is not consolidated"));
  }
  if (!absl::IsNotFound(condemned.status())) return condemned.status();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::map<uint64_t, uint64_t>> ListConsolidations(const RepositoryReader& repo) {
  absl::StatusOr<Consolidations> consolidations = Consolidations::List(repo);
  if (!consolidations.ok()) return consolidations.status();
  return consolidations->in_force();
}

absl::StatusOr<ConsolidationReport> Consolidate(Repository& repo, uint64_t id,
                                                const ConsolidateOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  ObjectStore& store = *RepositoryInternal::store(repo);
  if (absl::Status s = CheckStillWanted(repo, id, /*started=*/false); !s.ok()) return s;
  absl::StatusOr<std::optional<RetentionPolicy>> policy = ReadRetentionPolicy(repo);
  if (!policy.ok()) return policy.status();
  const absl::Duration timeout =
      policy->has_value() ? (*policy)->checkpoint_timeout : RetentionPolicy().checkpoint_timeout;

  absl::StatusOr<std::unique_ptr<MaintenanceLockHolder>> lock =
      MaintenanceLockHolder::Acquire(store, "consolidate", options.lock_ttl);
  if (!lock.ok()) return lock.status();
  const absl::Time started = absl::Now();
  absl::StatusOr<CommitRecord> commit = repo.ReadCommit(id);
  if (!commit.ok()) return commit.status();
  absl::StatusOr<Consolidations> consolidations = Consolidations::List(repo);
  if (!consolidations.ok()) return consolidations.status();

  ConsolidationReport report;
  report.id = id;
  ConsolidationRecord consolidation;
  consolidation.generation = consolidations->generation(id).value_or(0) + 1;
  consolidation.record = *commit;
  consolidation.record.kind = CheckpointKind::kFull;
  consolidation.record.depth = 0;
  consolidation.record.created = absl::Now();
  consolidation.record.stored_bytes = 0;
  bool changed = false;
  Consolidator consolidator(repo, *commit, *consolidations, options, **lock, report);
  for (size_t pi = 0; pi < commit->participants.size(); ++pi) {
    const ParticipantRecord& p = commit->participants[pi];
    for (size_t oi = 0; oi < p.state_objects.size(); ++oi) {
      const StateObjectRecord& so = p.state_objects[oi];
      absl::StatusOr<ObjectResult> result = so.type == StateObjectType::kRegion
                                                ? consolidator.Region(p, so)
                                                : consolidator.Keyed(p, so);
      if (!result.ok()) {
        return WithMessage(result.status(),
                           StrCat("consolidating checkpoint ", id, " ('", so.name,
                                  "' of participant '", p.name, "'): ", result.status().message()));
      }
      changed = changed || !result->reused;
      consolidation.record.participants[pi].state_objects[oi] = result->record;
    }
  }
  if (!changed) {
    // Every manifest in force is already full and uses its packs well: nothing to publish.
    if (absl::Status s = (*lock)->Release(); !s.ok()) return s;
    return report;
  }
  consolidation.record.stored_bytes = report.stored_bytes;
  consolidation.repacked_bytes = report.repacked_bytes;
  report.verified = options.verify;
  if (absl::Status s = ValidateConsolidationRecord(consolidation); !s.ok()) {
    return absl::InternalError(s.message());
  }
  // A2 of §13.4 for consolidations: GC assumes what this run wrote is referenced within the
  // checkpoint timeout, or never.
  if (absl::Now() - started >= timeout) {
    return absl::DeadlineExceededError(StrCat(
        "consolidating checkpoint ", id, " took ", absl::FormatDuration(absl::Now() - started),
        ", not less than the checkpoint timeout ", absl::FormatDuration(timeout),
        ": nothing is published, GC removes what it wrote (format.md §14.3)"));
  }
  if (absl::Status s = CheckStillWanted(repo, id, /*started=*/true); !s.ok()) return s;
  const std::string key = ConsolidationKey(id, consolidation.generation);
  if (absl::Status s = PublishUnique(store, key, EncodeConsolidationRecord(consolidation));
      !s.ok()) {
    if (absl::IsAlreadyExists(s)) {
      return absl::AbortedError(StrCat("another consolidation of checkpoint ", id,
                                       " published generation ", consolidation.generation,
                                       " first"));
    }
    return absl::Status(s.code(), StrCat("publishing ", key, ": ", s.message()));
  }
  report.generation = consolidation.generation;
  if (absl::Status s = (*lock)->Release(); !s.ok()) return s;
  return report;
}

}  // namespace ickpt
