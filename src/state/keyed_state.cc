// KeyedState and its table; the layout is described in keyed_state_internal.h.
#include "ickpt/keyed_state.h"

#include <malloc.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "src/state/keyed_state_internal.h"
#include "src/util/str.h"

namespace ickpt {

namespace keyed_detail {
// The entry header. Without tracking: the key and value sizes. With tracking, also `track`:
// (position in the dirty list << 2) | flags, the position being kCleanPos when unchanged.
template <bool kTracked>
struct HeaderFields {
  uint32_t key_size;
  uint32_t value_size;
};
template <>
struct HeaderFields<true> {
  uint32_t key_size;
  uint32_t value_size;
  uint64_t track;
};
static_assert(sizeof(HeaderFields<false>) == 8 && sizeof(HeaderFields<true>) == 16);
}  // namespace keyed_detail

namespace {

// Like operator new without exceptions: a keyed state that cannot allocate ends the process.
[[noreturn]] void OutOfMemory(size_t bytes) {
  std::fprintf(stderr, "ickpt: keyed state: out of memory allocating %zu bytes\n", bytes);
  std::abort();
}

// memcpy, except that a zero-length copy may have null pointers (an empty string_view's data()).
inline void CopyBytes(char* dst, const char* src, size_t n) {
  if (n != 0) std::memmove(dst, src, n);
}

absl::Status CheckSizes(std::string_view key, std::string_view value) {
  if (key.size() > kMaxKeySize) {
    return absl::InvalidArgumentError(
        StrCat("keyed state: key of ", key.size(), " bytes exceeds the limit of ", kMaxKeySize));
  }
  if (value.size() > kMaxValueSize) {
    return absl::InvalidArgumentError(StrCat("keyed state: value of ", value.size(),
                                             " bytes exceeds the limit of ", kMaxValueSize));
  }
  return absl::OkStatus();
}

constexpr uint64_t kErasedFlag = 1;  // a tombstone: erased since the last capture
constexpr uint64_t kNewFlag = 2;     // absent at the last capture (inserted since): always dirty
constexpr uint64_t kFlagMask = 3;
constexpr uint64_t kCleanPos = (uint64_t{1} << 62) - 1;
constexpr uint64_t kCleanTrack = kCleanPos << 2;

// The change set's byte chunks grow from 64 KiB to 16 MiB: small captures stay small, large ones
// make few allocations.
constexpr size_t kFirstChunk = size_t{64} << 10;
constexpr size_t kMaxChunk = size_t{16} << 20;

// A dirty list longer than this is freed at capture rather than kept for the next interval, so a
// burst of changes (such as loading the state) does not keep its memory.
constexpr size_t kKeepDirtyCapacity = size_t{1} << 16;

// A tombstone's allocation is shrunk to its key when the value it replaces is at least this big.
constexpr size_t kShrinkTombstoneFrom = 64;

// Entries prefetched ahead of the capture's copy loop, and the cache lines of each: enough for the
// header, a 16-byte key and a 100-byte value.
constexpr size_t kPrefetchAhead = 16;
inline void Prefetch(const void* entry) {
  if (entry == nullptr) return;
  const char* p = static_cast<const char*>(entry);
  __builtin_prefetch(p);
  __builtin_prefetch(p + 64);
  __builtin_prefetch(p + 128);
}

// Sort key of a change-set record: the key group in the top 16 bits, then the first 6 key bytes
// (big-endian, zero-padded). Equal sort keys are ordered by comparing the whole keys.
uint64_t SortKey(uint32_t group, std::string_view key) {
  uint64_t k = uint64_t{group} << 48;
  const size_t n = std::min<size_t>(key.size(), 6);
  for (size_t i = 0; i < n; ++i) k |= uint64_t{static_cast<uint8_t>(key[i])} << (40 - 8 * i);
  return k;
}

}  // namespace

// ---- KeyedChangeSet
// ------------------------------------------------------------------------------

ChangedEntry KeyedChangeSet::entry(size_t i) const {
  const Record& r = records_[i];
  ChangedEntry e;
  e.key_group = r.key_group;
  e.key = std::string_view(r.data, r.key_size);
  e.value = std::string_view(r.data + r.key_size, r.value_size);
  e.erased = (r.flags & kRecordErased) != 0;
  return e;
}

uint64_t KeyedChangeSet::memory_bytes() const {
  return chunk_bytes_ + (records_.capacity() + erased_since_previous_.capacity()) * sizeof(Record) +
         chunks_.capacity() * sizeof(chunks_[0]);
}

KeyedChangeSet::~KeyedChangeSet() { Release(); }

KeyedChangeSet& KeyedChangeSet::operator=(KeyedChangeSet&& other) {
  if (this != &other) {
    Release();
    pool_ = std::move(other.pool_);
    full_ = other.full_;
    sorted_ = other.sorted_;
    key_groups_ = other.key_groups_;
    chunks_ = std::move(other.chunks_);
    chunk_bytes_ = other.chunk_bytes_;
    records_ = std::move(other.records_);
    erased_since_previous_ = std::move(other.erased_since_previous_);
    tombstones_ = other.tombstones_;
    raw_bytes_ = other.raw_bytes_;
    other.chunk_bytes_ = 0;
  }
  return *this;
}

void KeyedChangeSet::Release() {
  // A full change set's memory is not kept: it is the size of the whole state, and the next
  // captures are incremental ones, much smaller.
  if (pool_ != nullptr && !full_) {
    pool_->Give(std::move(chunks_), std::move(records_));
    pool_.reset();
  }
  chunks_.clear();
  chunk_bytes_ = 0;
  records_.clear();
}

// ---- KeyedChangeSetPool
// --------------------------------------------------------------------------

KeyedChangeSetPool::Chunk KeyedChangeSetPool::TakeChunk(size_t min_size) {
  MutexLock lock(&mu_);
  for (size_t i = 0; i < chunks_.size(); ++i) {
    if (chunks_[i].size >= min_size) {
      Chunk chunk = std::move(chunks_[i]);
      chunks_[i] = std::move(chunks_.back());
      chunks_.pop_back();
      chunk_bytes_ -= chunk.size;
      return chunk;
    }
  }
  return Chunk{nullptr, 0};
}

KeyedChangeSetPool::Records KeyedChangeSetPool::TakeRecords() {
  MutexLock lock(&mu_);
  if (records_.empty()) return {};
  Records records = std::move(records_.back());
  records_.pop_back();
  return records;
}

void KeyedChangeSetPool::Give(std::vector<Chunk> chunks, Records records) {
  Give(std::move(records));
  MutexLock lock(&mu_);
  for (Chunk& chunk : chunks) {
    if (chunk_bytes_ + chunk.size > kKeepBytes) break;  // the rest is freed
    chunk_bytes_ += chunk.size;
    chunks_.push_back(std::move(chunk));
  }
}

void KeyedChangeSetPool::Give(Records records) {
  if (records.capacity() == 0 || records.capacity() > kKeepRecords) return;
  records.clear();
  MutexLock lock(&mu_);
  if (records_.size() < 2) records_.push_back(std::move(records));
}

uint64_t KeyedChangeSetPool::memory_bytes() const {
  MutexLock lock(&mu_);
  uint64_t bytes = chunk_bytes_;
  for (const Records& r : records_) bytes += r.capacity() * sizeof(KeyedChangeSet::Record);
  return bytes;
}

std::pair<size_t, size_t> KeyedChangeSet::GroupRange(uint32_t group) const {
  auto first = std::lower_bound(records_.begin(), records_.end(), group,
                                [](const Record& r, uint32_t g) { return r.key_group < g; });
  auto end = std::upper_bound(first, records_.end(), group,
                              [](uint32_t g, const Record& r) { return g < r.key_group; });
  return {static_cast<size_t>(first - records_.begin()),
          static_cast<size_t>(end - records_.begin())};
}

// Sorts the records by (key group, key): a radix sort of the 64-bit sort keys (least significant
// byte first, skipping bytes all keys share), then a comparison sort of each run of equal sort keys
// by the whole keys. Computes each record's key group first (a hash of the key: kept out of the
// capture pause, like the sort).
void KeyedChangeSet::Sort() {
  if (sorted_) return;
  const size_t n = records_.size();
  for (Record& r : records_)
    r.key_group = KeyGroupOf(std::string_view(r.data, r.key_size), key_groups_);
  using SortItems = std::vector<std::pair<uint64_t, size_t>>;
  SortItems order(n), scratch(n);
  uint64_t all_or = 0, all_and = ~uint64_t{0};
  for (size_t i = 0; i < n; ++i) {
    const Record& r = records_[i];
    order[i] = {SortKey(r.key_group, std::string_view(r.data, r.key_size)), i};
    all_or |= order[i].first;
    all_and &= order[i].first;
  }
  for (int shift = 0; shift < 64; shift += 8) {
    if ((((all_or ^ all_and) >> shift) & 0xff) == 0) continue;  // same byte everywhere
    size_t count[257] = {};
    for (const auto& item : order) ++count[((item.first >> shift) & 0xff) + 1];
    for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
    for (const auto& item : order) scratch[count[(item.first >> shift) & 0xff]++] = item;
    order.swap(scratch);
  }
  auto key_of = [&](size_t i) { return std::string_view(records_[i].data, records_[i].key_size); };
  for (size_t first = 0; first < n;) {
    size_t end = first + 1;
    while (end < n && order[end].first == order[first].first) ++end;
    if (end - first > 1) {
      std::sort(order.begin() + first, order.begin() + end,
                [&](const auto& a, const auto& b) { return key_of(a.second) < key_of(b.second); });
    }
    first = end;
  }
  std::vector<Record> sorted = pool_ != nullptr ? pool_->TakeRecords() : std::vector<Record>();
  sorted.reserve(n);
  for (const auto& [sort_key, i] : order) sorted.push_back(records_[i]);
  records_.swap(sorted);
  if (pool_ != nullptr) pool_->Give(std::move(sorted));
  sorted_ = true;
}

// Fills a change set: copies entries into its chunks. Sort() orders them later.
class KeyedChangeSetBuilder {
 public:
  KeyedChangeSetBuilder(KeyedChangeSet* set, std::shared_ptr<KeyedChangeSetPool> pool,
                        uint32_t key_groups, bool full, size_t expected)
      : set_(set) {
    set_->pool_ = std::move(pool);
    set_->full_ = full;
    set_->key_groups_ = key_groups;
    set_->sorted_ = false;
    set_->records_ = set_->pool_->TakeRecords();
    set_->records_.reserve(expected);
  }

