// The group protocol (docs/protocol.md §5, §6) on the in-process transport, with deterministic
// sync points: coordinators act only in RunRound() and participants only in Poll(), so each test
// is a script of who acts when. Leases are long (they never expire by time here); a lost member
// or a deposed leader is made by expiring its lease explicitly.
#include "src/coord/protocol.h"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/coordination.h"
#include "ickpt/repository.h"
#include "src/coord/coordinator_internal.h"
#include "src/coord/fault_coordination_store.h"
#include "src/coord/memory_coordination_store.h"
#include "src/repo/keys.h"
#include "src/store/fault_store.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"

namespace ickpt {
namespace {

using coord::CoordinatorTestPeer;
using coord::MemoryCoordinationStore;
using coord::ParticipantTestPeer;

constexpr uint64_t kRegionBytes = 16 * 4096;
constexpr uint32_t kKeyGroups = 32;
constexpr char kJob[] = "job";

// What a participant's state was when a checkpoint captured it.
struct Image {
  std::string region;
  std::map<std::string, std::string> keyed;
};

// One participant process: a checkpointer holding a region "grid" (its own) and a keyed state
// "counts" (shared by key groups), rebuilt at every assignment.
struct Worker {
  std::string name;
  Repository* repo = nullptr;
  std::unique_ptr<Checkpointer> checkpointer;
  std::unique_ptr<Participant> participant;
  std::mt19937_64 rng;
  int prepared = 0;
  std::function<absl::Status(const Assignment&)> fail_prepare;  // optional fault

  absl::StatusOr<Checkpointer*> Prepare(const Assignment& a) {
    ++prepared;
    if (fail_prepare) {
      if (absl::Status s = fail_prepare(a); !s.ok()) return s;
    }
    CheckpointerOptions base;
    base.persist_threads = 1;
    base.consolidate_in_background = false;
    base.gc_after_commit = false;
    checkpointer.reset();
    absl::StatusOr<std::unique_ptr<Checkpointer>> ck = Checkpointer::Open(repo, a.Apply(base));
    if (!ck.ok()) return ck.status();
    checkpointer = *std::move(ck);
    RegionOptions ro;
    ro.size = kRegionBytes;
    if (absl::StatusOr<Region*> r = checkpointer->AddRegion("grid", ro); !r.ok()) return r.status();
    KeyedStateOptions ko;
    ko.key_groups = kKeyGroups;
    if (absl::StatusOr<KeyedState*> k = checkpointer->AddKeyedState("counts", ko); !k.ok()) {
      return k.status();
    }
    return checkpointer.get();
  }

  Region* grid() { return checkpointer->FindRegion("grid"); }
  KeyedState* counts() { return checkpointer->FindKeyedState("counts"); }

  void Mutate() {
    for (int i = 0; i < 3; ++i) {
      const uint64_t block = rng() % (kRegionBytes / 4096);
      const std::string bytes = testing::RandomBytes(4096, rng());
      std::memcpy(grid()->data() + block * 4096, bytes.data(), bytes.size());
    }
    for (int i = 0; i < 20; ++i) {
      const std::string key = name + "-" + std::to_string(rng() % 50);
      const uint32_t g = KeyGroupOf(key, kKeyGroups);
      if (g < counts()->group_first() || g >= counts()->group_end()) continue;
      ASSERT_OK(counts()->Put(key, std::to_string(rng())));
    }
  }

  Image Capture() {
    Image image;
    image.region.assign(grid()->data(), grid()->size());
    counts()->ForEach([&](std::string_view k, std::string_view v) {
      image.keyed[std::string(k)] = std::string(v);
    });
    return image;
  }
};

class ProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(repo_, Repository::OpenLocal(dir_.Join("repo"), /*create=*/true));
  }

  std::unique_ptr<Coordinator> StartCoordinator(std::string name, CoordinatorOptions o = {}) {
    o.job = kJob;
    o.name = std::move(name);
    if (o.interval == absl::Seconds(30)) o.interval = absl::Milliseconds(1);
    o.lease_ttl = absl::Seconds(600);
    o.maintenance = false;
    absl::StatusOr<std::unique_ptr<Coordinator>> c =
        CoordinatorTestPeer::StartManual(protocol_store_, repo_.get(), o);
    EXPECT_OK(c.status());
    return c.ok() ? *std::move(c) : nullptr;
  }

  Worker& AddWorker(const std::string& name) {
    auto w = std::make_unique<Worker>();
    w->name = name;
    w->repo = repo_.get();
    w->rng.seed(std::hash<std::string>()(name));
    Join(*w);
    workers_.push_back(std::move(w));
    return *workers_.back();
  }

  void Join(Worker& w) {
    ParticipantOptions po;
    po.job = kJob;
    po.name = w.name;
    po.lease_ttl = absl::Seconds(600);
    po.prepare = [&w](const Assignment& a) { return w.Prepare(a); };
    po.on_absent = OnAbsent::kIgnore;
    po.on_unregistered = OnUnregistered::kIgnore;
    w.participant.reset();
    absl::StatusOr<std::unique_ptr<Participant>> p =
        ParticipantTestPeer::JoinManual(protocol_store_, repo_.get(), po);
    ASSERT_OK(p.status());
    w.participant = *std::move(p);
  }

  // Kills a worker: its lease ends (as when its process dies and the ttl passes).
  void Kill(Worker& w) {
    store_->ExpireLease(ParticipantTestPeer::Lease(*w.participant));
    w.participant.reset();
    w.checkpointer.reset();
  }

