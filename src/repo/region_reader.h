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
  std::string participant;
  std::string name;
  StateObjectType type = StateObjectType::kRegion;
  uint32_t block_size = 0;
  uint64_t block_count = 0;
  uint64_t depth = 0;
  std::vector<uint64_t> chain;           // checkpoint ids, newest first, ending at the full one
  bool consolidated = false;             // the chain ends at a consolidation (format.md §14.2)
  std::vector<BlockLocation> locations;  // one per block; packs interned in the caller's table
  uint64_t manifest_bytes_read = 0;
};

// Walks from `commit` back to the full manifest of `object` of `participant`, or to a
// consolidation (format.md §14.2). NotFound if the object is not in the checkpoint, or if the
// checkpoint was removed while it was resolved; DataLoss if any object on the way is damaged or
// missing (after a second resolution, §14.2). `consolidations`: as WalkChain's.
absl::StatusOr<ResolvedObject> ResolveObject(const RepositoryReader& repo,
                                             const CommitRecord& commit,
                                             std::string_view participant, std::string_view object,
                                             PackTable* packs,
                                             Consolidations* consolidations = nullptr);

// Where restored bytes go: region memory, a file.
class RestoreSink {
 public:
  virtual ~RestoreSink() = default;
  virtual absl::Status Write(uint64_t offset, std::string_view data) = 0;
  virtual absl::Status WriteZeros(uint64_t offset, uint64_t length) = 0;
  // A hint: Write calls for [offset, offset + length) follow soon, on this thread. Region memory
  // populates those pages in one call (MADV_POPULATE_WRITE), which costs a fraction of taking a
  // page fault for each of them during the copies.
  virtual void WillWrite(uint64_t offset, uint64_t length) {
    (void)offset;
    (void)length;
  }
};

struct ReadStats {
  uint64_t packs_read = 0;
  uint64_t bytes_read = 0;  // stored bytes fetched from the store
  uint64_t frames_decoded = 0;
};

// Reads every block of `object` into `sink`, each exactly once. Bytes reach the sink only after
// their frame's checksum verified. `threads` packs are fetched at once. If an object is missing,
// the checkpoint is resolved again once and read again (format.md §14.2): some blocks may then
// reach the sink twice, with the same bytes.
absl::StatusOr<ReadStats> ReadObjectData(const RepositoryReader& repo, const ResolvedObject& object,
                                         const PackTable& packs, RestoreSink* sink,
                                         int threads = 2);

}  // namespace ickpt
