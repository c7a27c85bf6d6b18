// Key groups (format.md §3, §5.3): the unit by which keyed state is split among participants and
// rescaled; and the size limits of one keyed entry. One small unit, used by the keyed state
// container (which groups its changes) and by the repository (which checks that a stored key lies
// in its group).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

namespace ickpt {

// A key's group is XXH3_64bits_withSeed(key bytes, kKeyGroupSeed) % key_groups, the hash the
// repository config names "xxh3-64-seed0" (format.md §3, §5.3): the same on every process and
// machine and in every version of ickpt (it decides which participant restores a key), so neither
// the hash nor the seed may ever change for a given format. Never a per-process salted hash such
// as absl::Hash.
inline constexpr uint64_t kKeyGroupSeed = 0;
// The most key groups a keyed state may have (format.md §5.3).
inline constexpr uint32_t kMaxKeyGroups = 65536;

// The key group of `key` among `key_groups` groups (precondition: 1 <= key_groups <= kMaxKeyGroups;
// 0 is treated as 1).
uint32_t KeyGroupOf(std::string_view key, uint32_t key_groups);

// The key groups participant `index` of `count` owns among `key_groups` groups: the contiguous
// range [floor(index·G/count), floor((index+1)·G/count)) (format.md §5.3). Every participant owns
// at least one group when count <= key_groups. Precondition: index < count.
std::pair<uint32_t, uint32_t> OwnedKeyGroups(uint32_t key_groups, uint32_t index, uint32_t count);

// Size limits of one keyed entry (format.md §5.3); larger keys or values are rejected with
// InvalidArgument rather than allocated.
inline constexpr size_t kMaxKeySize = size_t{64} << 20;   // 64 MiB
inline constexpr size_t kMaxValueSize = size_t{1} << 30;  // 1 GiB

}  // namespace ickpt
