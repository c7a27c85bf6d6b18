// The checkpointer's API and the capture (format.md §8 ordering): the short synchronous phase on
// the caller's thread. Persistence is in persist.cc, restore in restore.cc.
#include "ickpt/checkpointer.h"

#include <algorithm>
#include <map>
#include <thread>

#include "ickpt/maintenance.h"
#include "src/ckpt/checkpointer_impl.h"
#include "src/repo/keys.h"
#include "src/state/keyed_state_internal.h"
#include "src/state/region_internal.h"
#include "src/util/log.h"
#include "src/util/parallel.h"
#include "src/util/str.h"

namespace ickpt {

CheckpointHandle::CheckpointHandle(std::shared_ptr<State> state) : state_(std::move(state)) {}
uint64_t CheckpointHandle::id() const { return state_->id; }
absl::Duration CheckpointHandle::pause() const { return state_->pause; }
bool CheckpointHandle::done() const {
  MutexLock lock(&state_->mu);
  return state_->done;
}
absl::StatusOr<CommitRecord> CheckpointHandle::Wait() const {
  State* state = state_.get();
  MutexLock lock(&state->mu);
  state->mu.Await([state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) { return state->done; });
  return state->result;
}

absl::StatusOr<std::unique_ptr<Checkpointer>> Checkpointer::Open(Repository* repository,
                                                                 CheckpointerOptions options) {
  if (repository == nullptr) return absl::InvalidArgumentError("Checkpointer needs a repository");
  if (options.participant.empty()) return absl::InvalidArgumentError("empty participant name");
  if (options.participant_count < 1 || options.participant_index >= options.participant_count) {
    return absl::InvalidArgumentError(StrCat("participant_index ", options.participant_index,
                                             " is not below participant_count ",
                                             options.participant_count));
  }
  if (options.group_member && (options.participant.find('/') != std::string::npos ||
                               !ValidateObjectKey(options.participant).ok())) {
    return absl::InvalidArgumentError(StrCat(
        "participant name '", options.participant,
        "' cannot name an acknowledgement: use lowercase letters, digits, '.', '_' and '-'"));
  }
  if (options.max_in_flight < 1) options.max_in_flight = 1;
  if (options.persist_threads < 1) options.persist_threads = 1;
  if (!options.policy) options.policy = NewCostModelPolicy();
  // The consolidations the location tables (built from now on) take into account: all of them
  // (docs/policy.md §4).
  absl::StatusOr<std::map<uint64_t, uint64_t>> known_consolidations =
      ListConsolidations(*repository);
  if (!known_consolidations.ok()) return known_consolidations.status();
  if (options.staging_budget_bytes == 0) options.staging_budget_bytes = DefaultStagingBudget();
  if (options.capture_threads < 1) {
    options.capture_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  auto impl = std::make_unique<Impl>();
  // The one place where a process's own checkpoints and a group member's differ (completion.h).
  impl->completion = options.group_member ? NewGroupAcknowledgement(repository, options.participant)
                                          : NewLocalCommit(repository);
  impl->writer = std::make_unique<CheckpointWriter>(
      repository,
      WriterOptions{options.participant, options.persist_threads, options.uploads_in_flight});
  impl->staging = std::make_unique<StagingPool>(options.staging_budget_bytes);
  impl->copier = std::make_unique<ParallelCopier>(options.capture_threads);
  impl->repo = repository;
  impl->options = std::move(options);
  Impl* raw = impl.get();
  {
    MutexLock lock(&raw->mu);
    raw->last_gc = absl::Now();
    raw->known_consolidations = *std::move(known_consolidations);
  }
  impl->persist_thread = std::thread([raw] { raw->PersistLoop(); });
  return std::unique_ptr<Checkpointer>(new Checkpointer(std::move(impl)));
}

Checkpointer::Checkpointer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Checkpointer::~Checkpointer() {
  {
    MutexLock lock(&impl_->mu);
    impl_->stopping = true;
  }
  impl_->persist_thread.join();
  // The persist thread, which starts collections, has stopped: at most one is still running.
  if (impl_->gc_thread.joinable()) impl_->gc_thread.join();
}

absl::StatusOr<Region*> Checkpointer::AddRegion(std::string_view name,
                                                const RegionOptions& options) {
  MutexLock api(&impl_->api_mu);
  {
    MutexLock lock(&impl_->mu);
    if (absl::Status s = impl_->ValidateNewName(name, "region"); !s.ok()) return s;
  }
  const uint32_t block_size =
      options.block_size != 0 ? options.block_size : impl_->repo->config().block_size;
  absl::StatusOr<std::unique_ptr<Region>> region = RegionAccess::Create(name, options, block_size);
  if (!region.ok()) return region.status();
  Region* raw = region->get();
  MutexLock lock(&impl_->mu);
  impl_->regions.emplace(std::string(name), *std::move(region));
  return raw;
}

absl::Status Checkpointer::Impl::ValidateNewName(std::string_view name, std::string_view what) {
  if (absl::Status s = ValidateObjectKey(name);
      !s.ok() || name.find('/') != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat("invalid ", what, " name '", name,
                                             "': use lowercase letters, digits, '.', '_' and '-'"));
  }
  if (regions.contains(name)) {
    return absl::AlreadyExistsError(StrCat("a region named '", name, "' already exists"));
  }
  if (keyed.contains(name)) {
    return absl::AlreadyExistsError(StrCat("a keyed state named '", name, "' already exists"));
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyedState*> Checkpointer::AddKeyedState(std::string_view name,
                                                        const KeyedStateOptions& options) {
  MutexLock api(&impl_->api_mu);
  if (options.key_groups < impl_->options.participant_count) {
    return absl::InvalidArgumentError(
        StrCat("keyed state '", name, "' has ", options.key_groups, " key groups, fewer than the ",
               impl_->options.participant_count, " participants that must share them"));
  }
  MutexLock lock(&impl_->mu);
  if (absl::Status s = impl_->ValidateNewName(name, "keyed state"); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<KeyedState>> state = KeyedStateAccess::Create(name, options);
  if (!state.ok()) return state.status();
  const auto [first, end] = OwnedKeyGroups(options.key_groups, impl_->options.participant_index,
                                           impl_->options.participant_count);
  KeyedStateAccess::SetOwnedGroups(**state, first, end);
  KeyedState* raw = state->get();
  impl_->keyed.emplace(std::string(name), *std::move(state));
  return raw;
}

KeyedState* Checkpointer::FindKeyedState(std::string_view name) const {
  MutexLock lock(&impl_->mu);
  auto it = impl_->keyed.find(name);
  return it == impl_->keyed.end() ? nullptr : it->second.get();
}

std::vector<KeyedState*> Checkpointer::keyed_states() const {
  MutexLock lock(&impl_->mu);
  std::vector<KeyedState*> out;
  for (auto& [name, state] : impl_->keyed) out.push_back(state.get());
  return out;
}

Region* Checkpointer::FindRegion(std::string_view name) const {
  MutexLock lock(&impl_->mu);
  auto it = impl_->regions.find(name);
  return it == impl_->regions.end() ? nullptr : it->second.get();
}

std::vector<Region*> Checkpointer::regions() const {
  MutexLock lock(&impl_->mu);
  std::vector<Region*> out;
  for (auto& [name, region] : impl_->regions) out.push_back(region.get());
  return out;
}

absl::StatusOr<CheckpointHandle> Checkpointer::Checkpoint(const CheckpointOptions& options) {
  return impl_->Capture(options, /*wait=*/true);
}

absl::StatusOr<CheckpointHandle> Checkpointer::TryCheckpoint(const CheckpointOptions& options) {
  return impl_->Capture(options, /*wait=*/false);
}

void Checkpointer::WaitIdle() {
  Impl* impl = impl_.get();
  MutexLock lock(&impl->mu);
  impl->mu.Await([impl]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->mu) { return impl->in_flight == 0; });
}

absl::StatusOr<CommitRecord> Checkpointer::Restore(const RestoreOptions& options) {
  return impl_->Restore(options);
}

absl::Status Checkpointer::Outcome(uint64_t id, CheckpointOutcome outcome) {
  return impl_->Outcome(id, outcome);
}

// ---------------------------------------------------------------------------------------------
// Capture

absl::StatusOr<CheckpointHandle> Checkpointer::Impl::Capture(const CheckpointOptions& copts,
                                                             bool wait) {
  MutexLock api(&api_mu);
  if (absl::Status s = completion->CheckOptions(copts); !s.ok()) return s;
  std::optional<uint64_t> id = copts.id;
  {
    MutexLock lock(&mu);
    if (copts.id.has_value() && *copts.id <= last_id) {
      return absl::InvalidArgumentError(StrCat("checkpoint id ", *copts.id, " is not above ",
                                               last_id, ", the last one this checkpointer used"));
    }
    if (restore_failed) {
      return absl::FailedPreconditionError(
          "the last restore failed, so state objects may be half-restored: restore a checkpoint "
          "before checkpointing again");
    }
    auto has_room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return in_flight < options.max_in_flight;
    };
    if (!has_room()) {
      if (!wait) {
        return absl::UnavailableError(StrCat(in_flight, " checkpoint(s) still persisting"));
      }
      mu.Await(has_room);
    }
    // An id reserved ahead by the persist thread may be older than one reserved since.
    if (!id.has_value() && reserved_id.has_value() && *reserved_id > last_id) id = reserved_id;
    reserved_id.reset();
  }
  if (!id.has_value()) {
    absl::StatusOr<uint64_t> reserved = repo->ReserveCheckpointId();
    if (!reserved.ok()) return reserved.status();
    id = *reserved;
  }

  auto job = std::make_unique<PersistJob>();
  job->id = *id;
  job->metadata = copts.metadata;
  job->epoch = copts.epoch;
  job->handle = std::make_shared<CheckpointHandle::State>();
  job->handle->id = *id;

  // --- The pause: from here until return the application must not write tracked state.
  const int64_t pause_start = NowNs();
  job->created = absl::Now();
  MutexLock lock(&mu);
  if (job->id <= last_id) {
    return absl::InternalError(StrCat("checkpoint id ", job->id, " is not above ", last_id));
  }
  last_id = job->id;
  job->parent = capture_parent;
  job->generation = generation;
  for (auto& [name, region] : regions) {
    const int64_t object_start = NowNs();
    absl::StatusOr<DirtyBitmap> dirty = RegionAccess::Collect(*region);
    if (!dirty.ok()) {
      // Nothing of this capture is lost: what earlier objects collected goes back.
      for (RegionCaptureJob& c : job->regions) {
        RegionAccess::MergeBack(*c.region, c.dirty);
        staging->Release(c.name, std::move(c.staging));
      }
      return absl::Status(dirty.status().code(),
                          StrCat("checkpoint ", *id, ": tracking of region '", name,
                                 "' failed: ", dirty.status().message()));
    }
    RegionCaptureJob c;
    c.region = region.get();
    c.name = name;
    c.tracker = std::string(region->tracker_name());
    c.block_size = region->block_size();
    c.block_count = region->block_count();
    c.dirty = *std::move(dirty);
    const ObjectLineage lineage = capture_lineage[name];
    // Without a base every block must be written (the first full checkpoint of the object).
    if (!lineage.has_base) c.dirty.SetAll();
    c.kind = options.policy->Choose(PolicyFor(name, lineage, c.dirty.Count(), c.block_count));
    if (!lineage.has_base || copts.full) c.kind = CheckpointKind::kFull;
    c.depth = c.kind == CheckpointKind::kFull ? 0 : lineage.depth + 1;
    const uint64_t bytes = c.dirty.Count() * c.block_size;
    // The first capture of an object copies all of it: not a guide to the staging it needs later.
    const bool typical = lineage.has_base;
    absl::StatusOr<StagingBuffer> staging_buffer = staging->Acquire(name, bytes, typical);
    if (!staging_buffer.ok() && options.wait_for_staging && in_flight > 0) {
      // Persisting checkpoints hold staging memory they are about to release: wait for them
      // (the pause grows by that wait; docs/trackers.md).
      mu.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return in_flight == 0; });
      staging_buffer = staging->Acquire(name, bytes, /*typical=*/false);
    }
    if (!staging_buffer.ok()) {
      RegionAccess::MergeBack(*region, c.dirty);
      for (RegionCaptureJob& other : job->regions) {
        RegionAccess::MergeBack(*other.region, other.dirty);
        staging->Release(other.name, std::move(other.staging));
      }
      return absl::Status(staging_buffer.status().code(),
                          StrCat("checkpoint ", *id, ": ", staging_buffer.status().message()));
    }
    c.staging = *std::move(staging_buffer);
    std::vector<ParallelCopier::Piece> pieces;
    char* out = c.staging.data();
    const char* base = region->data();
    const uint32_t bs = c.block_size;
    c.dirty.ForEachRun([&](uint64_t first, uint64_t count) {
      pieces.push_back(ParallelCopier::Piece{out, base + first * bs, count * bs});
      out += count * bs;
    });
    copier->Copy(pieces);
    c.pause_ns = NowNs() - object_start;
    job->regions.push_back(std::move(c));
  }
  // Keyed states: first the changes of failed checkpoints go back (see keyed_merge_back), then the
  // change set (or, without a base, every entry) is copied; records are encoded and written while
  // persisting. Cannot fail.
  for (auto& [state, changes] : keyed_merge_back) KeyedStateAccess::MergeBack(*state, changes);
  keyed_merge_back.clear();
  for (auto& [name, state] : keyed) {
    const int64_t object_start = NowNs();
    KeyedCaptureJob k;
    k.state = state.get();
    k.name = name;
    const ObjectLineage lineage = capture_lineage[name];
    k.changed = KeyedStateAccess::ChangedCount(*state);
    k.kind = options.policy->Choose(PolicyFor(name, lineage, k.changed, state->size()));
    if (!lineage.has_base || copts.full) k.kind = CheckpointKind::kFull;
    k.depth = k.kind == CheckpointKind::kFull ? 0 : lineage.depth + 1;
    k.entries = state->size();
    k.entry_bytes = state->byte_size();
    k.group_first = state->group_first();
    k.group_end = state->group_end();
    // A full checkpoint with a base still captures only the changes: persistence consolidations
    // them with the base's entries read back from the repository (a full manifest written without
    // copying the whole state in the pause). Only a state without a base is copied whole.
    k.changes = lineage.has_base ? KeyedStateAccess::CaptureChanges(*state)
                                 : KeyedStateAccess::CaptureAll(*state);
    k.pause_ns = NowNs() - object_start;
    job->keyed.push_back(std::move(k));
  }
  capture_parent = job->id;
  for (RegionCaptureJob& c : job->regions) {
    c.lineage = capture_lineage[c.name].Next(job->id, c.kind, c.depth, c.dirty.Count());
    capture_lineage[c.name] = c.lineage;
  }
  for (KeyedCaptureJob& k : job->keyed) {
    k.lineage = capture_lineage[k.name].Next(job->id, k.kind, k.depth, k.changed);
    capture_lineage[k.name] = k.lineage;
  }
  job->handle->pause = absl::Nanoseconds(NowNs() - pause_start);
  CheckpointHandle handle(job->handle);
  ++in_flight;
  in_flight_ids.insert(job->id);
  queue.push_back(std::move(job));
  return handle;
}

PolicyInput Checkpointer::Impl::PolicyFor(std::string_view name, const ObjectLineage& lineage,
                                          uint64_t changed, uint64_t size) const {
  PolicyInput in;
  in.object_name = name;
  in.has_base = lineage.has_base;
  in.depth_of_base = lineage.depth;
  in.changed_blocks = changed;
  in.block_count = size;
  in.effective_depth_of_base = lineage.effective_depth();
  in.changed_since_chain_start = lineage.changed_since_chain_start;
  in.estimated_restore_seconds = estimated_restore_seconds;
  in.recovery_time_objective_seconds = absl::ToDoubleSeconds(options.recovery_time_objective);
  in.consolidates = options.consolidate_in_background && !completion->outcomes_announced();
  return in;
}

KeyedState* Checkpointer::Impl::KeyedByName(std::string_view name) {
  MutexLock lock(&mu);
  auto it = keyed.find(name);
  return it == keyed.end() ? nullptr : it->second.get();
}

}  // namespace ickpt
