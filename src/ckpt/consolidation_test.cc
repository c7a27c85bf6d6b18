// Consolidation (format.md §14) on repositories written by the checkpointer: every consolidation
// is checked bit-identical against the chain it replaces (ConsolidateOptions::verify, and a full
// restore compared with what the application held), GC then collects the ancestors, and readers
// that resolved the old chain recover by resolving again. The store's clock is a manual one, so
// grace periods pass instantly.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "src/repo/chain.h"
#include "src/repo/commit_record.h"
#include "src/repo/keys.h"
#include "src/repo/maintenance_lock.h"
#include "src/repo/reachability.h"
#include "src/repo/region_reader.h"
#include "src/repo/repository_internal.h"
#include "src/store/fault_store.h"
#include "src/testing/manual_clock_store.h"
#include "src/testing/restore_util.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"

namespace ickpt {
namespace {

constexpr uint64_t kBlocks = 64;
constexpr uint64_t kRegionBytes = kBlocks * 4096;
constexpr absl::Duration kGrace = absl::Hours(1);

// What a checkpoint held: the region's bytes and the keyed state's entries.
using Content = testing::RegionAndKeyed;

class ConsolidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RepositoryOptions options;
    options.retention = RetentionPolicy{};
    options.retention->keep_last = 1;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> created, Repository::Create(Store(), options));
    (void)created;
    repo_ = Open();
    CheckpointerOptions copts;
    copts.policy = NewFullEveryNPolicy(1000);  // one long chain
    copts.gc_after_commit = false;
    copts.consolidate_in_background = false;  // these tests consolidate themselves
    ASSERT_OK_AND_ASSIGN(checkpointer_, Checkpointer::Open(repo_.get(), copts));
    ASSERT_OK_AND_ASSIGN(region_, checkpointer_->AddRegion("grid", {.size = kRegionBytes}));
    ASSERT_OK_AND_ASSIGN(kv_, checkpointer_->AddKeyedState("kv"));
  }

  std::unique_ptr<ObjectStore> Store() {
    return std::make_unique<testing::ManualClockStore>(memory_.get(), clock_);
  }
  std::unique_ptr<Repository> Open() {
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::Open(Store());
    EXPECT_OK(repo.status());
    return repo.ok() ? *std::move(repo) : nullptr;
  }

  Content Held() const { return testing::ContentOf(*region_, *kv_); }
  // Changes a few blocks and entries (some erased, some zeroed) and checkpoints.
  uint64_t Step() {
    for (int i = 0; i < 3; ++i) {
      const uint64_t block = rng_() % kBlocks;
      if (rng_() % 5 == 0) {
        std::memset(region_->data() + block * 4096, 0, 4096);
      } else {
        const std::string bytes = testing::RandomBytes(4096, rng_());
        std::memcpy(region_->data() + block * 4096, bytes.data(), bytes.size());
      }
    }
    for (int i = 0; i < 20; ++i) {
      const std::string key = "k" + std::to_string(rng_() % 200);
      if (rng_() % 4 == 0) {
        kv_->Erase(key);
      } else {
        EXPECT_OK(kv_->Put(key, testing::RandomBytes(1 + rng_() % 300, rng_())));
      }
    }
    absl::StatusOr<CheckpointHandle> handle = checkpointer_->Checkpoint();
    EXPECT_OK(handle.status());
    absl::StatusOr<CommitRecord> record = handle->Wait();
    EXPECT_OK(record.status());
    if (!record.ok()) return 0;
    expected_[record->id] = Held();
    return record->id;
  }
  // Checkpoint `id` restored by a fresh checkpointer.
  absl::StatusOr<Content> Restored(uint64_t id) {
    std::unique_ptr<Repository> repo = Open();
    return testing::RestoredGridAndKv(repo.get(), id);
  }
  void ExpectRestoresExactly(uint64_t id) {
    absl::StatusOr<Content> c = Restored(id);
    ASSERT_OK(c.status());
    EXPECT_TRUE(*c == expected_.at(id)) << "checkpoint " << id << " restores other bytes";
  }
  absl::StatusOr<ConsolidationReport> Compact(uint64_t id, ConsolidateOptions options = {}) {
    options.verify = true;  // every consolidation in these tests is checked
    std::unique_ptr<Repository> repo = Open();
    return Consolidate(*repo, id, options);
  }
  absl::StatusOr<GcReport> Gc() {
    GcOptions options;
    options.grace = kGrace;
    std::unique_ptr<Repository> repo = Open();
    return CollectGarbage(*repo, options);
  }
  // The walk length of region "grid" of checkpoint `id`.
  size_t Links(uint64_t id) {
    std::unique_ptr<Repository> repo = Open();
    absl::StatusOr<CommitRecord> commit = repo->ReadCommit(id);
    EXPECT_OK(commit.status());
    PackTable packs;
    absl::StatusOr<ResolvedObject> r = ResolveObject(*repo, *commit, "p0", "grid", &packs);
    EXPECT_OK(r.status());
    return r.ok() ? r->chain.size() : 0;
  }
  std::set<std::string> Keys(std::string_view prefix) {
    absl::StatusOr<std::vector<ObjectInfo>> objects = memory_->List(prefix);
    EXPECT_OK(objects.status());
    std::set<std::string> keys;
    for (const ObjectInfo& info : *objects) keys.insert(info.key);
    return keys;
  }

  std::unique_ptr<ObjectStore> memory_ = NewMemoryStore();
  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Checkpointer> checkpointer_;
  Region* region_ = nullptr;
  KeyedState* kv_ = nullptr;
  std::mt19937_64 rng_{42};
  std::map<uint64_t, Content> expected_;
};

