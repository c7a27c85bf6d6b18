// Restore of a keyed state (format.md §9.1): resolve, for every participant of a checkpoint that
// holds the state, its chain of keyed manifests newest first; then read the records of the wanted
// key groups from each manifest once, newest first, deciding every key at the newest record that
// names it. Used by the checkpointer and by `ickpt show/get/dump/verify`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "src/repo/manifest.h"
#include "src/repo/pack.h"

namespace ickpt {

// One participant's chain for a keyed state: its manifests from the checkpoint down to the full
// one, newest first.
struct KeyedChain {
  std::string participant;
  uint32_t group_first = 0;
  uint32_t group_end = 0;
  std::vector<uint64_t> checkpoint_ids;
  std::vector<std::string> manifest_keys;
  std::vector<Manifest> manifests;
};

struct ResolvedKeyed {
  std::string name;
  uint64_t checkpoint_id = 0;
  uint32_t key_groups = 0;
  uint64_t entry_count = 0;  // live entries at capture, over every participant
  uint64_t entry_bytes = 0;
  std::vector<KeyedChain> chains;  // ordered by group range, covering [0, key_groups) exactly
  // Set by ResolveKeyedOf: the one participant resolved (no check that others cover the rest).
  std::optional<std::string> only_participant;
};

// Every participant's chain of keyed state `object` in `commit`. NotFound if no participant holds
// it; DataLoss naming the object if a chain is broken or damaged, or if the participants' group
// ranges overlap, leave a gap or disagree on the number of groups; FailedPrecondition if it is a
// region.
absl::StatusOr<ResolvedKeyed> ResolveKeyed(const RepositoryReader& repo, const CommitRecord& commit,
                                           std::string_view object);
// Only `participant`'s chain (its own groups; no check that others cover the rest): what a writer
// merging a full checkpoint with its base needs. NotFound if that participant lacks the object.
absl::StatusOr<ResolvedKeyed> ResolveKeyedOf(const RepositoryReader& repo,
                                             const CommitRecord& commit,
                                             std::string_view participant, std::string_view object);

// The names of the keyed states in `commit` (over every participant), sorted, unique.
std::vector<std::string> KeyedStateNames(const CommitRecord& commit);

// Receives the restored entries. Decided: a key the sink holds already got its final outcome from
// a newer manifest (a value given earlier).
class KeyedRestoreSink {
 public:
  virtual ~KeyedRestoreSink() = default;
  virtual bool Contains(std::string_view key) const = 0;
  virtual absl::Status Put(std::string_view key, std::string_view value) = 0;
  // Puts the entry unless the sink holds the key already; true if it was put. The reader's one call
  // per record; a sink that can decide and insert in one lookup overrides it.
  virtual absl::StatusOr<bool> PutIfAbsent(std::string_view key, std::string_view value) {
    if (Contains(key)) return false;
    if (absl::Status s = Put(key, value); !s.ok()) return s;
    return true;
  }
  // True if the sink takes calls from several threads at once as long as no two threads use the
  // same key group (ReadKeyed with threads > 1 then gives each thread a range of key groups).
  virtual bool ConcurrentByKeyGroup() const { return false; }
};

struct KeyedReadStats {
  uint64_t records_read = 0;  // records decoded, over the whole chain
  uint64_t entries = 0;       // entries handed to the sink
  uint64_t bytes_read = 0;    // stored bytes fetched
  uint64_t manifests = 0;
};

struct KeyedReadOptions {
  // The key groups to read: [group_first, group_end). Default: all.
  uint32_t group_first = 0;
  uint32_t group_end = UINT32_MAX;
  // Read only this key (its group, stop once decided): for `ickpt get`.
  std::optional<std::string_view> only_key;
  // Pack indexes already read, kept across calls that read a few groups at a time. Optional; not
  // used when the read runs on several threads.
  std::map<std::string, PackIndex>* index_cache = nullptr;
  // Threads that read, check and decode at once, each over its own range of key groups, if the
  // sink is ConcurrentByKeyGroup(). Default 1.
  int threads = 1;
};

// Reads the entries of `keyed` in the wanted groups into `sink`, each key decided once, newest
// first (format.md §9.1). If an object is missing, the checkpoint is resolved again once and read
// again (§14.2); keys the sink already holds are then skipped as decided. Every frame is verified
// and every group's records are checked (§5.3) before any of them reaches the sink. DataLoss naming
// the manifest, checkpoint and key group.
absl::StatusOr<KeyedReadStats> ReadKeyed(const RepositoryReader& repo, const ResolvedKeyed& keyed,
                                         const KeyedReadOptions& options, KeyedRestoreSink* sink);

}  // namespace ickpt
