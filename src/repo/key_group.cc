// The key-group rule (format.md §3, §5.3), defined once for the keyed state container and the
// repository's readers and writers.
#include "ickpt/key_group.h"

#include <xxhash.h>

namespace ickpt {

uint32_t KeyGroupOf(std::string_view key, uint32_t key_groups) {
  if (key_groups <= 1) return 0;
  return static_cast<uint32_t>(XXH3_64bits_withSeed(key.data(), key.size(), kKeyGroupSeed) %
                               key_groups);
}

std::pair<uint32_t, uint32_t> OwnedKeyGroups(uint32_t key_groups, uint32_t index, uint32_t count) {
  if (count == 0) return {0, key_groups};
  const uint64_t g = key_groups;
  return {static_cast<uint32_t>(g * index / count), static_cast<uint32_t>(g * (index + 1) / count)};
}

}  // namespace ickpt