  void Round(Coordinator& c) { ASSERT_OK(CoordinatorTestPeer::RunRound(c)); }

  PollResult Poll(Worker& w, uint64_t step = 0) {
    absl::StatusOr<PollResult> r = w.participant->Poll(step);
    EXPECT_OK(r.status()) << w.name;
    return r.ok() ? *r : PollResult{};
  }

  // Every worker polls; each that restores is checked against the image of what it restored.
  void PollAll(std::map<std::string, PollResult>* results = nullptr) {
    for (auto& w : workers_) {
      if (w->participant == nullptr) continue;
      PollResult r = Poll(*w);
      if (r.event == PollResult::Event::kCheckpointed) images_[r.checkpoint_id][w->name] = w->Capture();
      if (r.event == PollResult::Event::kRestored && r.restored.has_value()) {
        ExpectRestored(*w, r.restored->id);
      }
      if (results != nullptr) (*results)[w->name] = r;
    }
  }

  void ExpectRestored(Worker& w, uint64_t id) {
    auto at = images_.find(id);
    ASSERT_NE(at, images_.end()) << "no image of checkpoint " << id;
    auto mine = at->second.find(w.name);
    ASSERT_NE(mine, at->second.end());
    EXPECT_EQ(w.Capture().region, mine->second.region) << w.name << " at " << id;
    // Keyed state: the union of every participant's image, restricted to w's groups.
    std::map<std::string, std::string> expected;
    for (const auto& [name, image] : at->second) {
      for (const auto& [k, v] : image.keyed) {
        const uint32_t g = KeyGroupOf(k, kKeyGroups);
        if (g >= w.counts()->group_first() && g < w.counts()->group_end()) expected[k] = v;
      }
    }
    EXPECT_EQ(w.Capture().keyed, expected) << w.name << " at " << id;
  }

  void FlushAll() {
    for (auto& w : workers_) {
      if (w->participant != nullptr) {
        ASSERT_OK(ParticipantTestPeer::FlushAcks(*w->participant));
      }
    }
  }

  void MutateAll() {
    for (auto& w : workers_) {
      if (w->checkpointer != nullptr) w->Mutate();
    }
  }

  coord::JobSnapshot Snapshot() {
    absl::StatusOr<coord::RangeResult> r = store_->GetPrefix(coord::JobPrefix(kJob));
    EXPECT_OK(r.status());
    return coord::DecodeJobSnapshot(kJob, r.ok() ? *r : coord::RangeResult{});
  }

  // Starts the job: assignment, every worker restores (or starts empty), recovery completes.
  void StartJob(Coordinator& c) {
    Round(c);  // takes office, assigns
    ASSERT_TRUE(Snapshot().recovery.has_value());
    PollAll();
    Round(c);  // recovery complete
  }

  // The workers write, the coordinator triggers, every worker captures. Returns the id.
  uint64_t TriggerAndCapture(Coordinator& c) {
    MutateAll();
    absl::SleepFor(absl::Milliseconds(2));  // past the 1 ms interval
    Round(c);
    const coord::JobSnapshot snap = Snapshot();
    EXPECT_FALSE(snap.triggers.empty());
    const uint64_t id = snap.triggers.empty() ? 0 : snap.triggers.rbegin()->first;
    PollAll();
    return id;
  }

  // One checkpoint through: trigger, capture, acknowledge, commit, settle. Returns its id.
  uint64_t CheckpointOnce(Coordinator& c) {
    const uint64_t id = TriggerAndCapture(c);
    FlushAll();
    Round(c);
    EXPECT_EQ(Snapshot().outcomes.count(id), 1u);
    return id;
  }

  // Workers of these names and coordinator "c1" expecting them all, the job started.
  std::unique_ptr<Coordinator> StartJobOf(const std::vector<std::string>& names) {
    for (const std::string& n : names) AddWorker(n);
    CoordinatorOptions o;
    o.participants = static_cast<uint32_t>(names.size());
    auto c = StartCoordinator("c1", o);
    StartJob(*c);
    return c;
  }

  // The next checkpoint commits and builds on `committed`.
  void ExpectJobGoesOnFrom(Coordinator& c, uint64_t committed) {
    const uint64_t next = CheckpointOnce(c);
    ASSERT_EQ(Snapshot().outcomes.at(next).outcome, coord::Outcome::kCommitted);
    ASSERT_OK_AND_ASSIGN(CommitRecord record, repo_->ReadCommit(next));
    EXPECT_EQ(record.parent, committed);
  }

  // Workers whose participants run their own threads (Participant::Join), with `safe_point` as
  // ParticipantOptions::safe_point (empty: Poll mode).
  void JoinThreaded(const std::vector<std::string>& names,
                    std::function<void(absl::FunctionRef<void()>)> safe_point,
                    std::vector<std::unique_ptr<Worker>>* workers,
                    std::vector<std::unique_ptr<Participant>>* participants) {
    for (const std::string& n : names) {
      auto w = std::make_unique<Worker>();
      w->name = n;
      w->repo = repo_.get();
      ParticipantOptions po;
      po.job = kJob;
      po.name = n;
      po.lease_ttl = absl::Seconds(600);
      po.prepare = [w = w.get()](const Assignment& a) { return w->Prepare(a); };
      po.safe_point = safe_point;
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<Participant> participant,
                           Participant::Join(store_, repo_.get(), po));
      workers->push_back(std::move(w));
      participants->push_back(std::move(participant));
    }
  }

  // Coordinator "c1" of `participants` participants, triggering every `interval`, with a lease
  // that does not expire during a test and no maintenance.
  static CoordinatorOptions CoordinatorOf(uint32_t participants, absl::Duration interval) {
    CoordinatorOptions o;
    o.job = kJob;
    o.name = "c1";
    o.participants = participants;
    o.interval = interval;
    o.lease_ttl = absl::Seconds(600);
    o.maintenance = false;
    return o;
  }

  testing::TempDir dir_;
  std::unique_ptr<Repository> repo_;
  std::shared_ptr<MemoryCoordinationStore> store_ = std::make_shared<MemoryCoordinationStore>();
  // What StartCoordinator's coordinators and AddWorker's participants use (Snapshot reads store_).
  std::shared_ptr<coord::CoordinationStore> protocol_store_ = store_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::map<uint64_t, std::map<std::string, Image>> images_;
};

