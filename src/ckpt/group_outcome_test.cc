// Group checkpoints without restores (format.md §11): the group announces each checkpoint's outcome
// (Checkpointer::Outcome); an aborted checkpoint's changes go back into its participants' state
// objects and the next checkpoint builds on the last one not aborted, so nobody restores.
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/repository.h"
#include "src/store/fault_store.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"

namespace ickpt {
namespace {

constexpr uint32_t kKeyGroups = 64;
constexpr uint64_t kRegionBytes = 64 * 4096;

// What one participant holds: a region and a keyed state, and what they should contain.
struct Member {
  std::string name;
  std::unique_ptr<Repository> repo;  // this member's own handle on the shared repository
  FaultInjectionStore* faults = nullptr;
  std::unique_ptr<Checkpointer> checkpointer;
  Region* grid = nullptr;
  KeyedState* counts = nullptr;
  std::mt19937_64 rng;
  std::map<std::string, std::string> keyed;  // the reference

  // Writes a few blocks of the region and puts or erases a few keys of its own groups.
  void Mutate(int round) {
    for (int i = 0; i < 5; ++i) {
      const uint64_t block = rng() % (kRegionBytes / 4096);
      std::string bytes = testing::RandomBytes(4096, rng());
      std::memcpy(grid->data() + block * 4096, bytes.data(), bytes.size());
    }
    for (int i = 0; i < 40; ++i) {
      const std::string key = "k" + std::to_string(rng() % 200);
      const uint32_t g = KeyGroupOf(key, kKeyGroups);
      if (g < counts->group_first() || g >= counts->group_end()) continue;
      if (rng() % 4 == 0) {
        counts->Erase(key);
        keyed.erase(key);
      } else {
        const std::string value = name + "/" + std::to_string(round) + "/" + std::to_string(i);
        ASSERT_OK(counts->Put(key, value));
        keyed[key] = value;
      }
    }
  }
  std::string Grid() const { return std::string(grid->data(), grid->size()); }
};

// The state of every member at one checkpoint.
struct Snapshot {
  std::vector<std::string> grids;
  std::map<std::string, std::string> keyed;  // all members' entries
};

class GroupOutcomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(coordinator_, Repository::OpenLocal(dir_.Join("repo"), /*create=*/true));
    // The group commits epoch 3, which its coordinator begins first (format.md §15.2).
    ASSERT_OK(coordinator_->BeginEpoch(3, "coordinator").status());
    for (uint32_t i = 0; i < 3; ++i) {
      Member m;
      m.name = "p" + std::to_string(i);
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<ObjectStore> store, OpenLocalStore(dir_.Join("repo")));
      auto faulty = std::make_unique<OwningFaultInjectionStore>(std::move(store));
      m.faults = faulty.get();
      ASSERT_OK_AND_ASSIGN(m.repo, Repository::Open(std::move(faulty)));
      CheckpointerOptions co;
      co.participant = m.name;
      co.participant_index = i;
      co.participant_count = 3;
      co.group_member = true;
      co.incarnation = 1;
      co.policy = NewFullEveryNPolicy(4);
      ASSERT_OK_AND_ASSIGN(m.checkpointer, Checkpointer::Open(m.repo.get(), co));
      ASSERT_OK_AND_ASSIGN(m.grid, m.checkpointer->AddRegion("grid", {.size = kRegionBytes}));
      ASSERT_OK_AND_ASSIGN(m.counts,
                           m.checkpointer->AddKeyedState("counts", {.key_groups = kKeyGroups}));
      m.rng.seed(1000 + i);
      members_.push_back(std::move(m));
    }
  }

  Snapshot Take() const {
    Snapshot s;
    for (const Member& m : members_) {
      s.grids.push_back(m.Grid());
      s.keyed.insert(m.keyed.begin(), m.keyed.end());
    }
    return s;
  }

  // Every member checkpoints with the group's id and waits for its acknowledgement; returns each
  // member's result.
  std::vector<absl::Status> CheckpointAll(uint64_t id) {
    std::vector<absl::Status> results;
    for (Member& m : members_) {
      CheckpointOptions o;
      o.id = id;
      o.epoch = 3;
      absl::StatusOr<CheckpointHandle> h = m.checkpointer->Checkpoint(o);
      results.push_back(h.ok() ? h->Wait().status() : h.status());
    }
    return results;
  }

  GroupCommitOptions Commit() const {
    GroupCommitOptions c;
    c.participants = {"p0", "p1", "p2"};
    c.epoch = 3;
    c.incarnations = {{"p0", 1}, {"p1", 1}, {"p2", 1}};
    return c;
  }

  void AnnounceAll(uint64_t id, CheckpointOutcome outcome) {
    for (Member& m : members_) ASSERT_OK(m.checkpointer->Outcome(id, outcome)) << m.name;
  }

  // Restores checkpoint `id` into fresh checkpointers, one per member and one over every key
  // group, and compares with `expected`.
  void ExpectRestores(uint64_t id, const Snapshot& expected) {
    SCOPED_TRACE(::testing::Message() << "checkpoint " << id);
    for (size_t i = 0; i < members_.size(); ++i) {
      CheckpointerOptions co;
      co.participant = members_[i].name;
      co.participant_index = static_cast<uint32_t>(i);
      co.participant_count = 3;
      ASSERT_OK_AND_ASSIGN(auto fresh, Checkpointer::Open(coordinator_.get(), co));
      RestoreOptions ro;
      ro.id = id;
      ro.on_unregistered = OnUnregistered::kCreate;
      ASSERT_OK(fresh->Restore(ro).status());
      Region* grid = fresh->FindRegion("grid");
      ASSERT_NE(grid, nullptr);
      EXPECT_TRUE(std::string(grid->data(), grid->size()) == expected.grids[i])
          << members_[i].name << "'s region differs";
    }
    CheckpointerOptions everything;
    everything.participant = "all";
    ASSERT_OK_AND_ASSIGN(auto all, Checkpointer::Open(coordinator_.get(), everything));
    RestoreOptions ro;
    ro.id = id;
    ro.on_unregistered = OnUnregistered::kCreate;
    ASSERT_OK(all->Restore(ro).status());
    std::map<std::string, std::string> keyed;
    all->FindKeyedState("counts")->ForEach(
        [&](std::string_view k, std::string_view v) { keyed.emplace(k, v); });
    EXPECT_EQ(keyed, expected.keyed);
  }

  testing::TempDir dir_;
  std::unique_ptr<Repository> coordinator_;
  std::vector<Member> members_;
};

