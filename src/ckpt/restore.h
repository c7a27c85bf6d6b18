// Restore of one state object (format.md §9): resolve the chain of manifests newest first into one
// location per block, then read every block's data once, grouped by pack, verifying every checksum.
// Used by the checkpointer, `ickpt restore`, `ickpt diff` and `ickpt verify`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "src/ckpt/block_map.h"
#include "src/repo/manifest.h"

namespace ickpt {

// Reads the manifest a commit record names, checking its sha256 and decoding it; DataLoss naming
// the manifest and the checkpoint if damaged.
absl::StatusOr<Manifest> ReadManifest(const Repository& repo, uint64_t checkpoint_id,
                                      const StateObjectRecord& record);

// An object a checkpoint needs that is not in the store is damage: NotFound becomes DataLoss
// saying `what` is missing; other errors pass through.
absl::Status MissingAsDataLoss(const absl::Status& status, std::string_view what);

// The participant `name` of `commit`, or NotFound naming it and the checkpoint.
absl::StatusOr<const ParticipantRecord*> FindParticipant(const CommitRecord& commit,
                                                         std::string_view name);

struct ResolvedObject {
  std::string name;
  StateObjectType type = StateObjectType::kRegion;
  uint32_t block_size = 0;
  uint64_t block_count = 0;
  uint64_t depth = 0;
  std::vector<uint64_t> chain;            // checkpoint ids, newest first, ending at the full one
  std::vector<BlockLocation> locations;   // one per block; packs interned in the caller's table
  uint64_t manifest_bytes_read = 0;
};

// Walks from `commit` back to the full manifest of `object` of `participant`. NotFound if the
// object is not in the checkpoint; DataLoss if any object on the way is damaged or missing.
absl::StatusOr<ResolvedObject> ResolveObject(const Repository& repo, const CommitRecord& commit,
                                             std::string_view participant, std::string_view object,
                                             PackTable* packs);

// Where restored bytes go: region memory, a file.
class RestoreSink {
 public:
  virtual ~RestoreSink() = default;
  virtual absl::Status Write(uint64_t offset, std::string_view data) = 0;
  virtual absl::Status WriteZeros(uint64_t offset, uint64_t length) = 0;
};

struct ReadStats {
  uint64_t packs_read = 0;
  uint64_t bytes_read = 0;   // stored bytes fetched from the store
  uint64_t frames_decoded = 0;
};

// Reads every block of `object` into `sink`, each exactly once. Bytes reach the sink only after
// their frame's checksum verified. `threads` packs are fetched at once.
absl::StatusOr<ReadStats> ReadObjectData(const Repository& repo, const ResolvedObject& object,
                                         const PackTable& packs, RestoreSink* sink,
                                         int threads = 2);

}  // namespace ickpt