TEST_F(ProtocolTest, CheckpointsCommitAndRestoreExactly) {
  auto c = StartJobOf({"w0", "w1", "w2"});
  for (auto& w : workers_) EXPECT_EQ(w->prepared, 1);
  uint64_t last = 0;
  for (int i = 0; i < 4; ++i) {
    last = CheckpointOnce(*c);
    const coord::JobSnapshot snap = Snapshot();
    ASSERT_EQ(snap.outcomes.at(last).outcome, coord::Outcome::kCommitted) << snap.outcomes.at(last).reason;
  }
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo_->LatestCommitId());
  EXPECT_EQ(latest, last);
  ASSERT_OK_AND_ASSIGN(CommitRecord record, repo_->ReadCommit(last));
  EXPECT_EQ(record.participants.size(), 3u);
  EXPECT_EQ(record.epoch, c->stats().epoch);
  EXPECT_EQ(c->stats().committed, 4u);
  // A fresh process restores each worker's part of the last checkpoint exactly.
  for (auto& w : workers_) {
    Worker fresh;
    fresh.name = w->name;
    fresh.repo = repo_.get();
    Assignment a;
    a.name = w->name;
    a.participants = {"w0", "w1", "w2"};
    a.participant_index = static_cast<uint32_t>(&w - &workers_[0]);
    a.participant_count = 3;
    ASSERT_OK(fresh.Prepare(a).status());
    RestoreOptions ro;
    ro.id = last;
    ASSERT_OK(fresh.checkpointer->Restore(ro).status());
    ExpectRestored(fresh, last);
  }
}

TEST_F(ProtocolTest, LostParticipantAbortsAndEveryoneRecoversTheSameCheckpoint) {
  auto c = StartJobOf({"w0", "w1", "w2"});
  const uint64_t committed = CheckpointOnce(*c);
  // The next checkpoint: w0 and w1 capture, w2 dies before it acknowledges.
  const uint64_t doomed = TriggerAndCapture(*c);
  ASSERT_GT(doomed, committed);
  FlushAll();
  Kill(*workers_[2]);
  Round(*c);  // w2 lost: abort, recovery 2
  coord::JobSnapshot snap = Snapshot();
  ASSERT_EQ(snap.outcomes.at(doomed).outcome, coord::Outcome::kAborted);
  EXPECT_NE(snap.outcomes.at(doomed).reason.find("w2"), std::string::npos);
  ASSERT_EQ(snap.recovery->sequence, 2u);
  EXPECT_EQ(snap.recovery->checkpoint, committed);
  // Nothing of the aborted checkpoint was committed.
  EXPECT_TRUE(absl::IsNotFound(repo_->ReadCommit(doomed).status()));
  // The survivors go back; the recovery waits for w2's relaunch.
  PollAll();
  Round(*c);
  EXPECT_EQ(c->stats().recoveries, 1u);
  Join(*workers_[2]);  // relaunched: a new incarnation
  PollAll();
  for (auto& w : workers_) EXPECT_EQ(w->prepared, 2) << w->name;
  Round(*c);  // recovery complete
  // The job goes on from there.
  ExpectJobGoesOnFrom(*c, committed);
}

TEST_F(ProtocolTest, DeclinedCheckpointAbortsWithoutCountingAsFailure) {
  for (const char* n : {"w0", "w1"}) AddWorker(n);
  CoordinatorOptions o;
  o.participants = 2;
  o.tolerable_failures = 1;
  o.interval = absl::Hours(1);  // only requests trigger
  auto c = StartCoordinator("c1", o);
  StartJob(*c);
  // A request for a checkpoint at step 5; w0 is at step 7 already, w1 at 3.
  ASSERT_OK(store_->Put(coord::RequestKey(kJob, "t1"), coord::EncodeRequest({false, 5, {}})).status());
  Round(*c);
  const uint64_t id = Snapshot().triggers.rbegin()->first;
  EXPECT_EQ(Snapshot().triggers.at(id).step, 5u);
  PollResult r0 = Poll(*workers_[0], 7);
  EXPECT_EQ(r0.event, PollResult::Event::kDeclined);
  PollResult r1 = Poll(*workers_[1], 3);
  EXPECT_EQ(r1.event, PollResult::Event::kNone);  // not at step 5 yet
  Round(*c);
  const coord::JobSnapshot snap = Snapshot();
  ASSERT_EQ(snap.outcomes.at(id).outcome, coord::Outcome::kAborted);
  EXPECT_NE(snap.outcomes.at(id).reason.find("past step"), std::string::npos);
  EXPECT_EQ(snap.recovery->sequence, 1u);  // a decline is not a failure: no recovery
  // w1 reaches step 5 later: the trigger is settled, nothing is captured.
  EXPECT_EQ(Poll(*workers_[1], 5).event, PollResult::Event::kNone);
}