// One member's persistence fails, so it never acknowledges: the group aborts the checkpoint, all
// three go on without restoring, the next checkpoint commits on top of the last committed one and
// carries the aborted one's changes.
TEST_F(GroupOutcomeTest, AbortedCheckpointNeedsNoRestoreAndItsChangesGoIntoTheNext) {
  for (Member& m : members_) m.Mutate(1);
  const Snapshot at1 = Take();
  ASSERT_OK_AND_ASSIGN(uint64_t id1, coordinator_->ReserveCheckpointId());
  for (const absl::Status& s : CheckpointAll(id1)) ASSERT_OK(s);
  ASSERT_OK_AND_ASSIGN(CommitRecord c1, coordinator_->CommitGroup(id1, Commit()));
  AnnounceAll(id1, CheckpointOutcome::kCommitted);

  // Round 2: p2 cannot write its packs.
  for (Member& m : members_) m.Mutate(2);
  ASSERT_OK_AND_ASSIGN(uint64_t id2, coordinator_->ReserveCheckpointId());
  members_[2].faults->FailNthCallMatching("packs/", 1,
                                          absl::UnavailableError("injected: disk gone"));
  std::vector<absl::Status> acks = CheckpointAll(id2);
  EXPECT_OK(acks[0]);
  EXPECT_OK(acks[1]);
  EXPECT_FALSE(acks[2].ok());
  absl::Status refused = coordinator_->CommitGroup(id2, Commit()).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  AnnounceAll(id2, CheckpointOutcome::kAborted);
  AnnounceAll(id2, CheckpointOutcome::kAborted);  // repeating an outcome is harmless

  // Round 3: everyone goes on; nobody restored.
  for (Member& m : members_) m.Mutate(3);
  const Snapshot at3 = Take();
  ASSERT_OK_AND_ASSIGN(uint64_t id3, coordinator_->ReserveCheckpointId());
  for (const absl::Status& s : CheckpointAll(id3)) ASSERT_OK(s);
  ASSERT_OK_AND_ASSIGN(CommitRecord c3, coordinator_->CommitGroup(id3, Commit()));
  AnnounceAll(id3, CheckpointOutcome::kCommitted);

  EXPECT_TRUE(absl::IsNotFound(coordinator_->ReadCommit(id2).status()))
      << "the aborted checkpoint left a commit record";
  EXPECT_EQ(c3.parent, id1) << "the next checkpoint builds on the last committed one";
  EXPECT_EQ(c3.epoch, 3u);
  for (const ParticipantRecord& p : c3.participants) EXPECT_EQ(p.incarnation, 1u);
  ExpectRestores(id1, at1);
  ExpectRestores(id3, at3);  // holds round 2's changes, which only the aborted checkpoint had
}

