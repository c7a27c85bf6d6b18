// Coordinator epochs and fencing (format.md §15): the epoch record, the rule, BeginEpoch, the
// commit checks, the race between an old leader's commit and a new leader's epoch, and what a
// damaged epoch record does.
#include "src/repo/fencing.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/repository.h"
#include "src/repo/commit_record.h"
#include "src/repo/keys.h"
#include "src/testing/status_matchers.h"
#include "src/util/hash.h"
#include "src/util/mutex.h"

namespace ickpt {
namespace {

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

EpochRecord Epoch(uint64_t epoch, std::optional<uint64_t> base, uint64_t previous = 0,
                  std::string leader = "leader") {
  EpochRecord r;
  r.epoch = epoch;
  r.base = base;
  r.previous = previous;
  r.created = absl::FromUnixSeconds(1'800'000'000) + absl::Nanoseconds(epoch);
  r.leader = std::move(leader);
  return r;
}

CommitRecord Commit(uint64_t id, uint64_t epoch, std::optional<uint64_t> parent = std::nullopt) {
  CommitRecord r;
  r.id = id;
  r.parent = parent;
  r.epoch = epoch;
  r.created = absl::FromUnixNanos(1'800'000'000'000'000'000 + id);
  const std::string sha = ToHex(Sha256(std::to_string(id)));
  StateObjectRecord o;
  o.name = "heap";
  o.manifest = ManifestKey(sha);
  o.manifest_sha256 = sha;
  o.tracker = "explicit";
  r.participants = {{.name = "p0", .state_objects = {o}}};
  return r;
}

// The rule alone (§15.3), on lists of epoch records: no repository involved.
TEST(FencingRuleTest, NoEpochRecordsFenceNothing) {
  for (uint64_t epoch : {0, 1, 7}) {
    EXPECT_EQ(FencedBy({}, Commit(5, epoch)), std::nullopt);
  }
  EXPECT_FALSE(Fencing().MayFence(1));
}

TEST(FencingRuleTest, AnOlderEpochAboveTheBaseIsFencedEverythingElseIsNot) {
  const std::vector<EpochRecord> epochs = {Epoch(3, 5)};
  EXPECT_EQ(FencedBy(epochs, Commit(4, 2)), std::nullopt);  // below the base
  EXPECT_EQ(FencedBy(epochs, Commit(5, 2)), std::nullopt);  // the base itself
  EXPECT_EQ(FencedBy(epochs, Commit(6, 2)), 3u);            // above, older epoch
  EXPECT_EQ(FencedBy(epochs, Commit(6, 3)), std::nullopt);  // the epoch's own commits
  EXPECT_EQ(FencedBy(epochs, Commit(6, 4)), std::nullopt);  // a newer epoch's
  // Commits without a coordinator (epoch 0) are fenced like any older epoch.
  EXPECT_EQ(FencedBy(epochs, Commit(6, 0)), 3u);
  EXPECT_EQ(FencedBy(epochs, Commit(5, 0)), std::nullopt);
  // A null base counts as 0: everything of an older epoch is fenced.
  EXPECT_EQ(FencedBy({Epoch(1, std::nullopt)}, Commit(1, 0)), 1u);
  Fencing fencing({Epoch(3, 5)});
  EXPECT_FALSE(fencing.MayFence(5));
  EXPECT_TRUE(fencing.MayFence(6));
}

TEST(FencingRuleTest, SeveralEpochRecordsNameTheLowestThatFences) {
  const std::vector<EpochRecord> epochs = {Epoch(5, 8, 2), Epoch(2, 4)};  // any order
  EXPECT_EQ(FencedBy(epochs, Commit(5, 1)), 2u);  // both fence it: the lowest
  EXPECT_EQ(FencedBy(epochs, Commit(9, 1)), 2u);
  EXPECT_EQ(FencedBy(epochs, Commit(6, 2)), std::nullopt);  // epoch 2's, below epoch 5's base
  EXPECT_EQ(FencedBy(epochs, Commit(9, 2)), 5u);
  EXPECT_EQ(FencedBy(epochs, Commit(9, 3)), 5u);
  EXPECT_EQ(FencedBy(epochs, Commit(9, 5)), std::nullopt);
  EXPECT_EQ(FencedBy(epochs, Commit(4, 0)), std::nullopt);  // below both bases
}

// §15.3: a record that a newer record in force did not see (published late, by a leader deposed
// before it published) fences nothing; the newer leader's view stands.
TEST(FencingRuleTest, ALateRecordOfADeposedLeaderIsSuperseded) {
  // Epoch 4's leader saw only epoch 2 when it read base 10; epoch 3's record came after.
  const std::vector<EpochRecord> late = {Epoch(2, 1), Epoch(3, 5, 2), Epoch(4, 10, 2)};
  EXPECT_EQ(FencedBy(late, Commit(7, 2)), std::nullopt);  // epoch 4 adopted it as history
  EXPECT_EQ(FencedBy(late, Commit(11, 2)), 4u);
  EXPECT_EQ(FencedBy(late, Commit(11, 3)), 4u);
  Fencing fencing(late);
  EXPECT_TRUE(fencing.InForce(2));
  EXPECT_FALSE(fencing.InForce(3));
  EXPECT_TRUE(fencing.InForce(4));
  // Had epoch 4's leader seen epoch 3, its record would stand.
  const std::vector<EpochRecord> seen = {Epoch(2, 1), Epoch(3, 5, 2), Epoch(4, 10, 3)};
  EXPECT_EQ(FencedBy(seen, Commit(7, 2)), 3u);
}

TEST(FencingRuleTest, OnlyRecordsInForceSupersede) {
  // 6 saw 3 but not 4 and 5: they are superseded; 5's own `previous` (2) then counts for nothing,
  // so 3 stays in force.
  Fencing fencing({Epoch(2, 1), Epoch(3, 4, 2), Epoch(4, 6, 3), Epoch(5, 7, 2), Epoch(6, 9, 3)});
  EXPECT_TRUE(fencing.InForce(6));
  EXPECT_FALSE(fencing.InForce(5));
  EXPECT_FALSE(fencing.InForce(4));
  EXPECT_TRUE(fencing.InForce(3));
  EXPECT_TRUE(fencing.InForce(2));
  EXPECT_EQ(fencing.FencedBy(5, 2), 3u);
  EXPECT_EQ(fencing.highest_epoch(), 6u);
}

TEST(EpochRecordCodecTest, RoundTripsAndRefusesWhatAWriterNeverWrites) {
  for (const EpochRecord& r :
       {Epoch(1, std::nullopt), Epoch(UINT64_MAX, UINT64_MAX, 7, "\u00e9")}) {
    ASSERT_OK(ValidateEpochRecord(r));
    const std::string key = EpochKey(r.epoch);
    ASSERT_OK_AND_ASSIGN(EpochRecord back, DecodeEpochRecord(EncodeEpochRecord(r), key, r.epoch));
    EXPECT_EQ(back.epoch, r.epoch);
    EXPECT_EQ(back.base, r.base);
    EXPECT_EQ(back.previous, r.previous);
    EXPECT_EQ(back.created, r.created);
    EXPECT_EQ(back.leader, r.leader);
  }
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateEpochRecord(Epoch(0, 1))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateEpochRecord(Epoch(2, 0))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateEpochRecord(Epoch(2, 1, 2))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateEpochRecord(Epoch(2, 1, 0, ""))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateEpochRecord(Epoch(2, 1, 0, std::string(257, 'x')))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateEpochRecord(Epoch(2, 1, 0, "\xff"))));
  // A record under another epoch's key is damage.
  const absl::Status s = DecodeEpochRecord(EncodeEpochRecord(Epoch(3, 1)), EpochKey(4), 4).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(Msg(s).find(EpochKey(4)), std::string::npos) << s;
}

// Counts the objects read, by key, and can run a hook immediately before an epoch record is
// published (to interleave another writer exactly there: the races of §15.5).
class HookStore : public ObjectStoreWrapper {
 public:
  using ObjectStoreWrapper::ObjectStoreWrapper;
  absl::Status Publish(std::string_view key, std::string_view data) override {
    std::function<void()> hook;
    {
      MutexLock lock(&mu_);
      if (key.starts_with(kEpochsPrefix)) hook = std::exchange(before_epoch_publish_, nullptr);
    }
    if (hook) hook();
    return ObjectStoreWrapper::Publish(key, data);
  }
  absl::StatusOr<std::string> Get(std::string_view key) override {
    {
      MutexLock lock(&mu_);
      ++gets_[std::string(key)];
    }
    return ObjectStoreWrapper::Get(key);
  }
  void BeforeNextEpochPublish(std::function<void()> hook) {
    MutexLock lock(&mu_);
    before_epoch_publish_ = std::move(hook);
  }
  // Gets of keys under `prefix` since the last call.
  int TakeGets(std::string_view prefix) {
    MutexLock lock(&mu_);
    int n = 0;
    for (auto it = gets_.begin(); it != gets_.end();) {
      if (it->first.starts_with(prefix)) {
        n += it->second;
        it = gets_.erase(it);
      } else {
        ++it;
      }
    }
    return n;
  }

