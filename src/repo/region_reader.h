// Reading a region (format.md §9): resolve its chain of manifests (chain.h) newest first into one
// location per block (the restore plan), then read every block's data once, grouped by pack,
// verifying every checksum. Used by the checkpointer, `ickpt restore`, `ickpt diff` and
// `ickpt verify`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "src/repo/block_map.h"
#include "src/repo/chain.h"
#include "src/repo/manifest.h"

namespace ickpt {

struct ResolvedObject {
  std::string name;
  StateObjectType type = StateObjectType::kRegion;
  uint32_t block_size = 0;
  uint64_t block_count = 0;
  uint64_t depth = 0;
  std::vector<uint64_t> chain;           // checkpoint ids, newest first, ending at the full one
  std::vector<BlockLocation> locations;  // one per block; packs interned in the caller's table
  uint64_t manifest_bytes_read = 0;
};

// Walks from `commit` back to the full manifest of `object` of `participant`. NotFound if the
// object is not in the checkpoint; DataLoss if any object on the way is damaged or missing.
absl::StatusOr<ResolvedObject> ResolveObject(const RepositoryReader& repo,
                                             const CommitRecord& commit,
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
  uint64_t bytes_read = 0;  // stored bytes fetched from the store
  uint64_t frames_decoded = 0;
};

// Reads every block of `object` into `sink`, each exactly once. Bytes reach the sink only after
// their frame's checksum verified. `threads` packs are fetched at once.
absl::StatusOr<ReadStats> ReadObjectData(const RepositoryReader& repo, const ResolvedObject& object,
                                         const PackTable& packs, RestoreSink* sink,
                                         int threads = 2);

}  // namespace ickpt
