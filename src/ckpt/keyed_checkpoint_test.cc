// Keyed state through the checkpointer: full and incremental checkpoints of changed entries and
// tombstones, restore newest first (format.md §9.1) at the parallelism of the checkpoint and at
// others (rescale), group checkpoints (format.md §11) with their all-or-nothing commit, and
// failures that must lose nothing.
#include <algorithm>
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
#include "ickpt/keyed_state.h"
#include "src/repo/keyed_reader.h"
#include "src/repo/keys.h"
#include "src/repo/repository_internal.h"
#include "src/store/fault_store.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"

namespace ickpt {
namespace {

using Reference = std::map<std::string, std::string>;

Reference Contents(const KeyedState& state) {
  Reference out;
  state.ForEach([&](std::string_view k, std::string_view v) { out.emplace(k, v); });
  return out;
}

// The part of `ref` in key groups [first, end) of `key_groups`.
Reference Slice(const Reference& ref, uint32_t key_groups, uint32_t first, uint32_t end) {
  Reference out;
  for (const auto& [k, v] : ref) {
    const uint32_t g = KeyGroupOf(k, key_groups);
    if (g >= first && g < end) out.emplace(k, v);
  }
  return out;
}

// Random puts and erases, mirrored into `ref`. Keys are binary, of 0 to 24 bytes; values of 0 to
// 300 bytes, and now and then of several MiB. `owned` limits keys to a participant's groups.
class Mutator {
 public:
  Mutator(uint64_t seed, uint32_t key_groups, std::pair<uint32_t, uint32_t> owned)
      : rng_(seed), key_groups_(key_groups), owned_(owned) {}

  void Step(KeyedState* state, Reference* ref, int ops, bool allow_big = false) {
    for (int i = 0; i < ops; ++i) {
      const uint64_t dice = rng_() % 100;
      if (dice < 30 && !ref->empty()) {
        // Erase an existing key.
        auto it = ref->begin();
        std::advance(it, rng_() % std::min<size_t>(ref->size(), 64));
        ASSERT_TRUE(state->Erase(it->first));
        ref->erase(it);
      } else if (dice < 35) {
        // Erase a key that is (most likely) absent.
        const std::string key = Key();
        EXPECT_EQ(state->Erase(key), ref->erase(key) == 1);
      } else {
        const std::string key = Key();
        const size_t size =
            allow_big && dice == 99 ? (size_t{3} << 20) + rng_() % 1000 : rng_() % 301;
        std::string value = testing::RandomBytes(size, rng_());
        ASSERT_OK(state->Put(key, value));
        (*ref)[key] = std::move(value);
      }
    }
  }

  // A key in the owned groups: a small space so that puts often replace and erases often hit.
  std::string Key() {
    for (;;) {
      const uint64_t n = rng_() % 3000;
      std::string key;
      if (n % 97 != 0) {  // every 97th key is the empty key
        key.resize(1 + n % 24);
        for (size_t i = 0; i < key.size(); ++i)
          key[i] = static_cast<char>((n * 131 + i * 7) & 0xff);
      }
      const uint32_t g = KeyGroupOf(key, key_groups_);
      if (g >= owned_.first && g < owned_.second) return key;
    }
  }

