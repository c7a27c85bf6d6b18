// Retention and garbage collection (format.md §13) on repositories written by the checkpointer.
// The store's clock is a manual one (testing::ManualClockStore), so grace periods of hours pass
// instantly; the process-level torture with real time and SIGKILL is in gc_torture_test.cc.
#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
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
#include "src/util/mutex.h"

namespace ickpt {
namespace {

constexpr uint64_t kRegionBytes = 32 * 4096;
constexpr absl::Duration kGrace = absl::Hours(1);

CheckpointOptions WithId(uint64_t id) {
  CheckpointOptions options;
  options.id = id;
  return options;
}

// One writing process: a checkpointer over a region, and what each of its checkpoints held.
// Numbers the calls that reach it, as FaultInjectionStore counts them (every call but Describe,
// publishes_without_overwrite and default_read_concurrency; GetTail and DeleteMany arrive as the
// Size, GetRange and Delete calls ObjectStoreWrapper turns them into), and notes which were listing
// pages: a test that fails each call in turn can then sample the hundreds of listing pages of a
// GC's parallel listing (src/repo/listing.h), which all fail alike, and still fail every other
// call.
class ListingCallRecorder : public ObjectStoreWrapper {
 public:
  explicit ListingCallRecorder(ObjectStore* target) : ObjectStoreWrapper(target) {}
  absl::Status Put(std::string_view key, std::string_view data) override {
    Count(false);
    return ObjectStoreWrapper::Put(key, data);
  }
  absl::Status Publish(std::string_view key, std::string_view data) override {
    Count(false);
    return ObjectStoreWrapper::Publish(key, data);
  }
  absl::StatusOr<std::string> Get(std::string_view key) override {
    Count(false);
    return ObjectStoreWrapper::Get(key);
  }
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    Count(false);
    return ObjectStoreWrapper::GetRange(key, offset, length);
  }
  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    Count(false);
    return ObjectStoreWrapper::Size(key);
  }
  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override {
    Count(true);
    return ObjectStoreWrapper::ListPage(prefix, start_after, max_keys);
  }
  absl::Status Delete(std::string_view key) override {
    Count(false);
    return ObjectStoreWrapper::Delete(key);
  }
  absl::StatusOr<uint64_t> RemoveDebris(absl::Duration older_than) override {
    Count(false);
    return ObjectStoreWrapper::RemoveDebris(older_than);
  }
  // Whether call k (1-based, in arrival order) was a listing page.
  std::vector<bool> TakeListingCalls() {
    MutexLock lock(&mu_);
    return std::exchange(listing_, {});
  }

 private:
  void Count(bool listing) {
    MutexLock lock(&mu_);
    listing_.push_back(listing);
  }
  Mutex mu_;
  std::vector<bool> listing_ ABSL_GUARDED_BY(mu_);
};

struct Writer {
  std::unique_ptr<Repository> repo;
  std::unique_ptr<Checkpointer> checkpointer;
  Region* region = nullptr;
  std::mt19937_64 rng{7};

  void Mutate() {
    for (int i = 0; i < 3; ++i) {
      const uint64_t block = rng() % (kRegionBytes / 4096);
      const std::string bytes = testing::RandomBytes(4096, rng());
      std::memcpy(region->data() + block * 4096, bytes.data(), bytes.size());
    }
  }
  std::string Content() const { return std::string(region->data(), region->size()); }
};

// Region "grid" of `participant` in checkpoint `id`, restored into a fresh checkpointer.
absl::StatusOr<std::string> RestoredGrid(Repository* repo, uint64_t id, std::string participant) {
  CheckpointerOptions copts;
  copts.participant = participant;
  copts.gc_after_commit = false;
  absl::StatusOr<std::unique_ptr<Checkpointer>> c = Checkpointer::Open(repo, copts);
  if (!c.ok()) return c.status();
  RestoreOptions options;
  options.id = id;
  options.on_unregistered = OnUnregistered::kCreate;
  if (absl::Status s = (*c)->Restore(options).status(); !s.ok()) return s;
  Region* region = (*c)->FindRegion("grid");
  if (region == nullptr) return absl::NotFoundError("no region grid");
  return std::string(region->data(), region->size());
}