  void Add(std::string_view key, std::string_view value, uint32_t flags) {
    set_->records_.push_back(Copy(key, value, flags));
    set_->raw_bytes_ += key.size() + value.size();
    if (flags & KeyedChangeSet::kRecordErased) ++set_->tombstones_;
  }
  void AddErasedSincePrevious(std::string_view key) {
    set_->erased_since_previous_.push_back(Copy(key, {}, KeyedChangeSet::kRecordErased));
  }

 private:
  KeyedChangeSet::Record Copy(std::string_view key, std::string_view value, uint32_t flags) {
    const size_t n = key.size() + value.size();
    if (n > available_) {
      KeyedChangeSet::Chunk chunk = set_->pool_->TakeChunk(n);
      if (chunk.data == nullptr) {
        chunk.size = std::max(n, next_chunk_);
        next_chunk_ = std::min(next_chunk_ * 2, kMaxChunk);
        chunk.data.reset(new char[chunk.size]);
      }
      cursor_ = chunk.data.get();
      available_ = chunk.size;
      set_->chunk_bytes_ += chunk.size;
      set_->chunks_.push_back(std::move(chunk));
    }
    char* data = cursor_;
    CopyBytes(data, key.data(), key.size());
    CopyBytes(data + key.size(), value.data(), value.size());
    cursor_ += n;
    available_ -= n;
    KeyedChangeSet::Record r;
    r.data = data;
    r.key_size = static_cast<uint32_t>(key.size());
    r.value_size = static_cast<uint32_t>(value.size());
    r.key_group = 0;  // computed by Sort(), off the pause
    r.flags = flags;
    return r;
  }