 private:
  Mutex mu_;
  std::function<void()> before_epoch_publish_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> gets_ ABSL_GUARDED_BY(mu_);
};

class FencingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK_AND_ASSIGN(repo_, Repository::Create(Store())); }
  // A Repository over the shared store, as another process would open it.
  std::unique_ptr<ObjectStore> Store() {
    return std::make_unique<ObjectStoreWrapper>(memory_.get());
  }
  std::unique_ptr<Repository> OpenOther() {
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::Open(Store());
    EXPECT_OK(repo.status());
    return repo.ok() ? *std::move(repo) : nullptr;
  }
  // A repository that counts reads and takes hooks.
  std::unique_ptr<Repository> OpenHooked(HookStore** hooks) {
    auto store = std::make_unique<HookStore>(memory_.get());
    *hooks = store.get();
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::Open(std::move(store));
    EXPECT_OK(repo.status());
    (*hooks)->TakeGets("");  // the config, read by every open
    return repo.ok() ? *std::move(repo) : nullptr;
  }
  // Objects written behind the writers' checks, to lay out a repository as a race leaves it.
  void PutCommit(const CommitRecord& r) {
    ASSERT_OK(memory_->Publish(CommitKey(r.id), EncodeCommitRecord(r)));
  }
  void PutEpoch(const EpochRecord& r) {
    ASSERT_OK(memory_->Publish(EpochKey(r.epoch), EncodeEpochRecord(r)));
  }
  std::optional<uint64_t> Latest() {
    absl::StatusOr<std::optional<uint64_t>> latest = repo_->LatestCommitId();
    EXPECT_OK(latest.status());
    return latest.ok() ? *latest : std::nullopt;
  }
  std::optional<uint64_t> FencedByNow(uint64_t id) {
    absl::StatusOr<std::vector<EpochRecord>> epochs = repo_->ListEpochs();
    EXPECT_OK(epochs.status());
    absl::StatusOr<CommitRecord> record = repo_->ReadCommit(id);
    EXPECT_OK(record.status());
    if (!epochs.ok() || !record.ok()) return std::nullopt;
    return FencedBy(*epochs, *record);
  }
  // Publishes `participant`'s acknowledgement of checkpoint `id` in `epoch`.
  void Ack(uint64_t id, uint64_t epoch, const std::string& participant = "p0",
           std::optional<uint64_t> parent = std::nullopt) {
    CommitRecord ack = Commit(id, epoch, parent);
    ack.participants[0].name = participant;
    ASSERT_OK(repo_->PublishAck(ack));
  }
  static GroupCommitOptions Group(uint64_t epoch) {
    GroupCommitOptions o;
    o.participants = {"p0"};
    o.epoch = epoch;
    return o;
  }

  std::unique_ptr<ObjectStore> memory_ = NewMemoryStore();
  std::unique_ptr<Repository> repo_;
};

