// What the checkpointer needs of a KeyedState beyond its public API: creation, the capture of the
// change set (read and reset), a full capture, merging a failed checkpoint's change set back, and
// rebaselining after a restore. Also the hash table itself, KeyedTable<kTracked>, which the
// benchmark instantiates without tracking to measure what tracking costs.
//
// Layout. Each entry is one malloc'd block: a header, the key bytes, the value bytes. The table is
// one absl::flat_hash_set per key group of pointers to entries (8 bytes and a control byte per
// slot), looked up by key: one XXH3 of the key bytes gives the key group (format.md §3) and, mixed,
// the hash within the group's set. With tracking,
// the header grows from 8 to 16 bytes (dirty-list position and flags) and the state keeps a dirty
// list: a vector of pointers to the entries changed since the last capture (with holes where an
// entry was dropped, compacted when they are half of it). An erased key that existed at the last
// capture stays in the table as a tombstone entry (key only, marked erased, invisible to
// Get/Contains/ForEach/size) until the next capture takes it; an erased key that was inserted since
// the last capture is simply dropped. So a capture walks only the dirty list: its cost is
// proportional to the number of changed keys, never to the table size.
//
// Thread safety: as KeyedState; every function here runs with the application's access stopped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ickpt/keyed_state.h"
#include "src/repo/keyed_changes.h"
#include "src/util/mutex.h"

namespace ickpt {

// An entry of a change set is a ChangedEntry (src/repo/keyed_changes.h): its views point into the
// change set and live as long as it does.
class KeyedChangeSetPool;

// The entries captured from a keyed state at one checkpoint: copies, owned here, so persistence can
// run while the application mutates the state again. Once Sort() ran (on the persist thread),
// sorted by (key group, key bytes compared as unsigned bytes, shorter first), keys unique: a pack
// can store them grouped, with an index of group offsets. Move-only.
class KeyedChangeSet final : public KeyedChanges {
 public:
  KeyedChangeSet() = default;
  // Hands its memory back to its state's pool, for the next capture.
  ~KeyedChangeSet();
  KeyedChangeSet(KeyedChangeSet&&) = default;
  KeyedChangeSet& operator=(KeyedChangeSet&& other);
  KeyedChangeSet(const KeyedChangeSet&) = delete;
  KeyedChangeSet& operator=(const KeyedChangeSet&) = delete;

  // From CaptureAll: every entry of the state, no tombstones (a full checkpoint). Otherwise from
  // CaptureChanges: the changed entries and tombstones (an incremental checkpoint).
  bool full() const override { return full_; }
  // Computes the key groups and sorts the entries by (key group, key). A capture leaves this out
  // of the pause: call it before entry(), GroupRange() or reading key_group. Idempotent.
  void Sort();
  bool sorted() const { return sorted_; }
  uint32_t key_groups() const override { return key_groups_; }
  size_t size() const override { return records_.size(); }
  bool empty() const { return records_.empty(); }
  ChangedEntry entry(size_t i) const override;
  size_t tombstone_count() const override { return tombstones_; }
  // Sum of the key and value sizes of the entries: what a pack must store at least.
  uint64_t raw_bytes() const override { return raw_bytes_; }
  // Memory held: the copied bytes (in chunks) and the per-entry records.
  uint64_t memory_bytes() const;
  // The range [first, end) of entries in key group `group` (empty if it has none). O(log size).
  std::pair<size_t, size_t> GroupRange(uint32_t group) const override;

 private:
  friend class KeyedChangeSetBuilder;
  friend class KeyedChangeSetPool;
  template <bool kTracked>
  friend class KeyedTable;
  struct Record {
    const char* data;  // key bytes, then value bytes
    uint32_t key_size;
    uint32_t value_size;
    uint32_t key_group;
    uint32_t flags;  // kRecordErased, kRecordChanged
  };
  static constexpr uint32_t kRecordErased = 1;
  // Set on the entries of a full change set that changed since the previous capture: only those go
  // back into the dirty set when the full checkpoint fails (MergeBack).
  static constexpr uint32_t kRecordChanged = 2;

  struct Chunk {
    std::unique_ptr<char[]> data;
    size_t size;
  };
  void Release();