 private:
  std::mt19937_64 rng_;
  uint32_t key_groups_;
  std::pair<uint32_t, uint32_t> owned_;
};

struct Participant {
  std::unique_ptr<Checkpointer> checkpointer;
  KeyedState* state = nullptr;
};

absl::StatusOr<Participant> OpenParticipant(Repository* repo, uint32_t index, uint32_t count,
                                            bool group, uint32_t key_groups = 128,
                                            bool register_state = true, int restore_threads = 0) {
  CheckpointerOptions co;
  co.restore_threads = restore_threads;
  co.participant = "p" + std::to_string(index);
  co.participant_index = index;
  co.participant_count = count;
  co.group_member = group;
  co.policy = NewFullEveryNPolicy(6);
  absl::StatusOr<std::unique_ptr<Checkpointer>> c = Checkpointer::Open(repo, co);
  if (!c.ok()) return c.status();
  Participant p;
  p.checkpointer = *std::move(c);
  if (register_state) {
    KeyedStateOptions ko;
    ko.key_groups = key_groups;
    absl::StatusOr<KeyedState*> s = p.checkpointer->AddKeyedState("counts", ko);
    if (!s.ok()) return s.status();
    p.state = *s;
  }
  return p;
}

// One group checkpoint over `group`: reserve the id, every member checkpoints and acknowledges,
// then the group commit.
absl::StatusOr<CommitRecord> GroupCheckpoint(Repository* repo, std::vector<Participant>& group) {
  absl::StatusOr<uint64_t> id = repo->ReserveCheckpointId();
  if (!id.ok()) return id.status();
  CheckpointOptions options;
  options.id = *id;
  GroupCommitOptions commit;
  for (Participant& p : group) {
    absl::StatusOr<CheckpointHandle> h = p.checkpointer->Checkpoint(options);
    if (!h.ok()) return h.status();
    absl::StatusOr<CommitRecord> ack = h->Wait();
    if (!ack.ok()) return ack.status();
    commit.participants.push_back(ack->participants[0].name);
  }
  return repo->CommitGroup(*id, commit);
}

const StateObjectRecord* FindObject(const CommitRecord& c, std::string_view participant,
                                    std::string_view name) {
  for (const ParticipantRecord& p : c.participants) {
    if (p.name != participant) continue;
    for (const StateObjectRecord& o : p.state_objects) {
      if (o.name == name) return &o;
    }
  }
  return nullptr;
}

class KeyedCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(repo_, Repository::OpenLocal(dir_.Join("repo"), /*create=*/true));
  }
  testing::TempDir dir_;
  std::unique_ptr<Repository> repo_;
};

// Hundreds of checkpoints of random puts and erases; every committed checkpoint restores equal to
// the reference at that point, onto one participant and split among three.
TEST_F(KeyedCheckpointTest, EveryCheckpointRestoresEqualToTheReferenceAtSeveralParallelisms) {
  constexpr uint32_t kGroups = 16;
  ASSERT_OK_AND_ASSIGN(Participant writer, OpenParticipant(repo_.get(), 0, 1, false, kGroups));
  Mutator mutate(42, kGroups, {0, kGroups});
  Reference ref;
  std::map<uint64_t, Reference> at;
  uint64_t incremental = 0, tombstones = 0, merged_fulls = 0;
  for (int round = 0; round < 200; ++round) {
    mutate.Step(writer.state, &ref, 1 + round % 40, /*allow_big=*/round % 50 == 49);
    ASSERT_OK_AND_ASSIGN(CheckpointHandle h, writer.checkpointer->Checkpoint());
    ASSERT_OK_AND_ASSIGN(CommitRecord c, h.Wait());
    const StateObjectRecord* o = FindObject(c, "p0", "counts");
    ASSERT_NE(o, nullptr);
    EXPECT_EQ(o->type, StateObjectType::kKeyed);
    EXPECT_EQ(o->entries, ref.size());
    if (o->kind == CheckpointKind::kIncremental) ++incremental;
    // A full checkpoint with a base captures only the changes and merges them with the base
    // while persisting.
    if (o->kind == CheckpointKind::kFull && round > 0) {
      EXPECT_LE(o->changed_entries, 40u);  // at most this round's operations, not the state
      EXPECT_EQ(o->tombstones, 0u);
      ++merged_fulls;
    }
    tombstones += o->tombstones;
    at[c.id] = ref;
  }
  EXPECT_GT(incremental, 150u);
  EXPECT_GT(merged_fulls, 20u);
  EXPECT_GT(tombstones, 0u);
  EXPECT_EQ(Contents(*writer.state), ref);

  int checked = 0;
  for (const auto& [id, expected] : at) {
    // Restored on 1, 3 or 5 threads, each loading its own range of key groups (docs/persist.md).
    const int threads = 1 + static_cast<int>(id % 3) * 2;
    SCOPED_TRACE(::testing::Message() << "checkpoint " << id << ", " << threads << " threads");
    RestoreOptions ro;
    ro.id = id;
    ASSERT_OK_AND_ASSIGN(Participant one, OpenParticipant(repo_.get(), 0, 1, false, kGroups,
                                                          /*register_state=*/true, threads));
    ASSERT_OK(one.checkpointer->Restore(ro).status());
    ASSERT_EQ(Contents(*one.state), expected);
    uint64_t expected_bytes = 0;
    for (const auto& [k, v] : expected) expected_bytes += k.size() + v.size();
    EXPECT_EQ(one.state->size(), expected.size());
    EXPECT_EQ(one.state->byte_size(), expected_bytes);
    // Every fourth checkpoint also onto three participants, each with only its groups.
    if (id % 4 != 0) continue;
    Reference merged;
    for (uint32_t i = 0; i < 3; ++i) {
      ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo_.get(), i, 3, false, kGroups));
      ASSERT_OK(p.checkpointer->Restore(ro).status());
      const auto [first, end] = OwnedKeyGroups(kGroups, i, 3);
      ASSERT_EQ(Contents(*p.state), Slice(expected, kGroups, first, end)) << "participant " << i;
      for (auto& kv : Contents(*p.state)) merged.insert(kv);
    }
    EXPECT_EQ(merged, expected);
    ++checked;
  }
  EXPECT_GT(checked, 40);
}

