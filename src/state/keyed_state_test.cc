#include "ickpt/keyed_state.h"

#include <sys/mman.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/state/keyed_state_internal.h"
#include "src/testing/status_matchers.h"

namespace ickpt {
namespace {

using Map = std::map<std::string, std::string>;

// A keyed state, the reference map it must equal, and a replica built only from captured change
// sets, as a restore will build it.
class KeyedStateTest : public ::testing::Test {
 protected:
  void SetUp() override { state_ = MakeState(16); }

  static std::unique_ptr<KeyedState> MakeState(uint32_t key_groups) {
    KeyedStateOptions options;
    options.key_groups = key_groups;
    auto state = KeyedStateAccess::Create("keyed", options);
    EXPECT_OK(state.status());
    return state.ok() ? *std::move(state) : nullptr;
  }

  void Put(const std::string& key, const std::string& value) {
    ASSERT_OK(state_->Put(key, value));
    reference_[key] = value;
  }
  void Erase(const std::string& key) {
    EXPECT_EQ(state_->Erase(key), reference_.erase(key) == 1) << "key " << key;
  }
  void Clear() {
    state_->Clear();
    reference_.clear();
  }

  // A checkpoint that commits: its change set goes into the replica.
  KeyedChangeSet Checkpoint() {
    KeyedChangeSet set = KeyedStateAccess::CaptureChanges(*state_);
    ExpectWellFormed(set);
    Apply(set, replica_);
    return set;
  }
  // A full checkpoint that commits: the replica becomes its content.
  void FullCheckpoint() {
    KeyedChangeSet set = KeyedStateAccess::CaptureAll(*state_);
    ExpectWellFormed(set);
    EXPECT_TRUE(set.full());
    EXPECT_EQ(set.tombstone_count(), 0u);
    replica_.clear();
    Apply(set, replica_);
  }
  // A checkpoint that fails after its capture: the change set is merged back.
  void FailedCheckpoint(bool full = false) {
    KeyedChangeSet set =
        full ? KeyedStateAccess::CaptureAll(*state_) : KeyedStateAccess::CaptureChanges(*state_);
    ExpectWellFormed(set);
    KeyedStateAccess::MergeBack(*state_, set);
  }

  static void Apply(const KeyedChangeSet& set, Map& map) {
    for (size_t i = 0; i < set.size(); ++i) {
      ChangedEntry e = set.entry(i);
      if (e.erased) {
        map.erase(std::string(e.key));
      } else {
        map[std::string(e.key)] = std::string(e.value);
      }
    }
  }

  // Sorted by (group, key), keys unique, groups right, tombstones without values, raw bytes summed.
  // Sorts (as persistence does, after the pause) and checks the order, groups and counts.
  void ExpectWellFormed(KeyedChangeSet& set) {
    EXPECT_TRUE(set.empty() || !set.sorted()) << "a capture leaves sorting out of the pause";
    set.Sort();
    EXPECT_TRUE(set.sorted());
    uint64_t raw = 0;
    size_t tombstones = 0;
    for (size_t i = 0; i < set.size(); ++i) {
      ChangedEntry e = set.entry(i);
      EXPECT_EQ(e.key_group, KeyGroupOf(e.key, state_->key_groups()));
      if (e.erased) {
        EXPECT_TRUE(e.value.empty());
        ++tombstones;
      }
      raw += e.key.size() + e.value.size();
      if (i > 0) {
        ChangedEntry prev = set.entry(i - 1);
        EXPECT_TRUE(prev.key_group < e.key_group ||
                    (prev.key_group == e.key_group && prev.key < e.key))
            << "entries " << i - 1 << " and " << i << " out of order";
      }
    }
    EXPECT_EQ(set.raw_bytes(), raw);
    EXPECT_EQ(set.tombstone_count(), tombstones);
  }

