// The Checkpointer owns the state objects of one process (one participant) and writes their
// checkpoints to a repository: a short synchronous capture, then persistence on background threads.
//
// Thread safety: Checkpoint(), TryCheckpoint(), Restore(), AddRegion() and WaitIdle() may be called
// from any thread but are serialised internally. The application must not write tracked state while
// Checkpoint() or Restore() runs; it may write again as soon as Checkpoint() returns.
//
// fork(): the child inherits the memory but not the checkpointer's threads (persistence, the
// pause's copy workers, the trackers' event threads). It may read and write regions, but must not
// use or destroy the Checkpointer: it should exec or _exit (not return from main or call exit()
// while one is alive on its stack or in a static).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ickpt/keyed_state.h"
#include "ickpt/maintenance.h"
#include "ickpt/region.h"
#include "ickpt/repository.h"

namespace ickpt {

// What the policy knows about one state object when a checkpoint starts (docs/policy.md). Every
// field is known without I/O: Choose runs in the capture pause.
struct PolicyInput {
  std::string_view object_name;
  bool has_base = false;        // a committed (or in-flight) checkpoint holds this object
  uint64_t depth_of_base = 0;   // the base's depth in its chain (0: the base is full)
  uint64_t changed_blocks = 0;  // regions: blocks changed; keyed states: entries changed
  uint64_t block_count = 0;     // regions: blocks; keyed states: entries
  // Manifests a restore of the base reads for this object, minus one: depth_of_base, less what a
  // consolidation (format.md §14) replaced.
  uint64_t effective_depth_of_base = 0;
  // Blocks (entries) changed since the base's chain started (its full manifest or consolidation),
  // summed over its checkpoints: 1 - changed_since_chain_start / block_count bounds from below the
  // fraction of the chain's first link that a restore still reads (its live fraction).
  uint64_t changed_since_chain_start = 0;
  // The estimated restore time of the latest committed checkpoint, every state object, as the
  // checkpointer last measured it in the background (docs/policy.md §2); negative: not measured.
  double estimated_restore_seconds = -1;
  // CheckpointerOptions::recovery_time_objective in seconds; 0: none.
  double recovery_time_objective_seconds = 0;
  // The checkpointer consolidates long chains in the background (so a deep chain need not end
  // with a full checkpoint).
  bool consolidates = false;
};

// Chooses full or incremental per state object.
class CheckpointPolicy {
 public:
  virtual ~CheckpointPolicy() = default;
  virtual CheckpointKind Choose(const PolicyInput& input) const = 0;
};
// Full when there is no base, and when the chain would reach `full_every` checkpoints;
// incremental otherwise. The policy before the cost model.
std::unique_ptr<CheckpointPolicy> NewFullEveryNPolicy(uint64_t full_every = 16);

// The cost model (docs/policy.md §3): incremental unless a full checkpoint is cheaper to restore
// from at about the same cost to take.
struct CostModelOptions {
  // Full when this fraction of the object changed since the base: a full then writes about as
  // much. Default 0.5.
  double full_change_fraction = 0.5;
  // Full when the effective depth would exceed this, whatever else (a bound on the manifests a
  // restore reads should consolidation fall behind). Default 64.
  uint64_t max_effective_depth = 64;
  // Without background consolidation: full when the chain's first link is estimated less than
  // this fraction live (most of what a restore reads comes from increments). Default 0.25.
  double min_live_fraction = 0.25;
};
std::unique_ptr<CheckpointPolicy> NewCostModelPolicy(CostModelOptions options = {});

struct CheckpointerOptions {
  // This process's participant name in commit records. Default "p0".
  std::string participant = "p0";
  // Threads that compress and checksum during persistence. Default 2.
  int persist_threads = 2;
  // Packs being written to the store at once while a checkpoint persists (docs/persist.md), beside
  // the compression: more for a store with a high latency per object, fewer to hold less memory
  // (each is one pack, about RepositoryConfig::pack_target_bytes). Default 2.
  int uploads_in_flight = 2;
  // Threads that read, check and decompress during a restore: a region's packs, or a keyed state's
  // ranges of key groups, at once. Default 0: for regions the store's
  // default_read_concurrency() (16 on S3), else one per core, at least 2; for keyed states 1
  // (several threads pay off once the heap grows in large steps, e.g. with
  // GLIBC_TUNABLES=glibc.malloc.top_pad=67108864: docs/persist.md §3).
  int restore_threads = 0;
  // Checkpoints persisting at once. Default 1: Checkpoint() waits for the previous one.
  int max_in_flight = 1;
  // Default: NewCostModelPolicy().
  std::shared_ptr<const CheckpointPolicy> policy;
  // The recovery time objective: the longest a restore of the latest checkpoint should take. The
  // policy takes a full checkpoint, or the background consolidates, when the estimate exceeds it
  // (docs/policy.md). Default 60 s; zero: none.
  absl::Duration recovery_time_objective = absl::Seconds(60);
  // Consolidation in the background (format.md §14): after a commit, when the latest committed
  // checkpoint's effective depth reaches `consolidate_after_links` or its estimated restore time
  // exceeds the recovery time objective, it is consolidated with `consolidate` on the background
  // thread (with garbage collection, which follows it when due). Not for group members (the
  // coordinator's leader consolidates). Default on, at 8 links.
  bool consolidate_in_background = true;
  uint64_t consolidate_after_links = 8;
  ConsolidateOptions consolidate;
  // Memory for captured blocks from the pause until they are durable, in use and kept for reuse
  // together. Buffers are allocated and touched ahead of the pause and reused, so the pause only
  // copies. Default 0: half the physical memory.
  uint64_t staging_budget_bytes = 0;
  // When a capture needs more staging than the budget has free: wait (inside the pause) for the
  // persisting checkpoints to release theirs, then fail if it still does not fit (true, default);
  // or fail at once (false). Failing is ResourceExhausted, and nothing is lost: the changes go
  // into the next checkpoint.
  bool wait_for_staging = true;
  // Threads that copy changed blocks during the pause (the application is stopped, so its cores
  // are free). Default 0: one per core.
  int capture_threads = 0;
  // This participant's place among the participants that share keyed state: it owns key groups
  // OwnedKeyGroups(G, participant_index, participant_count) of every keyed state (format.md §5.3),
  // and restores exactly those, whoever held them when the checkpoint was taken (a rescale).
  // Default 0 of 1: every group.
  uint32_t participant_index = 0;
  uint32_t participant_count = 1;
  // One participant of a group checkpoint (format.md §11). Checkpoint() then needs
  // CheckpointOptions::id, the id reserved once for the whole group, and persisting ends with this
  // participant's acknowledgement instead of a commit record: the checkpoint exists once
  // Repository::CommitGroup has published the commit record covering every participant, and
  // CheckpointHandle::Wait() returns the acknowledgement (this participant only). The group
  // announces each checkpoint's outcome through Outcome(); until then the checkpoint is pending:
  // the next checkpoints build on it and its captured changes are kept. The participant name must
  // be a valid key component. Default false.
  bool group_member = false;
  // Group members: this participant's incarnation (one join of the process), carried in its
  // acknowledgements; a group commit that expects another incarnation refuses them (a replaced
  // process's acknowledgements never commit). Default 0.
  uint64_t incarnation = 0;
  // Garbage collection in the background (format.md §13): after a commit, when `gc_interval` has
  // passed since the checkpointer opened or since its last collection, and only in a repository
  // that has a retention policy, a collection with `gc` runs on a thread of its own (checkpoints
  // never wait for it; another process holding the maintenance lock makes it skip). Not for group
  // members, whose commits the coordinator makes. The collecting thread runs at nice 19 in the
  // idle I/O class (Linux, per thread). Default on, every 10 minutes, grace 1 hour.
  bool gc_after_commit = true;
  absl::Duration gc_interval = absl::Minutes(10);
  GcOptions gc;
};

// The outcome of a group checkpoint, as the group announces it (format.md §11).
enum class CheckpointOutcome { kCommitted, kAborted };

struct CheckpointOptions {
  // Stored in the commit record, e.g. input positions to resume from.
  std::map<std::string, std::string> metadata;
  // Group members only (CheckpointerOptions::group_member), and required there: the checkpoint id
  // the group uses, from Repository::ReserveCheckpointId. It must be above every id this
  // checkpointer used before.
  std::optional<uint64_t> id;
  // The coordinator's epoch (its leadership term), carried in the commit record or
  // acknowledgement; a group commit of another epoch refuses the acknowledgement. Default 0.
  uint64_t epoch = 0;
  // Every state object's manifest is full (the policy is not asked), e.g. when the coordinator
  // asks for a full checkpoint. Default false.
  bool full = false;
};

// What to do when the registered state objects and the checkpoint's differ at restore.
enum class OnUnregistered { kFail, kCreate, kIgnore };  // in the checkpoint, not registered
enum class OnAbsent { kFail, kIgnore };                 // registered, not in the checkpoint

struct RestoreOptions {
  // The checkpoint to restore. Default: the latest committed.
  std::optional<uint64_t> id;
  OnUnregistered on_unregistered = OnUnregistered::kFail;  // default kFail
  OnAbsent on_absent = OnAbsent::kFail;                    // default kFail
  // Called as the regions' bytes are restored, with the bytes done and the regions' total (e.g.
  // for a progress bar). Called from the restore threads, possibly several at once: keep it cheap
  // and thread-safe. Optional.
  std::function<void(uint64_t done_bytes, uint64_t total_bytes)> progress;
};

// A checkpoint that was captured and is persisting.
class CheckpointHandle {
 public:
  struct State;
  explicit CheckpointHandle(std::shared_ptr<State> state);
  uint64_t id() const;
  // How long the application had to stop writing.
  absl::Duration pause() const;
  // Blocks until the checkpoint is durable (its commit record published; for a group member, its
  // acknowledgement) or failed. A failed checkpoint left no commit record and its changes will be
  // carried by the next checkpoint.
  absl::StatusOr<CommitRecord> Wait() const;
  bool done() const;