  std::shared_ptr<KeyedChangeSetPool> pool_;
  bool full_ = false;
  bool sorted_ = true;
  uint32_t key_groups_ = 1;
  std::vector<Chunk> chunks_;
  uint64_t chunk_bytes_ = 0;
  std::vector<Record> records_;
  // Full change sets only: the keys erased since the previous capture. Not part of the checkpoint
  // (a full checkpoint has no tombstones), but MergeBack needs them: if the full checkpoint fails,
  // the next, possibly incremental, checkpoint must still carry these erasures.
  std::vector<Record> erased_since_previous_;
  size_t tombstones_ = 0;
  uint64_t raw_bytes_ = 0;
};

// Memory of dropped change sets, reused by the next capture of the same state: its pages are
// already mapped, and faulting in fresh pages is a sizeable part of a pause (several ms for 10 MiB
// on a virtual machine). Keeps at most kKeepBytes of chunks and two record vectors, and nothing of
// full change sets. Thread-safe: a change set may be dropped on a persistence thread while the
// state is captured.
class KeyedChangeSetPool {
 public:
  static constexpr size_t kKeepBytes = size_t{64} << 20;
  static constexpr size_t kKeepRecords = size_t{1} << 20;
  using Chunk = KeyedChangeSet::Chunk;
  using Records = std::vector<KeyedChangeSet::Record>;

  // A pooled chunk of at least `min_size` bytes, or a null chunk if there is none.
  Chunk TakeChunk(size_t min_size);
  // An empty record vector, with the capacity of a dropped one if there is one.
  Records TakeRecords();
  void Give(std::vector<Chunk> chunks, Records records);
  void Give(Records records);
  uint64_t memory_bytes() const;

 private:
  mutable Mutex mu_;
  std::vector<Chunk> chunks_ ABSL_GUARDED_BY(mu_);
  size_t chunk_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Records> records_ ABSL_GUARDED_BY(mu_);
};

// The hash table of a keyed state. With kTracked, it records the keys changed since the last
// capture; without, it is the same table minus that bookkeeping (the benchmark's baseline). Methods
// as KeyedState; the capture functions exist only with kTracked, except CaptureAll.
template <bool kTracked>
class KeyedTable {
 public:
  explicit KeyedTable(uint32_t key_groups, size_t expected_entries = 0);
  ~KeyedTable();
  KeyedTable(const KeyedTable&) = delete;
  KeyedTable& operator=(const KeyedTable&) = delete;

  absl::Status Put(std::string_view key, std::string_view value);
  std::optional<std::string_view> Get(std::string_view key) const;
  bool Contains(std::string_view key) const { return Get(key).has_value(); }
  bool Erase(std::string_view key);
  void Clear();
  size_t size() const { return live_entries_; }
  uint64_t byte_size() const { return live_bytes_; }
  void ForEach(absl::FunctionRef<void(std::string_view, std::string_view)> fn) const;
  // Memory held, as the allocator counts it: table slots, every entry's allocation (tombstones
  // included), the dirty list, the capture's sort buffers and pooled change-set memory. O(entries):
  // for diagnostics and benchmarks.
  uint64_t MemoryBytes() const;

  // Keys changed since the last capture (tombstones included).
  size_t changed_count() const requires kTracked { return dirty_.size() - dirty_holes_; }
  KeyedChangeSet CaptureChanges() requires kTracked;
  // With kTracked, also resets the tracking; without, only copies.
  KeyedChangeSet CaptureAll();
  void MergeBack(const KeyedChangeSet& change_set) requires kTracked;
  void Rebaseline() requires kTracked;

  // A restore's filling of an empty table (KeyedStateAccess::Load): puts the entry, untracked,
  // unless the key is present; true if it was put. Calls for keys of different key groups may run
  // on several threads at once (each touches only its group's set and counts), and so may Get and
  // Contains. FinishLoad() adds what was loaded to size() and byte_size() once they are done.
  absl::StatusOr<bool> Load(std::string_view key, std::string_view value);
  void FinishLoad();

 private:
  struct Header;
  // A key as the table looks it up: its bytes, its key group and its hash within the group, all
  // from one XXH3 of the key (the key-group hash, format.md §3), computed once per operation.
  struct Probe {
    std::string_view key;
    uint32_t group;
    size_t hash;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(const Probe& probe) const { return probe.hash; }
    size_t operator()(const Header* entry) const;  // on rehash
  };
  struct Eq {
    using is_transparent = void;
    static std::string_view View(const Probe& probe) { return probe.key; }
    static std::string_view View(const Header* entry) { return KeyOf(entry); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return View(a) == View(b);
    }
  };
  using Set = absl::flat_hash_set<Header*, Hash, Eq>;
  Probe ProbeOf(std::string_view key) const;
  Set& SetOf(const Probe& probe) { return groups_[probe.group]; }
  const Set& SetOf(const Probe& probe) const { return groups_[probe.group]; }