class GcTest : public ::testing::Test {
 protected:
  std::unique_ptr<ObjectStore> Store() {
    return std::make_unique<testing::ManualClockStore>(memory_.get(), clock_);
  }
  std::unique_ptr<Repository> Open() {
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::Open(Store());
    EXPECT_OK(repo.status());
    return repo.ok() ? *std::move(repo) : nullptr;
  }
  void Create(std::optional<RetentionPolicy> retention = DefaultRetentionPolicy()) {
    RepositoryOptions options;
    options.retention = retention;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo, Repository::Create(Store(), options));
    (void)repo;
  }
  // A writer named `participant` with full checkpoints every `full_every`.
  std::unique_ptr<Writer> NewWriter(std::string participant = "p0", uint64_t full_every = 3) {
    auto w = std::make_unique<Writer>();
    w->repo = Open();
    CheckpointerOptions options;
    options.participant = std::move(participant);
    options.policy = NewFullEveryNPolicy(full_every);
    options.gc_after_commit = false;  // these tests run the collector themselves
    absl::StatusOr<std::unique_ptr<Checkpointer>> c = Checkpointer::Open(w->repo.get(), options);
    EXPECT_OK(c.status());
    w->checkpointer = *std::move(c);
    absl::StatusOr<Region*> region = w->checkpointer->AddRegion("grid", {.size = kRegionBytes});
    EXPECT_OK(region.status());
    w->region = *region;
    w->rng.seed(std::hash<std::string>()(options.participant));
    return w;
  }
  // Mutates and checkpoints; returns the id, and records the content it must restore.
  uint64_t Step(Writer& w) {
    w.Mutate();
    absl::StatusOr<CheckpointHandle> handle = w.checkpointer->Checkpoint();
    EXPECT_OK(handle.status());
    absl::StatusOr<CommitRecord> record = handle->Wait();
    EXPECT_OK(record.status());
    if (!record.ok()) return 0;
    expected_[record->id] = w.Content();
    return record->id;
  }
  // Group member "m0" acknowledges a checkpoint (its region's first block all 7s) that the group
  // has not committed; returns its id.
  absl::StatusOr<uint64_t> AcknowledgeUncommitted(Repository* repo) {
    CheckpointerOptions options;
    options.participant = "m0";
    options.group_member = true;
    absl::StatusOr<std::unique_ptr<Checkpointer>> member = Checkpointer::Open(repo, options);
    if (!member.ok()) return member.status();
    absl::StatusOr<Region*> region = (*member)->AddRegion("grid", {.size = kRegionBytes});
    if (!region.ok()) return region.status();
    std::memset((*region)->data(), 7, 4096);
    absl::StatusOr<uint64_t> id = repo->ReserveCheckpointId();
    if (!id.ok()) return id.status();
    absl::StatusOr<CheckpointHandle> h = (*member)->Checkpoint(WithId(*id));
    if (!h.ok()) return h.status();
    if (absl::Status s = h->Wait().status(); !s.ok()) return s;
    return *id;
  }
  absl::StatusOr<GcReport> Gc(GcOptions options = {}) {
    options.grace = kGrace;
    std::unique_ptr<Repository> repo = Open();
    return CollectGarbage(*repo, options);
  }
  // Every checkpoint still committed restores bit-exact.
  void ExpectEveryCommittedRestores() {
    std::unique_ptr<Repository> repo = Open();
    ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
    for (uint64_t id : ids) {
      ASSERT_TRUE(expected_.contains(id)) << id;
      ASSERT_OK_AND_ASSIGN(testing::FreshRestore r, testing::RestoreFresh(repo.get(), id));
      Region* region = r.checkpointer->FindRegion("grid");
      ASSERT_NE(region, nullptr);
      EXPECT_EQ(std::string(region->data(), region->size()), expected_[id]) << "checkpoint " << id;
    }
  }
  std::set<std::string> Keys(std::string_view prefix = "") {
    absl::StatusOr<std::vector<ObjectInfo>> objects = memory_->List(prefix);
    EXPECT_OK(objects.status());
    std::set<std::string> keys;
    for (const ObjectInfo& info : *objects) keys.insert(info.key);
    return keys;
  }
  std::vector<uint64_t> CommitIds() {
    std::vector<uint64_t> ids;
    for (const std::string& key : Keys("commits/")) ids.push_back(*ParseIdKey(key, kCommitsPrefix));
    return ids;
  }
  // After GC with nothing in flight: the stored packs and manifests are exactly those the commit
  // records present reach, and every commit record that retention does not keep is condemned.
  void ExpectExactlyReachableStored() {
    std::unique_ptr<Repository> repo = Open();
    ASSERT_OK_AND_ASSIGN(Reachable reach, ComputeReachable(*repo, CommitIds()));
    EXPECT_TRUE(reach.problems.empty());
    std::set<std::string> stored_data;
    for (const std::string& key : Keys("packs/")) stored_data.insert(key);
    for (const std::string& key : Keys("manifests/")) stored_data.insert(key);
    std::set<std::string> reached(reach.packs.begin(), reach.packs.end());
    reached.insert(reach.manifests.begin(), reach.manifests.end());
    EXPECT_EQ(stored_data, reached);
  }

  std::unique_ptr<ObjectStore> memory_ = NewMemoryStore();
  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::map<uint64_t, std::string> expected_;
};

TEST_F(GcTest, NewRepositoryKeepsTheLastThree) {
  Create();
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK_AND_ASSIGN(std::optional<RetentionPolicy> policy, ReadRetentionPolicy(*repo));
  ASSERT_TRUE(policy.has_value());
  EXPECT_EQ(policy->generation, 1u);
  EXPECT_EQ(policy->keep_last, std::optional<uint64_t>(3));
  EXPECT_FALSE(policy->keep_within.has_value());
  EXPECT_EQ(policy->checkpoint_timeout, absl::Minutes(10));
}

