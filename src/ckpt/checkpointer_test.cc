// End-to-end tests of capture, persistence and restore through the public API, on real stores.
#include "ickpt/checkpointer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <random>

#include "gtest/gtest.h"
#include "src/repo/keys.h"
#include "src/store/fault_store.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlock = 4096;

class CheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_store_ = NewMemoryStore();
    auto fault = std::make_unique<FaultInjectionStore>(base_store_.get());
    faults_ = fault.get();
    ASSERT_OK_AND_ASSIGN(repo_, Repository::Create(std::move(fault)));
    ASSERT_OK_AND_ASSIGN(ckpt_, Checkpointer::Open(repo_.get()));
  }

  Region* AddRegion(const std::string& name, uint64_t size,
                    TrackerKind tracker = TrackerKind::kHash) {
    RegionOptions o;
    o.size = size;
    o.tracker = tracker;
    auto region = ckpt_->AddRegion(name, o);
    EXPECT_OK(region.status());
    return region.ok() ? *region : nullptr;
  }

  // Takes a checkpoint, waits for it and remembers the region contents it must restore to.
  uint64_t CheckpointAndRemember() {
    auto handle = ckpt_->Checkpoint();
    EXPECT_OK(handle.status());
    if (!handle.ok()) return 0;
    std::map<std::string, std::string> contents;
    for (Region* r : ckpt_->regions()) contents[r->name()] = std::string(r->data(), r->size());
    auto record = handle->Wait();
    EXPECT_OK(record.status());
    if (!record.ok()) return 0;
    snapshots_[record->id] = std::move(contents);
    return record->id;
  }

  // Restores `id` into a fresh checkpointer on the same repository and compares every region.
  void ExpectRestoresExactly(uint64_t id) {
    ASSERT_OK_AND_ASSIGN(auto fresh, Checkpointer::Open(repo_.get()));
    RestoreOptions o;
    o.id = id;
    o.on_unregistered = OnUnregistered::kCreate;
    ASSERT_OK(fresh->Restore(o).status());
    const auto& expected = snapshots_.at(id);
    ASSERT_EQ(fresh->regions().size(), expected.size()) << "checkpoint " << id;
    for (const auto& [name, bytes] : expected) {
      Region* r = fresh->FindRegion(name);
      ASSERT_NE(r, nullptr) << name;
      ASSERT_EQ(r->size(), bytes.size()) << "checkpoint " << id << " region " << name;
      ASSERT_EQ(0, std::memcmp(r->data(), bytes.data(), bytes.size()))
          << "checkpoint " << id << " region " << name << " differs";
    }
  }

  std::unique_ptr<ObjectStore> base_store_;
  FaultInjectionStore* faults_ = nullptr;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Checkpointer> ckpt_;
  std::map<uint64_t, std::map<std::string, std::string>> snapshots_;
};

// Writes a random pattern: random bytes, zeroed blocks, freed pages, small scattered writes.
void MutateRandomly(Region* r, std::mt19937_64& rng) {
  const uint64_t blocks = r->block_count();
  const int kind = static_cast<int>(rng() % 4);
  const int n = 1 + static_cast<int>(rng() % 8);
  for (int i = 0; i < n; ++i) {
    const uint64_t b = rng() % blocks;
    char* p = r->data() + b * r->block_size();
    switch (kind) {
      case 0:
        for (uint32_t k = 0; k < r->block_size(); k += 8) {
          uint64_t v = rng();
          std::memcpy(p + k, &v, 8);
        }
        break;
      case 1:
        std::memset(p, 0, r->block_size());
        break;
      case 2:
        ASSERT_EQ(0, madvise(p, r->block_size(), MADV_DONTNEED));
        break;
      default:
        p[rng() % r->block_size()] ^= static_cast<char>(1 + rng() % 255);
        break;
    }
  }
}

