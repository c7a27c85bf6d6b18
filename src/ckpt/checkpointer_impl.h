// The checkpointer's internals, shared by its three parts: checkpointer.cc (the API and the
// capture, format.md §8), persist.cc (the persist thread, outcomes) and restore.cc (§9).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "ickpt/checkpointer.h"
#include "src/ckpt/completion.h"
#include "src/ckpt/lineage.h"
#include "src/ckpt/staging.h"
#include "src/repo/block_map.h"
#include "src/repo/writer.h"
#include "src/state/dirty_bitmap.h"
#include "src/state/keyed_state_internal.h"
#include "src/util/mutex.h"

namespace ickpt {

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

// A region captured at one checkpoint: its dirty set and a copy of those blocks.
struct RegionCaptureJob {
  Region* region = nullptr;
  std::string name;
  std::string tracker;
  uint32_t block_size = 0;
  uint64_t block_count = 0;
  DirtyBitmap dirty;
  StagingBuffer staging;  // the dirty blocks, in block order
  CheckpointKind kind = CheckpointKind::kFull;
  uint64_t depth = 0;
  ObjectLineage lineage;  // the object's lineage in this checkpoint
  int64_t pause_ns = 0;
};

// A keyed state captured at one checkpoint: its change set (or every entry, for a first capture).
struct KeyedCaptureJob {
  KeyedState* state = nullptr;
  std::string name;
  KeyedChangeSet changes;
  uint64_t changed = 0;  // entries changed since the previous capture
  CheckpointKind kind = CheckpointKind::kFull;
  uint64_t depth = 0;
  ObjectLineage lineage;  // the object's lineage in this checkpoint
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
  uint64_t epoch = 0;
  absl::Time created;
  std::map<std::string, std::string> metadata;
  std::vector<RegionCaptureJob> regions;
  std::vector<KeyedCaptureJob> keyed;
  std::shared_ptr<CheckpointHandle::State> handle;
};

struct Checkpointer::Impl {
  Repository* repo = nullptr;
  CheckpointerOptions options;
  // Local commit or group acknowledgement: the only difference between the two kinds.
  std::unique_ptr<Completion> completion;
  std::unique_ptr<CheckpointWriter> writer;

  // Serialises the API calls that change state objects or the lineage (capture, restore, add).
  Mutex api_mu;

  mutable Mutex mu;
  std::map<std::string, std::unique_ptr<Region>, std::less<>> regions ABSL_GUARDED_BY(mu);
  std::map<std::string, std::unique_ptr<KeyedState>, std::less<>> keyed ABSL_GUARDED_BY(mu);
  // Change sets of failed or aborted checkpoints, in capture order, waiting to go back into their
  // states' tracking. A keyed state's table may only be touched while the application is stopped
  // (unlike a region's atomic dirty bits), so whoever sees the failure leaves them here and the
  // next capture consolidations them back, in its pause, before it captures.
  std::vector<std::pair<KeyedState*, KeyedChangeSet>> keyed_merge_back ABSL_GUARDED_BY(mu);
  // The lineage as the next capture sees it: in-flight checkpoints assumed to succeed.
  std::optional<uint64_t> capture_parent ABSL_GUARDED_BY(mu);
  std::map<std::string, ObjectLineage, std::less<>> capture_lineage ABSL_GUARDED_BY(mu);
  std::deque<std::unique_ptr<PersistJob>> queue ABSL_GUARDED_BY(mu);
  int in_flight ABSL_GUARDED_BY(mu) = 0;
  // Ids of the checkpoints queued or persisting.
  std::set<uint64_t> in_flight_ids ABSL_GUARDED_BY(mu);
  // Bumped by every failure or abort: queued jobs of an older generation chained on it.
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  bool restore_failed ABSL_GUARDED_BY(mu) = false;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::optional<uint64_t> reserved_id ABSL_GUARDED_BY(mu);
  uint64_t last_id ABSL_GUARDED_BY(mu) = 0;  // ids must grow in the order captures start

  // Committed and pending checkpoints (lineage.h).
  Lineage lineage ABSL_GUARDED_BY(mu);
  // Outcomes announced for checkpoints still in flight, applied when they finish persisting.
  std::set<uint64_t> announced_committed ABSL_GUARDED_BY(mu);
  std::set<uint64_t> announced_aborted ABSL_GUARDED_BY(mu);
  // Checkpoints that failed or were aborted here since the last restore (above the committed
  // one), to refuse a contradicting outcome.
  std::set<uint64_t> failed_ids ABSL_GUARDED_BY(mu);