TEST_F(ConsolidationTest, ConsolidatedCheckpointRestoresIdenticallyFromOneLink) {
  uint64_t last = 0;
  for (int i = 0; i < 12; ++i) last = Step();
  ASSERT_EQ(Links(last), 12u);
  ASSERT_OK_AND_ASSIGN(ConsolidationReport report, Compact(last));
  EXPECT_EQ(report.generation, 1u);
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.links_before, 24u);  // region and keyed state, 12 links each
  EXPECT_EQ(report.links_after, 2u);
  EXPECT_EQ(Keys("merges/"), std::set<std::string>{ConsolidationKey(last, 1)});
  EXPECT_EQ(Links(last), 1u);
  ExpectRestoresExactly(last);
  // The commit record is untouched: same depth, kind and metadata.
  ASSERT_OK_AND_ASSIGN(CommitRecord record, repo_->ReadCommit(last));
  EXPECT_EQ(record.depth, 11u);
  EXPECT_EQ(record.kind, CheckpointKind::kIncremental);
  // The consolidation names full manifests of the checkpoint itself.
  ASSERT_OK_AND_ASSIGN(std::string bytes, memory_->Get(ConsolidationKey(last, 1)));
  ASSERT_OK_AND_ASSIGN(ConsolidationRecord consolidation,
                       DecodeConsolidationRecord(bytes, ConsolidationKey(last, 1), last, 1));
  EXPECT_EQ(consolidation.record.id, last);
  EXPECT_EQ(consolidation.record.parent, record.parent);
  for (const StateObjectRecord& o : consolidation.record.participants.at(0).state_objects) {
    EXPECT_EQ(o.kind, CheckpointKind::kFull) << o.name;
  }
}

TEST_F(ConsolidationTest, CheckpointsBuiltOnAConsolidationRestoreAndChainFromIt) {
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = Step();
  ASSERT_OK(Compact(x).status());
  std::vector<uint64_t> after;
  for (int i = 0; i < 4; ++i) after.push_back(Step());
  // The checkpointer knows nothing of the consolidation: its depths keep growing, but a walk from
  // a later checkpoint stops at the consolidation.
  ASSERT_OK_AND_ASSIGN(CommitRecord last, repo_->ReadCommit(after.back()));
  EXPECT_EQ(last.depth, 11u);
  EXPECT_EQ(Links(after.back()), 5u);
  for (uint64_t id : after) ExpectRestoresExactly(id);
  ExpectRestoresExactly(x);
}