TEST_F(CheckpointerTest, FirstCheckpointIsFullThenIncremental) {
  Region* r = AddRegion("grid", 64 * kBlock);
  std::memset(r->data(), 7, r->size());
  ASSERT_OK_AND_ASSIGN(auto h1, ckpt_->Checkpoint());
  ASSERT_OK_AND_ASSIGN(CommitRecord c1, h1.Wait());
  EXPECT_EQ(c1.kind, CheckpointKind::kFull);
  EXPECT_FALSE(c1.parent.has_value());
  EXPECT_EQ(c1.participants.at(0).state_objects.at(0).changed_blocks, 64u);

  r->data()[5 * kBlock] = 1;
  ASSERT_OK_AND_ASSIGN(auto h2, ckpt_->Checkpoint());
  ASSERT_OK_AND_ASSIGN(CommitRecord c2, h2.Wait());
  EXPECT_EQ(c2.kind, CheckpointKind::kIncremental);
  EXPECT_EQ(c2.parent, c1.id);
  EXPECT_EQ(c2.depth, 1u);
  EXPECT_GT(c2.id, c1.id);
  EXPECT_EQ(c2.participants.at(0).state_objects.at(0).changed_blocks, 1u);
  EXPECT_EQ(c2.participants.at(0).state_objects.at(0).tracker, "hash");
}

// RestoreOptions::progress counts every byte of every region once, up to the regions' total.
TEST_F(CheckpointerTest, RestoreReportsProgressUpToTheRegionsTotal) {
  Region* a = AddRegion("a", 64 * kBlock);
  Region* b = AddRegion("b", 16 * kBlock);
  std::memset(a->data(), 3, a->size());
  std::memset(b->data() + 4 * kBlock, 5, kBlock);  // the rest of b stays zero (holes)
  const uint64_t id = CheckpointAndRemember();
  a->data()[0] = 9;  // to be undone by the restore
  std::mutex mu;
  uint64_t calls = 0, last_done = 0, total = 0;
  RestoreOptions options;
  options.id = id;
  options.progress = [&](uint64_t done, uint64_t all) {
    std::lock_guard<std::mutex> lock(mu);
    ++calls;
    last_done = std::max(last_done, done);
    total = all;
  };
  ASSERT_OK(ckpt_->Restore(options).status());
  EXPECT_GT(calls, 0u);
  EXPECT_EQ(total, 80 * kBlock);
  EXPECT_EQ(last_done, total);
  EXPECT_EQ(std::string(a->data(), a->size()), snapshots_.at(id).at("a"));
}

TEST_F(CheckpointerTest, RandomWritesOverHundredsOfCheckpointsAllRestoreBitExact) {
  Region* a = AddRegion("a", 48 * kBlock);
  Region* b = AddRegion("b", 17 * kBlock, TrackerKind::kExplicit);
  std::mt19937_64 rng(42);
  std::vector<uint64_t> ids;
  for (int step = 0; step < 220; ++step) {
    MutateRandomly(a, rng);
    // The explicit tracker sees only what is reported.
    const uint64_t block = rng() % b->block_count();
    std::memset(b->data() + block * kBlock, static_cast<int>(rng() % 3), kBlock);
    b->MarkDirty(block * kBlock, kBlock);
    ids.push_back(CheckpointAndRemember());
    ASSERT_NE(ids.back(), 0u);
  }
  for (uint64_t id : ids) ExpectRestoresExactly(id);
}

TEST_F(CheckpointerTest, ChainDepthIsBoundedByTheFullEveryNPolicy) {
  CheckpointerOptions options;
  options.policy = NewFullEveryNPolicy(16);
  options.consolidate_in_background = false;
  ASSERT_OK_AND_ASSIGN(ckpt_, Checkpointer::Open(repo_.get(), options));
  Region* r = AddRegion("grid", 8 * kBlock);
  uint64_t max_depth = 0;
  int fulls = 0;
  for (int i = 0; i < 40; ++i) {
    r->data()[(i % 8) * kBlock] = static_cast<char>(i + 1);
    ASSERT_OK_AND_ASSIGN(auto h, ckpt_->Checkpoint());
    ASSERT_OK_AND_ASSIGN(CommitRecord c, h.Wait());
    max_depth = std::max(max_depth, c.depth);
    if (c.kind == CheckpointKind::kFull) ++fulls;
  }
  EXPECT_EQ(max_depth, 15u);
  EXPECT_EQ(fulls, 3);  // checkpoints 1, 17, 33
}