// Outcomes announced late settle earlier pending checkpoints; an abort of a pending checkpoint
// also aborts the pending checkpoints built on it, and their changes all come back.
TEST_F(GroupOutcomeTest, AbortOfPendingCheckpointAbortsThoseBuiltOnIt) {
  std::vector<uint64_t> ids;
  std::vector<Snapshot> at;
  for (int round = 1; round <= 4; ++round) {
    for (Member& m : members_) m.Mutate(round);
    at.push_back(Take());
    ASSERT_OK_AND_ASSIGN(uint64_t id, coordinator_->ReserveCheckpointId());
    ids.push_back(id);
    for (const absl::Status& s : CheckpointAll(id)) ASSERT_OK(s);
  }
  // Checkpoints 1 and 2 commit; the group announces only 2, which settles 1.
  ASSERT_OK(coordinator_->CommitGroup(ids[0], Commit()).status());
  ASSERT_OK(coordinator_->CommitGroup(ids[1], Commit()).status());
  AnnounceAll(ids[1], CheckpointOutcome::kCommitted);
  // 3 is aborted, so 4 (built on it) is aborted with it.
  AnnounceAll(ids[2], CheckpointOutcome::kAborted);
  for (Member& m : members_) {
    EXPECT_TRUE(
        absl::IsFailedPrecondition(m.checkpointer->Outcome(ids[3], CheckpointOutcome::kCommitted)))
        << "checkpoint 4 was aborted with 3";
    EXPECT_TRUE(
        absl::IsFailedPrecondition(m.checkpointer->Outcome(ids[0], CheckpointOutcome::kAborted)))
        << "checkpoint 1 is committed";
    EXPECT_TRUE(
        absl::IsNotFound(m.checkpointer->Outcome(ids[3] + 100, CheckpointOutcome::kCommitted)));
  }
  absl::Status on_aborted = coordinator_->CommitGroup(ids[3], Commit()).status();
  EXPECT_FALSE(on_aborted.ok()) << "4 builds on 3, which is not committed";

  for (Member& m : members_) m.Mutate(5);
  const Snapshot at5 = Take();
  ASSERT_OK_AND_ASSIGN(uint64_t id5, coordinator_->ReserveCheckpointId());
  for (const absl::Status& s : CheckpointAll(id5)) ASSERT_OK(s);
  ASSERT_OK_AND_ASSIGN(CommitRecord c5, coordinator_->CommitGroup(id5, Commit()));
  AnnounceAll(id5, CheckpointOutcome::kCommitted);
  EXPECT_EQ(c5.parent, ids[1]);
  ExpectRestores(ids[0], at[0]);
  ExpectRestores(ids[1], at[1]);
  ExpectRestores(id5, at5);
}