// A restored keyed state continues its chain: the next checkpoint is incremental on the restored
// one, and what it holds is exactly the changes since.
TEST_F(KeyedCheckpointTest, RestoredStateContinuesItsChain) {
  ASSERT_OK_AND_ASSIGN(Participant a, OpenParticipant(repo_.get(), 0, 1, false));
  Mutator mutate(3, 128, {0, 128});
  Reference ref;
  mutate.Step(a.state, &ref, 500);
  ASSERT_OK(a.checkpointer->Checkpoint().value().Wait().status());
  a = Participant{};

  ASSERT_OK_AND_ASSIGN(Participant b, OpenParticipant(repo_.get(), 0, 1, false));
  ASSERT_OK(b.checkpointer->Restore().status());
  ASSERT_EQ(Contents(*b.state), ref);
  ASSERT_OK(b.state->Put("new-key", "v"));
  ASSERT_TRUE(b.state->Erase(ref.begin()->first));
  ASSERT_OK_AND_ASSIGN(CommitRecord c, b.checkpointer->Checkpoint().value().Wait());
  const StateObjectRecord* o = FindObject(c, "p0", "counts");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->kind, CheckpointKind::kIncremental);
  EXPECT_EQ(o->changed_entries, 2u);
  EXPECT_EQ(o->tombstones, 1u);
}

// Regions and keyed states live side by side in one checkpointer and one checkpoint.
TEST_F(KeyedCheckpointTest, RegionsAndKeyedStatesSideBySide) {
  ASSERT_OK_AND_ASSIGN(Participant a, OpenParticipant(repo_.get(), 0, 1, false));
  RegionOptions ro;
  ro.size = 16 * 4096;
  ASSERT_OK_AND_ASSIGN(Region * r, a.checkpointer->AddRegion("grid", ro));
  EXPECT_TRUE(absl::IsAlreadyExists(a.checkpointer->AddKeyedState("grid").status()));
  EXPECT_TRUE(absl::IsAlreadyExists(a.checkpointer->AddRegion("counts", ro).status()));
  Reference ref;
  Mutator mutate(5, 128, {0, 128});
  for (int i = 0; i < 5; ++i) {
    std::memset(r->data() + i * 4096, 'a' + i, 4096);
    mutate.Step(a.state, &ref, 50);
    ASSERT_OK(a.checkpointer->Checkpoint().value().Wait().status());
  }
  const std::string region_bytes(r->data(), r->size());
  ASSERT_OK_AND_ASSIGN(Participant b, OpenParticipant(repo_.get(), 0, 1, false));
  ASSERT_OK(b.checkpointer->AddRegion("grid", ro).status());
  ASSERT_OK(b.checkpointer->Restore().status());
  EXPECT_EQ(Contents(*b.state), ref);
  EXPECT_EQ(std::string(b.checkpointer->FindRegion("grid")->data(), ro.size), region_bytes);

  // Restoring with create registers what is missing, with the checkpoint's key groups.
  ASSERT_OK_AND_ASSIGN(Participant c, OpenParticipant(repo_.get(), 0, 1, false, 128,
                                                      /*register_state=*/false));
  RestoreOptions create;
  create.on_unregistered = OnUnregistered::kCreate;
  ASSERT_OK(c.checkpointer->Restore(create).status());
  ASSERT_NE(c.checkpointer->FindKeyedState("counts"), nullptr);
  EXPECT_EQ(c.checkpointer->FindKeyedState("counts")->key_groups(), 128u);
  EXPECT_EQ(Contents(*c.checkpointer->FindKeyedState("counts")), ref);
  // A state registered with other key groups is refused before anything changes.
  ASSERT_OK_AND_ASSIGN(Participant d, OpenParticipant(repo_.get(), 0, 1, false, 64));
  ASSERT_OK(d.checkpointer->AddRegion("grid", ro).status());
  ASSERT_OK(d.state->Put("mine", "kept"));
  EXPECT_TRUE(absl::IsFailedPrecondition(d.checkpointer->Restore().status()));
  EXPECT_EQ(d.state->Get("mine"), std::optional<std::string_view>("kept"));
}

