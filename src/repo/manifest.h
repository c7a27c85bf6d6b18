// Manifests (format.md §5): per checkpoint, participant and state object, which blocks the
// checkpoint describes and where their data lies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "src/repo/format.h"
#include "src/util/hash.h"

namespace ickpt {

// A run of adjacent blocks whose data is contiguous in one pack's raw stream, or all zero.
struct Extent {
  uint64_t first_block = 0;
  uint64_t block_count = 0;
  uint32_t pack_ref = 0;    // 0: all zero; i + 1: Manifest::packs[i]
  uint64_t raw_offset = 0;  // only meaningful if pack_ref != 0

  bool operator==(const Extent&) const = default;
};

// Keyed state (format.md §5.3): where one key group's records lie.
struct KeyGroupSpan {
  uint32_t group = 0;
  uint32_t pack_ref = 0;  // i + 1: Manifest::packs[i] (never 0)
  uint64_t raw_offset = 0;
  uint64_t raw_length = 0;
  uint64_t records = 0;
  uint64_t tombstones = 0;

  bool operator==(const KeyGroupSpan&) const = default;
};

struct Manifest {
  uint64_t checkpoint_id = 0;
  std::optional<uint64_t> base_id;  // set iff incremental
  CheckpointKind kind = CheckpointKind::kFull;
  uint64_t depth = 0;
  std::string participant;
  std::string object_name;
  StateObjectType object_type = StateObjectType::kRegion;
  uint32_t block_size = 0;
  uint64_t block_count = 0;
  std::vector<Sha256Digest> packs;  // the pack table
  std::vector<Extent> extents;      // sorted, non-overlapping; regions only
  // Keyed state only (object_type kKeyed; block_size and block_count are then 0).
  uint32_t key_groups = 0;
  uint32_t group_first = 0;
  uint32_t group_end = 0;
  uint64_t entry_count = 0;
  uint64_t entry_bytes = 0;
  std::vector<KeyGroupSpan> groups;  // increasing group order

  bool operator==(const Manifest&) const = default;
};

// Encodes; the caller guarantees the invariants (Validate returns OK).
std::string EncodeManifest(const Manifest& manifest);
// Decodes and validates (checksum, version, every rule of §5). DataLoss naming `key` on any
// violation; FailedPrecondition for a newer major version.
absl::StatusOr<Manifest> DecodeManifest(std::string_view bytes, std::string_view key);
// The structural rules of §5 (sorted, in range, full covers all, pack refs in range).
absl::Status ValidateManifest(const Manifest& manifest);

}  // namespace ickpt