// The default cost model (docs/policy.md §3): incremental while little changes, full when most of
// the region changed; the depth is then not bounded by a count, the walk by consolidation.
TEST_F(CheckpointerTest, CostModelTakesFullCheckpointsWhenMostOfTheRegionChanged) {
  Region* r = AddRegion("grid", 8 * kBlock);
  std::vector<CheckpointKind> kinds;
  for (int i = 0; i < 24; ++i) {
    const int changed = i % 8 == 7 ? 5 : 1;  // every eighth checkpoint changes 5 of 8 blocks
    for (int b = 0; b < changed; ++b) r->data()[((i + b) % 8) * kBlock] = static_cast<char>(i + 1);
    ASSERT_OK_AND_ASSIGN(auto h, ckpt_->Checkpoint());
    ASSERT_OK_AND_ASSIGN(CommitRecord c, h.Wait());
    kinds.push_back(c.kind);
    snapshots_[c.id] = {{"grid", std::string(r->data(), r->size())}};
    ExpectRestoresExactly(c.id);
  }
  for (size_t i = 0; i < kinds.size(); ++i) {
    const bool full = i == 0 || i % 8 == 7;
    EXPECT_EQ(kinds[i], full ? CheckpointKind::kFull : CheckpointKind::kIncremental) << i;
  }
}

TEST(CostModelPolicyTest, RulesOfDocsPolicy) {
  std::unique_ptr<CheckpointPolicy> policy = NewCostModelPolicy();
  PolicyInput in;
  in.block_count = 100;
  EXPECT_EQ(policy->Choose(in), CheckpointKind::kFull);  // no base
  in.has_base = true;
  in.changed_blocks = 10;
  in.consolidates = true;
  EXPECT_EQ(policy->Choose(in), CheckpointKind::kIncremental);
  in.changed_blocks = 50;  // half of it changed
  EXPECT_EQ(policy->Choose(in), CheckpointKind::kFull);
  in.changed_blocks = 10;
  in.effective_depth_of_base = 64;  // the bound, whatever else
  EXPECT_EQ(policy->Choose(in), CheckpointKind::kFull);
  in.effective_depth_of_base = 3;
  // A slow restore or a mostly dead first link: consolidation's job, unless nobody consolidates.
  in.recovery_time_objective_seconds = 60;
  in.estimated_restore_seconds = 90;
  in.changed_since_chain_start = 80;
  EXPECT_EQ(policy->Choose(in), CheckpointKind::kIncremental);
  in.consolidates = false;
  EXPECT_EQ(policy->Choose(in), CheckpointKind::kFull);
  in.estimated_restore_seconds = 30;
  EXPECT_EQ(policy->Choose(in), CheckpointKind::kFull);  // 80% of the first link replaced
  in.changed_since_chain_start = 50;
  EXPECT_EQ(policy->Choose(in), CheckpointKind::kIncremental);
}

TEST_F(CheckpointerTest, FullCheckpointAfterTheFirstReusesStoredBlocks) {
  Region* r = AddRegion("grid", 256 * kBlock);
  std::mt19937_64 rng(1);
  for (uint64_t i = 0; i < r->size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(r->data() + i, &v, 8);
  }
  ASSERT_NE(CheckpointAndRemember(), 0u);
  auto policy = std::shared_ptr<const CheckpointPolicy>(NewFullEveryNPolicy(1));
  CheckpointerOptions o;
  o.policy = policy;
  // Continue the same lineage with a policy that makes every checkpoint full.
  ASSERT_OK_AND_ASSIGN(auto full_every, Checkpointer::Open(repo_.get(), o));
  RegionOptions ro;
  ro.size = r->size();
  ASSERT_OK(full_every->AddRegion("grid", ro).status());
  ASSERT_OK(full_every->Restore().status());
  Region* r2 = full_every->FindRegion("grid");
  r2->data()[3] ^= 1;
  ASSERT_OK_AND_ASSIGN(auto h, full_every->Checkpoint());
  ASSERT_OK_AND_ASSIGN(CommitRecord c, h.Wait());
  EXPECT_EQ(c.kind, CheckpointKind::kFull);
  EXPECT_EQ(c.participants[0].state_objects[0].changed_blocks, 1u);
  // One changed block of incompressible data plus a manifest: far less than the region.
  EXPECT_LT(c.stored_bytes, 64u * 1024);
  snapshots_[c.id] = {{"grid", std::string(r2->data(), r2->size())}};
  ExpectRestoresExactly(c.id);
}