  KeyedChangeSet* set_;
  char* cursor_ = nullptr;
  size_t available_ = 0;
  size_t next_chunk_ = kFirstChunk;
};

// ---- KeyedTable
// ----------------------------------------------------------------------------------

template <bool kTracked>
struct KeyedTable<kTracked>::Header : keyed_detail::HeaderFields<kTracked> {};

template <bool kTracked>
std::string_view KeyedTable<kTracked>::KeyOf(const Header* entry) {
  return std::string_view(reinterpret_cast<const char*>(entry + 1), entry->key_size);
}

template <bool kTracked>
std::string_view KeyedTable<kTracked>::ValueOf(const Header* entry) {
  return std::string_view(reinterpret_cast<const char*>(entry + 1) + entry->key_size,
                          entry->value_size);
}

template <bool kTracked>
typename KeyedTable<kTracked>::Header* KeyedTable<kTracked>::NewEntry(std::string_view key,
                                                                      std::string_view value) {
  const size_t bytes = sizeof(Header) + key.size() + value.size();
  Header* entry = static_cast<Header*>(std::malloc(bytes));
  if (entry == nullptr) OutOfMemory(bytes);
  entry->key_size = static_cast<uint32_t>(key.size());
  entry->value_size = static_cast<uint32_t>(value.size());
  if constexpr (kTracked) entry->track = kCleanTrack;
  char* data = reinterpret_cast<char*>(entry + 1);
  CopyBytes(data, key.data(), key.size());
  CopyBytes(data + key.size(), value.data(), value.size());
  return entry;
}

namespace {

// The key-group hash of format.md §3 (KeyGroupOf's), computed once per table operation.
uint64_t KeyGroupHash(std::string_view key) {
  return XXH3_64bits_withSeed(key.data(), key.size(), kKeyGroupSeed);
}
// A key's position in its group's set, from the same hash mixed: a set holds one group, whose keys
// agree on the hash modulo the group count, so the set must not use the hash's low bits as they
// are.
size_t InGroupHash(uint64_t key_group_hash) { return absl::Hash<uint64_t>()(key_group_hash); }

}  // namespace

template <bool kTracked>
size_t KeyedTable<kTracked>::Hash::operator()(const Header* entry) const {
  return InGroupHash(KeyGroupHash(KeyOf(entry)));
}

template <bool kTracked>
typename KeyedTable<kTracked>::Probe KeyedTable<kTracked>::ProbeOf(std::string_view key) const {
  const uint64_t h = KeyGroupHash(key);
  // KeyGroupOf's rule (format.md §3) on the hash already computed.
  return Probe{key, key_groups_ <= 1 ? 0 : static_cast<uint32_t>(h % key_groups_), InGroupHash(h)};
}

template <bool kTracked>
KeyedTable<kTracked>::KeyedTable(uint32_t key_groups, size_t expected_entries)
    : key_groups_(std::max<uint32_t>(1, key_groups)),
      pool_(std::make_shared<KeyedChangeSetPool>()),
      groups_(key_groups_),
      loaded_(key_groups_) {
  if (expected_entries > 0) {
    // Keys spread evenly over the groups (a hash decides); a little room for the unevenness.
    const size_t per_group = expected_entries / key_groups_;
    for (Set& set : groups_) set.reserve(per_group + per_group / 16 + 1);
  }
}

template <bool kTracked>
KeyedTable<kTracked>::~KeyedTable() {
  for (Set& set : groups_) {
    for (Header* entry : set) std::free(entry);
  }
}

template <bool kTracked>
typename KeyedTable<kTracked>::Header* KeyedTable<kTracked>::SetValue(typename Set::iterator it,
                                                                      std::string_view value) {
  Header* entry = *it;
  std::string copy;  // outlives the copy of the value below
  if (value.size() != entry->value_size) {
    // The new value may be a view of the old one (Put(k, *Get(k)) with a suffix, say): realloc
    // would invalidate it, so copy it out first.
    const char* begin = reinterpret_cast<const char*>(entry);
    const char* end = begin + sizeof(Header) + entry->key_size + entry->value_size;
    if (!value.empty() && value.data() >= begin && value.data() < end) {
      copy.assign(value);
      value = copy;
    }
    const size_t bytes = sizeof(Header) + entry->key_size + value.size();
    Header* moved = static_cast<Header*>(std::realloc(entry, bytes));
    if (moved == nullptr) OutOfMemory(bytes);
    if (moved != entry) {
      // The slot holds a pointer whose hash and equality depend only on the key bytes, which did
      // not change: rewriting it in place keeps the table consistent.
      const_cast<Header*&>(*it) = moved;
      if constexpr (kTracked) {
        const uint64_t pos = moved->track >> 2;
        if (pos != kCleanPos) dirty_[pos] = moved;
      }
      entry = moved;
    }
    entry->value_size = static_cast<uint32_t>(value.size());
  }
  CopyBytes(reinterpret_cast<char*>(entry + 1) + entry->key_size, value.data(), value.size());
  return entry;
}

template <bool kTracked>
void KeyedTable<kTracked>::MarkDirty(Header* entry) requires kTracked {
  entry->track = (uint64_t{dirty_.size()} << 2) | (entry->track & kFlagMask);
  dirty_.push_back(entry);
}

template <bool kTracked>
void KeyedTable<kTracked>::DropFromDirtyList(Header* entry) requires kTracked {
  // A hole rather than moving the last entry into the place: that would touch a second entry (a
  // cache miss) on every drop. Holes are compacted away once they are half the list.
  const uint64_t pos = entry->track >> 2;
  dirty_[pos] = nullptr;
  entry->track = kCleanTrack | (entry->track & kFlagMask);
  if (++dirty_holes_ > 1024 && dirty_holes_ > dirty_.size() / 2) {
    size_t kept = 0;
    for (Header* e : dirty_) {
      if (e == nullptr) continue;
      e->track = (uint64_t{kept} << 2) | (e->track & kFlagMask);
      dirty_[kept++] = e;
    }
    dirty_.resize(kept);
    dirty_holes_ = 0;
  }
}

template <bool kTracked>
absl::Status KeyedTable<kTracked>::Put(std::string_view key, std::string_view value) {
  if (absl::Status s = CheckSizes(key, value); !s.ok()) return s;
  bool inserted = false;
  const Probe probe = ProbeOf(key);
  auto it = SetOf(probe).lazy_emplace(probe, [&](const typename Set::constructor& construct) {
    inserted = true;
    construct(NewEntry(key, value));
  });
  if (inserted) {
    ++live_entries_;
    live_bytes_ += key.size() + value.size();
    if constexpr (kTracked) {
      Header* entry = *it;
      entry->track |= kNewFlag;
      MarkDirty(entry);
    }
    return absl::OkStatus();
  }
  Header* entry = *it;
  if constexpr (kTracked) {
    if (entry->track & kErasedFlag) {  // a tombstone comes back to life (still dirty, not new)
      entry->track &= ~kErasedFlag;
      entry->value_size = 0;
      ++live_entries_;
      live_bytes_ += key.size();
    }
  }
  live_bytes_ = live_bytes_ - entry->value_size + value.size();
  entry = SetValue(it, value);
  if constexpr (kTracked) {
    if ((entry->track >> 2) == kCleanPos) MarkDirty(entry);
  }
  return absl::OkStatus();
}

template <bool kTracked>
std::optional<std::string_view> KeyedTable<kTracked>::Get(std::string_view key) const {
  const Probe probe = ProbeOf(key);
  const Set& set = SetOf(probe);
  auto it = set.find(probe);
  if (it == set.end()) return std::nullopt;
  const Header* entry = *it;
  if constexpr (kTracked) {
    if (entry->track & kErasedFlag) return std::nullopt;
  }
  return ValueOf(entry);
}

template <bool kTracked>
bool KeyedTable<kTracked>::Erase(std::string_view key) {
  const Probe probe = ProbeOf(key);
  Set& set = SetOf(probe);
  auto it = set.find(probe);
  if (it == set.end()) return false;
  Header* entry = *it;
  if constexpr (kTracked) {
    if (entry->track & kErasedFlag) return false;
  }
  --live_entries_;
  live_bytes_ -= entry->key_size + entry->value_size;
  if constexpr (kTracked) {
    if (!(entry->track & kNewFlag)) {
      // It existed at the last capture: keep a tombstone until the next capture takes it.
      entry->track |= kErasedFlag;
      if (entry->value_size >= kShrinkTombstoneFrom) entry = SetValue(it, {});
      entry->value_size = 0;
      if ((entry->track >> 2) == kCleanPos) MarkDirty(entry);
      return true;
    }
    // Inserted since the last capture: no checkpoint knows it, so it simply goes.
    DropFromDirtyList(entry);
  }
  set.erase(it);
  std::free(entry);
  return true;
}

template <bool kTracked>
void KeyedTable<kTracked>::Clear() {
  if constexpr (!kTracked) {
    for (Set& set : groups_) {
      for (Header* entry : set) std::free(entry);
      set.clear();
    }
  } else {
    // Every key known to the last capture becomes a tombstone; the others go.
    std::vector<Header*> tombstones;
    for (Set& set : groups_) {
      for (Header* entry : set) {
        if (entry->track & kNewFlag) {
          std::free(entry);
        } else {
          tombstones.push_back(entry);
        }
      }
      set.clear();
    }
    dirty_.clear();
    dirty_holes_ = 0;
    for (Header*& entry : tombstones) {
      if (entry->value_size >= kShrinkTombstoneFrom) {
        const size_t bytes = sizeof(Header) + entry->key_size;
        Header* shrunk = static_cast<Header*>(std::realloc(entry, bytes));
        if (shrunk == nullptr) OutOfMemory(bytes);
        entry = shrunk;
      }
      entry->value_size = 0;
      entry->track = kCleanTrack | kErasedFlag;
      const Probe probe = ProbeOf(KeyOf(entry));
      SetOf(probe).insert(entry);
      MarkDirty(entry);
    }
  }
  live_entries_ = 0;
  live_bytes_ = 0;
}

template <bool kTracked>
void KeyedTable<kTracked>::ForEach(
    absl::FunctionRef<void(std::string_view, std::string_view)> fn) const {
  for (const Set& set : groups_) {
    for (const Header* entry : set) {
      if constexpr (kTracked) {
        if (entry->track & kErasedFlag) continue;
      }
      fn(KeyOf(entry), ValueOf(entry));
    }
  }
}

template <bool kTracked>
uint64_t KeyedTable<kTracked>::MemoryBytes() const {
  // A slot is a pointer and a control byte; glibc's chunk header is 8 bytes per allocation.
  uint64_t bytes = dirty_.capacity() * sizeof(Header*) + pool_->memory_bytes() +
                   groups_.capacity() * sizeof(Set) + loaded_.capacity() * sizeof(LoadCount);
  for (const Set& set : groups_) {
    bytes += set.capacity() * (sizeof(Header*) + 1);
    for (const Header* entry : set) bytes += malloc_usable_size(const_cast<Header*>(entry)) + 8;
  }
  return bytes;
}

template <bool kTracked>
void KeyedTable<kTracked>::ResetTracking() requires kTracked {
  for (Header* entry : dirty_) {
    if (entry == nullptr) continue;
    if (entry->track & kErasedFlag) {
      SetOf(ProbeOf(KeyOf(entry))).erase(entry);
      std::free(entry);
    } else {
      entry->track = kCleanTrack;
    }
  }
  if (dirty_.capacity() > kKeepDirtyCapacity) {
    std::vector<Header*>().swap(dirty_);
  } else {
    dirty_.clear();
  }
  dirty_holes_ = 0;
}

template <bool kTracked>
KeyedChangeSet KeyedTable<kTracked>::CaptureChanges() requires kTracked {
  // One pass over the dirty list: copy each entry, then reset it (or drop its tombstone). The
  // entries lie anywhere in memory, but the list says which come next: prefetching a few ahead
  // overlaps their cache misses, which are most of the pause.
  KeyedChangeSet set;
  KeyedChangeSetBuilder builder(&set, pool_, key_groups_, /*full=*/false, changed_count());
  const size_t count = dirty_.size();
  for (size_t i = 0; i < count; ++i) {
    if (i + kPrefetchAhead < count) Prefetch(dirty_[i + kPrefetchAhead]);
    Header* entry = dirty_[i];
    if (entry == nullptr) continue;
    if (entry->track & kErasedFlag) {
      builder.Add(KeyOf(entry), {}, KeyedChangeSet::kRecordErased);
      SetOf(ProbeOf(KeyOf(entry))).erase(entry);
      std::free(entry);
    } else {
      builder.Add(KeyOf(entry), ValueOf(entry), 0);
      entry->track = kCleanTrack;
    }
  }
  dirty_.clear();
  ResetTracking();  // now only releases the list
  return set;
}

template <bool kTracked>
KeyedChangeSet KeyedTable<kTracked>::CaptureAll() {
  KeyedChangeSet set;
  KeyedChangeSetBuilder builder(&set, pool_, key_groups_, /*full=*/true, live_entries_);
  for (const Set& group : groups_) {
    for (const Header* entry : group) {
      uint32_t flags = 0;
      if constexpr (kTracked) {
        if (entry->track & kErasedFlag) {
          builder.AddErasedSincePrevious(KeyOf(entry));
          continue;
        }
        if ((entry->track >> 2) != kCleanPos) flags = KeyedChangeSet::kRecordChanged;
      }
      builder.Add(KeyOf(entry), ValueOf(entry), flags);
    }
  }
  if constexpr (kTracked) ResetTracking();
  return set;
}

template <bool kTracked>
void KeyedTable<kTracked>::MergeBack(const KeyedChangeSet& change_set) requires kTracked {
  // Each key of the failed capture becomes changed again. The next capture reads its current state,
  // which is its newest outcome: a value, or (if absent now) a tombstone, which is always safe. It
  // is no longer "new": the failed capture may have recorded an erasure of an older value that the
  // parent checkpoint still holds.
  auto mark_changed = [&](std::string_view key) {
    bool inserted = false;
    const Probe probe = ProbeOf(key);
    auto it = SetOf(probe).lazy_emplace(probe, [&](const typename Set::constructor& construct) {
      inserted = true;
      construct(NewEntry(key, {}));
    });
    Header* entry = *it;
    if (inserted) {
      entry->track = kCleanTrack | kErasedFlag;
      MarkDirty(entry);
      return;
    }
    entry->track &= ~kNewFlag;
    if ((entry->track >> 2) == kCleanPos) MarkDirty(entry);
  };
  for (size_t i = 0; i < change_set.records_.size(); ++i) {
    const KeyedChangeSet::Record& r = change_set.records_[i];
    if (change_set.full_ && !(r.flags & KeyedChangeSet::kRecordChanged)) continue;
    mark_changed(std::string_view(r.data, r.key_size));
  }
  for (const KeyedChangeSet::Record& r : change_set.erased_since_previous_) {
    mark_changed(std::string_view(r.data, r.key_size));
  }
}

template <bool kTracked>
void KeyedTable<kTracked>::Rebaseline() requires kTracked {
  ResetTracking();
}

template <bool kTracked>
absl::StatusOr<bool> KeyedTable<kTracked>::Load(std::string_view key, std::string_view value) {
  if (absl::Status s = CheckSizes(key, value); !s.ok()) return s;
  bool inserted = false;
  const Probe probe = ProbeOf(key);
  SetOf(probe).lazy_emplace(probe, [&](const typename Set::constructor& construct) {
    inserted = true;
    construct(NewEntry(key, value));
  });
  if (!inserted) return false;
  // Sized once, before any thread loads: FinishLoad leaves it so for the next restore.
  LoadCount& count = loaded_[probe.group];
  ++count.entries;
  count.bytes += key.size() + value.size();
  return true;
}

template <bool kTracked>
void KeyedTable<kTracked>::FinishLoad() {
  for (LoadCount& count : loaded_) {
    live_entries_ += count.entries;
    live_bytes_ += count.bytes;
    count = LoadCount();
  }
}

template class KeyedTable<true>;
// The untracked table (the benchmark's baseline) member by member: instantiating the whole class
// would also instantiate the members constrained to kTracked, which clang 14 does, wrongly.
template KeyedTable<false>::KeyedTable(uint32_t, size_t);
template KeyedTable<false>::~KeyedTable();
template absl::Status KeyedTable<false>::Put(std::string_view, std::string_view);
template std::optional<std::string_view> KeyedTable<false>::Get(std::string_view) const;
template bool KeyedTable<false>::Erase(std::string_view);
template void KeyedTable<false>::Clear();
template void KeyedTable<false>::ForEach(
    absl::FunctionRef<void(std::string_view, std::string_view)>) const;
template uint64_t KeyedTable<false>::MemoryBytes() const;
template KeyedChangeSet KeyedTable<false>::CaptureAll();
template size_t KeyedTable<false>::Hash::operator()(const Header*) const;
template KeyedTable<false>::Probe KeyedTable<false>::ProbeOf(std::string_view) const;

// ---- KeyedState
// ----------------------------------------------------------------------------------

KeyedState::KeyedState(std::string name, uint32_t key_groups, std::unique_ptr<Table> table)
    : name_(std::move(name)),
      key_groups_(key_groups),
      group_first_(0),
      group_end_(key_groups),
      table_(std::move(table)) {}

KeyedState::~KeyedState() = default;

absl::Status KeyedState::Put(std::string_view key, std::string_view value) {
  // Hashing the key costs a few ns; a participant that owns every group (the usual single-process
  // case) skips it.
  if (group_end_ - group_first_ != key_groups_) {
    const uint32_t group = KeyGroupOf(key, key_groups_);
    if (group < group_first_ || group >= group_end_) {
      return absl::InvalidArgumentError(StrCat("keyed state '", name_,
                                               "': the key belongs to key group ", group,
                                               ", which this participant does not own (it owns [",
                                               group_first_, ", ", group_end_, "))"));
    }
  }
  return table_->Put(key, value);
}
std::optional<std::string_view> KeyedState::Get(std::string_view key) const {
  return table_->Get(key);
}
bool KeyedState::Contains(std::string_view key) const { return table_->Contains(key); }
bool KeyedState::Erase(std::string_view key) { return table_->Erase(key); }
void KeyedState::Clear() { table_->Clear(); }
size_t KeyedState::size() const { return table_->size(); }
uint64_t KeyedState::byte_size() const { return table_->byte_size(); }
void KeyedState::ForEach(
    absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) const {
  table_->ForEach(fn);
}

// ---- KeyedStateAccess
// ----------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<KeyedState>> KeyedStateAccess::Create(
    std::string_view name, const KeyedStateOptions& options) {
  if (name.empty()) return absl::InvalidArgumentError("a keyed state needs a name");
  if (options.key_groups < 1 || options.key_groups > kMaxKeyGroups) {
    return absl::InvalidArgumentError(StrCat("keyed state '", name, "': key_groups ",
                                             options.key_groups, " is not in [1, ", kMaxKeyGroups,
                                             "]"));
  }
  auto table = std::make_unique<KeyedState::Table>(options.key_groups, options.expected_entries);
  return std::unique_ptr<KeyedState>(
      new KeyedState(std::string(name), options.key_groups, std::move(table)));
}