// A damaged (or crafted) commit record that calls a keyed manifest a region is refused as damage,
// never read as blocks.
TEST_F(KeyedCheckpointTest, KeyedManifestNamedAsRegionIsDamage) {
  ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo_.get(), 0, 1, false));
  ASSERT_OK(p.state->Put("k", "v"));
  ASSERT_OK_AND_ASSIGN(CommitRecord c, p.checkpointer->Checkpoint().value().Wait());
  // The same checkpoint id, so the manifest's own id matches: only its type is wrong.
  CommitRecord crafted = c;
  crafted.participants[0].state_objects[0].type = StateObjectType::kRegion;
  ASSERT_OK(RepositoryInternal::store(*repo_)->Delete(CommitKey(c.id)));
  ASSERT_OK(repo_->PublishCommit(crafted));
  ASSERT_OK_AND_ASSIGN(auto reader, Checkpointer::Open(repo_.get()));
  RestoreOptions create;
  create.on_unregistered = OnUnregistered::kCreate;
  absl::Status s = reader->Restore(create).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(std::string(s.message()).find("not the region"), std::string::npos) << s;
}

// A participant owns its key groups: Put of another's key is refused and changes nothing.
TEST_F(KeyedCheckpointTest, PutOutsideTheOwnedGroupsIsRefused) {
  ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo_.get(), 1, 4, false));
  EXPECT_EQ(p.state->group_first(), 32u);
  EXPECT_EQ(p.state->group_end(), 64u);
  Mutator other(1, 128, {0, 32});
  const std::string key = other.Key();
  absl::Status s = p.state->Put(key, "x");
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_FALSE(p.state->Contains(key));
  // More participants than key groups cannot share them.
  EXPECT_TRUE(absl::IsInvalidArgument(OpenParticipant(repo_.get(), 0, 200, false, 128).status()));
}

// N participants checkpoint as a group; M != N participants restore, each reading only its groups;
// their first checkpoint after the rescale is full for keyed state, and it restores again.
void RescaleRoundTrip(Repository* repo, uint32_t n, uint32_t m) {
  SCOPED_TRACE(::testing::Message() << n << " -> " << m << " participants");
  std::vector<Participant> before;
  std::vector<Mutator> mutators;
  Reference ref;
  std::vector<Reference> part(n);
  for (uint32_t i = 0; i < n; ++i) {
    ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo, i, n, true));
    before.push_back(std::move(p));
    mutators.emplace_back(100 + i, 128, OwnedKeyGroups(128, i, n));
  }
  CommitRecord last;
  for (int round = 0; round < 8; ++round) {
    for (uint32_t i = 0; i < n; ++i) mutators[i].Step(before[i].state, &part[i], 60);
    ASSERT_OK_AND_ASSIGN(last, GroupCheckpoint(repo, before));
    EXPECT_EQ(last.participants.size(), n);
    if (round > 0 && round % 6 != 0) {
      EXPECT_EQ(last.kind, CheckpointKind::kIncremental);
    }
  }
  for (const Reference& r : part) ref.insert(r.begin(), r.end());
  before.clear();

  std::vector<Participant> after;
  for (uint32_t i = 0; i < m; ++i) {
    ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo, i, m, true));
    ASSERT_OK(p.checkpointer->Restore().status());
    const auto [first, end] = OwnedKeyGroups(128, i, m);
    ASSERT_EQ(Contents(*p.state), Slice(ref, 128, first, end)) << "participant " << i;
    after.push_back(std::move(p));
  }
  // The first checkpoint after the rescale is full for keyed state.
  ASSERT_OK(after[0].state->Put(Mutator(9, 128, OwnedKeyGroups(128, 0, m)).Key(), "after"));
  ASSERT_OK_AND_ASSIGN(CommitRecord first, GroupCheckpoint(repo, after));
  for (const ParticipantRecord& p : first.participants) {
    ASSERT_EQ(p.state_objects.size(), 1u);
    EXPECT_EQ(p.state_objects[0].kind, CheckpointKind::kFull) << p.name;
  }
  Reference now;
  for (Participant& p : after) {
    for (auto& kv : Contents(*p.state)) now.insert(kv);
  }
  // And the new layout restores onto yet another parallelism.
  ASSERT_OK_AND_ASSIGN(Participant single, OpenParticipant(repo, 0, 1, false));
  ASSERT_OK(single.checkpointer->Restore().status());
  EXPECT_EQ(Contents(*single.state), now);
}