TEST_F(FencingTest, WithoutEpochRecordsTheLatestIsTheHighestAndNothingMoreIsRead) {
  // Commits of epoch > 0 without epoch records: a repository of format 1.2–1.4's coordinators.
  for (uint64_t id : {1, 2, 3}) PutCommit(Commit(id, id == 3 ? 2 : 0));
  HookStore* hooks = nullptr;
  std::unique_ptr<Repository> counted = OpenHooked(&hooks);
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, counted->LatestCommitId());
  EXPECT_EQ(latest, 3u);
  // Listings only (format.md §15.6), and the latest-commit index, which this repository lacks
  // (§6.2).
  EXPECT_EQ(hooks->TakeGets(kCommitsPrefix), 0);
  EXPECT_EQ(hooks->TakeGets(kEpochsPrefix), 0);
  EXPECT_EQ(hooks->TakeGets(""), 1);
  ASSERT_OK_AND_ASSIGN(std::vector<EpochRecord> epochs, counted->ListEpochs());
  EXPECT_TRUE(epochs.empty());
  EXPECT_EQ(FencedByNow(3), std::nullopt);
}

TEST_F(FencingTest, TheLatestSkipsFencedCommitsReadingOnlyWhatCouldBeFenced) {
  // Epoch 1 began from checkpoint 2; epoch 2 from checkpoint 4, while epoch 1's leader still
  // committed 5 and 6 (the race of §15.5). Epoch 0 commits 1 and 2 came before any coordinator.
  PutCommit(Commit(1, 0));
  PutCommit(Commit(2, 0));
  PutEpoch(Epoch(1, 2));
  PutCommit(Commit(3, 1, 2));
  PutCommit(Commit(4, 1, 3));
  PutEpoch(Epoch(2, 4, 1));
  PutCommit(Commit(5, 1, 4));
  PutCommit(Commit(6, 1, 5));
  HookStore* hooks = nullptr;
  std::unique_ptr<Repository> counted = OpenHooked(&hooks);
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, counted->LatestCommitId());
  EXPECT_EQ(latest, 4u);
  // 6, 5 and 4 are above the lowest base (2): read. Then 4 is not fenced: the walk stops.
  EXPECT_EQ(hooks->TakeGets(kCommitsPrefix), 3);
  EXPECT_EQ(hooks->TakeGets(kEpochsPrefix), 2);
  // Epoch and commit records never change: a second call reads nothing but listings (and the
  // latest-commit index, §6.2).
  ASSERT_OK_AND_ASSIGN(latest, counted->LatestCommitId());
  EXPECT_EQ(latest, 4u);
  EXPECT_EQ(hooks->TakeGets(kCommitsPrefix), 0);
  EXPECT_EQ(hooks->TakeGets(kEpochsPrefix), 0);
  EXPECT_EQ(FencedByNow(6), 2u);
  EXPECT_EQ(FencedByNow(5), 2u);
  EXPECT_EQ(FencedByNow(4), std::nullopt);
  EXPECT_EQ(FencedByNow(1), std::nullopt);
  // The new epoch's own commit above its base is the history.
  PutCommit(Commit(7, 2, 4));
  EXPECT_EQ(Latest(), 7u);
}

