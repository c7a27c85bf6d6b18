// The lineage of a checkpointer: the checkpoint its next checkpoint builds on, and what it needs
// of each state object there (format.md §8.4, §11).
//
// A checkpoint persisted by this participant is *settled* once its outcome is known: committed (its
// commit record exists) or aborted. A process's own checkpoint settles as committed when its commit
// record is published. A group member's checkpoint is *pending* from its acknowledgement until the
// coordinator announces its outcome (Checkpointer::Outcome): a pending checkpoint keeps the change
// sets it captured, so that an abort can give them back to the state objects, and the next
// checkpoints build on it (they will be aborted with it). Committed n settles every pending
// checkpoint n builds on; aborted n aborts n and every pending checkpoint built on it.
//
// Thread safety: none; the checkpointer guards a Lineage with its mutex.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ickpt/keyed_state.h"
#include "ickpt/region.h"
#include "ickpt/repository.h"
#include "src/repo/block_map.h"
#include "src/state/dirty_bitmap.h"
#include "src/state/keyed_state_internal.h"

namespace ickpt {

// What a capture needs to know of a state object's chain.
struct ObjectLineage {
  bool has_base = false;
  uint64_t depth = 0;
  // Where a restore's walk of this object ends (docs/policy.md §1): the checkpoint whose manifest
  // is full, or which is consolidated (format.md §14), and its recorded depth.
  uint64_t chain_start_id = 0;
  uint64_t chain_start_depth = 0;
  // Blocks (entries) captured since chain_start_id, summed over the chain's checkpoints.
  uint64_t changed_since_chain_start = 0;

  uint64_t effective_depth() const {
    return depth >= chain_start_depth ? depth - chain_start_depth : depth;
  }
  // The lineage of this object in a checkpoint `id` of `kind` at `depth` built on this one,
  // capturing `changed` blocks or entries.
  ObjectLineage Next(uint64_t id, CheckpointKind kind, uint64_t next_depth,
                     uint64_t changed) const {
    if (kind == CheckpointKind::kFull) return ObjectLineage{true, 0, id, 0, 0};
    return ObjectLineage{true, next_depth, chain_start_id, chain_start_depth,
                         changed_since_chain_start + changed};
  }
  // After checkpoint `id`, whose lineage of this object was `at_id`, was consolidated: a walk
  // that passed through `id` ends there.
  void Consolidated(uint64_t id, const ObjectLineage& at_id) {
    if (!has_base || chain_start_id > id || at_id.chain_start_id != chain_start_id) return;
    chain_start_id = id;
    chain_start_depth = at_id.depth;
    changed_since_chain_start -=
        std::min(changed_since_chain_start, at_id.changed_since_chain_start);
  }
};

// A state object as of the latest committed checkpoint of the lineage.
struct CommittedObject {
  ObjectLineage lineage;
  std::vector<BlockLocation> locations;  // regions only
};

// A checkpoint persisted but not settled (group members only).
struct PendingCheckpoint {
  struct RegionPart {
    std::string name;
    Region* region = nullptr;
    ObjectLineage lineage;
    uint64_t block_count = 0;
    std::vector<std::pair<uint64_t, BlockLocation>> fresh;  // where its captured blocks lie
    DirtyBitmap dirty;                                      // what it captured
  };
  struct KeyedPart {
    std::string name;
    KeyedState* state = nullptr;
    ObjectLineage lineage;
    KeyedChangeSet changes;  // what it captured
  };
  uint64_t id = 0;
  std::optional<uint64_t> parent;
  std::vector<RegionPart> regions;
  std::vector<KeyedPart> keyed;
};

class Lineage {
 public:
  // The newest checkpoint that is committed or pending: what the next persisted checkpoint
  // builds on.
  std::optional<uint64_t> head() const {
    return pending_.empty() ? committed_id_ : std::optional<uint64_t>(pending_.back().id);
  }
  std::optional<uint64_t> committed_id() const { return committed_id_; }
  // Every object's lineage as of head().
  std::map<std::string, ObjectLineage, std::less<>> HeadLineage() const;
  // Where each block of region `name` lies as of head(): the committed locations with every
  // pending checkpoint's fresh blocks laid over them, as many as the head's block count. Empty if
  // the region has none.
  std::vector<BlockLocation> HeadLocations(std::string_view name) const;
  bool IsPending(uint64_t id) const;
  // Region `name` of the committed checkpoint lies at `locations` (a resolution from the
  // repository, after a consolidation moved its blocks). Nothing may be pending.
  void ReplaceCommittedLocations(std::string_view name, std::vector<BlockLocation> locations);
  // Checkpoint `id` (committed) was consolidated; `at_id` is every object's lineage as of `id`.
  void Consolidated(uint64_t id, const std::map<std::string, ObjectLineage, std::less<>>& at_id);
  const std::deque<PendingCheckpoint>& pending() const { return pending_; }

  // A checkpoint persisted on top of head(): pending until settled.
  void AddPending(PendingCheckpoint checkpoint);
  // Settles every pending checkpoint up to `id` as committed, oldest first.
  void CommitThrough(uint64_t id);
  // Removes pending checkpoint `id` and every later one (built on it) and returns them, newest
  // first, for their change sets to go back to the state objects.
  std::vector<PendingCheckpoint> AbortFrom(uint64_t id);
  // After a restore of checkpoint `id`: it is the committed lineage; nothing is pending.
  void Reset(std::optional<uint64_t> id,
             std::map<std::string, CommittedObject, std::less<>> objects);

 private:
  std::optional<uint64_t> committed_id_;
  std::map<std::string, CommittedObject, std::less<>> committed_;
  std::deque<PendingCheckpoint> pending_;  // oldest first, each built on the one before
};

}  // namespace ickpt
