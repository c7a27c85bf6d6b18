// The checkpointer: capture (format.md §8 ordering) on the caller's thread, persistence on a
// background thread, restore (format.md §9).
#include "ickpt/checkpointer.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "src/util/str.h"
#include "absl/strings/str_join.h"
#include "src/util/mutex.h"
#include "src/ckpt/block_map.h"
#include "src/ckpt/keyed_restore.h"
#include "src/ckpt/restore.h"
#include "src/ckpt/staging.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/keyed_records.h"
#include "src/repo/pack.h"
#include "src/state/keyed_state_internal.h"
#include "src/state/region_internal.h"
#include "src/util/log.h"

namespace ickpt {

// ---------------------------------------------------------------------------------------------
// CheckpointHandle

struct CheckpointHandle::State {
  uint64_t id = 0;
  absl::Duration pause;
  mutable Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::StatusOr<CommitRecord> result ABSL_GUARDED_BY(mu) = absl::UnknownError("pending");

  void Finish(absl::StatusOr<CommitRecord> r) {
    MutexLock lock(&mu);
    result = std::move(r);
    done = true;
  }
};

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

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Runs fn(i) for i in [0, n) on up to `threads` threads.
template <typename Fn>
void ParallelFor(size_t n, int threads, Fn&& fn) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < n; i = next++) fn(i);
  };
  const int t = std::max(1, std::min<int>(threads, static_cast<int>(n)));
  std::vector<std::thread> pool;
  for (int k = 1; k < t; ++k) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

bool IsAllZero(const char* p, size_t n) {
  // Blocks are page multiples: compare 8 bytes at a time.
  const char* end = p + n;
  for (; p + 8 <= end; p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if (w != 0) return false;
  }
  for (; p < end; ++p) {
    if (*p != 0) return false;
  }
  return true;
}

// Builds the extents of a manifest from blocks given in increasing order.
class ExtentBuilder {
 public:
  ExtentBuilder(uint32_t block_size, const PackTable& packs) : block_size_(block_size), packs_(packs) {}

  void Add(uint64_t block, const BlockLocation& loc) {
    const uint32_t ref = loc.is_zero() ? 0 : LocalRef(loc.pack);
    if (!extents_.empty()) {
      Extent& last = extents_.back();
      const bool adjacent = last.first_block + last.block_count == block;
      if (adjacent && last.pack_ref == ref &&
          (ref == 0 || last.raw_offset + last.block_count * block_size_ == loc.raw_offset)) {
        ++last.block_count;
        return;
      }
    }
    extents_.push_back(Extent{block, 1, ref, ref == 0 ? 0 : loc.raw_offset});
  }

  void Finish(Manifest* m) {
    m->packs = std::move(pack_table_);
    m->extents = std::move(extents_);
  }

 private:
  uint32_t LocalRef(uint32_t global) {
    auto [it, inserted] = local_.try_emplace(global, static_cast<uint32_t>(pack_table_.size() + 1));
    if (inserted) pack_table_.push_back(packs_.digest(global));
    return it->second;
  }

  uint32_t block_size_;
  const PackTable& packs_;
  absl::flat_hash_map<uint32_t, uint32_t> local_;
  std::vector<Sha256Digest> pack_table_;
  std::vector<Extent> extents_;
};

// The part of a state object's chain the next capture needs.
struct Lineage {
  bool has_base = false;
  uint64_t depth = 0;
};

// A state object as of the latest committed checkpoint of this checkpointer's lineage.
struct CommittedObject {
  Lineage lineage;
  std::vector<BlockLocation> locations;
};

struct ObjectCapture {
  Region* region = nullptr;
  std::string name;
  std::string tracker;
  uint32_t block_size = 0;
  uint64_t block_count = 0;
  DirtyBitmap dirty;
  StagingBuffer staging;  // the dirty blocks, in block order
  CheckpointKind kind = CheckpointKind::kFull;
  uint64_t depth = 0;
  int64_t pause_ns = 0;
};

// A keyed state captured at one checkpoint: its change set (or every entry, for a full one).
struct KeyedCapture {
  KeyedState* state = nullptr;
  std::string name;
  KeyedChangeSet changes;
  CheckpointKind kind = CheckpointKind::kFull;
  uint64_t depth = 0;
  uint64_t entries = 0;
  uint64_t entry_bytes = 0;
  uint32_t group_first = 0;
  uint32_t group_end = 0;
  int64_t pause_ns = 0;
};

struct PersistJob {
  uint64_t id = 0;
  std::optional<uint64_t> parent;
  uint64_t generation = 0;
  absl::Time created;
  std::map<std::string, std::string> metadata;
  std::vector<ObjectCapture> objects;
  std::vector<KeyedCapture> keyed;
  std::shared_ptr<CheckpointHandle::State> handle;
};