  // Pack names interned for block locations. Touched by the persist thread, and by Restore() while
  // no checkpoint is in flight (in_flight == 0 under mu orders the two).
  PackTable packs;

  std::unique_ptr<StagingPool> staging;
  std::unique_ptr<ParallelCopier> copier;
  std::thread persist_thread;
  // Background garbage collection (CheckpointerOptions::gc_after_commit): one run at a time, on
  // gc_thread, started by the persist thread after a commit.
  std::thread gc_thread;
  bool gc_running ABSL_GUARDED_BY(mu) = false;
  absl::Time last_gc ABSL_GUARDED_BY(mu);  // when the checkpointer opened or last started a run

  // Background consolidation (CheckpointerOptions::consolidate_in_background), on gc_thread too.
  // The latest estimate of the restore time of the latest committed checkpoint (negative: none).
  double estimated_restore_seconds ABSL_GUARDED_BY(mu) = -1;
  // The consolidations in force that the lineage's location tables take into account (format.md
  // §14): a complete manifest reuses blocks from those tables, which must not name packs that a
  // consolidation unknown to them made collectable (docs/policy.md §4). Set by Open and Restore,
  // and by the persist thread when it re-resolves the tables (rebase_needed).
  std::map<uint64_t, uint64_t> known_consolidations ABSL_GUARDED_BY(mu);
  bool rebase_needed ABSL_GUARDED_BY(mu) = false;
  // The background consolidation running, (checkpoint id, generation it will publish): known
  // before it is published (a rebase meanwhile keeps it known), and the tables are re-resolved
  // once it has finished.
  std::optional<std::pair<uint64_t, uint64_t>> consolidating ABSL_GUARDED_BY(mu);

  // checkpointer.cc
  absl::StatusOr<CheckpointHandle> Capture(const CheckpointOptions& copts, bool wait);
  absl::Status ValidateNewName(std::string_view name, std::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  KeyedState* KeyedByName(std::string_view name);
  // The policy's view of object `name` (docs/policy.md).
  PolicyInput PolicyFor(std::string_view name, const ObjectLineage& lineage, uint64_t changed,
                        uint64_t size) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // persist.cc
  void PersistLoop();
  // After a commit: starts a background consolidation and/or collection if one is due (persist
  // thread only).
  void MaybeStartMaintenance();
  // On gc_thread: consolidates checkpoint `id`, whose lineage was `at_id`, and measures the restore
  // estimate.
  void ConsolidateInBackground(uint64_t id,
                               const std::map<std::string, ObjectLineage, std::less<>>& at_id);
  // On gc_thread: one garbage collection, if the repository has a retention policy.
  void CollectInBackground();
  absl::StatusOr<CommitRecord> Persist(PersistJob& job);
  // Persist thread, when nothing is pending and either rebase_needed, or `about_to_reuse_blocks`
  // (the job writes complete manifests) and another process (a group's leader) published a
  // consolidation the tables do not know: re-resolves the committed checkpoint's regions from the
  // repository (with its consolidations) into the lineage's location tables, and notes the
  // consolidations in force as known. The second case keeps the check after the write
  // (CheckNoUnknownConsolidation) from failing the checkpoint.
  absl::Status RebaseIfNeeded(bool about_to_reuse_blocks);
  // Before publishing a checkpoint whose complete manifests reused blocks from the location
  // tables: FailedPrecondition (and a rebase before the next persist) if a consolidation the
  // tables do not know was published.
  absl::Status CheckNoUnknownConsolidation();
  // The first consolidation in force of a checkpoint at or below the committed head whose
  // generation the tables do not know: (id, generation), or nullopt.
  std::optional<std::pair<uint64_t, uint64_t>> UnknownConsolidation(
      const std::map<uint64_t, uint64_t>& in_force) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void ReserveAhead();
  // Gives the job's captured changes back and falls back to the newest surviving checkpoint.
  void FailJob(PersistJob& job, const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Aborts pending checkpoint `id` and every pending one built on it.
  void AbortPendingFrom(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // The capture lineage after a failure or an abort: the lineage's head.
  void FallBackToHead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  absl::Status Outcome(uint64_t id, CheckpointOutcome outcome);

  // restore.cc
  absl::StatusOr<CommitRecord> Restore(const RestoreOptions& options);
};

}  // namespace ickpt
