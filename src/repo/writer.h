// The writer of a participant's part of a checkpoint (format.md §4, §5, §8): packs and manifests of
// regions and keyed states. The only code that creates packs and manifests; the checkpointer hands
// it what the capture copied, and publishes the commit record (or acknowledgement) it returns.
//
// Packs go through a PackPipeline (docs/persist.md): compressed on `compress_threads` threads and
// put `uploads_in_flight` at a time, every pack of a state object durable before its manifest is
// written.
//
// Thread safety: one CheckpointWriter writes one state object at a time (it compresses and puts on
// several threads internally); the PackTable passed to WriteRegion must not be used concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "src/repo/block_map.h"
#include "src/repo/keyed_changes.h"
#include "src/repo/manifest.h"
#include "src/repo/pack_pipeline.h"

namespace ickpt {

struct WriterOptions {
  // This participant's name in manifests.
  std::string participant;
  // Threads that compress and checksum frames. Default 2.
  int compress_threads = 2;
  // Packs put into the store at once (docs/persist.md). Default 2.
  int uploads_in_flight = 2;
};

// The checkpoint a state object is written for.
struct CheckpointIds {
  uint64_t id = 0;
  std::optional<uint64_t> parent;  // the base of incremental manifests
};

// A region as captured: the changed blocks, copied in block order into `data`.
struct RegionCapture {
  std::string_view name;
  std::string_view tracker;
  uint32_t block_size = 0;
  uint64_t block_count = 0;
  CheckpointKind kind = CheckpointKind::kFull;
  uint64_t depth = 0;
  const char* data = nullptr;
  // Calls fn(first_block, block_count) for each run of captured blocks, in increasing order.
  absl::FunctionRef<void(absl::FunctionRef<void(uint64_t, uint64_t)>)> for_each_run;
  uint64_t changed_blocks = 0;
  int64_t pause_ns = 0;
};

struct RegionWritten {
  StateObjectRecord record;
  // Where each captured block now lies (zero blocks as BlockLocation::kZero), by block.
  std::vector<std::pair<uint64_t, BlockLocation>> fresh;
};

// A keyed state as captured: its change set (every entry for a first capture).
struct KeyedCapture {
  std::string_view name;
  CheckpointKind kind = CheckpointKind::kFull;
  uint64_t depth = 0;
  uint64_t entries = 0;      // live entries at capture
  uint64_t entry_bytes = 0;  // their key and value bytes
  uint32_t group_first = 0;  // the key groups this participant owns
  uint32_t group_end = 0;
  const KeyedChanges* changes = nullptr;  // sorted
  int64_t pause_ns = 0;
};

class CheckpointWriter {
 public:
  // `repo` must outlive the writer.
  CheckpointWriter(Repository* repo, WriterOptions options);

  // Writes the captured blocks of a region into packs (frames of adjacent blocks only, zero blocks
  // as zero extents) and its manifest: incremental, or complete (format.md §5) with the blocks not
  // captured taken from `base` (the locations of the state object as of the parent; required for a
  // full manifest of an object with a base). Packs are interned in `packs`. Errors: the store's,
  // prefixed with the checkpoint and the object; Internal if a block of a full manifest is neither
  // captured nor in `base`.
  absl::StatusOr<RegionWritten> WriteRegion(const CheckpointIds& ids, const RegionCapture& capture,
                                            const std::vector<BlockLocation>* base,
                                            PackTable* packs);

  // The two halves of WriteRegion, for consolidation (format.md §14.3), which writes the blocks it
  // repacks in batches and one manifest at the end.
  // Writes the blocks of `data` (runs given by `for_each_run`, in increasing block order, copied
  // back to back) into packs of checkpoint `id`; their new locations by block, sorted. Adds the
  // stored bytes to *pack_bytes.
  absl::StatusOr<std::vector<std::pair<uint64_t, BlockLocation>>> WriteRegionBlocks(
      uint64_t id, std::string_view name, uint32_t block_size, const char* data,
      absl::FunctionRef<void(absl::FunctionRef<void(uint64_t, uint64_t)>)> for_each_run,
      PackTable* packs, uint64_t* pack_bytes);
  // Writes the full manifest of region `name` of checkpoint `id` whose blocks lie at `locations`
  // (one per block, packs interned in `packs`). The record's statistics are left to the caller.
  absl::StatusOr<StateObjectRecord> WriteFullRegionManifest(
      uint64_t id, std::string_view name, uint32_t block_size,
      const std::vector<BlockLocation>& locations, const PackTable& packs);

  // Writes the records of a keyed state, grouped by key group (format.md §5.3), and its manifest.
  // A full manifest of a change set that is not full is merged with the base: `base_record` (the
  // parent's commit record, or this participant's acknowledgement of it) names this participant's
  // chain, which is read back group by group and checked against the captured entry count and
  // bytes. Errors: the store's; DataLoss if the base is damaged; Internal if the merge disagrees
  // with the capture.
  absl::StatusOr<StateObjectRecord> WriteKeyed(const CheckpointIds& ids,
                                               const KeyedCapture& capture,
                                               const CommitRecord* base_record);

 private:
  // A manifest of this participant for state object `name` of checkpoint `ids`: the fields every
  // manifest has, the type-specific ones left to the caller.
  Manifest NewManifest(const CheckpointIds& ids, CheckpointKind kind, uint64_t depth,
                       std::string_view name, StateObjectType type) const;
  // Writes manifest `m` and returns the record naming it, with name, type, kind and depth set.
  absl::StatusOr<StateObjectRecord> WriteManifest(uint64_t id, const Manifest& m,
                                                  std::string_view what);

  Repository* repo_;
  WriterOptions options_;
  std::unique_ptr<PackPipeline> pipeline_;
};

}  // namespace ickpt