 private:
  std::shared_ptr<State> state_;
};

class Checkpointer {
 public:
  // `repository` must outlive the checkpointer. New checkpoints chain on the repository's latest
  // commit only after Restore(); without a restore, the first checkpoint is full.
  static absl::StatusOr<std::unique_ptr<Checkpointer>> Open(Repository* repository,
                                                            CheckpointerOptions options = {});
  // Waits for persisting checkpoints to finish.
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Registers a new region (zero-filled). AlreadyExists if the name is taken, InvalidArgument for a
  // bad name or size. The region lives as long as the checkpointer.
  absl::StatusOr<Region*> AddRegion(std::string_view name, const RegionOptions& options);
  // nullptr if no region has that name.
  Region* FindRegion(std::string_view name) const;
  std::vector<Region*> regions() const;

  // Registers a new, empty keyed state. Its name shares the namespace of regions. AlreadyExists if
  // the name is taken; InvalidArgument for a bad name or key group count, or if the participants
  // outnumber the key groups. It owns the key groups of this participant (CheckpointerOptions).
  absl::StatusOr<KeyedState*> AddKeyedState(std::string_view name,
                                            const KeyedStateOptions& options = {});
  // nullptr if no keyed state has that name.
  KeyedState* FindKeyedState(std::string_view name) const;
  std::vector<KeyedState*> keyed_states() const;