TEST_F(FencingTest, CommitsWithoutACoordinatorAboveABaseAreFenced) {
  PutCommit(Commit(1, 0));
  PutEpoch(Epoch(1, 1));
  PutCommit(Commit(2, 0, 1));  // an uncoordinated writer after a coordinator began
  EXPECT_EQ(Latest(), 1u);
  EXPECT_EQ(FencedByNow(2), 1u);
  // And the writer is refused before it publishes such a commit (format.md §15.4).
  const absl::Status s = repo_->PublishCommit(Commit(3, 0, 1));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("epoch 1 fences it"), std::string::npos) << s;
  EXPECT_TRUE(absl::IsNotFound(repo_->ReadCommit(3).status()));
}

TEST_F(FencingTest, ADamagedCommitRecordCountsAsNotFenced) {
  PutCommit(Commit(1, 0));
  PutEpoch(Epoch(1, 1));
  PutCommit(Commit(2, 0, 1));  // fenced, if it could be read
  std::string bytes = *memory_->Get(CommitKey(2));
  bytes[bytes.size() / 2] ^= 0x20;
  ASSERT_OK(memory_->Put(CommitKey(2), bytes));
  // Damage is reported when read, never skipped in favour of an older checkpoint (§6.1).
  EXPECT_EQ(Latest(), 2u);
  EXPECT_TRUE(absl::IsDataLoss(repo_->ReadCommit(2).status()));
}