TEST_F(CheckpointerTest, GrownRegionAndAddedRegionRestore) {
  Region* r = AddRegion("grid", 4 * kBlock);
  std::memset(r->data(), 1, r->size());
  const uint64_t small = CheckpointAndRemember();
  ASSERT_OK(r->Grow(10 * kBlock));
  std::memset(r->data() + 8 * kBlock, 2, kBlock);
  AddRegion("late", 3 * kBlock);
  std::memset(ckpt_->FindRegion("late")->data(), 9, kBlock);
  const uint64_t grown = CheckpointAndRemember();
  ASSERT_OK_AND_ASSIGN(CommitRecord c, repo_->ReadCommit(grown));
  // "late" is new, so full; "grid" grew from 4 to 10 blocks, 7 of them changed or new, so the
  // cost model writes it full too (docs/policy.md §3, rule 2).
  EXPECT_EQ(c.kind, CheckpointKind::kFull);
  EXPECT_EQ(c.participants[0].state_objects.size(), 2u);
  ExpectRestoresExactly(small);
  ExpectRestoresExactly(grown);
}

TEST_F(CheckpointerTest, RestoreRefusesObjectsThatDifferUnlessAsked) {
  AddRegion("grid", 4 * kBlock);
  const uint64_t id = CheckpointAndRemember();
  ASSERT_OK_AND_ASSIGN(auto other, Checkpointer::Open(repo_.get()));
  RegionOptions ro;
  ro.size = kBlock;
  ASSERT_OK(other->AddRegion("extra", ro).status());
  absl::Status s = other->Restore().status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(std::string(s.message()).find("grid"), std::string::npos) << s;
  RestoreOptions o;
  o.on_unregistered = OnUnregistered::kCreate;
  s = other->Restore(o).status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(std::string(s.message()).find("extra"), std::string::npos) << s;
  o.on_absent = OnAbsent::kIgnore;
  ASSERT_OK(other->Restore(o).status());
  ASSERT_NE(other->FindRegion("grid"), nullptr);
  EXPECT_EQ(
      0, std::memcmp(other->FindRegion("grid")->data(), snapshots_[id]["grid"].data(), 4 * kBlock));
}

TEST_F(CheckpointerTest, RestoringAnOlderCheckpointStartsABranch) {
  Region* r = AddRegion("grid", 8 * kBlock);
  r->data()[0] = 1;
  const uint64_t first = CheckpointAndRemember();
  r->data()[kBlock] = 2;
  const uint64_t second = CheckpointAndRemember();
  RestoreOptions o;
  o.id = first;
  ASSERT_OK(ckpt_->Restore(o).status());
  EXPECT_EQ(r->data()[kBlock], 0);
  r->data()[2 * kBlock] = 3;
  const uint64_t branch = CheckpointAndRemember();
  ASSERT_OK_AND_ASSIGN(CommitRecord c, repo_->ReadCommit(branch));
  EXPECT_EQ(c.parent, first);
  EXPECT_GT(branch, second);
  ASSERT_OK_AND_ASSIGN(auto latest, repo_->LatestCommitId());
  EXPECT_EQ(latest, branch);
  ExpectRestoresExactly(second);
  ExpectRestoresExactly(branch);
}

TEST_F(CheckpointerTest, FailedCheckpointLeavesNoCommitAndLosesNothing) {
  Region* r = AddRegion("grid", 16 * kBlock);
  std::memset(r->data(), 1, r->size());
  ASSERT_NE(CheckpointAndRemember(), 0u);
  r->data()[3 * kBlock] = 5;
  faults_->FailNthCallMatching(
      "commits/", 1, absl::ResourceExhaustedError("injected: no space"));  // not ambiguous (§12.1)
  ASSERT_OK_AND_ASSIGN(auto failed, ckpt_->Checkpoint());
  EXPECT_FALSE(failed.Wait().ok());
  EXPECT_TRUE(absl::IsNotFound(repo_->ReadCommit(failed.id()).status()));
  faults_->ClearFaults();
  // Nothing else changed: the next checkpoint must still carry block 3.
  const uint64_t next = CheckpointAndRemember();
  ASSERT_OK_AND_ASSIGN(CommitRecord c, repo_->ReadCommit(next));
  EXPECT_EQ(c.participants[0].state_objects[0].changed_blocks, 1u);
  ExpectRestoresExactly(next);
}