  // Captures every state object and returns once the application may write again; persistence
  // continues in the background. Waits while max_in_flight checkpoints persist. Errors:
  // FailedPrecondition after a failed restore, or an I/O error reserving the id.
  absl::StatusOr<CheckpointHandle> Checkpoint(const CheckpointOptions& options = {});
  // Like Checkpoint() but returns Unavailable instead of waiting for a persisting one.
  absl::StatusOr<CheckpointHandle> TryCheckpoint(const CheckpointOptions& options = {});

  // Waits for persisting checkpoints, then rebuilds every state object bit-exact from a committed
  // checkpoint; later checkpoints chain on it (a branch if it is not the latest). Regions come
  // from this participant's part of the checkpoint; keyed states from every participant that held
  // them, restricted to the key groups this participant owns (so a checkpoint taken by N
  // participants restores onto M). The first checkpoint after restoring a keyed state from other
  // participants or other group ranges is full for it. On failure the state is undefined and
  // Checkpoint() fails until a Restore() succeeds. Errors: NotFound (no such checkpoint, or
  // objects differ as options say), DataLoss naming the damaged object.
  absl::StatusOr<CommitRecord> Restore(const RestoreOptions& options = {});

  // Group members: the group's outcome of checkpoint `id`. Committed n settles n and every pending
  // checkpoint n builds on; aborted n fails n and every checkpoint built on it (pending, persisting
  // or queued) and gives their captured changes (dirty blocks, keyed changes) back, so the next
  // checkpoint builds on the newest checkpoint not aborted and carries them: no restore is needed.
  // An outcome of a checkpoint still persisting is applied when it finishes. Repeating an outcome
  // is OK. Errors: FailedPrecondition for a checkpointer that is not a group member, or an outcome
  // that contradicts what happened here (committed n after n failed or was aborted, aborted n
  // after n was committed); NotFound for an id this checkpointer did not take since its last
  // restore.
  absl::Status Outcome(uint64_t id, CheckpointOutcome outcome);

  // Blocks until no checkpoint is persisting.
  void WaitIdle();

 private:
  struct Impl;
  explicit Checkpointer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ickpt