size_t KeyedStateAccess::ChangedCount(const KeyedState& state) {
  return state.table_->changed_count();
}
uint64_t KeyedStateAccess::MemoryBytes(const KeyedState& state) {
  return state.table_->MemoryBytes();
}
KeyedChangeSet KeyedStateAccess::CaptureChanges(KeyedState& state) {
  return state.table_->CaptureChanges();
}
KeyedChangeSet KeyedStateAccess::CaptureAll(KeyedState& state) {
  return state.table_->CaptureAll();
}
void KeyedStateAccess::MergeBack(KeyedState& state, const KeyedChangeSet& change_set) {
  state.table_->MergeBack(change_set);
}
void KeyedStateAccess::Rebaseline(KeyedState& state) { state.table_->Rebaseline(); }
void KeyedStateAccess::SetOwnedGroups(KeyedState& state, uint32_t first, uint32_t end) {
  state.group_first_ = first;
  state.group_end_ = end;
}
void KeyedStateAccess::Reset(KeyedState& state, size_t expected_entries) {
  state.table_ = std::make_unique<KeyedState::Table>(state.key_groups_, expected_entries);
}
absl::StatusOr<bool> KeyedStateAccess::Load(KeyedState& state, std::string_view key,
                                            std::string_view value) {
  return state.table_->Load(key, value);
}
void KeyedStateAccess::FinishLoad(KeyedState& state) { state.table_->FinishLoad(); }

}  // namespace ickpt
