// The format's version and limits (docs/format.md), defined once for every reader and writer of
// repository objects. Object names live in keys.h; each store keeps its own path-safety check.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ickpt/key_group.h"

namespace ickpt {

// The version this release writes (format.md §1.1): the config, commit records, acknowledgements
// and manifests all carry it. Readers accept every 1.x; a newer minor only adds.
inline constexpr uint16_t kFormatMajor = 1;
inline constexpr uint16_t kFormatMinor = 6;

// Block sizes are multiples of 4096 up to 16 MiB (format.md §3, §5).
inline constexpr uint32_t kMaxBlockSize = 16 << 20;
inline constexpr bool IsValidBlockSize(uint64_t block_size) {
  return block_size != 0 && block_size % 4096 == 0 && block_size <= kMaxBlockSize;
}

// The largest state object: block_count × block_size ≤ 2^50 bytes (1 PiB, format.md §5). Readers
// size memory by block_count, so it is bounded before anything is allocated for it.
inline constexpr uint64_t kMaxStateObjectBytes = uint64_t{1} << 50;
inline constexpr uint64_t kMaxManifestPacks = 1'000'000;

// A manifest chain longer than this is damage (a loop), not a real chain (format.md §9).
inline constexpr size_t kMaxChainLength = 1'000'000;

}  // namespace ickpt