TEST_F(ConsolidationTest, GcCollectsTheAncestorsAConsolidationReplaces) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(Step());
  // Without a consolidation the latest needs its whole chain: nothing is condemned.
  ASSERT_OK_AND_ASSIGN(GcReport before, Gc());
  EXPECT_TRUE(before.condemned_checkpoints.empty());
  ASSERT_OK(Compact(ids.back()).status());
  // For the grace period the replaced chain stays needed (a writer may still reuse its blocks).
  ASSERT_OK_AND_ASSIGN(GcReport young, Gc());
  EXPECT_TRUE(young.condemned_checkpoints.empty());
  clock_->Advance(kGrace + absl::Minutes(1));
  ASSERT_OK_AND_ASSIGN(GcReport condemn, Gc());
  EXPECT_EQ(condemn.condemned_checkpoints, std::vector<uint64_t>(ids.begin(), ids.end() - 1));
  clock_->Advance(kGrace + absl::Minutes(1));
  ASSERT_OK_AND_ASSIGN(GcReport removed, Gc());
  EXPECT_EQ(removed.removed_checkpoints, std::vector<uint64_t>(ids.begin(), ids.end() - 1));
  EXPECT_GT(removed.deleted_packs, 0u);
  EXPECT_GT(removed.deleted_manifests, 0u);
  EXPECT_EQ(Keys("commits/"), std::set<std::string>{CommitKey(ids.back())});
  ExpectRestoresExactly(ids.back());
  // What remains is exactly what the consolidation reaches.
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK_AND_ASSIGN(Reachable reach, ComputeReachable(*repo, {ids.back()}));
  EXPECT_TRUE(reach.problems.empty());
  EXPECT_EQ(reach.consolidations, std::set<std::string>{ConsolidationKey(ids.back(), 1)});
  std::set<std::string> stored = Keys("packs/");
  for (const std::string& k : Keys("manifests/")) stored.insert(k);
  std::set<std::string> reached = reach.packs;
  reached.insert(reach.manifests.begin(), reach.manifests.end());
  EXPECT_EQ(stored, reached);
  // And the checkpointer goes on building on it.
  const uint64_t next = Step();
  ExpectRestoresExactly(next);
}

// A checkpointer that restores a consolidated checkpoint continues its recorded depth (format.md
// §14.2): GC, which walks the replaced chain too while the consolidation is young, and readers
// older than 1.4 check depths along it.
TEST_F(ConsolidationTest, RestoringAConsolidatedCheckpointContinuesItsRecordedDepth) {
  uint64_t x = 0;
  for (int i = 0; i < 5; ++i) x = Step();
  ASSERT_OK(Compact(x).status());
  CheckpointerOptions options;
  options.gc_after_commit = false;
  options.consolidate_in_background = false;
  options.policy = NewFullEveryNPolicy(1000);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> c, Checkpointer::Open(repo_.get(), options));
  RestoreOptions restore;
  restore.on_unregistered = OnUnregistered::kCreate;
  ASSERT_OK(c->Restore(restore).status());
  Region* grid = c->FindRegion("grid");
  ASSERT_NE(grid, nullptr);
  grid->data()[0] ^= 1;
  ASSERT_OK_AND_ASSIGN(CheckpointHandle h, c->Checkpoint());
  ASSERT_OK_AND_ASSIGN(CommitRecord next, h.Wait());
  EXPECT_EQ(next.depth, 5u);                // x's recorded depth 4, plus one
  ASSERT_OK_AND_ASSIGN(GcReport gc, Gc());  // walks the replaced chain too: depths must fit
  EXPECT_TRUE(gc.condemned_checkpoints.empty());
  EXPECT_EQ(Links(next.id), 2u);
}