TEST_F(ProtocolTest, TimeoutsAreFailuresAndStartARecoveryWhenTooMany) {
  for (const char* n : {"w0", "w1"}) AddWorker(n);
  CoordinatorOptions o;
  o.participants = 2;
  o.tolerable_failures = 2;
  o.timeout = absl::Milliseconds(20);
  auto c = StartCoordinator("c1", o);
  StartJob(*c);
  const uint64_t committed = CheckpointOnce(*c);
  for (int i = 0; i < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(2));
    Round(*c);
    const uint64_t id = Snapshot().triggers.rbegin()->first;
    Poll(*workers_[0]);  // w1 is slow: never polls
    FlushAll();
    absl::SleepFor(absl::Milliseconds(25));
    Round(*c);
    const coord::JobSnapshot snap = Snapshot();
    ASSERT_EQ(snap.outcomes.at(id).outcome, coord::Outcome::kAborted);
    EXPECT_NE(snap.outcomes.at(id).reason.find("timed out waiting for w1"), std::string::npos);
  }
  const coord::JobSnapshot snap = Snapshot();
  ASSERT_EQ(snap.recovery->sequence, 2u);
  EXPECT_EQ(snap.recovery->checkpoint, committed);
  PollAll();
  Round(*c);
  EXPECT_EQ(c->stats().recoveries, 1u);
}

TEST_F(ProtocolTest, StandbyTakesOverAndSettlesWhatTheLeaderCommitted) {
  for (const char* n : {"w0", "w1"}) AddWorker(n);
  CoordinatorOptions o;
  o.participants = 2;
  auto c1 = StartCoordinator("c1", o);
  auto c2 = StartCoordinator("c2", o);
  StartJob(*c1);
  Round(*c2);
  EXPECT_FALSE(c2->stats().leading);
  CheckpointOnce(*c1);
  // c1 triggers, the participants acknowledge, c1 commits in the repository and dies before it
  // announces the outcome.
  const uint64_t id = TriggerAndCapture(*c1);
  const coord::JobSnapshot before = Snapshot();
  FlushAll();
  GroupCommitOptions group;
  group.participants = {"w0", "w1"};
  group.epoch = c1->stats().epoch;
  group.incarnations = before.triggers.at(id).participants;
  ASSERT_OK(repo_->CommitGroup(id, group).status());
  store_->ExpireLease(before.leader()->lease);
  Round(*c2);  // takes office: the checkpoint below its base is announced committed
  EXPECT_TRUE(c2->stats().leading);
  EXPECT_GT(c2->stats().epoch, c1->stats().epoch);
  const coord::JobSnapshot after = Snapshot();
  ASSERT_EQ(after.outcomes.at(id).outcome, coord::Outcome::kCommitted);
  EXPECT_EQ(after.outcomes.at(id).epoch, c2->stats().epoch);
  PollAll();  // the participants settle it
  // c1 wakes up: it no longer leads and writes nothing.
  Round(*c1);
  EXPECT_FALSE(c1->stats().leading);
  // Its only write may be a new candidacy, never a trigger or outcome.
  const coord::JobSnapshot later = Snapshot();
  EXPECT_EQ(later.triggers.size(), after.triggers.size());
  EXPECT_EQ(later.outcomes.size(), after.outcomes.size());
  // The job goes on under c2.
  const uint64_t next = CheckpointOnce(*c2);
  EXPECT_EQ(Snapshot().outcomes.at(next).outcome, coord::Outcome::kCommitted);
}

TEST_F(ProtocolTest, DeposedLeadersCommitIsFencedAndNeverBecomesLatest) {
  for (const char* n : {"w0", "w1"}) AddWorker(n);
  CoordinatorOptions o;
  o.participants = 2;
  auto c1 = StartCoordinator("c1", o);
  auto c2 = StartCoordinator("c2", o);
  StartJob(*c1);
  const uint64_t committed = CheckpointOnce(*c1);
  const uint64_t id = TriggerAndCapture(*c1);
  const coord::JobSnapshot before = Snapshot();
  FlushAll();
  const uint64_t old_epoch = c1->stats().epoch;
  // c1 is stopped past its lease; c2 takes office and aborts the pending checkpoint.
  store_->ExpireLease(before.leader()->lease);
  Round(*c2);
  ASSERT_EQ(Snapshot().outcomes.at(id).outcome, coord::Outcome::kAborted);
  PollAll();
  // c1 wakes up and runs the group commit it was about to: refused, or fenced.
  GroupCommitOptions group;
  group.participants = {"w0", "w1"};
  group.epoch = old_epoch;
  group.incarnations = before.triggers.at(id).participants;
  absl::StatusOr<CommitRecord> late = repo_->CommitGroup(id, group);
  EXPECT_FALSE(late.ok());
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo_->LatestCommitId());
  EXPECT_EQ(latest, committed);
  // The job goes on from the last commit.
  ExpectJobGoesOnFrom(*c2, committed);
}