  static std::string_view KeyOf(const Header* entry);
  static std::string_view ValueOf(const Header* entry);
  static Header* NewEntry(std::string_view key, std::string_view value);
  // Sets the value of the entry at `it`, reallocating it if the size changes (then the table slot
  // and the dirty list are updated). Returns the entry, wherever it now is.
  Header* SetValue(typename Set::iterator it, std::string_view value);
  void MarkDirty(Header* entry) requires kTracked;
  void DropFromDirtyList(Header* entry) requires kTracked;
  // Every changed entry becomes unchanged; tombstones leave the table.
  void ResetTracking() requires kTracked;

  uint32_t key_groups_;
  std::shared_ptr<KeyedChangeSetPool> pool_;
  // One set per key group: a restore fills the groups of different threads at once (Load), and
  // each set stays small enough to rehash without a long stall.
  std::vector<Set> groups_;
  size_t live_entries_ = 0;
  uint64_t live_bytes_ = 0;
  // Load's counts per key group, added to the totals by FinishLoad (no counter is shared while
  // several threads load).
  struct LoadCount {
    size_t entries = 0;
    uint64_t bytes = 0;
  };
  std::vector<LoadCount> loaded_;
  // kTracked only: the changed entries, each once, and null holes left by dropped entries.
  std::vector<Header*> dirty_;
  size_t dirty_holes_ = 0;
};

// Instantiated in keyed_state.cc: KeyedTable<true> whole, KeyedTable<false> member by member.
extern template class KeyedTable<true>;

class KeyedState::Table : public KeyedTable<true> {
 public:
  using KeyedTable<true>::KeyedTable;
};

class KeyedStateAccess {
 public:
  // A new, empty keyed state. InvalidArgument for an empty name or key_groups outside [1,
  // kMaxKeyGroups].
  static absl::StatusOr<std::unique_ptr<KeyedState>> Create(std::string_view name,
                                                            const KeyedStateOptions& options);
  // Keys put or erased since the last capture (an upper bound of the next change set's size: a key
  // inserted and erased again since counts until the erase drops it).
  static size_t ChangedCount(const KeyedState& state);
  // KeyedTable::MemoryBytes of the state's table. O(entries).
  static uint64_t MemoryBytes(const KeyedState& state);
  // The capture point of an incremental checkpoint: copies every entry changed since the last
  // capture (its current value, or a tombstone if it was erased), and resets the tracking; the
  // result is unsorted (KeyedChangeSet::Sort, after the pause). O(changed entries). Cannot fail.
  static KeyedChangeSet CaptureChanges(KeyedState& state);
  // The capture point of a full checkpoint: copies every entry, no tombstones, unsorted likewise,
  // and resets the tracking. O(size).
  static KeyedChangeSet CaptureAll(KeyedState& state);
  // A capture whose checkpoint did not commit: its changes go back into the change tracking, so the
  // next capture carries them again, each with its newest outcome (current value, or a tombstone if
  // the key is absent now). Merge back in capture order, before a later capture whose checkpoint
  // builds on the failed one is committed (that one must fail too).
  static void MergeBack(KeyedState& state, const KeyedChangeSet& change_set);
  // After a restore filled the state: nothing counts as changed.
  static void Rebaseline(KeyedState& state);
  // The participant owns key groups [first, end) (precondition: first < end <= key_groups): Put
  // of a key in another group fails.
  static void SetOwnedGroups(KeyedState& state, uint32_t first, uint32_t end);
  // Drops every entry and the change tracking: an empty table, ready for a restore to fill.
  static void Reset(KeyedState& state, size_t expected_entries);
  // A restore's filling after Reset: puts the entry, untracked, unless the key is present; true if
  // it was put. Safe on several threads at once for keys of different key groups (each group from
  // one thread), beside Contains; FinishLoad when done, before anything else touches the state.
  static absl::StatusOr<bool> Load(KeyedState& state, std::string_view key, std::string_view value);
  static void FinishLoad(KeyedState& state);
};

}  // namespace ickpt