TEST_F(GcTest, PolicyGenerationsGrowAndTheHighestIsInForce) {
  Create();
  std::unique_ptr<Repository> repo = Open();
  RetentionPolicy p;
  p.keep_within = absl::Hours(2);
  p.checkpoint_timeout = absl::Seconds(30);
  ASSERT_OK_AND_ASSIGN(RetentionPolicy stored, SetRetentionPolicy(*repo, p));
  EXPECT_EQ(stored.generation, 2u);
  ASSERT_OK_AND_ASSIGN(std::optional<RetentionPolicy> read, ReadRetentionPolicy(*repo));
  EXPECT_EQ(read->generation, 2u);
  EXPECT_FALSE(read->keep_last.has_value());
  EXPECT_EQ(read->keep_within, std::optional<absl::Duration>(absl::Hours(2)));
  EXPECT_EQ(read->checkpoint_timeout, absl::Seconds(30));
  // Invalid policies are refused before anything is written.
  EXPECT_EQ((SetRetentionPolicy(*repo, RetentionPolicy{}).status()).code(),
            absl::StatusCode::kInvalidArgument);
  RetentionPolicy zero;
  zero.keep_last = 0;
  EXPECT_EQ((SetRetentionPolicy(*repo, zero).status()).code(), absl::StatusCode::kInvalidArgument);
  RetentionPolicy fractional;
  fractional.keep_within = absl::Milliseconds(1500);
  EXPECT_EQ((SetRetentionPolicy(*repo, fractional).status()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Keys("policy/").size(), 2u);
}

TEST_F(GcTest, RetentionCondemnsFirstAndRemovesOnlyAfterTheGracePeriod) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 9; ++i) Step(*w);  // chains 1-3, 4-6, 7-9 (full every 3)
  ASSERT_OK_AND_ASSIGN(GcReport first, Gc());
  EXPECT_EQ(first.kept_checkpoints, (std::vector<uint64_t>{7, 8, 9}));
  EXPECT_EQ(first.condemned_checkpoints, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(first.removed_checkpoints.empty());
  EXPECT_EQ(first.deleted_commits, 0u);
  // Condemned checkpoints stay readable until the grace period has passed.
  ExpectEveryCommittedRestores();
  EXPECT_EQ(CommitIds().size(), 9u);
  clock_->Advance(kGrace / 2);
  ASSERT_OK_AND_ASSIGN(GcReport early, Gc());
  EXPECT_TRUE(early.removed_checkpoints.empty());
  EXPECT_TRUE(early.condemned_checkpoints.empty());
  clock_->Advance(kGrace / 2 + absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(GcReport second, Gc());
  EXPECT_EQ(second.removed_checkpoints, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(second.deleted_commits, 6u);
  // Packs may stay: a full manifest points at the packs of unchanged blocks (format.md §5).
  EXPECT_GT(second.deleted_manifests, 0u);
  EXPECT_EQ(CommitIds(), (std::vector<uint64_t>{7, 8, 9}));
  EXPECT_TRUE(Keys("condemned/").empty());
  ExpectEveryCommittedRestores();
  ExpectExactlyReachableStored();
  // Reservations: only the highest survives once older than the grace period.
  EXPECT_EQ(Keys("ids/").size(), 1u);
  EXPECT_TRUE(Keys("locks/").empty());
}

TEST_F(GcTest, AKeptCheckpointKeepsItsWholeChain) {
  Create();
  std::unique_ptr<Writer> w = NewWriter("p0", /*full_every=*/100);
  for (int i = 0; i < 8; ++i) Step(*w);  // one chain: 1 full, 2..8 incremental
  ASSERT_OK_AND_ASSIGN(GcReport report, Gc());
  EXPECT_TRUE(report.condemned_checkpoints.empty());  // 8 needs 1..7
  clock_->Advance(2 * kGrace);
  ASSERT_OK_AND_ASSIGN(report, Gc());
  EXPECT_TRUE(report.removed_checkpoints.empty());
  EXPECT_EQ(CommitIds().size(), 8u);
  ExpectEveryCommittedRestores();
}

TEST_F(GcTest, PinsKeepAndUnpinReleases) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 9; ++i) Step(*w);
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK(PinCheckpoint(*repo, 5, "release-1"));
  EXPECT_EQ((PinCheckpoint(*repo, 6, "release-1")).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((PinCheckpoint(*repo, 99, "other")).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((PinCheckpoint(*repo, 5, "Bad/Name")).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(std::vector<Pin> pins, ListPins(*repo));
  ASSERT_EQ(pins.size(), 1u);
  EXPECT_EQ(pins[0].name, "release-1");
  EXPECT_EQ(pins[0].id, 5u);

  ASSERT_OK_AND_ASSIGN(GcReport report, Gc());
  EXPECT_EQ(report.kept_checkpoints, (std::vector<uint64_t>{5, 7, 8, 9}));
  // 5 needs 4 (its chain's full checkpoint); 1-3 and 6 are condemned.
  EXPECT_EQ(report.condemned_checkpoints, (std::vector<uint64_t>{1, 2, 3, 6}));
  // A condemned checkpoint cannot be pinned: the pin would race with its removal.
  EXPECT_EQ((PinCheckpoint(*repo, 2, "late")).code(), absl::StatusCode::kFailedPrecondition);
  clock_->Advance(kGrace + absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(report, Gc());
  EXPECT_EQ(CommitIds(), (std::vector<uint64_t>{4, 5, 7, 8, 9}));
  ExpectEveryCommittedRestores();

  ASSERT_OK(UnpinCheckpoint(*repo, "release-1"));
  EXPECT_EQ((UnpinCheckpoint(*repo, "release-1")).code(), absl::StatusCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(report, Gc());
  EXPECT_EQ(report.condemned_checkpoints, (std::vector<uint64_t>{4, 5}));
  clock_->Advance(kGrace + absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(report, Gc());
  EXPECT_EQ(CommitIds(), (std::vector<uint64_t>{7, 8, 9}));
  ExpectExactlyReachableStored();
}

TEST_F(GcTest, APolicyThatKeepsMorePardonsTheCondemned) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 9; ++i) Step(*w);
  ASSERT_OK_AND_ASSIGN(GcReport report, Gc());
  EXPECT_EQ(report.condemned_checkpoints.size(), 6u);
  std::unique_ptr<Repository> repo = Open();
  RetentionPolicy more;
  more.keep_last = 6;
  ASSERT_OK(SetRetentionPolicy(*repo, more).status());
  clock_->Advance(kGrace + absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(report, Gc());
  EXPECT_EQ(report.pardoned_checkpoints, (std::vector<uint64_t>{4, 5, 6}));
  EXPECT_EQ(report.removed_checkpoints, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(Keys("condemned/").size(), 0u);
  EXPECT_EQ(CommitIds(), (std::vector<uint64_t>{4, 5, 6, 7, 8, 9}));
  ExpectEveryCommittedRestores();
}

TEST_F(GcTest, KeepWithineJudgesAgeByTheStoreClock) {
  Create();
  std::unique_ptr<Repository> repo = Open();
  RetentionPolicy within;
  within.keep_within = absl::Hours(1000 * 24 * 365);  // every checkpoint of this test is younger
  ASSERT_OK(SetRetentionPolicy(*repo, within).status());
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 6; ++i) Step(*w);
  ASSERT_OK_AND_ASSIGN(GcReport report, Gc());
  EXPECT_EQ(report.kept_checkpoints.size(), 6u);
  EXPECT_TRUE(report.condemned_checkpoints.empty());
  // The store's clock moves far past the checkpoints' creation (the host's clock did not).
  within.keep_within = absl::Hours(1);
  ASSERT_OK(SetRetentionPolicy(*repo, within).status());
  ASSERT_OK_AND_ASSIGN(report, Gc());
  EXPECT_EQ(report.kept_checkpoints, (std::vector<uint64_t>{6}));             // the latest, always
  EXPECT_EQ(report.condemned_checkpoints, (std::vector<uint64_t>{1, 2, 3}));  // 4, 5 needed by 6
}

TEST_F(GcTest, ARepositoryWithoutAPolicyKeepsEveryCheckpointButLosesItsGarbage) {
  Create(std::nullopt);
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 6; ++i) Step(*w);
  // An aborted checkpoint: its pack lands, its commit record never does.
  std::unique_ptr<Repository> repo = Open();
  ObjectStore* store = RepositoryInternal::store(*repo);
  ASSERT_OK(store->Put("packs/ab/ab" + std::string(62, '0'), "not referenced"));
  ASSERT_OK_AND_ASSIGN(GcReport report, Gc());
  EXPECT_FALSE(report.policy_generation.has_value());
  EXPECT_EQ(report.kept_checkpoints.size(), 6u);
  EXPECT_EQ(report.deleted_packs, 0u);  // younger than the grace period
  clock_->Advance(kGrace + absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(report, Gc());
  EXPECT_EQ(report.deleted_packs, 1u);
  EXPECT_EQ(report.deleted_commits, 0u);
  EXPECT_EQ(CommitIds().size(), 6u);
  ExpectEveryCommittedRestores();
  ExpectExactlyReachableStored();
}

TEST_F(GcTest, DryRunDecidesButDeletesNothing) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 9; ++i) Step(*w);
  ASSERT_OK(Gc().status());
  clock_->Advance(kGrace + absl::Seconds(1));
  const std::set<std::string> before = Keys();
  GcOptions dry;
  dry.dry_run = true;
  ASSERT_OK_AND_ASSIGN(GcReport report, Gc(dry));
  EXPECT_TRUE(report.dry_run);
  EXPECT_EQ(report.removed_checkpoints.size(), 6u);
  EXPECT_GT(report.deleted_objects, 6u);
  EXPECT_GT(report.deleted_bytes, 0u);
  EXPECT_EQ(Keys(), before);
  ASSERT_OK_AND_ASSIGN(GcReport real, Gc());
  EXPECT_EQ(real.deleted_objects, report.deleted_objects);
  EXPECT_EQ(real.deleted_bytes, report.deleted_bytes);
}

TEST_F(GcTest, GraceMustExceedTheCheckpointTimeout) {
  Create();
  std::unique_ptr<Repository> repo = Open();
  GcOptions options;
  options.grace = absl::Minutes(10);  // the default policy's checkpoint timeout
  EXPECT_EQ((CollectGarbage(*repo, options).status()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Keys("locks/").empty());
}

TEST_F(GcTest, DamageStopsGcBeforeItDeletesAnything) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 9; ++i) Step(*w);
  ASSERT_OK(Gc().status());
  clock_->Advance(kGrace + absl::Seconds(1));
  // Damage a kept checkpoint's commit record.
  ASSERT_OK_AND_ASSIGN(std::string bytes, memory_->Get(CommitKey(8)));
  bytes[bytes.size() / 2] ^= 1;
  ASSERT_OK(memory_->Put(CommitKey(8), bytes));
  const std::set<std::string> before = Keys();
  EXPECT_EQ((Gc().status()).code(), absl::StatusCode::kDataLoss);
  std::set<std::string> after = Keys();
  EXPECT_EQ(after, before);
}

TEST_F(GcTest, OneCollectorAtATimeAndAnExpiredLockIsTakenOver) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  Step(*w);
  std::unique_ptr<Repository> a = Open();
  std::unique_ptr<Repository> b = Open();
  ObjectStore& store = *RepositoryInternal::store(*a);
  // A holder that crashed: its lock object stays until it expires.
  MaintenanceLock crashed;
  crashed.holder = std::string(32, 'a');
  crashed.host = "elsewhere";
  crashed.pid = 1;
  crashed.ttl = absl::Minutes(5);
  ASSERT_OK(store.Publish(MaintenanceLockKey(7), EncodeMaintenanceLock(crashed)));
  GcOptions options;
  options.grace = kGrace;
  absl::Status busy = CollectGarbage(*b, options).status();
  EXPECT_EQ((busy).code(), absl::StatusCode::kAborted);
  EXPECT_NE(busy.message().find("elsewhere"), std::string::npos) << busy;
  clock_->Advance(absl::Minutes(5) + absl::Seconds(1));
  ASSERT_OK(CollectGarbage(*b, options).status());
  EXPECT_TRUE(Keys("locks/").empty());  // the expired lock was replaced, then released
}

TEST_F(GcTest, AHolderPresumedDeadLosesItsLock) {
  Create();
  std::unique_ptr<Repository> repo = Open();
  ObjectStore& store = *RepositoryInternal::store(*repo);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MaintenanceLockHolder> first,
                       MaintenanceLockHolder::Acquire(store, "gc", absl::Seconds(60)));
  EXPECT_EQ((MaintenanceLockHolder::Acquire(store, "gc", absl::Seconds(60)).status()).code(),
            absl::StatusCode::kAborted);
  clock_->Advance(absl::Seconds(61));  // the first holder stalled past its ttl
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MaintenanceLockHolder> second,
                       MaintenanceLockHolder::Acquire(store, "gc", absl::Seconds(60)));
  EXPECT_EQ((first->Renew()).code(), absl::StatusCode::kAborted);
  ASSERT_OK(second->Renew());
  ASSERT_OK(second->Release());
}