TEST_F(ProtocolTest, ReplacedParticipantCannotAcknowledge) {
  auto c = StartJobOf({"w0", "w1"});
  CheckpointOnce(*c);
  // w1 captures, then stalls; its relaunch joins before the stalled one acknowledges.
  TriggerAndCapture(*c);
  auto stalled = std::move(workers_[1]->participant);
  auto stalled_ck = std::move(workers_[1]->checkpointer);
  Join(*workers_[1]);
  ASSERT_OK(ParticipantTestPeer::FlushAcks(*stalled));  // its writes are refused
  ASSERT_OK(ParticipantTestPeer::FlushAcks(*workers_[0]->participant));
  const uint64_t id = Snapshot().triggers.rbegin()->first;
  EXPECT_EQ(Snapshot().acks[id].count("w1"), 0u);
  Round(*c);  // w1 rejoined: abort, recovery
  EXPECT_EQ(Snapshot().outcomes.at(id).outcome, coord::Outcome::kAborted);
  EXPECT_EQ(Snapshot().recovery->sequence, 2u);
  stalled.reset();
  stalled_ck.reset();
  PollAll();
  Round(*c);
  EXPECT_EQ(CheckpointOnce(*c) > id, true);
}

TEST_F(ProtocolTest, FailedRestoreStepsBackToTheParent) {
  auto c = StartJobOf({"w0", "w1"});
  const uint64_t first = CheckpointOnce(*c);
  const uint64_t second = CheckpointOnce(*c);
  // w1 fails: recovery from `second`, which w1 cannot restore (its prepare fails once).
  workers_[1]->fail_prepare = [&](const Assignment& a) {
    if (a.checkpoint == second) return absl::DataLossError("injected: checkpoint unreadable");
    return absl::OkStatus();
  };
  ASSERT_OK(workers_[1]->participant->ReportFailure("injected"));
  Round(*c);
  ASSERT_EQ(Snapshot().recovery->checkpoint, second);
  for (auto& w : workers_) w->participant->Poll(0).IgnoreError();  // w1's restore fails
  Round(*c);
  const coord::JobSnapshot snap = Snapshot();
  ASSERT_EQ(snap.recovery->sequence, 3u);
  EXPECT_EQ(snap.recovery->checkpoint, first);
  PollAll();
  Round(*c);
  EXPECT_EQ(c->stats().recoveries, 2u);
}

TEST_F(ProtocolTest, RescaleRestoresKeyedStateOntoFewerParticipants) {
  auto c = StartJobOf({"w0", "w1", "w2"});
  const uint64_t id = CheckpointOnce(*c);
  ASSERT_EQ(Snapshot().outcomes.at(id).outcome, coord::Outcome::kCommitted);
  // The job is rescaled to two participants: w2 leaves for good, a new leader expects two.
  Kill(*workers_[2]);
  workers_.pop_back();
  store_->ExpireLease(Snapshot().leader()->lease);
  CoordinatorOptions two;
  two.participants = 2;
  auto c2 = StartCoordinator("c2", two);
  Round(*c2);
  const coord::JobSnapshot snap = Snapshot();
  ASSERT_EQ(snap.recovery->participants, (std::vector<std::string>{"w0", "w1"}));
  EXPECT_EQ(snap.recovery->checkpoint, id);
  std::map<std::string, PollResult> results;
  PollAll(&results);
  for (auto& w : workers_) {
    ASSERT_EQ(results[w->name].event, PollResult::Event::kRestored);
    EXPECT_EQ(results[w->name].assignment->participant_count, 2u);
  }
  // Every key of the three old participants is held by one of the two.
  size_t keys = 0;
  for (const auto& [name, image] : images_[id]) keys += image.keyed.size();
  EXPECT_EQ(workers_[0]->counts()->size() + workers_[1]->counts()->size(), keys);
  Round(*c2);
  const uint64_t next = CheckpointOnce(*c2);
  EXPECT_EQ(Snapshot().outcomes.count(next), 1u);
}

// More members than --participants: the first by name take part, the others wait as spares, and
// the job neither rescales nor recovers in a loop.
TEST_F(ProtocolTest, MembersBeyondTheParticipantCountAreSpares) {
  for (const char* n : {"w0", "w1", "w2"}) AddWorker(n);
  CoordinatorOptions o;
  o.participants = 2;
  auto c = StartCoordinator("c1", o);
  StartJob(*c);
  coord::JobSnapshot snap = Snapshot();
  ASSERT_EQ(snap.recovery->participants, (std::vector<std::string>{"w0", "w1"}));
  EXPECT_EQ(Poll(*workers_[2]).event, PollResult::Event::kUnassigned);
  for (int i = 0; i < 3; ++i) {
    const uint64_t id = CheckpointOnce(*c);
    EXPECT_EQ(Snapshot().outcomes.at(id).outcome, coord::Outcome::kCommitted);
  }
  EXPECT_EQ(Snapshot().recovery->sequence, 1u);
  EXPECT_EQ(c->stats().recoveries, 0u);
}

TEST_F(ProtocolTest, DamagedValuesAreIgnoredAndReported) {
  AddWorker("w0");
  CoordinatorOptions o;
  o.participants = 1;
  auto c = StartCoordinator("c1", o);
  StartJob(*c);
  ASSERT_OK(store_->Put(coord::OutcomeKey(kJob, 999), "{not json").status());
  ASSERT_OK(store_->Put(coord::JobPrefix(kJob) + "recovered/w9", "[]").status());
  const coord::JobSnapshot snap = Snapshot();
  EXPECT_EQ(snap.damaged.size(), 2u);
  EXPECT_EQ(snap.outcomes.count(999), 0u);
  const uint64_t id = CheckpointOnce(*c);
  EXPECT_EQ(Snapshot().outcomes.count(id), 1u);
}