TEST_F(ConsolidationTest, SecondConsolidationIsANoOpUnlessItRepacks) {
  uint64_t x = 0;
  for (int i = 0; i < 6; ++i) x = Step();
  ASSERT_OK_AND_ASSIGN(ConsolidationReport first, Compact(x, {.min_pack_use = 0}));
  EXPECT_EQ(first.generation, 1u);
  EXPECT_EQ(first.repacked_bytes, 0u);
  ASSERT_OK_AND_ASSIGN(ConsolidationReport again, Compact(x, {.min_pack_use = 0}));
  EXPECT_EQ(again.generation, 0u);
  EXPECT_EQ(again.reused_manifests, 2u);
  EXPECT_EQ(Keys("merges/").size(), 1u);
  // Copying out of every pack not used whole: a second generation, in new packs only.
  const std::set<std::string> packs_before = Keys("packs/");
  ASSERT_OK_AND_ASSIGN(ConsolidationReport repack, Compact(x, {.min_pack_use = 1.0}));
  EXPECT_EQ(repack.generation, 2u);
  EXPECT_GT(repack.repacked_bytes, 0u);
  EXPECT_LE(repack.packs_after, repack.packs_before);
  ExpectRestoresExactly(x);
  // GC deletes the superseded generation at once (a reader of it resolves again).
  ASSERT_OK_AND_ASSIGN(GcReport gc, Gc());
  EXPECT_EQ(gc.deleted_consolidations, 1u);
  EXPECT_EQ(Keys("merges/"), std::set<std::string>{ConsolidationKey(x, 2)});
  clock_->Advance(kGrace + absl::Minutes(1));
  ASSERT_OK(Gc().status());
  ASSERT_OK(Gc().status());
  ExpectRestoresExactly(x);
  (void)packs_before;
}

TEST_F(ConsolidationTest, ReaderOfTheReplacedChainResolvesAgain) {
  uint64_t x = 0;
  for (int i = 0; i < 6; ++i) x = Step();
  // A reader resolves the chain...
  std::unique_ptr<Repository> reader = Open();
  ASSERT_OK_AND_ASSIGN(CommitRecord commit, reader->ReadCommit(x));
  PackTable packs;
  ASSERT_OK_AND_ASSIGN(ResolvedObject old, ResolveObject(*reader, commit, "p0", "grid", &packs));
  ASSERT_EQ(old.chain.size(), 6u);
  // ...then the chain is consolidated with every block copied, and GC collects what it replaced.
  ASSERT_OK(Compact(x, {.min_pack_use = 1.0}).status());
  for (int i = 0; i < 2; ++i) {  // condemned once the consolidation is old, removed a grace later
    clock_->Advance(kGrace + absl::Minutes(1));
    ASSERT_OK(Gc().status());
  }
  ASSERT_FALSE(memory_->Get(CommitKey(x - 1)).ok());
  // The reader's packs are gone; it reads the consolidation instead, bit-exact.
  struct Sink final : RestoreSink {
    explicit Sink(std::string* out) : out(out) {}
    absl::Status Write(uint64_t offset, std::string_view data) override {
      std::memcpy(out->data() + offset, data.data(), data.size());
      return absl::OkStatus();
    }
    absl::Status WriteZeros(uint64_t offset, uint64_t length) override {
      std::memset(out->data() + offset, 0, length);
      return absl::OkStatus();
    }
    std::string* out;
  };
  std::string grid(kRegionBytes, 'x');
  Sink sink(&grid);
  ASSERT_OK(ReadObjectData(*reader, old, packs, &sink).status());
  EXPECT_EQ(grid, expected_.at(x).grid);
}