// A checkpoint aborted while it is still persisting: its acknowledgement may land, but it never
// becomes part of the lineage.
TEST_F(GroupOutcomeTest, AbortAnnouncedWhilePersisting) {
  for (Member& m : members_) m.Mutate(1);
  ASSERT_OK_AND_ASSIGN(uint64_t id1, coordinator_->ReserveCheckpointId());
  for (Member& m : members_) m.faults->SetLatency(absl::Milliseconds(20));
  std::vector<CheckpointHandle> handles;
  for (Member& m : members_) {
    CheckpointOptions o;
    o.id = id1;
    o.epoch = 3;
    ASSERT_OK_AND_ASSIGN(CheckpointHandle h, m.checkpointer->Checkpoint(o));
    handles.push_back(h);
  }
  AnnounceAll(id1, CheckpointOutcome::kAborted);
  // Each member learns it while persisting (Wait fails) or, had it finished, as pending: either
  // way the checkpoint is out of the lineage.
  for (CheckpointHandle& h : handles) (void)h.Wait();
  for (Member& m : members_) m.faults->ClearFaults();
  for (Member& m : members_) m.Mutate(2);
  const Snapshot at2 = Take();
  ASSERT_OK_AND_ASSIGN(uint64_t id2, coordinator_->ReserveCheckpointId());
  for (const absl::Status& s : CheckpointAll(id2)) ASSERT_OK(s);
  ASSERT_OK_AND_ASSIGN(CommitRecord c2, coordinator_->CommitGroup(id2, Commit()));
  EXPECT_EQ(c2.parent, std::nullopt);
  EXPECT_EQ(c2.kind, CheckpointKind::kFull);
  ExpectRestores(id2, at2);
}

// Acknowledgements carry the participant's incarnation; a group commit expecting another one (the
// participant was replaced) refuses them, and one of another epoch too.
TEST_F(GroupOutcomeTest, AcknowledgementOfAnotherIncarnationOrEpochIsRefused) {
  for (Member& m : members_) m.Mutate(1);
  ASSERT_OK_AND_ASSIGN(uint64_t id, coordinator_->ReserveCheckpointId());
  for (const absl::Status& s : CheckpointAll(id)) ASSERT_OK(s);
  ASSERT_OK_AND_ASSIGN(CommitRecord ack, coordinator_->ReadAck(id, "p1"));
  EXPECT_EQ(ack.participants.at(0).incarnation, 1u);
  EXPECT_EQ(ack.epoch, 3u);
  GroupCommitOptions replaced = Commit();
  replaced.incarnations["p1"] = 2;
  absl::Status s = coordinator_->CommitGroup(id, replaced).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(std::string(s.message()).find("incarnation"), std::string::npos) << s;
  GroupCommitOptions unnamed = Commit();
  unnamed.incarnations.erase("p2");
  EXPECT_TRUE(absl::IsInvalidArgument(coordinator_->CommitGroup(id, unnamed).status()));
  GroupCommitOptions other_epoch = Commit();
  other_epoch.epoch = 4;
  EXPECT_TRUE(absl::IsFailedPrecondition(coordinator_->CommitGroup(id, other_epoch).status()));
  EXPECT_TRUE(absl::IsNotFound(coordinator_->ReadCommit(id).status()));
  ASSERT_OK(coordinator_->CommitGroup(id, Commit()).status());
}

// A process that commits its own checkpoints takes no outcomes.
TEST(OutcomeTest, LocalCheckpointerRefusesOutcomes) {
  testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(dir.Join("repo"), /*create=*/true));
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get()));
  EXPECT_TRUE(absl::IsFailedPrecondition(ckpt->Outcome(1, CheckpointOutcome::kCommitted)));
}

}  // namespace
}  // namespace ickpt