// The coordinator reaches the repository through a fault-injecting store of its own.
class ProtocolFaultTest : public ProtocolTest {
 protected:
  std::unique_ptr<Coordinator> StartFaultyCoordinator(CoordinatorOptions o) {
    absl::StatusOr<std::unique_ptr<ObjectStore>> local = OpenLocalStore(dir_.Join("repo"));
    EXPECT_OK(local.status());
    auto faulty = std::make_unique<OwningFaultInjectionStore>(*std::move(local));
    faults_ = faulty.get();
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::Open(std::move(faulty));
    EXPECT_OK(repo.status());
    coordinator_repo_ = *std::move(repo);
    o.job = kJob;
    o.name = "c1";
    o.interval = absl::Milliseconds(1);
    o.lease_ttl = absl::Seconds(600);
    o.maintenance = false;
    absl::StatusOr<std::unique_ptr<Coordinator>> c =
        CoordinatorTestPeer::StartManual(store_, coordinator_repo_.get(), o);
    EXPECT_OK(c.status());
    return *std::move(c);
  }

  FaultInjectionStore* faults_ = nullptr;
  std::unique_ptr<Repository> coordinator_repo_;
};

// The group commit's reply is lost after the commit record landed (format.md §12.1): the leader
// must find it committed, never announce it aborted, and commit nothing twice.
TEST_F(ProtocolFaultTest, LostReplyOfTheGroupCommitIsSettledCommitted) {
  for (const char* n : {"w0", "w1"}) AddWorker(n);
  CoordinatorOptions o;
  o.participants = 2;
  auto c = StartFaultyCoordinator(o);
  StartJob(*c);
  const uint64_t id = TriggerAndCapture(*c);
  FlushAll();
  faults_->LoseReplyOfNthCallMatching(CommitKey(id), 1);
  for (int i = 0; i < 5 && Snapshot().outcomes.count(id) == 0; ++i) {
    CoordinatorTestPeer::RunRound(*c).IgnoreError();
  }
  ASSERT_EQ(Snapshot().outcomes.count(id), 1u);
  EXPECT_EQ(Snapshot().outcomes.at(id).outcome, coord::Outcome::kCommitted);
  ASSERT_OK(repo_->ReadCommit(id).status());
  PollAll();
  const uint64_t next = CheckpointOnce(*c);
  EXPECT_EQ(Snapshot().outcomes.at(next).outcome, coord::Outcome::kCommitted);
}

// A group commit that fails before it reaches the store is retried until it commits.
TEST_F(ProtocolFaultTest, FailedGroupCommitIsRetried) {
  for (const char* n : {"w0", "w1"}) AddWorker(n);
  CoordinatorOptions o;
  o.participants = 2;
  auto c = StartFaultyCoordinator(o);
  StartJob(*c);
  const uint64_t id = TriggerAndCapture(*c);
  FlushAll();
  // Every call on the commit record fails for a while: the group commit fails in the leader's
  // round (the repository's own retry of an ambiguous publish cannot help), and the next rounds
  // retry it.
  for (int n = 1; n <= 6; ++n) {
    faults_->FailNthCallMatching(CommitKey(id), n, absl::UnavailableError("injected: store down"));
  }
  int rounds = 0;
  for (; rounds < 10 && Snapshot().outcomes.count(id) == 0; ++rounds) {
    CoordinatorTestPeer::RunRound(*c).IgnoreError();
  }
  EXPECT_GT(rounds, 1);  // the first round's group commit failed
  ASSERT_EQ(Snapshot().outcomes.count(id), 1u);
  EXPECT_EQ(Snapshot().outcomes.at(id).outcome, coord::Outcome::kCommitted);
}

// The coordination store cannot be reached for a while: rounds and polls fail with Unavailable,
// nothing is decided meanwhile, and the job goes on when it is back.
TEST_F(ProtocolTest, CoordinationStoreUnavailableForAWhile) {
  auto c = StartJobOf({"w0", "w1"});
  const uint64_t id = TriggerAndCapture(*c);
  store_->SetUnavailable(true);
  EXPECT_TRUE(absl::IsUnavailable(ParticipantTestPeer::FlushAcks(*workers_[0]->participant)));
  EXPECT_TRUE(absl::IsUnavailable(CoordinatorTestPeer::RunRound(*c)));
  EXPECT_TRUE(absl::IsUnavailable(workers_[1]->participant->Poll(0).status()));
  store_->SetUnavailable(false);
  FlushAll();
  Round(*c);
  ASSERT_EQ(Snapshot().outcomes.at(id).outcome, coord::Outcome::kCommitted);
  PollAll();
  const uint64_t next = CheckpointOnce(*c);
  EXPECT_EQ(Snapshot().outcomes.at(next).outcome, coord::Outcome::kCommitted);
}

