// Reading packs through a repository (format.md §4): the stored bytes of a run of frames in one
// range read. Used by the region and keyed readers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "src/repo/pack.h"

namespace ickpt {

// Needed bytes of a pack closer than this are fetched with one range read, the bytes between them
// read along and skipped: one request is cheaper than two (region and keyed readers alike).
inline constexpr uint64_t kMaxReadGapBytes = 32 * 1024;

// The stored bytes of frames [first, last] of pack `key`, as its `index` places them, fetched with
// one range read; adds their size to `*bytes_read`. DataLoss if the pack is missing or shorter
// than its index says; other errors of the store as they are. The frames are not decoded.
absl::StatusOr<std::string> ReadStoredFrames(const RepositoryReader& repo, const std::string& key,
                                             const PackIndex& index, size_t first, size_t last,
                                             uint64_t* bytes_read);

}  // namespace ickpt