TEST_F(ConsolidationTest, RefusesWhatItMustNotConsolidate) {
  uint64_t x = 0;
  for (int i = 0; i < 3; ++i) x = Step();
  EXPECT_EQ(Compact(x + 100).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Compact(x, {.min_pack_use = 1.5}).status().code(), absl::StatusCode::kInvalidArgument);
  // Condemned: retention no longer keeps it, once the latest needs no ancestor.
  const uint64_t newer = Step();
  ASSERT_OK(Compact(newer).status());
  clock_->Advance(kGrace + absl::Minutes(1));
  ASSERT_OK_AND_ASSIGN(GcReport gc, Gc());
  ASSERT_FALSE(gc.condemned_checkpoints.empty());
  EXPECT_EQ(Compact(gc.condemned_checkpoints.front()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The maintenance lock held by a live GC: Aborted, nothing written.
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<MaintenanceLockHolder> lock,
      MaintenanceLockHolder::Acquire(*RepositoryInternal::store(*repo), "gc", absl::Minutes(5)));
  EXPECT_EQ(Compact(newer, {.min_pack_use = 1.0}).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Keys("merges/").size(), 1u);
  ASSERT_OK(lock->Release());
  ASSERT_OK_AND_ASSIGN(ConsolidationReport report, Compact(newer, {.min_pack_use = 1.0}));
  EXPECT_EQ(report.generation, 2u);
}

TEST_F(ConsolidationTest, DamagedConsolidationIsReportedNeverSkipped) {
  uint64_t x = 0;
  for (int i = 0; i < 4; ++i) x = Step();
  ASSERT_OK(Compact(x).status());
  ASSERT_OK_AND_ASSIGN(std::string bytes, memory_->Get(ConsolidationKey(x, 1)));
  bytes[bytes.size() / 2] ^= 0x20;
  ASSERT_OK(memory_->Put(ConsolidationKey(x, 1), bytes));
  absl::StatusOr<Content> restored = Restored(x);
  ASSERT_EQ(restored.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(restored.status().message().find(ConsolidationKey(x, 1)), std::string::npos)
      << restored.status().message();
  // GC refuses to delete anything while it cannot read what the kept checkpoint needs.
  EXPECT_EQ(Gc().status().code(), absl::StatusCode::kDataLoss);
}

// The corruption campaign for consolidations: every byte of the consolidation record, and random
// bytes of the manifests and packs only it references, damaged in turn (flipped or cut short).
// A restore of the consolidated checkpoint, or of one built on it, reports DataLoss naming the
// damaged object or restores exactly (damage in a byte no restore reads, such as a pack's nonce
// frame); never other bytes. Checkpoints that do not read the damaged object restore exactly.
TEST_F(ConsolidationTest, DamageToAConsolidationIsDetectedNeverRestored) {
  uint64_t x = 0;
  for (int i = 0; i < 5; ++i) x = Step();
  const uint64_t before = x - 2;  // not built on x: reads nothing of the consolidation
  ASSERT_OK_AND_ASSIGN(ConsolidationReport report, Compact(x, {.min_pack_use = 1.0}));
  ASSERT_EQ(report.generation, 1u);
  const uint64_t after = Step();  // built on x
  // What only the consolidation references: its record, its manifests and the packs they use.
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK_AND_ASSIGN(Reachable with, ComputeReachable(*repo, {x}));
  std::vector<std::string> targets = {ConsolidationKey(x, 1)};
  {
    std::set<std::string> others;
    ASSERT_OK_AND_ASSIGN(Reachable rest, ComputeReachable(*repo, {before}));
    others.insert(rest.manifests.begin(), rest.manifests.end());
    others.insert(rest.packs.begin(), rest.packs.end());
    for (const std::string& k : with.manifests) {
      if (!others.contains(k)) targets.push_back(k);
    }
    for (const std::string& k : with.packs) {
      if (!others.contains(k)) targets.push_back(k);
    }
  }
  ASSERT_GT(targets.size(), 3u);
  int trials = 0, detected = 0, intact = 0;
  std::mt19937_64 rng(5);
  for (const std::string& key : targets) {
    ASSERT_OK_AND_ASSIGN(std::string original, memory_->Get(key));
    // Every byte of the record (fewer under the sanitizers, whose runs set
    // ICKPT_CORRUPTION_TRIALS to 600 and 300: evenly spread), 40 random damages of each other
    // object.
    const char* env = std::getenv("ICKPT_CORRUPTION_TRIALS");
    const size_t budget = env != nullptr && *env != '\0' ? std::strtoull(env, nullptr, 10) : 2000;
    const size_t stride =
        key == targets.front()
            ? std::max<size_t>(1, original.size() / std::max<size_t>(1, budget / 2))
            : 1;
    const size_t n = key == targets.front() ? original.size() / stride : 40;
    for (size_t i = 0; i < n && !HasFailure(); ++i) {
      std::string damaged = original;
      if (key != targets.front() && rng() % 5 == 0) {
        damaged.resize(rng() % original.size());
      } else {
        const size_t at = key == targets.front() ? i * stride : rng() % original.size();
        damaged[at] ^= static_cast<char>(1 + rng() % 255);
      }
      ASSERT_OK(memory_->Put(key, damaged));
      ++trials;
      for (uint64_t id : {x, after}) {
        absl::StatusOr<Content> restored = Restored(id);
        if (restored.ok()) {
          ASSERT_TRUE(*restored == expected_.at(id)) << key << " trial " << i << ": wrong bytes";
          ++intact;
        } else {
          ASSERT_EQ(restored.status().code(), absl::StatusCode::kDataLoss)
              << key << " trial " << i << ": " << restored.status();
          EXPECT_NE(restored.status().message().find(key), std::string::npos)
              << restored.status().message();
          ++detected;
        }
      }
      ExpectRestoresExactly(before);
      ASSERT_OK(memory_->Put(key, original));
    }
  }
  std::printf(
      "consolidation corruption: %d damages of %zu objects, %d restores detected, %d intact\n",
      trials, targets.size(), detected, intact);
  EXPECT_GT(detected, trials);  // most damage is read by both restores
}

// Every store call of a consolidation failing in turn: the consolidation fails or succeeds whole;
// either way every checkpoint restores exactly, and a later consolidation and GC finish the job.
TEST_F(ConsolidationTest, FaultMatrix) {
  uint64_t x = 0;
  for (int i = 0; i < 5; ++i) x = Step();
  int failures = 0;
  for (bool lose_reply : {false, true}) {
    for (int n = 1;; ++n) {
      FaultInjectionStore faults(memory_.get());
      ASSERT_OK_AND_ASSIGN(
          std::unique_ptr<Repository> repo,
          Repository::Open(std::make_unique<testing::ManualClockStore>(&faults, clock_)));
      if (lose_reply) {
        faults.LoseReplyOfNthCallMatching("", n);
      } else {
        faults.FailNthCall(n, absl::UnavailableError("injected"));
      }
      ConsolidateOptions options;
      options.verify = true;
      options.min_pack_use = 1.0;  // repack too: every kind of write
      absl::StatusOr<ConsolidationReport> report = Consolidate(*repo, x, options);
      ExpectRestoresExactly(x);
      // A failed run's lock stays behind if releasing it failed: let it expire.
      clock_->Advance(absl::Minutes(6));
      if (report.ok() && report->generation != 0) break;  // the fault came after the last call
      ++failures;
      ASSERT_LT(n, 2000) << "the consolidation never succeeded";
    }
  }
  EXPECT_GT(failures, 5);
  ASSERT_OK(Gc().status());
  clock_->Advance(kGrace + absl::Minutes(1));
  ASSERT_OK(Gc().status());
  ExpectRestoresExactly(x);
}

}  // namespace
}  // namespace ickpt