// Faults of the coordination store (FaultCoordinationStore): a tenth of the coordinator's and the
// participants' calls fail, half of the failed writes after the store applied them (the reply
// lost, the ambiguous case). The protocol goes on: an outcome announced committed has its commit
// record and restores exactly for every participant, an outcome announced aborted has none, and
// once the faults stop the job commits again.
TEST_F(ProtocolTest, CoordinationStoreFaultsLoseNothing) {
  auto faulty = std::make_shared<coord::FaultCoordinationStore>(store_);
  protocol_store_ = faulty;
  auto c = StartJobOf({"w0", "w1", "w2"});
  // Every worker polls and acknowledges; errors are the injected ones, retried by the next turn.
  auto turn = [&] {
    MutateAll();
    absl::SleepFor(absl::Milliseconds(2));  // past the 1 ms interval
    CoordinatorTestPeer::RunRound(*c).IgnoreError();
    for (auto& w : workers_) {
      absl::StatusOr<PollResult> r = w->participant->Poll(0);
      if (r.ok() && r->event == PollResult::Event::kCheckpointed) {
        images_[r->checkpoint_id][w->name] = w->Capture();
      }
      if (r.ok() && r->event == PollResult::Event::kRestored && r->restored.has_value()) {
        ExpectRestored(*w, r->restored->id);
      }
      ParticipantTestPeer::FlushAcks(*w->participant).IgnoreError();
    }
  };
  faulty->Arm(0.1, /*seed=*/1);
  for (int i = 0; i < 150; ++i) turn();
  faulty->Arm(0, 0);
  EXPECT_GT(faulty->failed_after(), 0u);
  EXPECT_GT(faulty->failed_before(), 0u);
  // Commit records in the repository (etcd keeps the outcomes of the last 64 ids only).
  auto committed = [&] {
    absl::StatusOr<std::vector<uint64_t>> ids = repo_->ListCommitIds();
    EXPECT_OK(ids.status());
    return ids.ok() ? ids->size() : 0;
  };
  const size_t committed_with_faults = committed();
  EXPECT_GT(committed_with_faults, 2u) << "nothing committed under faults";
  for (int i = 0; i < 40; ++i) turn();
  EXPECT_GE(committed(), committed_with_faults + 2) << "the job did not go on after the faults";
  const coord::JobSnapshot snap = Snapshot();
  std::optional<uint64_t> last_committed;
  for (const auto& [id, outcome] : snap.outcomes) {
    absl::StatusOr<CommitRecord> record = repo_->ReadCommit(id);
    if (outcome.outcome == coord::Outcome::kAborted) {
      EXPECT_TRUE(absl::IsNotFound(record.status()))
          << "checkpoint " << id << " announced aborted (" << outcome.reason << ") is committed";
      continue;
    }
    ASSERT_OK(record.status()) << "checkpoint " << id << " announced committed";
    EXPECT_EQ(record->participants.size(), 3u);
    last_committed = id;
  }
  ASSERT_TRUE(last_committed.has_value());
  // Every participant recovers to the last committed checkpoint, exactly.
  ASSERT_OK(workers_[0]->participant->ReportFailure("injected"));
  for (int i = 0; i < 10; ++i) {
    Round(*c);
    PollAll();
  }
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo_->LatestCommitId());
  for (auto& w : workers_) ExpectRestored(*w, *latest);
}

// The leader consolidates long chains after commits (docs/protocol.md §5.8); a recovery restores
// the consolidated checkpoint exactly.
TEST_F(ProtocolTest, LeaderConsolidatesAndRecoveryRestoresTheConsolidation) {
  for (const char* n : {"w0", "w1"}) AddWorker(n);
  CoordinatorOptions o;
  o.job = kJob;
  o.name = "c1";
  o.participants = 2;
  o.interval = absl::Milliseconds(1);
  o.lease_ttl = absl::Seconds(600);
  o.maintenance = true;
  o.consolidate_after_links = 3;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Coordinator> c,
                       CoordinatorTestPeer::StartManual(store_, repo_.get(), o));
  StartJob(*c);
  uint64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    last = CheckpointOnce(*c);
    CoordinatorTestPeer::WaitForMaintenance(*c);
  }
  ASSERT_OK_AND_ASSIGN(auto consolidations, ListConsolidations(*repo_));
  EXPECT_FALSE(consolidations.empty());
  // Every checkpoint still restores exactly: a recovery from the latest.
  ASSERT_OK(workers_[1]->participant->ReportFailure("injected"));
  Round(*c);
  EXPECT_EQ(Snapshot().recovery->checkpoint, last);
  PollAll();  // ExpectRestored compares each restore with its image
  Round(*c);
  const uint64_t next = CheckpointOnce(*c);
  EXPECT_EQ(Snapshot().outcomes.at(next).outcome, coord::Outcome::kCommitted);
}

// The threaded mode: a coordinator on its own thread, participants whose own threads call the
// application's safe-point callback (no Poll), and a checkpoint asked for on demand.
TEST_F(ProtocolTest, ThreadedCoordinatorAndSafePointCallbacks) {
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::unique_ptr<Participant>> participants;
  std::mutex app_mu;  // the application's own lock: held while it writes its state
  JoinThreaded(
      {"w0", "w1"},
      [&app_mu](absl::FunctionRef<void()> at_safe_point) {
        std::lock_guard<std::mutex> lock(app_mu);
        at_safe_point();
      },
      &workers, &participants);
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Coordinator> c,
      Coordinator::Start(store_, repo_.get(), CoordinatorOf(2, absl::Milliseconds(50))));
  // The application writes between safe points.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (c->stats().committed < 3 && absl::Now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(app_mu);
      for (auto& w : workers) {
        if (w->checkpointer != nullptr) w->Mutate();
      }
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GE(c->stats().committed, 3u);
  ASSERT_OK_AND_ASSIGN(auto asked, RequestCheckpoint(store_, kJob, /*full=*/true, std::nullopt,
                                                     absl::Seconds(60)));
  EXPECT_EQ(asked.second, CheckpointOutcome::kCommitted);
  ASSERT_OK_AND_ASSIGN(CommitRecord full, repo_->ReadCommit(asked.first));
  EXPECT_EQ(full.kind, CheckpointKind::kFull);
  c.reset();
  participants.clear();
}

