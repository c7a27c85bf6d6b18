// Restore of a checkpointer's state objects (format.md §9, §9.1): plan every chain first, then
// rebuild regions and keyed states, then make the restored checkpoint the lineage.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_join.h"
#include "ickpt/maintenance.h"
#include "src/ckpt/checkpointer_impl.h"
#include "src/repo/fencing.h"
#include "src/repo/keyed_reader.h"
#include "src/repo/region_reader.h"
#include "src/repo/repository_internal.h"
#include "src/state/keyed_state_internal.h"
#include "src/state/region_internal.h"
#include "src/util/log.h"
#include "src/util/memory.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// Region memory. With a progress callback, counts what it is given (over every region of the
// restore: `done` is shared).
class MemorySink final : public RestoreSink {
 public:
  MemorySink(char* base, const RestoreOptions& options, std::atomic<uint64_t>* done,
             uint64_t total)
      : base_(base), options_(options), done_(done), total_(total) {}
  absl::Status Write(uint64_t offset, std::string_view data) override {
    std::memcpy(base_ + offset, data.data(), data.size());
    Count(data.size());
    return absl::OkStatus();
  }
  absl::Status WriteZeros(uint64_t offset, uint64_t length) override {
    Count(length);
    return Zero(offset, length);
  }
  void WillWrite(uint64_t offset, uint64_t length) override {
    // Whole pages only; an edge page faults in on its own. A kernel without MADV_POPULATE_WRITE
    // (before 5.14) answers EINVAL, and a protected page (the mprotect tracker) EFAULT: the copies
    // then fault the pages in one by one, as they would have anyway.
    const uint64_t begin = (offset + kPageBytes - 1) / kPageBytes * kPageBytes;
    const uint64_t end = (offset + length) / kPageBytes * kPageBytes;
    if (end > begin) (void)madvise(base_ + begin, end - begin, MADV_POPULATE_WRITE);
  }

 private:
  void Count(uint64_t bytes) {
    if (!options_.progress) return;
    options_.progress(done_->fetch_add(bytes, std::memory_order_relaxed) + bytes, total_);
  }
  absl::Status Zero(uint64_t offset, uint64_t length) {
    // Dropping whole pages of a private anonymous mapping makes them read as zero without
    // touching them: a sparse region restores without faulting in its holes.
    const uint64_t page = kPageBytes;
    uint64_t begin = (offset + page - 1) / page * page;
    const uint64_t end = (offset + length) / page * page;
    if (end > begin && end - begin >= 16 * page &&
        madvise(base_ + begin, end - begin, MADV_DONTNEED) == 0) {
      std::memset(base_ + offset, 0, begin - offset);
      std::memset(base_ + end, 0, offset + length - end);
      return absl::OkStatus();
    }
    std::memset(base_ + offset, 0, length);
    return absl::OkStatus();
  }

  char* base_;
  const RestoreOptions& options_;
  std::atomic<uint64_t>* done_;
  uint64_t total_;
};

}  // namespace