namespace ickpt {
namespace {

// The checkpointer's own background consolidation (CheckpointerOptions::consolidate_in_background)
// keeps the walk of the latest checkpoint short, and a consolidation made by another process is
// seen before a checkpoint reuses blocks, or, published during its write, fails it once
// (format.md §14.5, docs/policy.md §4).
class WriterConsolidationTest : public ::testing::Test {
 protected:
  std::unique_ptr<Repository> Open() {
    absl::StatusOr<std::unique_ptr<Repository>> repo =
        Repository::Open(std::make_unique<testing::ManualClockStore>(memory_.get(), clock_));
    EXPECT_OK(repo.status());
    return repo.ok() ? *std::move(repo) : nullptr;
  }
  void Create() {
    RepositoryOptions options;
    options.retention = RetentionPolicy{};
    options.retention->keep_last = 1;
    ASSERT_OK(Repository::Create(std::make_unique<testing::ManualClockStore>(memory_.get(), clock_),
                                 options)
                  .status());
  }
  void ExpectRestoresExactly(uint64_t id) {
    std::unique_ptr<Repository> repo = Open();
    absl::StatusOr<testing::FreshRestore> r = testing::RestoreFresh(repo.get(), id);
    ASSERT_OK(r.status()) << "checkpoint " << id;
    Region* region = r->checkpointer->FindRegion("grid");
    ASSERT_NE(region, nullptr);
    EXPECT_EQ(std::string(region->data(), region->size()), expected_.at(id)) << id;
  }
  void Mutate(Region* region) {
    for (int i = 0; i < 2; ++i) {
      const std::string bytes = testing::RandomBytes(4096, rng_());
      std::memcpy(region->data() + (rng_() % kBlocks) * 4096, bytes.data(), bytes.size());
    }
  }