class MemorySink final : public RestoreSink {
 public:
  explicit MemorySink(char* base) : base_(base) {}
  absl::Status Write(uint64_t offset, std::string_view data) override {
    std::memcpy(base_ + offset, data.data(), data.size());
    return absl::OkStatus();
  }
  absl::Status WriteZeros(uint64_t offset, uint64_t length) override {
    // Dropping whole pages of a private anonymous mapping makes them read as zero without
    // touching them: a sparse region restores without faulting in its holes.
    const uint64_t page = 4096;
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

 private:
  char* base_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Checkpointer::Impl

struct Checkpointer::Impl {
  Repository* repo = nullptr;
  CheckpointerOptions options;

  // Serialises the API calls that change state objects or the lineage (capture, restore, add).
  Mutex api_mu;

  mutable Mutex mu;
  std::map<std::string, std::unique_ptr<Region>, std::less<>> regions ABSL_GUARDED_BY(mu);
  std::map<std::string, std::unique_ptr<KeyedState>, std::less<>> keyed ABSL_GUARDED_BY(mu);
  // Change sets of failed checkpoints, in capture order, waiting to go back into their states'
  // tracking. A keyed state's table may only be touched while the application is stopped (unlike
  // a region's atomic dirty bits), so the persist thread that sees the failure leaves them here and
  // the next capture merges them back, in its pause, before it captures.
  std::vector<std::pair<KeyedState*, KeyedChangeSet>> keyed_merge_back ABSL_GUARDED_BY(mu);
  // The lineage as the next capture sees it: in-flight checkpoints assumed to succeed.
  std::optional<uint64_t> capture_parent ABSL_GUARDED_BY(mu);
  std::map<std::string, Lineage, std::less<>> capture_lineage ABSL_GUARDED_BY(mu);
  std::deque<std::unique_ptr<PersistJob>> queue ABSL_GUARDED_BY(mu);
  int in_flight ABSL_GUARDED_BY(mu) = 0;
  // Bumped by every failure: queued jobs of an older generation chained on the failed one.
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  bool restore_failed ABSL_GUARDED_BY(mu) = false;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::optional<uint64_t> reserved_id ABSL_GUARDED_BY(mu);
  uint64_t last_id ABSL_GUARDED_BY(mu) = 0;  // ids must grow in the order captures start

  // The committed lineage. Touched only by the persist thread, and by Restore() while no
  // checkpoint is in flight (in_flight == 0 under mu orders the two).
  std::optional<uint64_t> committed_parent;
  std::map<std::string, CommittedObject, std::less<>> committed;
  PackTable packs;

  std::unique_ptr<StagingPool> staging;
  std::unique_ptr<ParallelCopier> copier;
  std::thread persist_thread;

  absl::StatusOr<CheckpointHandle> Capture(const CheckpointOptions& copts, bool wait);
  void PersistLoop();
  absl::StatusOr<CommitRecord> Persist(PersistJob& job);
  absl::StatusOr<StateObjectRecord> PersistObject(const PersistJob& job, ObjectCapture& capture,
                                                  std::vector<std::pair<uint64_t, BlockLocation>>* fresh);
  absl::StatusOr<StateObjectRecord> PersistKeyed(const PersistJob& job, KeyedCapture& capture);
  // Compresses `frames` (in parallel), writes them as one pack and returns it. `what` names the
  // state object in errors ("region 'grid'").
  absl::StatusOr<FinishedPack> WritePack(const PersistJob& job, const std::vector<std::string_view>& frames,
                                         std::string_view what);
  // Writes manifest `m` and returns the record naming it, with name, type, kind and depth set.
  absl::StatusOr<StateObjectRecord> WriteManifest(const PersistJob& job, const Manifest& m,
                                                  std::string_view what);
  absl::Status ValidateNewName(std::string_view name, std::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  KeyedState* KeyedByName(std::string_view name);
  void FailJob(PersistJob& job, const absl::Status& status);
  void ReserveAhead();
  absl::StatusOr<CommitRecord> Restore(const RestoreOptions& options);
};

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
  if (!options.policy) options.policy = NewFullEveryNPolicy(16);
  if (options.staging_budget_bytes == 0) options.staging_budget_bytes = DefaultStagingBudget();
  if (options.capture_threads < 1) {
    options.capture_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  auto impl = std::make_unique<Impl>();
  impl->staging = std::make_unique<StagingPool>(options.staging_budget_bytes);
  impl->copier = std::make_unique<ParallelCopier>(options.capture_threads);
  impl->repo = repository;
  impl->options = std::move(options);
  Impl* raw = impl.get();
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
}

absl::StatusOr<Region*> Checkpointer::AddRegion(std::string_view name, const RegionOptions& options) {
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
  if (absl::Status s = ValidateObjectKey(name); !s.ok() || name.find('/') != std::string_view::npos) {
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

// ---------------------------------------------------------------------------------------------
// Capture

absl::StatusOr<CheckpointHandle> Checkpointer::Impl::Capture(const CheckpointOptions& copts,
                                                             bool wait) {
  MutexLock api(&api_mu);
  std::optional<uint64_t> id;
  if (options.group_member != copts.id.has_value()) {
    return absl::InvalidArgumentError(
        options.group_member
            ? "a group member's checkpoint needs the group's checkpoint id (CheckpointOptions::id)"
            : "CheckpointOptions::id is for group members only: this checkpointer reserves its "
              "own ids");
  }
  if (copts.id.has_value()) id = copts.id;
  {
    MutexLock lock(&mu);
    if (copts.id.has_value() && *copts.id <= last_id) {
      return absl::InvalidArgumentError(StrCat("checkpoint id ", *copts.id,
                                               " is not above ", last_id,
                                               ", the last one this checkpointer used"));
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
    if (!options.group_member) reserved_id.reset();
  }
  if (!id.has_value()) {
    absl::StatusOr<uint64_t> reserved = repo->ReserveCheckpointId();
    if (!reserved.ok()) return reserved.status();
    id = *reserved;
  }

  auto job = std::make_unique<PersistJob>();
  job->id = *id;
  job->metadata = copts.metadata;
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
      for (ObjectCapture& c : job->objects) {
        RegionAccess::MergeBack(*c.region, c.dirty);
        staging->Release(c.name, std::move(c.staging));
      }
      return absl::Status(dirty.status().code(),
                          StrCat("checkpoint ", *id, ": tracking of region '", name,
                                       "' failed: ", dirty.status().message()));
    }
    ObjectCapture c;
    c.region = region.get();
    c.name = name;
    c.tracker = std::string(region->tracker_name());
    c.block_size = region->block_size();
    c.block_count = region->block_count();
    c.dirty = *std::move(dirty);
    const Lineage lineage = capture_lineage[name];
    // Without a base every block must be written (the first full checkpoint of the object).
    if (!lineage.has_base) c.dirty.SetAll();
    c.kind = options.policy->Choose(PolicyInput{name, lineage.has_base, lineage.depth,
                                                c.dirty.Count(), c.block_count});
    if (!lineage.has_base) c.kind = CheckpointKind::kFull;
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
      for (ObjectCapture& other : job->objects) {
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
    job->objects.push_back(std::move(c));
  }
  // Keyed states: first the changes of failed checkpoints go back (see keyed_merge_back), then the
  // change set (or, without a base, every entry) is copied; records are encoded and written while
  // persisting. Cannot fail.
  for (auto& [state, changes] : keyed_merge_back) KeyedStateAccess::MergeBack(*state, changes);
  keyed_merge_back.clear();
  for (auto& [name, state] : keyed) {
    const int64_t object_start = NowNs();
    KeyedCapture k;
    k.state = state.get();
    k.name = name;
    const Lineage lineage = capture_lineage[name];
    k.kind = options.policy->Choose(PolicyInput{name, lineage.has_base, lineage.depth,
                                                KeyedStateAccess::ChangedCount(*state),
                                                state->size()});
    if (!lineage.has_base) k.kind = CheckpointKind::kFull;
    k.depth = k.kind == CheckpointKind::kFull ? 0 : lineage.depth + 1;
    k.entries = state->size();
    k.entry_bytes = state->byte_size();
    k.group_first = state->group_first();
    k.group_end = state->group_end();
    // A full checkpoint with a base still captures only the changes: persistence merges them with
    // the base's entries read back from the repository (a full manifest written without copying
    // the whole state in the pause). Only a state without a base is copied whole.
    k.changes = lineage.has_base ? KeyedStateAccess::CaptureChanges(*state)
                                 : KeyedStateAccess::CaptureAll(*state);
    k.pause_ns = NowNs() - object_start;
    job->keyed.push_back(std::move(k));
  }
  capture_parent = job->id;
  for (const ObjectCapture& c : job->objects) capture_lineage[c.name] = Lineage{true, c.depth};
  for (const KeyedCapture& k : job->keyed) capture_lineage[k.name] = Lineage{true, k.depth};
  job->handle->pause = absl::Nanoseconds(NowNs() - pause_start);
  CheckpointHandle handle(job->handle);
  ++in_flight;
  queue.push_back(std::move(job));
  return handle;
}

// ---------------------------------------------------------------------------------------------
// Persist

void Checkpointer::Impl::PersistLoop() {
  for (;;) {
    std::unique_ptr<PersistJob> job;
    bool stale = false;
    {
      MutexLock lock(&mu);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !queue.empty() || stopping; };
      mu.Await(ready);
      if (queue.empty()) return;  // stopping, and everything queued has persisted
      job = std::move(queue.front());
      queue.pop_front();
      stale = job->generation != generation;
    }
    // Reserve the next id now, off the application's path, so the next capture needs no I/O.
    // Done before this checkpoint persists so that it is ready when the next capture starts.
    ReserveAhead();
    absl::StatusOr<CommitRecord> result =
        stale ? absl::AbortedError(StrCat("checkpoint ", job->id,
                                                " was not persisted: a checkpoint it builds on failed"))
              : Persist(*job);
    if (!result.ok()) FailJob(*job, result.status());
    for (ObjectCapture& c : job->objects) staging->Release(c.name, std::move(c.staging));
    // Before the next capture may start: allocate and touch its staging now, so that its pause
    // only copies.
    staging->Prepare();
    {
      // Leave the in-flight count before waking waiters, so that a caller returning from Wait()
      // finds room for its next checkpoint.
      MutexLock lock(&mu);
      --in_flight;
    }
    job->handle->Finish(std::move(result));
  }
}

void Checkpointer::Impl::ReserveAhead() {
  {
    MutexLock lock(&mu);
    // A group member's ids come from the group.
    if (reserved_id.has_value() || stopping || options.group_member) return;
  }
  absl::StatusOr<uint64_t> next = repo->ReserveCheckpointId();
  if (!next.ok()) {
    // Not fatal: the next Checkpoint() reserves its id itself and reports the error if it
    // persists.
    ICKPT_LOG_ONCE("reserve-ahead", LogLevel::kWarn,
                   "reserving the next checkpoint id ahead failed: {}", next.status().ToString());
    return;
  }
  MutexLock lock(&mu);
  if (!reserved_id.has_value() && *next > last_id) reserved_id = *next;
}

void Checkpointer::Impl::FailJob(PersistJob& job, const absl::Status& status) {
  ICKPT_LOG_WARN("checkpoint {} failed, its changes go into the next checkpoint: {}", job.id,
                 status.ToString());
  MutexLock lock(&mu);
  // Everything this checkpoint captured goes back into the dirty sets, so the next checkpoint
  // carries it (nothing is lost), and the lineage falls back to what is committed.
  for (ObjectCapture& c : job.objects) RegionAccess::MergeBack(*c.region, c.dirty);
  for (KeyedCapture& k : job.keyed) keyed_merge_back.emplace_back(k.state, std::move(k.changes));
  ++generation;
  capture_parent = committed_parent;
  capture_lineage.clear();
  for (const auto& [name, object] : committed) capture_lineage[name] = object.lineage;
}

absl::StatusOr<CommitRecord> Checkpointer::Impl::Persist(PersistJob& job) {
  CommitRecord record;
  record.id = job.id;
  record.parent = job.parent;
  record.created = job.created;
  record.metadata = job.metadata;
  ParticipantRecord participant;
  participant.name = options.participant;
  std::vector<std::vector<std::pair<uint64_t, BlockLocation>>> fresh(job.objects.size());
  bool all_full = true;
  for (size_t i = 0; i < job.objects.size(); ++i) {
    absl::StatusOr<StateObjectRecord> object = PersistObject(job, job.objects[i], &fresh[i]);
    if (!object.ok()) return object.status();
    all_full = all_full && object->kind == CheckpointKind::kFull;
    record.depth = std::max(record.depth, object->depth);
    record.logical_bytes += object->logical_bytes;
    record.stored_bytes += object->stored_bytes;
    participant.state_objects.push_back(*std::move(object));
  }
  for (KeyedCapture& k : job.keyed) {
    absl::StatusOr<StateObjectRecord> object = PersistKeyed(job, k);
    if (!object.ok()) return object.status();
    all_full = all_full && object->kind == CheckpointKind::kFull;
    record.depth = std::max(record.depth, object->depth);
    record.logical_bytes += object->logical_bytes;
    record.stored_bytes += object->stored_bytes;
    participant.state_objects.push_back(*std::move(object));
  }
  record.kind = all_full ? CheckpointKind::kFull : CheckpointKind::kIncremental;
  record.participants.push_back(std::move(participant));
  if (options.group_member) {
    // Durable manifests, then the acknowledgement; the group commit publishes the record.
    if (absl::Status s = repo->PublishAck(record); !s.ok()) {
      return absl::Status(s.code(), StrCat("checkpoint ", job.id,
                                           ": publishing the acknowledgement failed: ",
                                           s.message()));
    }
  } else if (absl::Status s = repo->PublishCommit(record); !s.ok()) {
    return absl::Status(s.code(), StrCat("checkpoint ", job.id,
                                               ": publishing the commit record failed: ",
                                               s.message()));
  }
  ICKPT_LOG_DEBUG("checkpoint {} committed: {} {} bytes stored", job.id,
                  CheckpointKindName(record.kind), record.stored_bytes);
  // Committed: the lineage moves on.
  committed_parent = job.id;
  for (size_t i = 0; i < job.objects.size(); ++i) {
    const ObjectCapture& c = job.objects[i];
    CommittedObject& object = committed[c.name];
    object.lineage = Lineage{true, c.depth};
    object.locations.resize(c.block_count);
    for (const auto& [block, loc] : fresh[i]) object.locations[block] = loc;
  }
  for (const KeyedCapture& k : job.keyed) committed[k.name] = CommittedObject{Lineage{true, k.depth}, {}};
  return record;
}

absl::StatusOr<FinishedPack> Checkpointer::Impl::WritePack(
    const PersistJob& job, const std::vector<std::string_view>& frames, std::string_view what) {
  std::vector<EncodedFrame> encoded(frames.size());
  ParallelFor(frames.size(), options.persist_threads, [&](size_t i) {
    encoded[i] = EncodeFrame(frames[i], repo->config().compression_level);
  });
  PackBuilder builder;
  for (EncodedFrame& f : encoded) builder.AddFrame(std::move(f));
  FinishedPack pack = builder.Finish();
  const std::string key = PackKey(pack.sha256_hex);
  if (absl::Status s = repo->store()->Put(key, pack.bytes); !s.ok()) {
    return absl::Status(s.code(), StrCat("checkpoint ", job.id, ": writing pack ", key, " of ",
                                         what, " failed: ", s.message()));
  }
  return pack;
}

absl::StatusOr<StateObjectRecord> Checkpointer::Impl::WriteManifest(const PersistJob& job,
                                                                    const Manifest& m,
                                                                    std::string_view what) {
  const std::string bytes = EncodeManifest(m);
  const std::string sha = ToHex(Sha256(bytes));
  const std::string key = ManifestKey(sha);
  if (absl::Status s = repo->store()->Put(key, bytes); !s.ok()) {
    return absl::Status(s.code(), StrCat("checkpoint ", job.id, ": writing manifest ", key, " of ",
                                         what, " failed: ", s.message()));
  }
  StateObjectRecord r;
  r.name = m.object_name;
  r.type = m.object_type;
  r.manifest = key;
  r.manifest_sha256 = sha;
  r.manifest_bytes = bytes.size();
  r.kind = m.kind;
  r.depth = m.depth;
  return r;
}

absl::StatusOr<StateObjectRecord> Checkpointer::Impl::PersistKeyed(const PersistJob& job,
                                                                   KeyedCapture& k) {
  const int64_t start = NowNs();
  const RepositoryConfig& config = repo->config();
  // Grouping and sorting were left out of the pause.
  k.changes.Sort();
  const KeyedChangeSet& changes = k.changes;
  const std::string what = StrCat("keyed state '", k.name, "'");
  Manifest m;
  m.checkpoint_id = job.id;
  m.kind = k.kind;
  m.depth = k.depth;
  if (k.kind == CheckpointKind::kIncremental) m.base_id = job.parent;
  m.participant = options.participant;
  m.object_name = k.name;
  m.object_type = StateObjectType::kKeyed;
  m.key_groups = changes.key_groups();
  m.group_first = k.group_first;
  m.group_end = k.group_end;
  m.entry_count = k.entries;
  m.entry_bytes = k.entry_bytes;
  uint64_t pack_bytes = 0;

  // The records of whole key groups, in group order, go into a raw stream that is cut into frames
  // and closed as a pack at about the target size, at a group boundary (format.md §5.3: a group's
  // records lie in one pack).
  std::string raw;
  std::vector<KeyGroupSpan> pending;
  auto flush = [&]() -> absl::Status {
    if (raw.empty()) return absl::OkStatus();
    std::vector<std::string_view> frames;
    for (size_t at = 0; at < raw.size(); at += kMaxFrameRawBytes) {
      frames.push_back(std::string_view(raw).substr(at, kMaxFrameRawBytes));
    }
    absl::StatusOr<FinishedPack> pack = WritePack(job, frames, what);
    if (!pack.ok()) return pack.status();
    pack_bytes += pack->bytes.size();
    m.packs.push_back(*Sha256FromHex(pack->sha256_hex));
    for (KeyGroupSpan& span : pending) {
      span.pack_ref = static_cast<uint32_t>(m.packs.size());
      m.groups.push_back(span);
    }
    pending.clear();
    raw.clear();
    return absl::OkStatus();
  };
  // The records of one key group: appended to the raw stream as one span.
  auto add_group = [&](uint32_t group, auto&& for_each_record) -> absl::Status {
    if (group < k.group_first || group >= k.group_end) {
      return absl::InternalError(StrCat("checkpoint ", job.id, ": keyed state '", k.name,
                                        "' holds a key of group ", group, " outside its groups [",
                                        k.group_first, ", ", k.group_end, ")"));
    }
    KeyGroupSpan span;
    span.group = group;
    span.raw_offset = raw.size();
    for_each_record([&](std::string_view key, std::string_view value, bool erased) {
      AppendKeyedRecord(&raw, key, value, erased);
      ++span.records;
      if (erased) ++span.tombstones;
    });
    span.raw_length = raw.size() - span.raw_offset;
    if (span.records == 0) return absl::OkStatus();
    pending.push_back(span);
    if (raw.size() >= config.pack_target_bytes) return flush();
    return absl::OkStatus();
  };
  const bool merge_with_base = k.kind == CheckpointKind::kFull && !changes.full();
  if (!merge_with_base) {
    for (size_t i = 0; i < changes.size();) {
      const uint32_t group = changes.entry(i).key_group;
      size_t end = i;
      while (end < changes.size() && changes.entry(end).key_group == group) ++end;
      absl::Status s = add_group(group, [&](auto&& append) {
        for (size_t j = i; j < end; ++j) {
          const ChangedEntry e = changes.entry(j);
          append(e.key, e.value, e.erased);
        }
      });
      if (!s.ok()) return s;
      i = end;
    }
  } else {
    // A full manifest from the committed base (this participant's chain, read back group by group)
    // with the change set laid over it. The base is committed: checkpoints persist in order, and
    // one whose parent failed is never persisted.
    auto failed = [&](const absl::Status& s) {
      return absl::Status(s.code(), StrCat("checkpoint ", job.id, ": merging keyed state '",
                                           k.name, "' with its base, checkpoint ",
                                           job.parent.value_or(0), ": ", s.message()));
    };
    if (!job.parent.has_value()) return absl::InternalError("a merged full checkpoint without base");
    absl::StatusOr<CommitRecord> parent = repo->ReadCommit(*job.parent);
    if (absl::IsNotFound(parent.status()) && options.group_member) {
      // The group may not have committed the parent yet; this participant's acknowledgement
      // holds its part. (Should the group never commit it, this checkpoint cannot commit either.)
      parent = repo->ReadAck(*job.parent, options.participant);
    }
    if (!parent.ok()) return failed(parent.status());
    absl::StatusOr<ResolvedKeyed> base = ResolveKeyedOf(*repo, *parent, options.participant, k.name);
    if (!base.ok()) return failed(base.status());
    std::map<std::string, PackIndex> indexes;
    uint64_t merged_entries = 0, merged_bytes = 0;
    for (uint32_t group = k.group_first; group < k.group_end; ++group) {
      struct MapSink final : KeyedRestoreSink {
        bool Contains(std::string_view key) const override { return map.contains(key); }
        absl::Status Put(std::string_view key, std::string_view value) override {
          map.emplace(key, value);
          return absl::OkStatus();
        }
        std::map<std::string, std::string, std::less<>> map;
      } sink;
      KeyedReadOptions read;
      read.group_first = group;
      read.group_end = group + 1;
      read.index_cache = &indexes;
      absl::StatusOr<KeyedReadStats> stats = ReadKeyed(*repo, *base, read, &sink);
      if (!stats.ok()) return failed(stats.status());
      const auto [first, end] = changes.GroupRange(group);
      for (size_t j = first; j < end; ++j) {
        const ChangedEntry e = changes.entry(j);
        if (e.erased) {
          auto it = sink.map.find(e.key);
          if (it != sink.map.end()) sink.map.erase(it);
        } else {
          sink.map.insert_or_assign(std::string(e.key), std::string(e.value));
        }
      }
      absl::Status s = add_group(group, [&](auto&& append) {
        for (const auto& [key, value] : sink.map) {
          append(key, value, false);
          ++merged_entries;
          merged_bytes += key.size() + value.size();
        }
      });
      if (!s.ok()) return s;
    }
    // The merge must arrive at exactly the state the capture saw.
    if (merged_entries != k.entries || merged_bytes != k.entry_bytes) {
      return absl::InternalError(StrCat(
          "checkpoint ", job.id, ": keyed state '", k.name, "' merged with its base holds ",
          merged_entries, " entries of ", merged_bytes, " bytes, the state held ", k.entries,
          " of ", k.entry_bytes));
    }
  }
  if (absl::Status s = flush(); !s.ok()) return s;

  absl::StatusOr<StateObjectRecord> written = WriteManifest(job, m, what);
  if (!written.ok()) return written.status();
  StateObjectRecord& r = *written;
  r.tracker = "keyed";
  r.logical_bytes = k.entry_bytes;
  r.changed_blocks = 0;
  // What the capture copied: the changes (also for a full checkpoint merged with its base).
  r.raw_bytes = changes.raw_bytes();
  r.stored_bytes = pack_bytes + r.manifest_bytes;
  r.pause_ns = k.pause_ns;
  r.persist_ns = NowNs() - start;
  r.key_groups = changes.key_groups();
  r.entries = k.entries;
  // A full manifest holds no tombstones; its changed entries are those captured.
  r.changed_entries = changes.size();
  r.tombstones = k.kind == CheckpointKind::kFull ? 0 : changes.tombstone_count();
  return r;
}

absl::StatusOr<StateObjectRecord> Checkpointer::Impl::PersistObject(
    const PersistJob& job, ObjectCapture& c,
    std::vector<std::pair<uint64_t, BlockLocation>>* fresh) {
  const int64_t start = NowNs();
  const RepositoryConfig& config = repo->config();
  const uint32_t bs = c.block_size;
  const std::string what = StrCat("region '", c.name, "'");
  uint64_t pack_bytes = 0;

  // Blocks of the current batch (one future pack): (block, offset in the pack's raw stream).
  std::vector<std::pair<uint64_t, uint64_t>> batch_blocks;
  std::vector<std::string> frames;  // raw frames of the batch
  uint64_t batch_raw = 0;
  auto flush = [&]() -> absl::Status {
    if (frames.empty()) return absl::OkStatus();
    absl::StatusOr<FinishedPack> pack =
        WritePack(job, std::vector<std::string_view>(frames.begin(), frames.end()), what);
    if (!pack.ok()) return pack.status();
    pack_bytes += pack->bytes.size();
    const uint32_t pack_index = packs.Intern(*Sha256FromHex(pack->sha256_hex));
    for (const auto& [block, raw_offset] : batch_blocks) {
      fresh->emplace_back(block, BlockLocation{pack_index, raw_offset});
    }
    batch_blocks.clear();
    frames.clear();
    batch_raw = 0;
    return absl::OkStatus();
  };

  // Cut the dirty blocks into frames at block boundaries (≤ 64 KiB raw; a bigger block is split),
  // zero blocks into zero extents, and the frames into packs of about the target size.
  // A frame holds only adjacent blocks: a restore reads whole frames, so a frame mixing unrelated
  // blocks would make it read blocks that newer checkpoints replaced, and restore work would grow
  // with chain depth (format.md §9).
  const char* data = c.staging.data();
  absl::Status status;
  uint64_t next_adjacent = UINT64_MAX;  // the block that may continue the current frame
  c.dirty.ForEachRun([&](uint64_t first, uint64_t count) {
    for (uint64_t b = first; b < first + count && status.ok(); ++b, data += bs) {
      if (IsAllZero(data, bs)) {
        fresh->emplace_back(b, BlockLocation{BlockLocation::kZero, 0});
        continue;
      }
      batch_blocks.emplace_back(b, batch_raw);
      const bool adjacent = b == next_adjacent;
      next_adjacent = b + 1;
      for (uint32_t off = 0; off < bs;) {
        const uint32_t piece = std::min<uint32_t>(bs - off, kMaxFrameRawBytes);
        if (frames.empty() || (off == 0 && !adjacent) ||
            frames.back().size() + piece > kMaxFrameRawBytes) {
          frames.emplace_back();
        }
        frames.back().append(data + off, piece);
        off += piece;
      }
      batch_raw += bs;
      if (batch_raw >= config.pack_target_bytes) status = flush();
    }
  });
  if (status.ok()) status = flush();
  if (!status.ok()) return status;
  std::sort(fresh->begin(), fresh->end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  Manifest m;
  m.checkpoint_id = job.id;
  m.kind = c.kind;
  m.depth = c.depth;
  if (c.kind == CheckpointKind::kIncremental) m.base_id = job.parent;
  m.participant = options.participant;
  m.object_name = c.name;
  m.object_type = StateObjectType::kRegion;
  m.block_size = bs;
  m.block_count = c.block_count;
  ExtentBuilder extents(bs, packs);
  if (c.kind == CheckpointKind::kIncremental) {
    for (const auto& [block, loc] : *fresh) extents.Add(block, loc);
  } else {
    // A complete manifest: captured blocks where captured, the committed location elsewhere (data
    // already in the repository is reused, not rewritten).
    const auto it = committed.find(c.name);
    const std::vector<BlockLocation>* base = it == committed.end() ? nullptr : &it->second.locations;
    size_t k = 0;
    for (uint64_t b = 0; b < c.block_count; ++b) {
      if (k < fresh->size() && (*fresh)[k].first == b) {
        extents.Add(b, (*fresh)[k++].second);
      } else if (base != nullptr && b < base->size()) {
        extents.Add(b, (*base)[b]);
      } else {
        return absl::InternalError(StrCat("checkpoint ", job.id, ": block ", b,
                                                " of region '", c.name,
                                                "' was neither captured nor committed before"));
      }
    }
  }
  extents.Finish(&m);
  absl::StatusOr<StateObjectRecord> written = WriteManifest(job, m, what);
  if (!written.ok()) return written.status();
  StateObjectRecord& r = *written;
  r.tracker = c.tracker;
  r.logical_bytes = c.block_count * bs;
  r.changed_blocks = c.dirty.Count();
  r.raw_bytes = r.changed_blocks * bs;
  r.stored_bytes = pack_bytes + r.manifest_bytes;
  r.pause_ns = c.pause_ns;
  r.persist_ns = NowNs() - start;
  staging->Release(c.name, std::move(c.staging));  // durable: the memory may serve the next capture
  return r;
}

// ---------------------------------------------------------------------------------------------
// Restore

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
          StrCat("repository ", repo->store()->Describe(), " has no checkpoint to restore"));
    }
    id = **latest;
  }
  absl::StatusOr<CommitRecord> commit = repo->ReadCommit(id);
  if (!commit.ok()) return commit.status();
  // Regions come from this participant's part of the checkpoint; keyed states from every
  // participant's (format.md §9.1), so a participant that was not in the checkpoint (after a
  // rescale) may still restore keyed state.
  const std::vector<std::string> keyed_in_checkpoint = KeyedStateNames(*commit);
  absl::StatusOr<const ParticipantRecord*> participant = FindParticipant(*commit, options.participant);
  if (!participant.ok() && keyed_in_checkpoint.empty()) return participant.status();
  const ParticipantRecord* mine = participant.ok() ? *participant : nullptr;

  // Decide what to restore before touching any state.
  std::vector<std::string> unregistered, absent, to_create, to_restore;
  std::vector<std::string> keyed_to_create, keyed_to_restore;
  std::set<std::string> in_checkpoint;
  {
    MutexLock lock(&mu);
    auto mismatch = [&](const std::string& name, std::string_view stored) {
      return absl::FailedPreconditionError(
          StrCat("state object '", name, "' is a ", stored, " in checkpoint ", id,
                 " but is registered as a ", stored == "region" ? "keyed state" : "region"));
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
    return absl::NotFoundError(StrCat("registered state objects are not in checkpoint ", id,
                                            ": ", absl::StrJoin(absent, ", "),
                                            " (restore with ignore to keep them as they are)"));
  }
  if (ropts.on_unregistered == OnUnregistered::kCreate) {
    for (const std::string& name : unregistered) {
      if (std::find(keyed_to_create.begin(), keyed_to_create.end(), name) != keyed_to_create.end()) {
        continue;
      }
      to_create.push_back(name);
      to_restore.push_back(name);
    }
    keyed_to_restore.insert(keyed_to_restore.end(), keyed_to_create.begin(), keyed_to_create.end());
  } else {
    keyed_to_create.clear();
  }

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
      return absl::FailedPreconditionError(StrCat(
          "region '", name, "' has block size ", region->block_size(), " but checkpoint ", id,
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
    ICKPT_LOG_ERROR("restore of checkpoint {} failed; checkpoints are refused until a restore "
                    "succeeds: {}", id, s.ToString());
    MutexLock lock(&mu);
    restore_failed = true;
    return s;
  };
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
  for (auto& [name, r] : resolved) {
    Region* region = nullptr;
    {
      MutexLock lock(&mu);
      region = regions.at(name).get();
    }
    if (absl::Status s = RegionAccess::Resize(*region, r.block_count); !s.ok()) return fail(s);
    MemorySink sink(region->data());
    absl::StatusOr<ReadStats> stats =
        ReadObjectData(*repo, r, packs, &sink, std::max(2, options.persist_threads));
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
    class StateSink final : public KeyedRestoreSink {
     public:
      explicit StateSink(KeyedState* state) : state_(state) {}
      bool Contains(std::string_view key) const override { return state_->Contains(key); }
      absl::Status Put(std::string_view key, std::string_view value) override {
        return state_->Put(key, value);
      }

     private:
      KeyedState* state_;
    } sink(state);
    KeyedReadOptions read;
    read.group_first = state->group_first();
    read.group_end = state->group_end();
    absl::StatusOr<KeyedReadStats> stats = ReadKeyed(*repo, r, read, &sink);
    if (!stats.ok()) return fail(stats.status());
    KeyedStateAccess::Rebaseline(*state);
  }

  ICKPT_LOG_INFO("restored checkpoint {} ({} state objects)", id,
                 resolved.size() + resolved_keyed.size());
  // The restored checkpoint is the new lineage: later checkpoints chain on it.
  committed.clear();
  for (auto& [name, r] : resolved) {
    committed[name] = CommittedObject{Lineage{true, r.depth}, std::move(r.locations)};
  }
  for (auto& [name, r] : resolved_keyed) {
    // A keyed state continues its chain only if this participant held exactly these groups when
    // the checkpoint was taken; after a rescale its next checkpoint is full (format.md §5.3).
    // (Participants' ranges are disjoint, so a chain of ours over exactly our range is the only
    // source of our groups.)
    KeyedState* state = KeyedByName(name);
    Lineage lineage;
    for (const KeyedChain& chain : r.chains) {
      if (chain.participant == options.participant && chain.group_first == state->group_first() &&
          chain.group_end == state->group_end()) {
        lineage = Lineage{true, chain.manifests.front().depth};
      }
    }
    committed[name] = CommittedObject{lineage, {}};
  }
  committed_parent = id;
  MutexLock lock(&mu);
  keyed_merge_back.clear();  // the restored states replace what those changes were about
  capture_parent = id;
  capture_lineage.clear();
  for (const auto& [name, object] : committed) capture_lineage[name] = object.lineage;
  ++generation;
  restore_failed = false;
  return *std::move(commit);
}

KeyedState* Checkpointer::Impl::KeyedByName(std::string_view name) {
  MutexLock lock(&mu);
  auto it = keyed.find(name);
  return it == keyed.end() ? nullptr : it->second.get();
}

}  // namespace ickpt