TEST_F(KeyedCheckpointTest, RescaleFourToThree) { RescaleRoundTrip(repo_.get(), 4, 3); }
TEST_F(KeyedCheckpointTest, RescaleThreeToFive) { RescaleRoundTrip(repo_.get(), 3, 5); }
TEST_F(KeyedCheckpointTest, RescaleOneToEight) { RescaleRoundTrip(repo_.get(), 1, 8); }

// A restore reads only the byte ranges of the groups it owns.
TEST_F(KeyedCheckpointTest, RestoreReadsOnlyTheOwnedGroupsBytes) {
  ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo_.get(), 0, 1, false));
  for (int i = 0; i < 20000; ++i) {
    ASSERT_OK(p.state->Put("key-" + std::to_string(i), testing::RandomBytes(100, i)));
  }
  ASSERT_OK_AND_ASSIGN(CommitRecord c, p.checkpointer->Checkpoint().value().Wait());
  ASSERT_OK_AND_ASSIGN(ResolvedKeyed keyed, ResolveKeyed(*repo_, c, "counts"));
  struct Counter final : KeyedRestoreSink {
    bool Contains(std::string_view) const override { return false; }
    absl::Status Put(std::string_view, std::string_view) override {
      ++count;
      return absl::OkStatus();
    }
    uint64_t count = 0;
  };
  Counter all, eighth;
  ASSERT_OK_AND_ASSIGN(KeyedReadStats whole, ReadKeyed(*repo_, keyed, KeyedReadOptions{}, &all));
  KeyedReadOptions part;
  std::tie(part.group_first, part.group_end) = OwnedKeyGroups(128, 3, 8);
  ASSERT_OK_AND_ASSIGN(KeyedReadStats some, ReadKeyed(*repo_, keyed, part, &eighth));
  EXPECT_EQ(all.count, 20000u);
  EXPECT_GT(eighth.count, 20000u / 8 / 2);
  EXPECT_LT(eighth.count, 20000u / 8 * 2);
  // Frames are read whole, so a little more than an eighth; far less than everything.
  EXPECT_LT(some.bytes_read, whole.bytes_read / 4) << some.bytes_read << " of " << whole.bytes_read;
  // One key: only its group, and the read stops once the key is decided.
  Counter one;
  KeyedReadOptions key_only;
  const std::string key = "key-77";
  key_only.only_key = key;
  ASSERT_OK_AND_ASSIGN(KeyedReadStats single, ReadKeyed(*repo_, keyed, key_only, &one));
  EXPECT_EQ(one.count, 1u);
  EXPECT_LT(single.records_read, 20000u / 128 * 3);
}