TEST_F(CheckpointerTest, TryCheckpointIsUnavailableWhileOnePersists) {
  Region* r = AddRegion("grid", 16 * kBlock);
  std::memset(r->data(), 1, r->size());
  faults_->SetLatency(absl::Milliseconds(30));
  ASSERT_OK_AND_ASSIGN(auto h, ckpt_->Checkpoint());
  auto second = ckpt_->TryCheckpoint();
  EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
  ASSERT_OK(h.Wait().status());
  faults_->SetLatency(absl::ZeroDuration());
  ASSERT_OK_AND_ASSIGN(auto third, ckpt_->TryCheckpoint());
  ASSERT_OK(third.Wait().status());
}

TEST(CheckpointerInFlightTest, CommitsInIdOrderAndAChildOfAFailedParentFails) {
  auto base = NewMemoryStore();
  auto fault = std::make_unique<FaultInjectionStore>(base.get());
  FaultInjectionStore* faults = fault.get();
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(fault)));
  CheckpointerOptions o;
  o.max_in_flight = 3;
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get(), o));
  RegionOptions ro;
  ro.size = 8 * kBlock;
  ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
  r->data()[0] = 1;
  ASSERT_OK(ckpt->Checkpoint().value().Wait().status());
  faults->SetLatency(absl::Milliseconds(5));
  faults->FailNthCallMatching(
      "commits/", 1, absl::ResourceExhaustedError("injected: no space"));  // not ambiguous (§12.1)
  r->data()[kBlock] = 2;
  ASSERT_OK_AND_ASSIGN(auto parent, ckpt->Checkpoint());
  r->data()[2 * kBlock] = 3;
  ASSERT_OK_AND_ASSIGN(auto child, ckpt->Checkpoint());
  EXPECT_FALSE(parent.Wait().ok());
  EXPECT_FALSE(child.Wait().ok());
  faults->ClearFaults();
  ASSERT_OK_AND_ASSIGN(auto after, ckpt->Checkpoint());
  ASSERT_OK_AND_ASSIGN(CommitRecord c, after.Wait());
  EXPECT_EQ(c.participants[0].state_objects[0].changed_blocks, 2u);  // blocks 1 and 2 carried
  ASSERT_OK_AND_ASSIGN(auto fresh, Checkpointer::Open(repo.get()));
  ASSERT_OK(fresh->AddRegion("grid", ro).status());
  ASSERT_OK(fresh->Restore().status());
  EXPECT_EQ(0, std::memcmp(fresh->FindRegion("grid")->data(), r->data(), r->size()));
}

TEST_F(CheckpointerTest, FailedRestoreRefusesCheckpointsUntilARestoreSucceeds) {
  Region* r = AddRegion("grid", 8 * kBlock);
  std::memset(r->data(), 3, r->size());
  const uint64_t good = CheckpointAndRemember();
  r->data()[0] = 9;
  const uint64_t bad = CheckpointAndRemember();
  // Damage the data of the newer checkpoint: flip a byte in every pack read.
  faults_->FlipByteOnRead("packs/", 2);
  RestoreOptions o;
  o.id = bad;
  absl::Status s = ckpt_->Restore(o).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::IsFailedPrecondition(ckpt_->Checkpoint().status()));
  faults_->ClearFaults();
  o.id = good;
  ASSERT_OK(ckpt_->Restore(o).status());
  EXPECT_EQ(0, std::memcmp(r->data(), snapshots_[good]["grid"].data(), r->size()));
  ASSERT_OK(ckpt_->Checkpoint().status());
}

