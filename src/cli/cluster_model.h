// The workload of `ickpt demo --workers N` (cluster_demo.cc): a sparse model trained from a
// deterministic, replayable input stream, partitioned over N workers.
//
// The input is kSplits splits; record r of split s is a pure function of (seed, s, r). A worker
// owns the splits whose position key ("split/<s>") falls in its key groups, so ownership follows
// the keyed state's key groups and survives a rescale. Each step consumes kRecordsPerStep records
// of every owned split, in split order; a record updates one row of the worker's embedding table
// (a region; rows drawn with a Zipf-like skew, so a few percent of pages change between
// checkpoints) and increments one counter (keyed state, keys in the split's own key group). The
// worker's position in each split is keyed state too: a restored worker resumes from it.
//
// Integer arithmetic only: a worker's state after step k is a pure function of (seed, its
// participant index and count, its table size, k), whatever happened before, so the final state of
// a run with failures can be compared bit for bit with a failure-free run.
//
// Thread safety: pure functions (CounterKey caches into a function-local static, built once).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"

namespace ickpt::cli::cluster_model {

inline constexpr uint32_t kSplits = 32;
inline constexpr uint32_t kKeyGroups = 32;
inline constexpr uint64_t kRecordsPerStep = 8;  // per split
inline constexpr uint32_t kCounters = 16;       // per split
inline constexpr uint64_t kRowBytes = 256;

inline constexpr char kTableName[] = "embeddings";
inline constexpr char kCountersName[] = "counters";
inline constexpr char kPositionsName[] = "positions";

// "split/<s>": the key of split s's position (records consumed) in the positions state.
std::string PositionKey(uint32_t split);
// The key of counter c of split s: in the same key group as PositionKey(s).
const std::string& CounterKey(uint32_t split, uint32_t counter);

// The splits owned by key groups [group_first, group_end), ascending.
std::vector<uint32_t> OwnedSplits(uint32_t group_first, uint32_t group_end);

// Fills a new table (`size` bytes, a multiple of kRowBytes) for participant `index`.
void InitTable(char* table, uint64_t size, uint64_t seed, uint32_t index);

// Consumes step `step` (>= 1) of `splits`: updates rows of `table`, and calls `count(key)` once per
// record (the counter to increment) and `position(key, records)` once per split.
void Step(char* table, uint64_t size, uint64_t seed, uint64_t step,
          const std::vector<uint32_t>& splits, absl::FunctionRef<void(const std::string&)> count,
          absl::FunctionRef<void(const std::string&, uint64_t)> position);

// SHA-256 (hex) of a worker's state: the table, then the positions and counters
// (demo_sim.h StateHash over one map with keys prefixed "positions:" and "counters:").
std::string WorkerStateHash(std::string_view table,
                            const std::map<std::string, std::string>& positions,
                            const std::map<std::string, std::string>& counters);

// The state hash of participant `index` of `count` after `steps` failure-free steps.
std::string ReferenceHash(uint64_t size, uint64_t seed, uint32_t index, uint32_t count,
                          uint64_t steps);

}  // namespace ickpt::cli::cluster_model