TEST_F(FencingTest, BeginEpochNamesTheLatestAndIsIdempotentForItsLeader) {
  ASSERT_OK_AND_ASSIGN(EpochRecord empty, repo_->BeginEpoch(1, "coordinator-a"));
  EXPECT_EQ(empty.base, std::nullopt);  // no checkpoint yet
  EXPECT_EQ(empty.previous, 0u);
  ASSERT_OK(repo_->PublishCommit(Commit(1, 1)));
  ASSERT_OK(repo_->PublishCommit(Commit(2, 1, 1)));
  ASSERT_OK_AND_ASSIGN(EpochRecord begun, repo_->BeginEpoch(5, "coordinator-b"));
  EXPECT_EQ(begun.epoch, 5u);
  EXPECT_EQ(begun.base, 2u);
  EXPECT_EQ(begun.previous, 1u);
  EXPECT_EQ(begun.leader, "coordinator-b");
  // A retry (after an ambiguous failure, or a restart of the same leader) gets the stored record,
  // from this process or another.
  ASSERT_OK_AND_ASSIGN(EpochRecord again, OpenOther()->BeginEpoch(5, "coordinator-b"));
  EXPECT_EQ(again.created, begun.created);
  EXPECT_EQ(again.base, 2u);
  // Another leader with the same epoch is a configuration error.
  absl::Status s = repo_->BeginEpoch(5, "coordinator-c").status();
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_NE(Msg(s).find("coordinator-b"), std::string::npos) << s;
  ASSERT_OK_AND_ASSIGN(std::vector<EpochRecord> epochs, repo_->ListEpochs());
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_EQ(epochs[0].epoch, 1u);
  EXPECT_EQ(epochs[1].epoch, 5u);
  EXPECT_TRUE(absl::IsInvalidArgument(repo_->BeginEpoch(0, "x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(repo_->BeginEpoch(9, "").status()));
}

TEST_F(FencingTest, ADeposedLeaderCannotBeginItsEpoch) {
  ASSERT_OK(repo_->BeginEpoch(7, "new").status());
  for (auto [epoch, leader] : {std::pair<uint64_t, const char*>{6, "old"}, {3, "older"}}) {
    const absl::Status s = repo_->BeginEpoch(epoch, leader).status();
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_NE(Msg(s).find("deposed"), std::string::npos) << s;
    EXPECT_NE(Msg(s).find("epoch 7"), std::string::npos) << s;
  }
  EXPECT_TRUE(absl::IsNotFound(memory_->Get(EpochKey(6)).status()));
  // The leader of 7, restarted after 8 began, is told it is deposed rather than given its record.
  ASSERT_OK(OpenOther()->BeginEpoch(8, "newer").status());
  EXPECT_TRUE(absl::IsFailedPrecondition(repo_->BeginEpoch(7, "new").status()));
}

// §15.2 step 4 and §15.3: a leader deposed between its listing and its publish publishes a record
// that is superseded, learns that it is deposed, and fences nothing the newer leader adopted.
TEST_F(FencingTest, ARecordPublishedAfterANewerLeaderReadItsBaseIsSuperseded) {
  ASSERT_OK(repo_->BeginEpoch(1, "a").status());
  ASSERT_OK(repo_->PublishCommit(Commit(1, 1)));
  HookStore* hooks = nullptr;
  std::unique_ptr<Repository> stalled = OpenHooked(&hooks);
  hooks->BeforeNextEpochPublish([this] {
    // While the leader of 3 stalls after reading base 1: epoch 1's leader commits 2, and the
    // leader of 4 begins from it.
    ASSERT_OK(repo_->PublishCommit(Commit(2, 1, 1)));
    ASSERT_OK_AND_ASSIGN(EpochRecord four, OpenOther()->BeginEpoch(4, "d"));
    EXPECT_EQ(four.base, 2u);
  });
  const absl::Status s = stalled->BeginEpoch(3, "c").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("superseded"), std::string::npos) << s;
  ASSERT_OK_AND_ASSIGN(Fencing fencing, ReadFencing(*repo_));
  ASSERT_NE(fencing.Find(3), nullptr);      // published, but
  EXPECT_FALSE(fencing.InForce(3));         // superseded:
  EXPECT_EQ(FencedByNow(2), std::nullopt);  // checkpoint 2, epoch 4's base, stays the history
  EXPECT_EQ(Latest(), 2u);
  ASSERT_OK(repo_->PublishCommit(Commit(3, 4, 2)));  // and epoch 4 builds on it
}

TEST_F(FencingTest, ACommitNeedsItsEpochBegunAndNotFenced) {
  absl::Status s = repo_->PublishCommit(Commit(1, 3));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("never begun"), std::string::npos) << s;
  ASSERT_OK(repo_->BeginEpoch(3, "a").status());
  ASSERT_OK(repo_->PublishCommit(Commit(1, 3)));
  ASSERT_OK(repo_->BeginEpoch(4, "b").status());
  // Even below the new base: a deposed coordinator commits nothing more.
  s = repo_->PublishCommit(Commit(2, 3, 1));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("epoch 3 is fenced by epoch 4"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("'b'"), std::string::npos) << s;
  EXPECT_TRUE(absl::IsNotFound(repo_->ReadCommit(2).status()));
  ASSERT_OK(repo_->PublishCommit(Commit(2, 4, 1)));
}

TEST_F(FencingTest, TheGroupCommitOfAFencedEpochIsRefused) {
  ASSERT_OK(repo_->BeginEpoch(3, "old").status());
  Ack(1, 3);
  ASSERT_OK(repo_->CommitGroup(1, Group(3)).status());
  Ack(2, 3, "p0", 1);
  // Without its epoch record, a group commit is refused too.
  Ack(9, 7);
  absl::Status s = repo_->CommitGroup(9, Group(7)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("never begun"), std::string::npos) << s;
  ASSERT_OK_AND_ASSIGN(EpochRecord four, OpenOther()->BeginEpoch(4, "new"));
  EXPECT_EQ(four.base, 1u);
  s = repo_->CommitGroup(2, Group(3)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("fenced by epoch 4"), std::string::npos) << s;
  EXPECT_TRUE(absl::IsNotFound(repo_->ReadCommit(2).status()));
  EXPECT_EQ(Latest(), 1u);
}

// The race of §15.5: the old leader's group commit passes its check, the new leader reads the
// latest checkpoint and publishes its epoch, then the old commit lands. It exists, and it is never
// the latest: fenced, because its id is above the new base.
TEST_F(FencingTest, AnOldLeadersCommitRacingWithANewEpochNeverBecomesTheLatest) {
  ASSERT_OK(repo_->BeginEpoch(3, "old").status());
  Ack(1, 3);
  ASSERT_OK(repo_->CommitGroup(1, Group(3)).status());
  Ack(2, 3, "p0", 1);
  HookStore* hooks = nullptr;
  std::unique_ptr<Repository> new_leader = OpenHooked(&hooks);
  hooks->BeforeNextEpochPublish([this] {
    // Between the new leader's read (base 1) and its publish: the old leader's commit lands.
    ASSERT_OK(repo_->CommitGroup(2, Group(3)).status());
    EXPECT_EQ(Latest(), 2u);  // for that instant (protocol.md: participants never take "latest")
  });
  ASSERT_OK_AND_ASSIGN(EpochRecord four, new_leader->BeginEpoch(4, "new"));
  EXPECT_EQ(four.base, 1u);
  ASSERT_OK(repo_->ReadCommit(2).status());  // it exists,
  EXPECT_EQ(FencedByNow(2), 4u);             // fenced,
  EXPECT_EQ(Latest(), 1u);                   // not the latest,
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> seen, new_leader->LatestCommitId());
  EXPECT_EQ(seen, 1u);
  // and never a parent: the new epoch builds on the base, and the fenced commit cannot be built on.
  const absl::Status s = new_leader->PublishCommit(Commit(3, 4, 2));
  EXPECT_TRUE(IsParentRemoved(s)) << s;
  EXPECT_NE(Msg(s).find("fenced by epoch 4"), std::string::npos) << s;
  ASSERT_OK(new_leader->PublishCommit(Commit(3, 4, 1)));
  EXPECT_EQ(Latest(), 3u);
  // The old leader, retrying, is refused: a higher epoch exists.
  Ack(4, 3, "p0", 2);
  EXPECT_TRUE(absl::IsFailedPrecondition(repo_->CommitGroup(4, Group(3)).status()));
}