TEST_F(CheckpointerTest, DamagedCommitRecordIsReportedNotSkipped) {
  AddRegion("grid", 2 * kBlock);
  const uint64_t id = CheckpointAndRemember();
  ASSERT_OK_AND_ASSIGN(std::string bytes, base_store_->Get(CommitKey(id)));
  bytes[bytes.size() / 2] ^= 1;
  ASSERT_OK(base_store_->Delete(CommitKey(id)));
  ASSERT_OK(base_store_->Put(CommitKey(id), bytes));
  ASSERT_OK_AND_ASSIGN(auto fresh, Checkpointer::Open(repo_.get()));
  RestoreOptions o;
  o.on_unregistered = OnUnregistered::kCreate;
  absl::Status s = fresh->Restore(o).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(std::string(s.message()).find(CommitKey(id)), std::string::npos) << s;
}

// ---------------------------------------------------------------------------------------------
// Every tracker that works here, end to end: random writes, zeroed blocks and pages dropped with
// MADV_DONTNEED, over many checkpoints, growth, a failed persist merged back, and a restore (which
// rewrites the region while it is tracked).

std::vector<TrackerKind> WorkingTrackers() {
  std::vector<TrackerKind> kinds;
  for (const TrackerReport& report : DescribeTrackers()) {
    if (report.works && report.kind != TrackerKind::kExplicit) kinds.push_back(report.kind);
  }
  return kinds;
}

class CheckpointerTrackerTest : public CheckpointerTest,
                                public ::testing::WithParamInterface<TrackerKind> {};

TEST_P(CheckpointerTrackerTest, EveryCheckpointRestoresBitExact) {
  Region* r = AddRegion("grid", 96 * kBlock, GetParam());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->tracker_name(), TrackerName(GetParam()));
  std::mt19937_64 rng(7);
  std::vector<uint64_t> ids;
  for (int step = 0; step < 120; ++step) {
    MutateRandomly(r, rng);
    if (step == 60) {
      ASSERT_OK(r->Grow(150 * kBlock));
      r->data()[149 * kBlock] = 9;
    }
    ids.push_back(CheckpointAndRemember());
  }
  for (uint64_t id : ids) ExpectRestoresExactly(id);
}

TEST_P(CheckpointerTrackerTest, FailedPersistIsCarriedByTheNextCheckpoint) {
  Region* r = AddRegion("grid", 32 * kBlock, GetParam());
  ASSERT_NE(r, nullptr);
  std::memset(r->data(), 1, r->size());
  CheckpointAndRemember();
  r->data()[3 * kBlock] = 2;
  ASSERT_EQ(0, madvise(r->data() + 9 * kBlock, kBlock, MADV_DONTNEED));
  faults_->FailNthCallMatching(
      "commits/", 1, absl::ResourceExhaustedError("injected: no space"));  // not ambiguous (§12.1)
  ASSERT_OK_AND_ASSIGN(auto failing, ckpt_->Checkpoint());
  EXPECT_FALSE(failing.Wait().ok());
  faults_->ClearFaults();
  // Nothing written since: only the merged-back set can make the next checkpoint carry them.
  const uint64_t id = CheckpointAndRemember();
  ASSERT_NE(id, 0u);
  ExpectRestoresExactly(id);
}

TEST_P(CheckpointerTrackerTest, TrackingContinuesAfterARestore) {
  Region* r = AddRegion("grid", 40 * kBlock, GetParam());
  ASSERT_NE(r, nullptr);
  std::memset(r->data(), 3, r->size());
  const uint64_t first = CheckpointAndRemember();
  std::memset(r->data(), 4, 10 * kBlock);
  CheckpointAndRemember();
  RestoreOptions o;
  o.id = first;
  ASSERT_OK(ckpt_->Restore(o).status());
  ASSERT_EQ(r->data()[0], 3);
  // The restore is the new baseline: only what is written after it is in the next checkpoint.
  r->data()[20 * kBlock] = 5;
  ASSERT_OK_AND_ASSIGN(auto h, ckpt_->Checkpoint());
  ASSERT_OK_AND_ASSIGN(CommitRecord c, h.Wait());
  EXPECT_EQ(c.participants.at(0).state_objects.at(0).changed_blocks, 1u);
  snapshots_[c.id] = {{"grid", std::string(r->data(), r->size())}};
  ExpectRestoresExactly(c.id);
}