// All or nothing: a group checkpoint that one participant did not acknowledge is not committed;
// the participants go back to the latest committed checkpoint and continue.
TEST_F(KeyedCheckpointTest, GroupCommitNeedsEveryParticipant) {
  std::vector<Participant> group;
  std::vector<Mutator> mutators;
  std::vector<Reference> part(3);
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo_.get(), i, 3, true));
    group.push_back(std::move(p));
    mutators.emplace_back(200 + i, 128, OwnedKeyGroups(128, i, 3));
  }
  for (uint32_t i = 0; i < 3; ++i) mutators[i].Step(group[i].state, &part[i], 100);
  ASSERT_OK_AND_ASSIGN(CommitRecord committed, GroupCheckpoint(repo_.get(), group));
  const std::vector<Reference> at_commit = part;

  // The next checkpoint: p2 never acknowledges (it "died").
  for (uint32_t i = 0; i < 3; ++i) mutators[i].Step(group[i].state, &part[i], 50);
  ASSERT_OK_AND_ASSIGN(uint64_t id, repo_->ReserveCheckpointId());
  CheckpointOptions options;
  options.id = id;
  for (uint32_t i = 0; i < 2; ++i) {
    ASSERT_OK(group[i].checkpointer->Checkpoint(options).value().Wait().status());
  }
  GroupCommitOptions commit;
  commit.participants = {"p0", "p1", "p2"};
  absl::Status s = repo_->CommitGroup(id, commit).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(std::string(s.message()).find("'p2'"), std::string::npos) << s;
  EXPECT_TRUE(absl::IsNotFound(repo_->ReadCommit(id).status()));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> acked, repo_->ListAcks(id));
  EXPECT_EQ(acked, (std::vector<std::string>{"p0", "p1"}));

  // p0 goes on to build on its acknowledged (uncommitted) checkpoint: refused.
  ASSERT_OK_AND_ASSIGN(uint64_t orphan, repo_->ReserveCheckpointId());
  CheckpointOptions orphan_options;
  orphan_options.id = orphan;
  ASSERT_OK(group[0].checkpointer->Checkpoint(orphan_options).value().Wait().status());
  GroupCommitOptions alone;
  alone.participants = {"p0"};
  s = repo_->CommitGroup(orphan, alone).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(std::string(s.message()).find("not committed"), std::string::npos) << s;

  // Recovery: everyone restores the latest committed checkpoint; a new group checkpoint commits.
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo_->LatestCommitId());
  EXPECT_EQ(latest, committed.id);
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_OK(group[i].checkpointer->Restore().status());
    EXPECT_EQ(Contents(*group[i].state), at_commit[i]);
    part[i] = at_commit[i];
  }
  for (uint32_t i = 0; i < 3; ++i) mutators[i].Step(group[i].state, &part[i], 30);
  ASSERT_OK_AND_ASSIGN(CommitRecord next, GroupCheckpoint(repo_.get(), group));
  EXPECT_EQ(next.parent, committed.id);
  EXPECT_EQ(next.kind, CheckpointKind::kIncremental);
  ASSERT_OK_AND_ASSIGN(Participant check, OpenParticipant(repo_.get(), 0, 1, false));
  ASSERT_OK(check.checkpointer->Restore().status());
  Reference all;
  for (const Reference& r : part) all.insert(r.begin(), r.end());
  EXPECT_EQ(Contents(*check.state), all);

  // Misuse of ids is refused: an id below one already used, an id a checkpointer that reserves its
  // own must not be given, and a group member without one.
  EXPECT_TRUE(absl::IsInvalidArgument(group[0].checkpointer->Checkpoint(options).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(group[0].checkpointer->Checkpoint().status()));
  EXPECT_TRUE(absl::IsInvalidArgument(check.checkpointer->Checkpoint(options).status()));
}

// The group commit may lag: a participant persists its next checkpoint (here full ones too, merged
// with a base that is only acknowledged yet) before the previous one is committed.
TEST_F(KeyedCheckpointTest, GroupCommitMayLagOneCheckpointBehind) {
  std::vector<Participant> group;
  std::vector<Mutator> mutators;
  std::vector<Reference> part(2);
  for (uint32_t i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo_.get(), i, 2, true));
    group.push_back(std::move(p));
    mutators.emplace_back(300 + i, 128, OwnedKeyGroups(128, i, 2));
  }
  GroupCommitOptions commit;
  commit.participants = {"p0", "p1"};
  std::optional<uint64_t> lagging;
  std::map<uint64_t, Reference> at;
  for (int round = 0; round < 14; ++round) {
    for (uint32_t i = 0; i < 2; ++i) mutators[i].Step(group[i].state, &part[i], 40);
    ASSERT_OK_AND_ASSIGN(uint64_t id, repo_->ReserveCheckpointId());
    CheckpointOptions options;
    options.id = id;
    for (Participant& p : group) {
      ASSERT_OK(p.checkpointer->Checkpoint(options).value().Wait().status());
    }
    if (lagging.has_value()) {
      ASSERT_OK(repo_->CommitGroup(*lagging, commit).status());
    }
    lagging = id;
    Reference all;
    for (const Reference& r : part) all.insert(r.begin(), r.end());
    at[id] = all;
  }
  ASSERT_OK(repo_->CommitGroup(*lagging, commit).status());
  for (const auto& [id, expected] : at) {
    ASSERT_OK_AND_ASSIGN(Participant check, OpenParticipant(repo_.get(), 0, 1, false));
    RestoreOptions ro;
    ro.id = id;
    ASSERT_OK(check.checkpointer->Restore(ro).status());
    EXPECT_EQ(Contents(*check.state), expected) << "checkpoint " << id;
  }
}