// format.md §15.1: an epoch record that does not verify leaves unknown what it fences, so every
// reader that needs the records fails with DataLoss naming it, never guesses.
TEST_F(FencingTest, ADamagedEpochRecordIsDataLossNamingIt) {
  ASSERT_OK(repo_->PublishCommit(Commit(1, 0)));
  ASSERT_OK(repo_->BeginEpoch(2, "a").status());
  const std::string key = EpochKey(2);
  const std::string original = *memory_->Get(key);
  for (size_t i = 0; i < original.size(); ++i) {
    std::string damaged = original;
    damaged[i] ^= 0x01;
    ASSERT_OK(memory_->Put(key, damaged));
    std::unique_ptr<Repository> fresh = OpenOther();  // nothing cached
    const std::vector<absl::Status> statuses = {
        fresh->ListEpochs().status(), fresh->LatestCommitId().status(),
        fresh->PublishCommit(Commit(2, 2, 1)), fresh->BeginEpoch(3, "b").status()};
    for (const absl::Status& s : statuses) {
      // Byte 8 is the major version: a well-formed newer record would be FailedPrecondition, but
      // the checksum is checked first (format.md §1.1), so every flip is damage.
      EXPECT_TRUE(absl::IsDataLoss(s)) << "byte " << i << ": " << s;
      EXPECT_NE(Msg(s).find(key), std::string::npos) << "byte " << i << ": " << s;
    }
  }
  ASSERT_OK(memory_->Put(key, original.substr(0, original.size() - 1)));
  EXPECT_TRUE(absl::IsDataLoss(OpenOther()->LatestCommitId().status()));
  // Put back, everything works; keys under epochs/ that name no epoch are ignored.
  ASSERT_OK(memory_->Put(key, original));
  ASSERT_OK(memory_->Put("epochs/readme", "x"));
  ASSERT_OK_AND_ASSIGN(std::vector<EpochRecord> epochs, OpenOther()->ListEpochs());
  EXPECT_EQ(epochs.size(), 1u);
  ASSERT_OK(OpenOther()->PublishCommit(Commit(2, 2, 1)));
}

}  // namespace
}  // namespace ickpt
