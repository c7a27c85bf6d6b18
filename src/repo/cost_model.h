// The cost model of docs/policy.md: what a restore of a checkpoint reads, how fast this store
// reads, and the checkpoint interval from Young/Daly's formula. Used by the checkpointer's policy
// (full or incremental, and when to consolidate) and by `ickpt policy`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "src/repo/block_map.h"
#include "src/repo/chain.h"

namespace ickpt {

// What a restore of one checkpoint reads (docs/policy.md §1).
struct RestoreWork {
  uint64_t bytes = 0;    // stored bytes: of each pack, the smaller of its size and the raw bytes
                         // the restore uses from it; plus the manifests
  uint64_t objects = 0;  // requests: per pack its index and its data, per link a commit record
                         // and a manifest
  uint64_t links = 0;    // manifests read, over every state object (the effective chain lengths)
  uint64_t packs = 0;    // distinct packs read
  uint64_t max_effective_depth = 0;  // over the state objects: links of its walk - 1
};

// How fast the store reads (docs/policy.md §2).
struct ReadSpeed {
  double bytes_per_second = 0;
  double seconds_per_object = 0;
};

// bytes / bandwidth + objects × latency.
double EstimatedRestoreSeconds(const RestoreWork& work, const ReadSpeed& speed);

// The restore work of a region whose blocks lie at `locations` (packs interned in `packs`), with
// `pack_sizes[i]` the stored size of pack i (0 if unknown: its used bytes count), and `links`
// manifests in its walk. Adds to *work.
void AddRegionRestoreWork(const std::vector<BlockLocation>& locations, uint32_t block_size,
                          const std::vector<uint64_t>& pack_sizes, uint64_t links,
                          RestoreWork* work);

// The restore work of every state object of `commit` (resolving each chain, with the
// consolidations in force; listing packs/ once for their sizes). Errors: the readers'.
absl::StatusOr<RestoreWork> MeasureRestoreWork(const RepositoryReader& repo,
                                               const CommitRecord& commit);

// Times reads of the store: the index of up to `max_packs` packs of `commit` (the per-object
// latency) and whole packs up to `max_bytes` (the bandwidth). FailedPrecondition if `commit`
// references no pack.
absl::StatusOr<ReadSpeed> MeasureReadSpeed(const RepositoryReader& repo, const CommitRecord& commit,
                                           uint64_t max_bytes = 64 << 20, int max_packs = 16);

// Young/Daly: the checkpoint interval minimising expected lost time for a checkpoint that costs
// the application `cost_seconds` and a mean time between failures `mtbf_seconds` (Daly 2006,
// higher-order: sqrt(2CM)·(1 + sqrt(C/2M)/3 + C/18M) − C for C < 2M, else M).
double YoungDalyIntervalSeconds(double cost_seconds, double mtbf_seconds);

}  // namespace ickpt
