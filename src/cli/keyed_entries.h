// Reading every entry of a keyed state for `ickpt dump` and `ickpt diff`, in bounded memory.
//
// ReadKeyed decides every key once, newest first; to know which keys a newer manifest already
// decided, its sink must remember them. Remembering every key of a large state would hold the whole
// key set in memory, so the key groups are read in batches whose records are bounded
// (KeyGroupBatches), and only the current batch's keys are remembered. Keys of different groups
// never collide, so a batch of whole groups is decided independently of the others.
//
// Thread safety: functions of the main thread; nothing is shared.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "ickpt/repository.h"
#include "src/repo/keyed_reader.h"

namespace ickpt::cli {

// Records per batch by default: about a million remembered keys.
inline constexpr uint64_t kDefaultBatchRecords = uint64_t{1} << 20;

// Splits [0, G) into consecutive ranges of whole key groups [first, end) whose records, summed over
// every manifest of every chain of every state in `states`, stay at or below `max_records` (a
// group with more records forms a range of its own). The records of a manifest bound the keys its
// groups can decide, so they bound what a batch remembers. The states must agree on G; if they do
// not (or `states` is empty), one range [0, UINT32_MAX) covers everything, as keys then fall into
// different groups on each side.
std::vector<std::pair<uint32_t, uint32_t>> KeyGroupBatches(
    const std::vector<const ResolvedKeyed*>& states, uint64_t max_records = kDefaultBatchRecords);

// Calls fn(key, value) for every live entry of `keyed` in key groups [group_first, group_end),
// each key once (its newest value; erased keys not at all), in no particular order. The views are
// valid only during the call. Every record of a group is checked before any of its entries reaches
// fn (format.md §5.3), but a later group may still turn out damaged: on DataLoss some entries were
// already handed out. Returns fn's first error, or ReadKeyed's (DataLoss naming the manifest,
// checkpoint and pack).
absl::Status ForEachKeyedEntry(
    const RepositoryReader& repo, const ResolvedKeyed& keyed, uint32_t group_first,
    uint32_t group_end,
    absl::FunctionRef<absl::Status(std::string_view key, std::string_view value)> fn);

// ForEachKeyedEntry over every key group, batch by batch (KeyGroupBatches).
absl::Status ForEachKeyedEntryBatched(
    const RepositoryReader& repo, const ResolvedKeyed& keyed,
    absl::FunctionRef<absl::Status(std::string_view key, std::string_view value)> fn);

// The keyed state of that name in `commit`, if any participant holds one: callers use it to say
// "that is a keyed state" before treating a name as a region.
const StateObjectRecord* FindKeyedRecord(const CommitRecord& commit, std::string_view name);

}  // namespace ickpt::cli
