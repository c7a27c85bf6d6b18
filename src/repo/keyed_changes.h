// What the repository's writer reads of a keyed state's captured changes (format.md §5.3). The
// keyed state container (state/) implements it; the repository layer knows nothing of the
// container, only of this view.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

namespace ickpt {

// One captured entry: a value, or a tombstone for an erased key.
struct ChangedEntry {
  uint32_t key_group = 0;
  std::string_view key;
  std::string_view value;  // empty for a tombstone
  bool erased = false;     // a tombstone: the key was erased
};

// A change set sorted by (key group, key bytes as unsigned, shorter first), keys unique.
class KeyedChanges {
 public:
  virtual ~KeyedChanges() = default;
  // Every entry of the state, no tombstones (the first, full, capture of a state), or only the
  // changed entries and tombstones.
  virtual bool full() const = 0;
  virtual uint32_t key_groups() const = 0;
  virtual size_t size() const = 0;
  virtual ChangedEntry entry(size_t i) const = 0;
  // The range [first, end) of entries in key group `group` (empty if it has none).
  virtual std::pair<size_t, size_t> GroupRange(uint32_t group) const = 0;
  virtual size_t tombstone_count() const = 0;
  // Sum of the key and value sizes of the entries.
  virtual uint64_t raw_bytes() const = 0;
};

}  // namespace ickpt