// Every store call of a keyed checkpoint failed in turn: the checkpoint fails cleanly, nothing is
// committed, and the next checkpoint carries every change (puts and erases).
TEST(KeyedFaultTest, EveryFailedStoreCallLosesNothing) {
  auto base = NewMemoryStore();
  auto fault = std::make_unique<FaultInjectionStore>(base.get());
  FaultInjectionStore* faults = fault.get();
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(fault)));
  ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo.get(), 0, 1, false));
  Mutator mutate(11, 128, {0, 128});
  Reference ref;
  mutate.Step(p.state, &ref, 300);
  ASSERT_OK(p.checkpointer->Checkpoint().value().Wait().status());
  mutate.Step(p.state, &ref, 40);
  const int64_t before = faults->call_count();
  ASSERT_OK(p.checkpointer->Checkpoint().value().Wait().status());
  const int64_t calls = faults->call_count() - before;
  ASSERT_GE(calls, 3);
  for (int64_t n = 1; n <= calls + 2; ++n) {
    SCOPED_TRACE(::testing::Message() << "failing call " << n << " of " << calls);
    mutate.Step(p.state, &ref, 25);
    faults->FailNthCall(n, absl::UnavailableError("injected I/O error"));
    absl::StatusOr<CheckpointHandle> h = p.checkpointer->Checkpoint();
    if (h.ok()) {
      absl::Status s = h->Wait().status();
      if (!s.ok()) {
        EXPECT_NE(std::string(s.message()).find("injected"), std::string::npos) << s;
      }
    }
    faults->ClearFaults();
    ASSERT_OK(p.checkpointer->Checkpoint().value().Wait().status());
    ASSERT_OK_AND_ASSIGN(Participant check, OpenParticipant(repo.get(), 0, 1, false));
    ASSERT_OK(check.checkpointer->Restore().status());
    ASSERT_EQ(Contents(*check.state), ref);
  }
}

// A keyed checkpoint that fails while the application keeps writing: the failure is seen on the
// persist thread, which must not touch the state (the application owns it between captures); the
// changes go back at the next capture and that checkpoint carries them all.
TEST(KeyedFaultTest, FailureWhileTheApplicationWritesLosesNothing) {
  auto base = NewMemoryStore();
  auto fault = std::make_unique<FaultInjectionStore>(base.get());
  FaultInjectionStore* faults = fault.get();
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(fault)));
  ASSERT_OK_AND_ASSIGN(Participant p, OpenParticipant(repo.get(), 0, 1, false));
  Mutator mutate(17, 128, {0, 128});
  Reference ref;
  for (int round = 0; round < 20; ++round) {
    mutate.Step(p.state, &ref, 200);
    if (round % 2 == 1) {
      faults->FailNthCallMatching("manifests/", 1, absl::UnavailableError("injected I/O error"));
    }
    ASSERT_OK_AND_ASSIGN(CheckpointHandle h, p.checkpointer->Checkpoint());
    // Writes while the checkpoint persists (and, every other round, fails).
    mutate.Step(p.state, &ref, 300);
    absl::Status s = h.Wait().status();
    EXPECT_EQ(s.ok(), round % 2 == 0) << s;
    faults->ClearFaults();
  }
  ASSERT_OK(p.checkpointer->Checkpoint().value().Wait().status());
  ASSERT_OK_AND_ASSIGN(Participant check, OpenParticipant(repo.get(), 0, 1, false));
  ASSERT_OK(check.checkpointer->Restore().status());
  EXPECT_EQ(Contents(*check.state), ref);
}

}  // namespace
}  // namespace ickpt