  std::unique_ptr<ObjectStore> memory_ = NewMemoryStore();
  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::mt19937_64 rng_{11};
  std::map<uint64_t, std::string> expected_;
};

TEST_F(WriterConsolidationTest, BackgroundConsolidationBoundsTheWalk) {
  Create();
  std::unique_ptr<Repository> repo = Open();
  std::vector<uint64_t> ids;
  {
    CheckpointerOptions options;
    options.gc_after_commit = false;
    options.consolidate_after_links = 4;
    options.consolidate.verify = true;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> c, Checkpointer::Open(repo.get(), options));
    ASSERT_OK_AND_ASSIGN(Region * region, c->AddRegion("grid", {.size = kRegionBytes}));
    // 40 checkpoints, then more only while the walk is not yet bounded: on a loaded machine (or
    // under a sanitizer) a consolidation may take longer than many checkpoints, and the walk
    // shrinks only when one finishes (seen once under a load of 7: a walk of 36 after 40).
    for (int i = 0; i < 120; ++i) {
      Mutate(region);
      ASSERT_OK_AND_ASSIGN(CheckpointHandle h, c->Checkpoint());
      ASSERT_OK_AND_ASSIGN(CommitRecord record, h.Wait());
      expected_[record.id] = std::string(region->data(), region->size());
      ids.push_back(record.id);
      absl::SleepFor(absl::Milliseconds(20));  // an application computes between checkpoints
      if (ids.size() < 40) continue;
      PackTable packs;
      ASSERT_OK_AND_ASSIGN(ResolvedObject walk, ResolveObject(*repo, record, "p0", "grid", &packs));
      if (walk.chain.size() + 10 < ids.size()) break;
    }
  }  // closing waits for the background work
  ASSERT_OK_AND_ASSIGN(auto consolidations, ListConsolidations(*repo));
  EXPECT_GE(consolidations.size(), 1u);
  // The recorded depth grew (the cost model takes no full checkpoint at 2 of 64 blocks changed),
  // but the walk did not: it is the threshold plus the checkpoints taken while the last
  // consolidation ran (how many depends on this machine's speed; at least 10 fewer than taken).
  ASSERT_OK_AND_ASSIGN(CommitRecord last, repo->ReadCommit(ids.back()));
  EXPECT_EQ(last.depth, ids.size() - 1);
  PackTable packs;
  ASSERT_OK_AND_ASSIGN(ResolvedObject r, ResolveObject(*repo, last, "p0", "grid", &packs));
  EXPECT_LT(r.chain.size() + 10, ids.size());
  for (uint64_t id : ids) ExpectRestoresExactly(id);
}

// Runs `hook` (once, when armed) before the first pack write it sees: something another process
// does while a checkpoint is being written.
class PackWriteHookStore : public ObjectStoreWrapper {
 public:
  explicit PackWriteHookStore(std::unique_ptr<ObjectStore> target)
      : ObjectStoreWrapper(target.get()), owned_(std::move(target)) {}
  void Arm(std::function<void()> hook) { hook_ = std::move(hook); }
  absl::Status Put(std::string_view key, std::string_view data) override {
    MaybeRun(key);
    return ObjectStoreWrapper::Put(key, data);
  }
  absl::Status Publish(std::string_view key, std::string_view data) override {
    MaybeRun(key);
    return ObjectStoreWrapper::Publish(key, data);
  }