  Map Contents() const {
    Map out;
    state_->ForEach([&](std::string_view k, std::string_view v) {
      EXPECT_TRUE(out.emplace(std::string(k), std::string(v)).second) << "duplicate key";
    });
    return out;
  }
  uint64_t ReferenceBytes() const {
    uint64_t n = 0;
    for (const auto& [k, v] : reference_) n += k.size() + v.size();
    return n;
  }
  std::vector<std::string> Keys(const KeyedChangeSet& set) const {
    std::vector<std::string> keys;
    for (size_t i = 0; i < set.size(); ++i) keys.emplace_back(set.entry(i).key);
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  std::unique_ptr<KeyedState> state_;
  Map reference_;
  Map replica_;
};

TEST_F(KeyedStateTest, RandomOperationsReplicateThroughChangeSetsOverManyCaptures) {
  std::mt19937_64 rng(42);
  auto key = [&] {
    // A small key space, so keys are put, erased and put again across intervals; some binary.
    const uint64_t k = rng() % 300;
    std::string s = "k" + std::to_string(k);
    if (k % 7 == 0) s.push_back('\0');
    if (k % 11 == 0) s += "\xff\xfe";
    return s;
  };
  for (int interval = 0; interval < 400; ++interval) {
    const int ops = static_cast<int>(rng() % 200);
    for (int i = 0; i < ops; ++i) {
      const uint64_t r = rng() % 100;
      if (r < 55) {
        Put(key(), std::string(rng() % 40, static_cast<char>('a' + rng() % 26)));
      } else if (r < 85) {
        Erase(key());
      } else {
        const std::string k = key();
        std::optional<std::string_view> got = state_->Get(k);
        auto want = reference_.find(k);
        ASSERT_EQ(got.has_value(), want != reference_.end());
        if (got) {
          EXPECT_EQ(*got, want->second);
        }
        EXPECT_EQ(state_->Contains(k), got.has_value());
      }
    }
    if (rng() % 97 == 0) Clear();
    ASSERT_EQ(state_->size(), reference_.size());
    ASSERT_EQ(state_->byte_size(), ReferenceBytes());
    const uint64_t kind = rng() % 20;
    if (kind == 0) {
      FullCheckpoint();
    } else if (kind <= 2) {
      FailedCheckpoint(/*full=*/false);
    } else if (kind == 3) {
      FailedCheckpoint(/*full=*/true);
    } else {
      Checkpoint();
      ASSERT_EQ(replica_, reference_) << "after interval " << interval;
    }
  }
  EXPECT_EQ(Contents(), reference_);
  Checkpoint();
  EXPECT_EQ(replica_, reference_);
  KeyedChangeSet all = KeyedStateAccess::CaptureAll(*state_);
  all.Sort();
  Map full;
  Apply(all, full);
  EXPECT_EQ(full, reference_);
}

TEST_F(KeyedStateTest, CaptureAllHoldsEveryEntryAndNoTombstones) {
  for (int i = 0; i < 1000; ++i) Put("key" + std::to_string(i), std::string(i % 50, 'v'));
  Checkpoint();
  for (int i = 0; i < 1000; i += 3) Erase("key" + std::to_string(i));
  KeyedChangeSet all = KeyedStateAccess::CaptureAll(*state_);
  ExpectWellFormed(all);
  EXPECT_TRUE(all.full());
  EXPECT_EQ(all.size(), reference_.size());
  EXPECT_EQ(all.tombstone_count(), 0u);
  Map full;
  Apply(all, full);
  EXPECT_EQ(full, reference_);
  EXPECT_EQ(KeyedStateAccess::ChangedCount(*state_), 0u) << "a full capture resets the tracking";
}

TEST_F(KeyedStateTest, CaptureCarriesOnlyChangedKeysWithTheirFinalOutcome) {
  Put("a", "1");
  Put("b", "2");
  Put("c", "3");
  Checkpoint();
  Put("a", "10");
  Put("a", "11");
  Erase("b");
  Put("b", "back");  // erased then put: one change, the value
  Erase("c");
  Put("c", "x");
  Erase("c");  // put then erased: one change, a tombstone
  KeyedChangeSet set = Checkpoint();
  ASSERT_EQ(set.size(), 3u);
  EXPECT_EQ(Keys(set), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(set.tombstone_count(), 1u);
  EXPECT_EQ(replica_, reference_);
  EXPECT_TRUE(KeyedStateAccess::CaptureChanges(*state_).empty()) << "capture must reset";
}

TEST_F(KeyedStateTest, KeyInsertedAndErasedWithinOneIntervalLeavesNothing) {
  Put("stays", "1");
  Checkpoint();
  Put("temp", "x");
  Erase("temp");
  EXPECT_EQ(KeyedStateAccess::ChangedCount(*state_), 0u);
  EXPECT_TRUE(Checkpoint().empty());
  EXPECT_EQ(replica_, reference_);
}

TEST_F(KeyedStateTest, ManyShortLivedKeysWithinOneIntervalLeaveOnlyTheLastingChanges) {
  // Enough inserted-then-erased keys that the dirty list's holes get compacted, interleaved with
  // lasting changes whose places in the list move.
  for (int i = 0; i < 100; ++i) Put("old" + std::to_string(i), "1");
  Checkpoint();
  for (int i = 0; i < 20000; ++i) {
    Put("temp" + std::to_string(i), "t");
    if (i % 100 == 0) Put("old" + std::to_string(i / 200 % 50), std::string(i % 300, 'n'));
    if (i % 250 == 0) Erase("old" + std::to_string(50 + i / 500));
    if (i >= 10) Erase("temp" + std::to_string(i - 10));
  }
  EXPECT_EQ(KeyedStateAccess::ChangedCount(*state_), 10u + 50u + 40u);
  KeyedChangeSet set = Checkpoint();
  EXPECT_EQ(set.size(), 10u + 50u + 40u);
  EXPECT_EQ(set.tombstone_count(), 40u);
  EXPECT_EQ(replica_, reference_);
}

TEST_F(KeyedStateTest, MergeBackCarriesEverythingWithNewestValues) {
  Put("a", "1");
  Put("b", "2");
  Put("c", "3");
  Put("e", "5");
  Checkpoint();
  Put("a", "10");
  Erase("b");
  Put("d", "4");
  Erase("e");
  FailedCheckpoint();  // its change set: a=10, b erased, d=4, e erased
  Put("a", "11");      // changed again since: the newest value must win
  Put("e", "back");    // erased in the failed capture, put since
  Erase("d");          // put in the failed capture, erased since
  KeyedChangeSet set = Checkpoint();
  EXPECT_EQ(Keys(set), (std::vector<std::string>{"a", "b", "d", "e"}));
  EXPECT_EQ(replica_, reference_);
  EXPECT_EQ(replica_, (Map{{"a", "11"}, {"c", "3"}, {"e", "back"}}));
}

TEST_F(KeyedStateTest, ReinsertedKeyErasedAfterMergeBackStillLeavesATombstone) {
  // "k" is in the committed checkpoint; the failed one erased it; since, it was put again (a key
  // that looks inserted-since-last-capture) and erased again. Dropping it silently would let a
  // restore bring back the committed value.
  Put("k", "committed");
  Checkpoint();
  Erase("k");
  KeyedChangeSet failed = KeyedStateAccess::CaptureChanges(*state_);
  Put("k", "again");
  KeyedStateAccess::MergeBack(*state_, failed);
  Erase("k");
  KeyedChangeSet set = Checkpoint();
  ASSERT_EQ(set.size(), 1u);
  EXPECT_TRUE(set.entry(0).erased);
  EXPECT_EQ(replica_, reference_);
}

TEST_F(KeyedStateTest, FailedFullCaptureStillCarriesErasuresAndChanges) {
  Put("a", "1");
  Put("b", "2");
  Put("c", "3");
  Checkpoint();
  Erase("b");
  Put("c", "30");
  FailedCheckpoint(/*full=*/true);
  // The next checkpoint is incremental on the last committed one: it must erase b and set c, and
  // need not carry the unchanged a.
  KeyedChangeSet set = Checkpoint();
  EXPECT_EQ(Keys(set), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(replica_, reference_);
}

TEST_F(KeyedStateTest, RebaselineLeavesNothingChanged) {
  Put("a", "1");
  Put("b", "2");
  Checkpoint();
  Erase("a");
  Put("c", "3");
  KeyedStateAccess::Rebaseline(*state_);
  EXPECT_EQ(KeyedStateAccess::ChangedCount(*state_), 0u);
  EXPECT_TRUE(KeyedStateAccess::CaptureChanges(*state_).empty());
  EXPECT_EQ(Contents(), reference_);
  Erase("c");  // now part of the baseline: erasing it leaves a tombstone
  KeyedChangeSet set = KeyedStateAccess::CaptureChanges(*state_);
  set.Sort();
  ASSERT_EQ(set.size(), 1u);
  EXPECT_TRUE(set.entry(0).erased);
}

TEST_F(KeyedStateTest, ClearLeavesTombstonesOnlyForCheckpointedKeys) {
  Put("old1", "1");
  Put("old2", "2");
  Checkpoint();
  Put("new", "3");
  Clear();
  EXPECT_EQ(state_->size(), 0u);
  EXPECT_EQ(state_->byte_size(), 0u);
  EXPECT_FALSE(state_->Contains("old1"));
  KeyedChangeSet set = Checkpoint();
  EXPECT_EQ(Keys(set), (std::vector<std::string>{"old1", "old2"}));
  EXPECT_EQ(set.tombstone_count(), 2u);
  EXPECT_TRUE(replica_.empty());
}

TEST_F(KeyedStateTest, EmptyKeysAndValues) {
  Put("", "value of the empty key");
  Put("empty value", "");
  EXPECT_EQ(state_->Get(""), "value of the empty key");
  EXPECT_EQ(state_->Get("empty value"), "");
  Checkpoint();
  EXPECT_EQ(replica_, reference_);
  Put("", "");
  Erase("empty value");
  Checkpoint();
  EXPECT_EQ(replica_, (Map{{"", ""}}));
  EXPECT_EQ(state_->byte_size(), 0u);
  EXPECT_EQ(state_->size(), 1u);
}

TEST_F(KeyedStateTest, MultiMiBKeysAndValues) {
  std::string big_key(3 << 20, 'k');
  big_key[12345] = '\0';
  std::string big_value(9 << 20, 'v');
  big_value[7] = 'x';
  Put(big_key, big_value);
  Put("small", std::string(5 << 20, 's'));
  Checkpoint();
  EXPECT_EQ(replica_, reference_);
  Put(big_key, "now short");                 // shrinks the entry
  Put("small", std::string(11 << 20, 't'));  // grows it
  KeyedChangeSet set = Checkpoint();
  EXPECT_EQ(set.raw_bytes(), big_key.size() + 9 + 5 + (11u << 20));
  EXPECT_EQ(replica_, reference_);
  Erase(big_key);
  Checkpoint();
  EXPECT_EQ(replica_, reference_);
}

TEST_F(KeyedStateTest, RejectsKeysAndValuesOverTheLimits) {
  const std::string too_long_key(kMaxKeySize + 1, 'k');
  absl::Status s = state_->Put(too_long_key, "v");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // A value over 1 GiB without 1 GiB of memory: address space only, never read.
  const size_t reserve = kMaxValueSize + 1;
  void* p = mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  s = state_->Put("k", std::string_view(static_cast<const char*>(p), reserve));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  munmap(p, reserve);
  EXPECT_TRUE(state_->empty());
  EXPECT_EQ(KeyedStateAccess::ChangedCount(*state_), 0u);
  ASSERT_OK(state_->Put(std::string(kMaxKeySize, 'k'), "at the limit"));
}

TEST_F(KeyedStateTest, BinaryKeysAreDistinctByteStrings) {
  const std::vector<std::string> keys = {std::string("\0", 1),
                                         std::string("\0\0", 2),
                                         std::string("a\0b", 3),
                                         std::string("a\0c", 3),
                                         "a",
                                         "\xff\xfe\xfd",
                                         "\xc3\x28" /* invalid UTF-8 */,
                                         std::string("\x80\0\xff", 3)};
  for (size_t i = 0; i < keys.size(); ++i) Put(keys[i], std::string("v\0", 2) + keys[i]);
  EXPECT_EQ(state_->size(), keys.size());
  for (const std::string& k : keys) EXPECT_EQ(state_->Get(k), std::string("v\0", 2) + k);
  Checkpoint();
  EXPECT_EQ(replica_, reference_);
  Erase(std::string("a\0b", 3));
  Checkpoint();
  EXPECT_EQ(replica_, reference_);
  EXPECT_TRUE(state_->Contains(std::string("a\0c", 3)));
}

TEST_F(KeyedStateTest, PutOfAViewOfItsOwnValue) {
  Put("k", "0123456789");
  std::string_view own = *state_->Get("k");
  ASSERT_OK(state_->Put("k", own.substr(2)));  // shorter: the entry is reallocated
  EXPECT_EQ(state_->Get("k"), "23456789");
  own = *state_->Get("k");
  ASSERT_OK(state_->Put("k", own));  // same size, in place
  EXPECT_EQ(state_->Get("k"), "23456789");
}

// Hard-coded: a different hash, seed or reduction would move keys between participants and break
// every existing checkpoint, so it must fail here.
TEST(KeyGroupTest, KeyGroupOfIsStable) {
  // The repository config names this hash "xxh3-64-seed0" (format.md §3).
  EXPECT_EQ(kKeyGroupSeed, 0u);
  // XXH3-64 of the empty input is 0x2d06800538d394c2 (xxHash's published test vector): 0xc2 % 128.
  EXPECT_EQ(KeyGroupOf("", 128), 0x42u);
  EXPECT_EQ(KeyGroupOf("a", 128), 31u);
  EXPECT_EQ(KeyGroupOf("user:42", 128), 42u);
  EXPECT_EQ(KeyGroupOf(std::string("\0\xff", 2), 128), 115u);
  EXPECT_EQ(KeyGroupOf("0123456789abcdef", 128), 45u);
  EXPECT_EQ(KeyGroupOf("user:42", 7), 4u);
  EXPECT_EQ(KeyGroupOf("user:42", 32768), 29866u);
  EXPECT_EQ(KeyGroupOf("anything", 1), 0u);
}

TEST(KeyGroupTest, SpreadsKeysOverAllGroups) {
  std::vector<int> counts(128);
  for (int i = 0; i < 128 * 200; ++i) ++counts[KeyGroupOf("key" + std::to_string(i), 128)];
  for (int g = 0; g < 128; ++g) {
    EXPECT_GT(counts[g], 120) << "group " << g;
    EXPECT_LT(counts[g], 280) << "group " << g;
  }
}

TEST_F(KeyedStateTest, ChangeSetGroupRanges) {
  for (int i = 0; i < 500; ++i) Put("key" + std::to_string(i), "v");
  KeyedChangeSet set = Checkpoint();
  size_t covered = 0;
  for (uint32_t g = 0; g < state_->key_groups(); ++g) {
    auto [first, end] = set.GroupRange(g);
    for (size_t i = first; i < end; ++i) EXPECT_EQ(set.entry(i).key_group, g);
    covered += end - first;
  }
  EXPECT_EQ(covered, set.size());
  EXPECT_EQ(set.GroupRange(state_->key_groups()).first,
            set.GroupRange(state_->key_groups()).second);
}

TEST(KeyedStateCreateTest, RejectsBadOptions) {
  KeyedStateOptions options;
  EXPECT_FALSE(KeyedStateAccess::Create("", options).ok());
  options.key_groups = 0;
  EXPECT_FALSE(KeyedStateAccess::Create("s", options).ok());
  options.key_groups = kMaxKeyGroups + 1;
  EXPECT_FALSE(KeyedStateAccess::Create("s", options).ok());
  options.key_groups = kMaxKeyGroups;
  options.expected_entries = 1000;
  ASSERT_OK_AND_ASSIGN(auto state, KeyedStateAccess::Create("s", options));
  EXPECT_EQ(state->key_groups(), kMaxKeyGroups);
  EXPECT_EQ(state->name(), "s");
}

struct Point {
  int32_t x;
  int32_t y;
};
struct Account {
  std::string owner;
  int64_t balance;
};

}  // namespace

template <>
struct KeyedSerde<Account> {
  static std::string Serialize(const Account& a) {
    std::string out(reinterpret_cast<const char*>(&a.balance), sizeof(a.balance));
    return out + a.owner;
  }
  static absl::StatusOr<Account> Deserialize(std::string_view bytes) {
    if (bytes.size() < sizeof(int64_t)) return absl::DataLossError("account too short");
    Account a;
    std::memcpy(&a.balance, bytes.data(), sizeof(a.balance));
    a.owner = std::string(bytes.substr(sizeof(int64_t)));
    return a;
  }
};

namespace {

TEST_F(KeyedStateTest, TypedWrapperRoundTrips) {
  TypedKeyedState<uint64_t, Point> points(state_.get());
  ASSERT_OK(points.Put(7, Point{1, -2}));
  ASSERT_OK(points.Put(uint64_t{1} << 40, Point{3, 4}));
  ASSERT_OK_AND_ASSIGN(Point p, points.Get(7));
  EXPECT_EQ(p.x, 1);
  EXPECT_EQ(p.y, -2);
  EXPECT_EQ(points.Get(8).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(points.Contains(uint64_t{1} << 40));
  EXPECT_TRUE(points.Erase(7));
  EXPECT_FALSE(points.Contains(7));
  int seen = 0;
  ASSERT_OK(points.ForEach([&](const uint64_t& k, const Point& v) {
    EXPECT_EQ(k, uint64_t{1} << 40);
    EXPECT_EQ(v.x, 3);
    ++seen;
  }));
  EXPECT_EQ(seen, 1);

  // Bytes of the wrong size do not deserialise.
  ASSERT_OK(state_->Put(std::string_view("\x09\0\0\0\0\0\0\0", 8), "short"));
  EXPECT_EQ(points.Get(9).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(points.ForEach([](const uint64_t&, const Point&) {}).code(),
            absl::StatusCode::kDataLoss);

  auto other = MakeState(4);
  TypedKeyedState<std::string, Account> accounts(other.get());
  ASSERT_OK(accounts.Put("alice", Account{"Alice A.", -17}));
  ASSERT_OK(accounts.Put(std::string("b\0b", 3), Account{"", 1LL << 50}));
  ASSERT_OK_AND_ASSIGN(Account a, accounts.Get("alice"));
  EXPECT_EQ(a.owner, "Alice A.");
  EXPECT_EQ(a.balance, -17);
  ASSERT_OK_AND_ASSIGN(Account b, accounts.Get(std::string("b\0b", 3)));
  EXPECT_EQ(b.owner, "");
  EXPECT_EQ(b.balance, 1LL << 50);
  EXPECT_EQ(accounts.size(), 2u);
}

}  // namespace
}  // namespace ickpt