INSTANTIATE_TEST_SUITE_P(Trackers, CheckpointerTrackerTest, ::testing::ValuesIn(WorkingTrackers()),
                         [](const ::testing::TestParamInfo<TrackerKind>& info) {
                           std::string name(TrackerName(info.param));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// ---------------------------------------------------------------------------------------------
// Staging memory: bounded by the budget; a capture that does not fit waits or fails cleanly.

TEST(CheckpointerStagingTest, CaptureBeyondTheBudgetFailsAndLosesNothing) {
  auto store = NewMemoryStore();
  auto fault = std::make_unique<FaultInjectionStore>(store.get());
  FaultInjectionStore* faults = fault.get();
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(fault)));
  CheckpointerOptions options;
  options.staging_budget_bytes = 48 * kBlock;
  options.max_in_flight = 2;
  options.wait_for_staging = false;
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get(), options));
  RegionOptions ro;
  ro.size = 32 * kBlock;
  ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
  std::memset(r->data(), 1, r->size());
  // The first (full) capture takes 32 blocks of the 48 while it persists, slowly.
  faults->SetLatency(absl::Milliseconds(200));
  ASSERT_OK_AND_ASSIGN(auto first, ckpt->Checkpoint());
  std::memset(r->data(), 2, 20 * kBlock);
  auto second = ckpt->Checkpoint();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
  EXPECT_TRUE(Contains(second.status().ToString(), "staging")) << second.status();
  faults->SetLatency(absl::ZeroDuration());
  ASSERT_OK(first.Wait().status());
  // The refused capture's blocks are carried: the next checkpoint has them all.
  ASSERT_OK_AND_ASSIGN(auto third, ckpt->Checkpoint());
  ASSERT_OK_AND_ASSIGN(CommitRecord c, third.Wait());
  EXPECT_EQ(c.participants.at(0).state_objects.at(0).changed_blocks, 20u);
  ASSERT_OK_AND_ASSIGN(auto fresh, Checkpointer::Open(repo.get()));
  RestoreOptions o;
  o.on_unregistered = OnUnregistered::kCreate;
  ASSERT_OK(fresh->Restore(o).status());
  ASSERT_EQ(0, std::memcmp(fresh->FindRegion("grid")->data(), r->data(), r->size()));
}

TEST(CheckpointerStagingTest, CaptureWaitsForStagingWhenAskedTo) {
  auto store = NewMemoryStore();
  auto fault = std::make_unique<FaultInjectionStore>(store.get());
  FaultInjectionStore* faults = fault.get();
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(fault)));
  CheckpointerOptions options;
  options.staging_budget_bytes = 48 * kBlock;
  options.max_in_flight = 2;
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get(), options));
  RegionOptions ro;
  ro.size = 32 * kBlock;
  ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
  std::memset(r->data(), 1, r->size());
  faults->SetLatency(absl::Milliseconds(50));
  ASSERT_OK_AND_ASSIGN(auto first, ckpt->Checkpoint());
  std::memset(r->data(), 2, 20 * kBlock);
  // Does not fit next to the first's 32 blocks: waits for it to persist instead of failing.
  ASSERT_OK_AND_ASSIGN(auto second, ckpt->Checkpoint());
  ASSERT_OK(first.Wait().status());
  faults->SetLatency(absl::ZeroDuration());
  ASSERT_OK_AND_ASSIGN(CommitRecord c, second.Wait());
  EXPECT_EQ(c.participants.at(0).state_objects.at(0).changed_blocks, 20u);
}

TEST(CheckpointerStagingTest, ARegionLargerThanTheBudgetFailsWithAClearStatus) {
  auto store = NewMemoryStore();
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(store)));
  CheckpointerOptions options;
  options.staging_budget_bytes = 8 * kBlock;
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get(), options));
  RegionOptions ro;
  ro.size = 16 * kBlock;
  ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
  r->data()[0] = 1;
  auto h = ckpt->Checkpoint();
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Contains(h.status().ToString(), "grid")) << h.status();
}

}  // namespace
}  // namespace ickpt