TEST_F(GcTest, AWriterWhoseParentIsCondemnedStartsANewLineage) {
  Create();
  RetentionPolicy one;
  one.keep_last = 1;
  {
    std::unique_ptr<Repository> repo = Open();
    ASSERT_OK(SetRetentionPolicy(*repo, one).status());
  }
  // Two writers in one repository: b's checkpoints push a's head out of keep-last 1.
  std::unique_ptr<Writer> a = NewWriter("a", /*full_every=*/100);
  std::unique_ptr<Writer> b = NewWriter("b", /*full_every=*/100);
  const uint64_t a1 = Step(*a);
  Step(*b);
  ASSERT_OK_AND_ASSIGN(GcReport report, Gc());
  EXPECT_NE(std::find(report.condemned_checkpoints.begin(), report.condemned_checkpoints.end(), a1),
            report.condemned_checkpoints.end());
  // a's next checkpoint builds on a1, condemned: its commit is refused (§8.6)...
  a->Mutate();
  ASSERT_OK_AND_ASSIGN(CheckpointHandle h, a->checkpointer->Checkpoint());
  absl::StatusOr<CommitRecord> refused = h.Wait();
  EXPECT_EQ((refused.status()).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(IsParentRemoved(refused.status())) << refused.status();
  // ... and the one after is full, with no parent, and carries the refused one's changes.
  const uint64_t a3 = Step(*a);
  ASSERT_NE(a3, 0u);
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK_AND_ASSIGN(CommitRecord r3, repo->ReadCommit(a3));
  EXPECT_EQ(r3.kind, CheckpointKind::kFull);
  EXPECT_FALSE(r3.parent.has_value());
  ASSERT_OK_AND_ASSIGN(std::string grid, RestoredGrid(repo.get(), a3, "a"));
  EXPECT_EQ(grid, a->Content());
}

// Fencing (format.md §15): the epoch record a new coordinator publishes when the latest committed
// checkpoint was `base`, written directly so that the checkpoints committed after `base` are those
// an old leader published in the race of §15.5 (after the new leader read its base).
void PublishRacedEpochRecord(ObjectStore& store, uint64_t epoch, uint64_t base) {
  EpochRecord record;
  record.epoch = epoch;
  record.base = base;
  record.created = absl::Now();
  record.leader = "new-leader";
  ASSERT_OK(store.Publish(EpochKey(epoch), EncodeEpochRecord(record)));
}

// §13.1, §15.3: a fenced commit is not part of the history: keep-last counts the others, it is
// never kept (not even as the highest id), it is condemned, then removed after the grace period
// with the objects no kept checkpoint reaches, and everything the kept ones need stays.
TEST_F(GcTest, FencedCommitsAreNeverKeptAndGoAfterTheGracePeriod) {
  Create();  // keep-last 3
  std::unique_ptr<Writer> w = NewWriter("p0", /*full_every=*/3);
  for (int i = 0; i < 8; ++i) Step(*w);  // 1F 2 3 | 4F 5 6 | 7F 8
  PublishRacedEpochRecord(*memory_, 1, 5);
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo->LatestCommitId());
  EXPECT_EQ(latest, 5u);
  // Not pinnable: a pin of it would keep nothing.
  const absl::Status pin = PinCheckpoint(*repo, 7, "fenced");
  EXPECT_EQ(pin.code(), absl::StatusCode::kFailedPrecondition) << pin;
  EXPECT_NE(std::string(pin.message()).find("fenced by epoch 1"), std::string::npos) << pin;
  // Nor consolidated.
  EXPECT_EQ(Consolidate(*repo, 8).status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_OK_AND_ASSIGN(GcReport first, Gc());
  EXPECT_EQ(first.fenced_checkpoints, (std::vector<uint64_t>{6, 7, 8}));
  EXPECT_EQ(first.kept_checkpoints, (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(first.needed_checkpoints, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(first.condemned_checkpoints, (std::vector<uint64_t>{6, 7, 8}));
  EXPECT_TRUE(first.removed_checkpoints.empty());
  clock_->Advance(kGrace + absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(GcReport second, Gc());
  EXPECT_EQ(second.removed_checkpoints, (std::vector<uint64_t>{6, 7, 8}));
  EXPECT_GT(second.deleted_manifests, 0u);
  EXPECT_GT(second.deleted_packs, 0u);  // 7's own blocks, and what 6 and 8 captured
  EXPECT_EQ(CommitIds(), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(Keys("condemned/").empty());
  EXPECT_EQ(Keys("epochs/").size(), 1u);  // GC never deletes epoch records
  ExpectEveryCommittedRestores();
  ExpectExactlyReachableStored();
}

// §6.1, §15.3 through the checkpointer: a restore without an id takes the latest checkpoint that
// is not fenced, one by id of a fenced checkpoint is refused, and a writer whose parent is fenced
// starts a new lineage (§8.6).
TEST_F(GcTest, RestoreSkipsFencedCommitsAndAWriterDoesNotBuildOnThem) {
  Create();
  std::unique_ptr<Writer> w = NewWriter("p0", /*full_every=*/100);
  for (int i = 0; i < 4; ++i) Step(*w);  // one chain: 1F 2 3 4
  PublishRacedEpochRecord(*memory_, 1, 2);
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK_AND_ASSIGN(testing::FreshRestore latest,
                       testing::RestoreFresh(repo.get(), std::nullopt));
  EXPECT_EQ(latest.record.id, 2u);
  Region* grid = latest.checkpointer->FindRegion("grid");
  ASSERT_NE(grid, nullptr);
  EXPECT_EQ(std::string(grid->data(), grid->size()), expected_[2]);
  for (uint64_t id : {3, 4}) {
    const absl::Status s = testing::RestoreFresh(repo.get(), id).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    const std::string expected = "checkpoint " + std::to_string(id) + " is fenced by epoch 1";
    EXPECT_NE(std::string(s.message()).find(expected), std::string::npos) << s;
  }
  ASSERT_OK_AND_ASSIGN(testing::FreshRestore two, testing::RestoreFresh(repo.get(), 2));
  EXPECT_EQ(two.record.id, 2u);

  // The writer's head, 4, is fenced: under epoch 2 (begun from 2) its next commit is refused...
  ASSERT_OK_AND_ASSIGN(EpochRecord begun, repo->BeginEpoch(2, "leader"));
  EXPECT_EQ(begun.base, 2u);
  CheckpointOptions in_epoch;
  in_epoch.epoch = 2;
  w->Mutate();
  ASSERT_OK_AND_ASSIGN(CheckpointHandle h, w->checkpointer->Checkpoint(in_epoch));
  absl::StatusOr<CommitRecord> refused = h.Wait();
  EXPECT_TRUE(IsParentRemoved(refused.status())) << refused.status();
  EXPECT_NE(std::string(refused.status().message()).find("fenced"), std::string::npos)
      << refused.status();
  // ... and the one after is full, carries every change, and is the latest.
  w->Mutate();
  ASSERT_OK_AND_ASSIGN(h, w->checkpointer->Checkpoint(in_epoch));
  ASSERT_OK_AND_ASSIGN(CommitRecord full, h.Wait());
  EXPECT_EQ(full.kind, CheckpointKind::kFull);
  EXPECT_FALSE(full.parent.has_value());
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> now_latest, repo->LatestCommitId());
  EXPECT_EQ(now_latest, full.id);
  ASSERT_OK_AND_ASSIGN(testing::FreshRestore restored,
                       testing::RestoreFresh(repo.get(), std::nullopt));
  grid = restored.checkpointer->FindRegion("grid");
  ASSERT_NE(grid, nullptr);
  EXPECT_EQ(std::string(grid->data(), grid->size()), w->Content());
}

TEST_F(GcTest, YoungAcknowledgementsAreRootsOldOnesAreDeleted) {
  Create();
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK_AND_ASSIGN(uint64_t id, AcknowledgeUncommitted(repo.get()));
  // Not committed yet: its objects are young, and roots through the acknowledgement.
  clock_->Advance(kGrace / 2);
  ASSERT_OK_AND_ASSIGN(GcReport report, Gc());
  EXPECT_EQ(report.deleted_objects, 0u);
  // The group commit comes within the checkpoint timeout; nothing of it was lost.
  GroupCommitOptions group;
  group.participants = {"m0"};
  ASSERT_OK(repo->CommitGroup(id, group).status());
  ASSERT_OK_AND_ASSIGN(std::string grid, RestoredGrid(repo.get(), id, "m0"));
  EXPECT_EQ(grid[0], 7);
  // Once older than the grace period the acknowledgement goes; the checkpoint stays.
  clock_->Advance(kGrace);
  ASSERT_OK_AND_ASSIGN(report, Gc());
  EXPECT_EQ(report.deleted_acks, 1u);
  EXPECT_TRUE(Keys("acks/").empty());
  ASSERT_OK(RestoredGrid(repo.get(), id, "m0").status());
}

TEST_F(GcTest, AnAbandonedAcknowledgementsObjectsGoAfterTheGracePeriod) {
  Create();
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK(AcknowledgeUncommitted(repo.get()).status());
  EXPECT_FALSE(Keys("packs/").empty());
  clock_->Advance(kGrace + absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(GcReport report, Gc());
  EXPECT_EQ(report.deleted_acks, 1u);
  EXPECT_TRUE(Keys("packs/").empty());
  EXPECT_TRUE(Keys("manifests/").empty());
}

TEST_F(GcTest, AReaderOfARemovedCheckpointGetsNotFoundNeverDamage) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 9; ++i) Step(*w);
  ASSERT_OK(Gc().status());
  clock_->Advance(kGrace + absl::Seconds(1));
  // A reader read checkpoint 2's commit record before GC removed it, and its manifests after.
  std::unique_ptr<Repository> reader = Open();
  ASSERT_OK_AND_ASSIGN(CommitRecord removed, reader->ReadCommit(2));
  ASSERT_OK_AND_ASSIGN(CommitRecord kept, reader->ReadCommit(9));
  ASSERT_OK(Gc().status());
  PackTable packs;
  absl::Status s = ResolveObject(*reader, removed, "p0", "grid", &packs).status();
  EXPECT_EQ((s).code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("removed by garbage collection"), std::string::npos) << s;
  // The same missing object under a checkpoint that still exists is damage.
  ASSERT_OK(memory_->Delete(kept.participants[0].state_objects[0].manifest));
  EXPECT_EQ((ResolveObject(*reader, kept, "p0", "grid", &packs).status()).code(),
            absl::StatusCode::kDataLoss);
  // And a restore of the removed checkpoint says not found.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> c, Checkpointer::Open(reader.get()));
  RestoreOptions options;
  options.id = 2;
  options.on_unregistered = OnUnregistered::kCreate;
  EXPECT_EQ((c->Restore(options).status()).code(), absl::StatusCode::kNotFound);
}

// The fault matrix: a GC whose nth store call fails, for every n of a run, and also whose nth call
// lands but loses its reply. Whatever it did before the failure, every checkpoint still committed
// restores bit-exact, and the next clean run finishes the work: exactly what the kept checkpoints
// reach is stored.
TEST_F(GcTest, AFailureAtAnyCallOfAGcLosesNothingAndTheNextRunFinishes) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 9; ++i) Step(*w);
  ASSERT_OK(Gc().status());  // condemns 1-6
  clock_->Advance(kGrace + absl::Seconds(1));
  // The repository before the run that removes, to start every case from.
  std::map<std::string, std::string> snapshot;
  for (const std::string& key : Keys()) snapshot[key] = *memory_->Get(key);

  std::vector<bool> listing_calls;  // of the run without a fault
  auto run_with_fault = [&](int64_t n, bool lose_reply) -> int64_t {
    // Restore the snapshot: the same objects, all older than the grace period.
    for (const std::string& key : Keys()) EXPECT_OK(memory_->Delete(key));
    for (const auto& [key, bytes] : snapshot) EXPECT_OK(memory_->Put(key, bytes));
    FaultInjectionStore faults(memory_.get());
    ListingCallRecorder recorder(&faults);
    auto store = std::make_unique<testing::ManualClockStore>(&recorder, clock_);
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::Open(std::move(store));
    EXPECT_OK(repo.status());
    const int64_t start = faults.call_count();
    if (lose_reply) {
      faults.LoseReplyOfNthCallMatching("", n);
    } else {
      faults.FailNthCall(n, absl::UnavailableError("injected"));
    }
    GcOptions options;
    options.grace = kGrace;
    (void)CollectGarbage(**repo, options);
    const int64_t calls = faults.call_count() - start;
    std::vector<bool> listing = recorder.TakeListingCalls();
    if (listing_calls.empty()) listing_calls.assign(listing.end() - calls, listing.end());
    ExpectEveryCommittedRestores();
    // A crashed run's lock blocks until it expires: let it.
    clock_->Advance(absl::Minutes(6));
    absl::StatusOr<GcReport> clean = Gc();
    EXPECT_OK(clean.status()) << "fault at call " << n;
    EXPECT_EQ(CommitIds(), (std::vector<uint64_t>{7, 8, 9})) << "fault at call " << n;
    ExpectEveryCommittedRestores();
    ExpectExactlyReachableStored();
    return calls;
  };
  // A run without a fault that fires tells how many calls a run makes.
  const int64_t calls = run_with_fault(1'000'000, false);
  ASSERT_GT(calls, 20);
  ASSERT_EQ(listing_calls.size(), static_cast<size_t>(calls));
  // Every call that is not a listing page; of each run of listing pages (the 512 of the parallel
  // listing of packs/ and manifests/ are one run), the first, the last and every 32nd.
  int64_t faulted = 0, listing_skipped = 0;
  for (int64_t n = 1; n <= calls; ++n) {
    const size_t i = static_cast<size_t>(n - 1);
    if (listing_calls[i]) {
      size_t run_start = i;
      while (run_start > 0 && listing_calls[run_start - 1]) --run_start;
      const bool last_of_run = i + 1 == listing_calls.size() || !listing_calls[i + 1];
      if ((i - run_start) % 32 != 0 && !last_of_run) {
        ++listing_skipped;
        continue;
      }
    }
    ++faulted;
    run_with_fault(n, false);
    run_with_fault(n, true);
    if (HasFatalFailure() || HasFailure()) break;
  }
  std::cout << "a GC run made " << calls << " calls; faulted " << faulted << " of them, "
            << listing_skipped << " listing pages sampled out\n";
}

// Background collection (CheckpointerOptions::gc_after_commit): after commits, on a thread of its
// own, only in a repository with a policy.
TEST_F(GcTest, TheCheckpointerCollectsInTheBackgroundAfterCommits) {
  RetentionPolicy policy;
  policy.keep_last = 1;
  policy.checkpoint_timeout = absl::Seconds(1);
  Create(policy);
  auto w = std::make_unique<Writer>();
  w->repo = Open();
  CheckpointerOptions options;
  options.policy = NewFullEveryNPolicy(2);
  options.gc_interval = absl::ZeroDuration();
  options.gc.grace = absl::Seconds(2);
  ASSERT_OK_AND_ASSIGN(w->checkpointer, Checkpointer::Open(w->repo.get(), options));
  ASSERT_OK_AND_ASSIGN(w->region, w->checkpointer->AddRegion("grid", {.size = kRegionBytes}));
  for (int i = 0; i < 6; ++i) Step(*w);
  // Condemned in the background (the collection after one of the later commits). A commit made
  // while a collection runs starts none, so under a sanitizer's slowness the runs that follow the
  // later commits may all be skipped: commit until one condemns.
  for (int i = 0; i < 200 && Keys("condemned/").empty(); ++i) {
    Step(*w);
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(Keys("condemned/").empty());
  // After the grace period by the store's clock, the next commits' collections remove them.
  clock_->Advance(absl::Seconds(3));
  const std::vector<uint64_t> condemned_before = CommitIds();
  auto first_removed = [&] { return CommitIds().front() != condemned_before.front(); };
  for (int i = 0; i < 200 && !first_removed(); ++i) {
    Step(*w);
    absl::SleepFor(absl::Milliseconds(20));
  }
  w->checkpointer.reset();  // joins a collection still running
  EXPECT_TRUE(first_removed());
  ExpectEveryCommittedRestores();
  EXPECT_TRUE(Keys("locks/").empty());
}

TEST_F(GcTest, NoBackgroundCollectionWithoutAPolicy) {
  Create(std::nullopt);
  auto w = std::make_unique<Writer>();
  w->repo = Open();
  CheckpointerOptions options;
  options.policy = NewFullEveryNPolicy(2);
  options.gc_interval = absl::ZeroDuration();
  options.gc.grace = absl::Seconds(2);
  ASSERT_OK_AND_ASSIGN(w->checkpointer, Checkpointer::Open(w->repo.get(), options));
  ASSERT_OK_AND_ASSIGN(w->region, w->checkpointer->AddRegion("grid", {.size = kRegionBytes}));
  for (int i = 0; i < 6; ++i) Step(*w);
  w->checkpointer.reset();  // joins any collection it started
  EXPECT_TRUE(Keys("condemned/").empty());
  EXPECT_TRUE(Keys("locks/").empty());
  EXPECT_EQ(CommitIds().size(), 6u);
}

// Policies and pins are published without overwrite: a publish whose reply is lost is read back
// (format.md §12.1), so the call succeeds once and stores one object.
TEST_F(GcTest, PolicyAndPinSurviveALostReply) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  Step(*w);
  FaultInjectionStore faults(memory_.get());
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Repository> repo,
      Repository::Open(std::make_unique<testing::ManualClockStore>(&faults, clock_)));
  faults.LoseReplyOfNthCallMatching("policy/", 2);  // 1 is the listing of generations
  RetentionPolicy p;
  p.keep_last = 7;
  ASSERT_OK_AND_ASSIGN(RetentionPolicy stored, SetRetentionPolicy(*repo, p));
  EXPECT_EQ(stored.generation, 2u);
  EXPECT_EQ(Keys("policy/").size(), 2u);
  faults.LoseReplyOfNthCallMatching("pins/", 1);
  ASSERT_OK(PinCheckpoint(*repo, 1, "keep"));
  EXPECT_EQ(Keys("pins/").size(), 1u);
}

// Damaged retention objects: GC refuses before it deletes anything and names the object; a damaged
// lock counts as held for the caller's ttl, then is taken over.
TEST_F(GcTest, DamagedPolicyOrPinStopsGcAndADamagedLockExpires) {
  Create();
  std::unique_ptr<Writer> w = NewWriter();
  for (int i = 0; i < 9; ++i) Step(*w);
  std::unique_ptr<Repository> repo = Open();
  ASSERT_OK(PinCheckpoint(*repo, 2, "old"));
  ASSERT_OK(Gc().status());
  clock_->Advance(kGrace + absl::Seconds(1));
  for (const std::string& key : {PolicyKey(1), PinKey("old")}) {
    SCOPED_TRACE(key);
    ASSERT_OK_AND_ASSIGN(std::string good, memory_->Get(key));
    std::string bad = good;
    bad[bad.size() - 3] ^= 0x10;
    ASSERT_OK(memory_->Put(key, bad));
    const std::set<std::string> before = Keys();
    absl::Status s = Gc().status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find(key), std::string::npos) << s;
    EXPECT_EQ(Keys(), before);
    ASSERT_OK(memory_->Put(key, good));
  }
  // A lock object that does not decode, written now by the store's clock.
  ASSERT_OK(RepositoryInternal::store(*repo)->Put(MaintenanceLockKey(3), "garbage"));
  GcOptions options;
  options.lock_ttl = absl::Seconds(30);
  EXPECT_EQ(Gc(options).status().code(), absl::StatusCode::kAborted);
  clock_->Advance(absl::Seconds(31));
  ASSERT_OK(Gc(options).status());
  EXPECT_TRUE(Keys("locks/").empty());
}

}  // namespace
}  // namespace ickpt