 private:
  void MaybeRun(std::string_view key) {
    if (!hook_ || key.substr(0, kPacksPrefix.size()) != kPacksPrefix) return;
    std::function<void()> hook = std::move(hook_);
    hook_ = nullptr;
    hook();
  }
  std::unique_ptr<ObjectStore> owned_;
  std::function<void()> hook_;  // used on the persist thread only, armed between checkpoints
};

// A consolidation another process (a group's leader, an operator) published before a checkpoint
// that reuses blocks is seen before that checkpoint's write: the tables are re-resolved first and
// it commits. One published during the write fails that checkpoint once; its changes go into the
// next, which re-resolves first (docs/policy.md §4).
TEST_F(WriterConsolidationTest, ForeignConsolidationIsSeenBeforeTheWriteOrFailsTheCheckpointOnce) {
  Create();
  auto hooked = std::make_unique<PackWriteHookStore>(
      std::make_unique<testing::ManualClockStore>(memory_.get(), clock_));
  PackWriteHookStore* hook = hooked.get();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo, Repository::Open(std::move(hooked)));
  CheckpointerOptions options;
  options.gc_after_commit = false;
  options.consolidate_in_background = false;
  options.policy = NewFullEveryNPolicy(3);  // full checkpoints reuse the unchanged blocks
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> c, Checkpointer::Open(repo.get(), options));
  ASSERT_OK_AND_ASSIGN(Region * region, c->AddRegion("grid", {.size = kRegionBytes}));
  auto step = [&]() -> absl::StatusOr<CommitRecord> {
    Mutate(region);
    absl::StatusOr<CheckpointHandle> h = c->Checkpoint();
    if (!h.ok()) return h.status();
    absl::StatusOr<CommitRecord> record = h->Wait();
    if (!record.ok()) return record.status();
    expected_[record->id] = std::string(region->data(), region->size());
    return record;
  };
  // Another process consolidates `id`, copying every block into new packs.
  auto consolidate = [&](uint64_t id) {
    std::unique_ptr<Repository> operator_repo = Open();
    ConsolidateOptions copts;
    copts.min_pack_use = 1.0;
    copts.verify = true;
    ASSERT_OK(Consolidate(*operator_repo, id, copts).status());
  };
  ASSERT_OK_AND_ASSIGN(CommitRecord c1, step());  // full
  ASSERT_OK_AND_ASSIGN(CommitRecord c2, step());  // incremental
  consolidate(c2.id);
  ASSERT_OK_AND_ASSIGN(CommitRecord c3, step());  // incremental: reuses nothing
  ASSERT_OK_AND_ASSIGN(CommitRecord c4, step());  // full, reusing blocks: re-resolved first
  ASSERT_EQ(c4.kind, CheckpointKind::kFull);
  ASSERT_OK_AND_ASSIGN(CommitRecord c5, step());
  ASSERT_OK_AND_ASSIGN(CommitRecord c6, step());
  // The next full checkpoint: the consolidation lands while it writes its pack.
  hook->Arm([&] { consolidate(c6.id); });
  absl::StatusOr<CommitRecord> c7 = step();
  ASSERT_EQ(c7.status().code(), absl::StatusCode::kFailedPrecondition) << c7.status();
  ASSERT_OK_AND_ASSIGN(CommitRecord c8, step());  // re-resolved its tables first: commits
  // The failed checkpoint's changes went into c8; every committed checkpoint restores exactly,
  // also once GC has collected what the consolidations replaced.
  for (const CommitRecord* r : {&c1, &c2, &c3, &c4, &c5, &c6, &c8}) ExpectRestoresExactly(r->id);
  for (int i = 0; i < 3; ++i) {
    clock_->Advance(absl::Hours(2));
    GcOptions gc;
    ASSERT_OK(CollectGarbage(*repo, gc).status());
  }
  ExpectRestoresExactly(c8.id);
  ASSERT_OK_AND_ASSIGN(CommitRecord c9, step());
  ExpectRestoresExactly(c9.id);
}

}  // namespace
}  // namespace ickpt