// Protocol 1.2 (§5.9): the outcome's transaction deletes the trigger and the acknowledgements, and
// the outcome keeps the trigger's time and participant count.
TEST_F(ProtocolTest, OutcomeReplacesTheTriggerAndAcknowledgementsInOneTransaction) {
  auto c = StartJobOf({"w0", "w1"});
  const uint64_t id = TriggerAndCapture(*c);
  FlushAll();
  const coord::JobSnapshot before = Snapshot();
  ASSERT_EQ(before.triggers.count(id), 1u);
  ASSERT_EQ(before.acks.at(id).size(), 2u);
  const int64_t read = before.revision;
  Round(*c);
  const coord::JobSnapshot after = Snapshot();
  ASSERT_EQ(after.outcomes.at(id).outcome, coord::Outcome::kCommitted);
  EXPECT_EQ(after.triggers.count(id), 0u);
  EXPECT_EQ(after.acks.count(id), 0u);
  EXPECT_EQ(after.outcomes.at(id).triggered_ms, before.triggers.at(id).created_ms);
  EXPECT_EQ(after.outcomes.at(id).participants, 2u);
  // The trigger's deletion (what wakes a participant) is the outcome's revision.
  ASSERT_OK_AND_ASSIGN(coord::RangeResult outcome, store_->Get(coord::OutcomeKey(kJob, id)));
  ASSERT_EQ(outcome.kvs.size(), 1u);
  ASSERT_OK_AND_ASSIGN(int64_t deleted,
                       store_->WaitForChangeIn(coord::KeyRange::Single(coord::TriggerKey(kJob, id)),
                                               read, absl::ZeroDuration(), nullptr));
  EXPECT_EQ(deleted, outcome.kvs[0].mod_revision);
  // `ickpt status` and the demo read the trigger's facts from the outcome now.
  const coord::TriggerFacts facts = coord::TriggerFactsOf(after, after.outcomes.at(id));
  EXPECT_EQ(facts.triggered_ms, before.triggers.at(id).created_ms);
  EXPECT_EQ(facts.participants, 2u);
}

// A participant's own threads write its acknowledgement as persistence ends: an application that
// captured at a Poll and then polls no more still sees the checkpoint commit and settle.
TEST_F(ProtocolTest, AcknowledgementNeedsNoFurtherPoll) {
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::unique_ptr<Participant>> participants;
  JoinThreaded({"w0", "w1"}, /*safe_point=*/nullptr, &workers, &participants);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Coordinator> c,
                       CoordinatorTestPeer::StartManual(store_, repo_.get(),
                                                        CoordinatorOf(2, absl::Milliseconds(1))));
  Round(*c);  // assigns
  for (auto& p : participants) {
    ASSERT_OK_AND_ASSIGN(PollResult r, p->WaitForAssignment(absl::Seconds(30)));
    EXPECT_EQ(r.event, PollResult::Event::kRestored);
  }
  Round(*c);  // the recovery completes
  for (auto& w : workers) w->Mutate();
  absl::SleepFor(absl::Milliseconds(2));
  Round(*c);  // triggers
  const coord::JobSnapshot triggered = Snapshot();
  ASSERT_EQ(triggered.triggers.size(), 1u);
  const uint64_t id = triggered.triggers.begin()->first;
  std::vector<std::pair<uint64_t, CheckpointOutcome>> settled;
  std::mutex settled_mu;
  for (auto& p : participants) {
    coord::ParticipantTestPeer::SetOutcomeObserver(
        *p, [&](uint64_t settled_id, CheckpointOutcome outcome) {
          std::lock_guard<std::mutex> lock(settled_mu);
          settled.emplace_back(settled_id, outcome);
        });
    ASSERT_OK_AND_ASSIGN(PollResult r, p->Poll(0));
    ASSERT_EQ(r.event, PollResult::Event::kCheckpointed);
  }
  // No Poll from here on: the acknowledgements come from the participants' threads.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (Snapshot().outcomes.count(id) == 0 && absl::Now() < deadline) {
    ASSERT_OK(CoordinatorTestPeer::RunRound(*c));
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(Snapshot().outcomes.at(id).outcome, coord::Outcome::kCommitted);
  // The trigger's deletion wakes each participant's service thread, which settles the outcome.
  for (bool done = false; !done && absl::Now() < deadline;) {
    {
      std::lock_guard<std::mutex> lock(settled_mu);
      done = settled.size() == 2;
    }
    if (!done) absl::SleepFor(absl::Milliseconds(20));
  }
  std::lock_guard<std::mutex> lock(settled_mu);
  ASSERT_EQ(settled.size(), 2u);
  for (const auto& [settled_id, outcome] : settled) {
    EXPECT_EQ(settled_id, id);
    EXPECT_EQ(outcome, CheckpointOutcome::kCommitted);
  }
}

TEST_F(ProtocolTest, TimeoutAboveTheRetentionPolicysIsRefused) {
  CoordinatorOptions o;
  o.job = kJob;
  o.timeout = absl::Hours(2);  // the default policy's checkpoint_timeout is 10 minutes
  EXPECT_TRUE(absl::IsInvalidArgument(
      CoordinatorTestPeer::StartManual(store_, repo_.get(), o).status()));
}

}  // namespace
}  // namespace ickpt