absl::StatusOr<CommitRecord> Checkpointer::Impl::Restore(const RestoreOptions& ropts) {
  MutexLock api(&api_mu);
  {
    MutexLock lock(&mu);
    mu.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return in_flight == 0; });
  }
  uint64_t id = 0;
  if (ropts.id.has_value()) {
    id = *ropts.id;
  } else {
    absl::StatusOr<std::optional<uint64_t>> latest = repo->LatestCommitId();
    if (!latest.ok()) return latest.status();
    if (!latest->has_value()) {
      return absl::NotFoundError(
          StrCat("repository ", repo->Describe(), " has no checkpoint to restore"));
    }
    id = **latest;
  }
  absl::StatusOr<CommitRecord> commit = repo->ReadCommit(id);
  if (!commit.ok()) return commit.status();
  // format.md §15.3: a fenced checkpoint is not part of the history. The latest never is one
  // (LatestCommitId skips them); one named by its id is refused.
  if (ropts.id.has_value()) {
    if (absl::Status s = CheckNotFenced(*repo, *commit, "restored"); !s.ok()) return s;
  }
  // Regions come from this participant's part of the checkpoint; keyed states from every
  // participant's (format.md §9.1), so a participant that was not in the checkpoint (after a
  // rescale) may still restore keyed state.
  const std::vector<std::string> keyed_in_checkpoint = KeyedStateNames(*commit);
  absl::StatusOr<const ParticipantRecord*> participant =
      FindParticipant(*commit, options.participant);
  if (!participant.ok() && keyed_in_checkpoint.empty()) return participant.status();
  const ParticipantRecord* mine = participant.ok() ? *participant : nullptr;

  // Decide what to restore before touching any state.
  std::vector<std::string> unregistered, absent, to_create, to_restore;
  std::vector<std::string> keyed_to_create, keyed_to_restore;
  std::set<std::string> in_checkpoint;
  {
    MutexLock lock(&mu);
    auto mismatch = [&](const std::string& name, std::string_view stored) {
      return absl::FailedPreconditionError(StrCat("state object '", name, "' is a ", stored,
                                                  " in checkpoint ", id, " but is registered as a ",
                                                  stored == "region" ? "keyed state" : "region"));
    };
    if (mine != nullptr) {
      for (const StateObjectRecord& r : mine->state_objects) {
        if (r.type != StateObjectType::kRegion) continue;
        in_checkpoint.insert(r.name);
        if (keyed.contains(r.name)) return mismatch(r.name, "region");
        if (regions.contains(r.name)) {
          to_restore.push_back(r.name);
        } else {
          unregistered.push_back(r.name);
        }
      }
    }
    for (const std::string& name : keyed_in_checkpoint) {
      in_checkpoint.insert(name);
      if (regions.contains(name)) return mismatch(name, "keyed state");
      if (keyed.contains(name)) {
        keyed_to_restore.push_back(name);
      } else {
        unregistered.push_back(name);
        keyed_to_create.push_back(name);
      }
    }
    for (const auto& [name, region] : regions) {
      if (!in_checkpoint.contains(name)) absent.push_back(name);
    }
    for (const auto& [name, state] : keyed) {
      if (!in_checkpoint.contains(name)) absent.push_back(name);
    }
  }
  if (!unregistered.empty() && ropts.on_unregistered == OnUnregistered::kFail) {
    return absl::NotFoundError(StrCat(
        "checkpoint ", id, " holds state objects that are not registered: ",
        absl::StrJoin(unregistered, ", "), " (register them, or restore with create or ignore)"));
  }
  if (!absent.empty() && ropts.on_absent == OnAbsent::kFail) {
    return absl::NotFoundError(StrCat("registered state objects are not in checkpoint ", id, ": ",
                                      absl::StrJoin(absent, ", "),
                                      " (restore with ignore to keep them as they are)"));
  }
  if (ropts.on_unregistered == OnUnregistered::kCreate) {
    for (const std::string& name : unregistered) {
      if (std::find(keyed_to_create.begin(), keyed_to_create.end(), name) !=
          keyed_to_create.end()) {
        continue;
      }
      to_create.push_back(name);
      to_restore.push_back(name);
    }
    keyed_to_restore.insert(keyed_to_restore.end(), keyed_to_create.begin(), keyed_to_create.end());
  } else {
    keyed_to_create.clear();
  }

  // The consolidations the location tables resolved below take into account (docs/policy.md §4):
  // listed before they are resolved.
  absl::StatusOr<std::map<uint64_t, uint64_t>> known = ListConsolidations(*repo);
  if (!known.ok()) return known.status();
  // Resolve every chain first: metadata only, so a damaged chain fails before any state changes.
  std::map<std::string, ResolvedObject> resolved;
  for (const std::string& name : to_restore) {
    absl::StatusOr<ResolvedObject> r =
        ResolveObject(*repo, *commit, options.participant, name, &packs);
    if (!r.ok()) return r.status();
    if (r->type != StateObjectType::kRegion) {
      return absl::FailedPreconditionError(
          StrCat("state object '", name, "' of checkpoint ", id, " is not a region"));
    }
    Region* region = nullptr;
    {
      MutexLock lock(&mu);
      auto it = regions.find(name);
      if (it != regions.end()) region = it->second.get();
    }
    if (region != nullptr && region->block_size() != r->block_size) {
      return absl::FailedPreconditionError(StrCat("region '", name, "' has block size ",
                                                  region->block_size(), " but checkpoint ", id,
                                                  " stored it with ", r->block_size));
    }
    resolved.emplace(name, *std::move(r));
  }
  std::map<std::string, ResolvedKeyed> resolved_keyed;
  for (const std::string& name : keyed_to_restore) {
    absl::StatusOr<ResolvedKeyed> r = ResolveKeyed(*repo, *commit, name);
    if (!r.ok()) return r.status();
    if (r->key_groups < options.participant_count) {
      return absl::FailedPreconditionError(
          StrCat("keyed state '", name, "' of checkpoint ", id, " has ", r->key_groups,
                 " key groups, fewer than the ", options.participant_count, " participants"));
    }
    {
      MutexLock lock(&mu);
      auto it = keyed.find(name);
      if (it != keyed.end() && it->second->key_groups() != r->key_groups) {
        return absl::FailedPreconditionError(
            StrCat("keyed state '", name, "' has ", it->second->key_groups(),
                   " key groups but checkpoint ", id, " stored it with ", r->key_groups));
      }
    }
    resolved_keyed.emplace(name, *std::move(r));
  }

  auto fail = [this, id](absl::Status s) {
    ICKPT_LOG_ERROR(
        "restore of checkpoint {} failed; checkpoints are refused until a restore "
        "succeeds: {}",
        id, s.ToString());
    MutexLock lock(&mu);
    restore_failed = true;
    return s;
  };
  // Packs of a region, or ranges of key groups of a keyed state, read, checked and decoded at once.
  const int store_concurrency = RepositoryInternal::store(*repo)->default_read_concurrency();
  const int restore_threads =
      options.restore_threads > 0 ? options.restore_threads
      : store_concurrency > 0     ? store_concurrency
                              : std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  for (const std::string& name : to_create) {
    const ResolvedObject& r = resolved.at(name);
    RegionOptions ro;
    ro.size = r.block_count * r.block_size;
    ro.block_size = r.block_size;
    absl::StatusOr<std::unique_ptr<Region>> region = RegionAccess::Create(name, ro, r.block_size);
    if (!region.ok()) return fail(region.status());
    MutexLock lock(&mu);
    regions.emplace(name, *std::move(region));
  }
  uint64_t total_bytes = 0;
  for (const auto& [name, r] : resolved) total_bytes += r.block_count * r.block_size;
  std::atomic<uint64_t> done_bytes{0};
  for (auto& [name, r] : resolved) {
    Region* region = nullptr;
    {
      MutexLock lock(&mu);
      region = regions.at(name).get();
    }
    if (absl::Status s = RegionAccess::Resize(*region, r.block_count); !s.ok()) return fail(s);
    MemorySink sink(region->data(), ropts, &done_bytes, total_bytes);
    absl::StatusOr<ReadStats> stats = ReadObjectData(*repo, r, packs, &sink, restore_threads);
    if (!stats.ok()) return fail(stats.status());
    if (absl::Status s = RegionAccess::Rebaseline(*region); !s.ok()) return fail(s);
  }

  for (const std::string& name : keyed_to_create) {
    KeyedStateOptions ko;
    ko.key_groups = resolved_keyed.at(name).key_groups;
    absl::StatusOr<std::unique_ptr<KeyedState>> state = KeyedStateAccess::Create(name, ko);
    if (!state.ok()) return fail(state.status());
    const auto [first, end] =
        OwnedKeyGroups(ko.key_groups, options.participant_index, options.participant_count);
    KeyedStateAccess::SetOwnedGroups(**state, first, end);
    MutexLock lock(&mu);
    keyed.emplace(name, *std::move(state));
  }
  for (auto& [name, r] : resolved_keyed) {
    KeyedState* state = nullptr;
    {
      MutexLock lock(&mu);
      state = keyed.at(name).get();
    }
    // About this participant's share of the entries, to size the table once.
    const uint64_t expected =
        r.entry_count * (state->group_end() - state->group_first()) / std::max(1u, r.key_groups);
    KeyedStateAccess::Reset(*state, expected);
    // Fills the emptied state, untracked, several key groups at once (KeyedStateAccess::Load).
    class StateSink final : public KeyedRestoreSink {
     public:
      explicit StateSink(KeyedState* state) : state_(state) {}
      bool Contains(std::string_view key) const override { return state_->Contains(key); }
      absl::Status Put(std::string_view key, std::string_view value) override {
        return KeyedStateAccess::Load(*state_, key, value).status();
      }
      absl::StatusOr<bool> PutIfAbsent(std::string_view key, std::string_view value) override {
        return KeyedStateAccess::Load(*state_, key, value);
      }
      bool ConcurrentByKeyGroup() const override { return true; }

     private:
      KeyedState* state_;
    } sink(state);
    KeyedReadOptions read;
    read.group_first = state->group_first();
    read.group_end = state->group_end();
    // Keyed states load on several threads only when asked (docs/persist.md §3): with glibc's
    // default heap growth, two threads allocating entries at once spent more CPU contending for
    // the address space than loading, and were measured slower than one.
    read.threads = options.restore_threads > 0 ? options.restore_threads : 1;
    absl::StatusOr<KeyedReadStats> stats = ReadKeyed(*repo, r, read, &sink);
    KeyedStateAccess::FinishLoad(*state);
    if (!stats.ok()) return fail(stats.status());
    KeyedStateAccess::Rebaseline(*state);
  }

  ICKPT_LOG_INFO("restored checkpoint {} ({} state objects)", id,
                 resolved.size() + resolved_keyed.size());
  // The restored checkpoint is the new lineage: later checkpoints chain on it.
  std::map<std::string, CommittedObject, std::less<>> committed;
  // The depth a next checkpoint builds on is the one the commit record names (format.md §14.2):
  // a walk that starts at a consolidation reads a full manifest of depth 0 instead, but the chain
  // below it, which GC may still walk and older readers do, counts the recorded depths.
  auto recorded_depth = [&](const std::string& name, uint64_t resolved_depth) {
    absl::StatusOr<const ParticipantRecord*> p = FindParticipant(*commit, options.participant);
    const StateObjectRecord* so = p.ok() ? FindStateObject(**p, name) : nullptr;
    return so != nullptr ? so->depth : resolved_depth;
  };
  // The walk ends at the full manifest or the consolidation (docs/policy.md §1): its links less
  // one are the effective depth.
  auto lineage_of = [](uint64_t depth, uint64_t chain_start, uint64_t links) {
    return ObjectLineage{true, depth, chain_start, depth >= links ? depth - links : 0, 0};
  };
  for (auto& [name, r] : resolved) {
    committed[name] = CommittedObject{
        lineage_of(recorded_depth(name, r.depth), r.chain.back(), r.chain.size() - 1),
        std::move(r.locations)};
  }
  for (auto& [name, r] : resolved_keyed) {
    // A keyed state continues its chain only if this participant held exactly these groups when
    // the checkpoint was taken; after a rescale its next checkpoint is full (format.md §5.3).
    // (Participants' ranges are disjoint, so a chain of ours over exactly our range is the only
    // source of our groups.)
    KeyedState* state = KeyedByName(name);
    ObjectLineage object_lineage;
    for (const KeyedChain& chain : r.chains) {
      if (chain.participant == options.participant && chain.group_first == state->group_first() &&
          chain.group_end == state->group_end()) {
        object_lineage = lineage_of(recorded_depth(name, chain.manifests.front().depth),
                                    chain.checkpoint_ids.back(), chain.manifests.size() - 1);
      }
    }
    committed[name] = CommittedObject{object_lineage, {}};
  }
  MutexLock lock(&mu);
  known_consolidations = *std::move(known);
  rebase_needed = false;
  lineage.Reset(id, std::move(committed));
  keyed_merge_back.clear();  // the restored states replace what those changes were about
  announced_committed.clear();
  announced_aborted.clear();
  failed_ids.clear();
  capture_parent = id;
  capture_lineage = lineage.HeadLineage();
  ++generation;
  restore_failed = false;
  return *std::move(commit);
}

}  // namespace ickpt
