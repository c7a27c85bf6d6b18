// Format compatibility (format.md §1.1): the repositories saved by format versions 1.0 to 1.6,
// testdata/repo-v1.N (written by make_testdata, content in testdata_grid.h), must restore with this
// and every later release. It is copied to a temporary directory first so that a reader that writes
// (an id reservation, say) never modifies the saved copy.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "src/repo/keys.h"
#include "src/repo/region_reader.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/hash.h"
#include "tools/testdata_grid.h"

#ifndef ICKPT_TESTDATA_DIR
#error "ICKPT_TESTDATA_DIR must name the source tree's testdata directory"
#endif

namespace ickpt {
namespace {

// SHA-256 of the region after the 1st, 2nd and 3rd checkpoint, written down when the repository was
// saved (and recomputed by an independent Python reimplementation of testdata_grid.h): they catch a
// change to testdata_grid.h as well as a reader that restores wrong bytes.
constexpr const char* kGridSha256[] = {
    "",  // checkpoints are numbered from 1
    "676719fa49bd39e1cd339984de4956aac67e21492a35a2c6b76d24ec28e18e88",
    "fb5822e9fcbad802ac09352db34c92ab0d71c70c61a521c40066d854a850e425",
    "b7a5ebf597b23147cbd83b47a8802cafe5f26957f3cb2278f45fe433a79f1922",
};

class CompatTest : public ::testing::Test {
 protected:
  void SetUp() override { CopySaved("repo-v1.0"); }

  void CopySaved(const std::string& name) {
    std::filesystem::remove_all(dir_.Join("repo"));
    std::filesystem::copy(std::string(ICKPT_TESTDATA_DIR) + "/" + name, dir_.Join("repo"),
                          std::filesystem::copy_options::recursive);
  }

  // Restores checkpoint `id` into a fresh checkpointer that has registered nothing.
  std::string RestoreGrid(Repository* repo, uint64_t id, CommitRecord* record) {
    auto ckpt = Checkpointer::Open(repo);
    EXPECT_OK(ckpt.status());
    if (!ckpt.ok()) return "";
    RestoreOptions o;
    o.id = id;
    o.on_unregistered = OnUnregistered::kCreate;
    auto restored = (*ckpt)->Restore(o);
    EXPECT_OK(restored.status()) << "checkpoint " << id;
    if (!restored.ok()) return "";
    *record = *restored;
    Region* grid = (*ckpt)->FindRegion("grid");
    EXPECT_NE(grid, nullptr);
    return grid == nullptr ? "" : std::string(grid->data(), grid->size());
  }

  testing::TempDir dir_;
};

TEST_F(CompatTest, SavedRepositoryV1_0RestoresEveryCheckpointExactly) {
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(dir_.Join("repo"), /*create=*/false));
  EXPECT_EQ(repo->config().major, 1);
  EXPECT_EQ(repo->config().block_size, testdata::kGridBlock);
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
  // Ids have a gap: id 2 was reserved ahead and not used (format.md §7 allows gaps; readers
  // must not assume ids are dense).
  ASSERT_EQ(ids, (std::vector<uint64_t>{1, 3, 4}));
  const CheckpointKind kinds[] = {CheckpointKind::kFull, CheckpointKind::kFull,
                                  CheckpointKind::kIncremental, CheckpointKind::kIncremental};
  for (int n = 1; n <= 3; ++n) {
    const uint64_t id = ids[n - 1];
    SCOPED_TRACE(::testing::Message() << "checkpoint " << id << " (the " << n << "th)");
    CommitRecord record;
    const std::string restored = RestoreGrid(repo.get(), id, &record);
    const std::string expected = testdata::GridAtCheckpoint(n);
    EXPECT_EQ(record.kind, kinds[n]);
    EXPECT_EQ(record.parent, n == 1 ? std::nullopt : std::optional<uint64_t>(ids[n - 2]));
    EXPECT_EQ(record.metadata["checkpoint"], std::to_string(n));
    ASSERT_EQ(restored.size(), expected.size());
    EXPECT_TRUE(restored == expected) << "restored bytes differ from testdata_grid.h";
    EXPECT_EQ(ToHex(Sha256(restored)), kGridSha256[n]);
    EXPECT_EQ(ToHex(Sha256(expected)), kGridSha256[n]) << "testdata_grid.h was changed";
  }
}

TEST_F(CompatTest, SavedRepositoryV1_0AcceptsNewCheckpointsOnTop) {
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(dir_.Join("repo"), /*create=*/false));
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get()));
  RestoreOptions o;
  o.on_unregistered = OnUnregistered::kCreate;
  ASSERT_OK(ckpt->Restore(o).status());
  Region* grid = ckpt->FindRegion("grid");
  ASSERT_NE(grid, nullptr);
  grid->data()[0] ^= 1;
  const std::string expected(grid->data(), grid->size());
  ASSERT_OK_AND_ASSIGN(auto handle, ckpt->Checkpoint());
  ASSERT_OK_AND_ASSIGN(CommitRecord record, handle.Wait());
  EXPECT_GT(record.id, 5u);  // after every id reserved in the saved repository
  EXPECT_EQ(record.parent, 4u);
  CommitRecord again;
  EXPECT_TRUE(RestoreGrid(repo.get(), record.id, &again) == expected);
}

// Every entry of keyed state `name` of `ckpt`, as a sorted map.
std::map<std::string, std::string> Entries(Checkpointer* ckpt, std::string_view name) {
  std::map<std::string, std::string> out;
  KeyedState* state = ckpt->FindKeyedState(name);
  EXPECT_NE(state, nullptr) << name;
  if (state == nullptr) return out;
  state->ForEach([&](std::string_view k, std::string_view v) { out.emplace(k, v); });
  return out;
}

// The committed checkpoints that are part of the history (format.md §15.3: not fenced).
absl::StatusOr<std::vector<uint64_t>> UnfencedCommitIds(const RepositoryReader& repo) {
  absl::StatusOr<std::vector<uint64_t>> ids = repo.ListCommitIds();
  if (!ids.ok()) return ids.status();
  absl::StatusOr<std::vector<EpochRecord>> epochs = repo.ListEpochs();
  if (!epochs.ok()) return epochs.status();
  std::vector<uint64_t> unfenced;
  for (uint64_t id : *ids) {
    absl::StatusOr<CommitRecord> record = repo.ReadCommit(id);
    if (!record.ok()) return record.status();
    if (!FencedBy(*epochs, *record).has_value()) unfenced.push_back(id);
  }
  return unfenced;
}

// Restores every checkpoint of a saved repository of format 1.1 or later: three checkpoints of
// region "grid" and keyed state "index", then a group checkpoint of "left" and "right" (and, from
// 1.5 on, a fenced one after it, which is not part of the history: checked by its own test).
void ExpectSavedRepositoryRestores(const std::string& dir, uint16_t minor) {
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(dir, /*create=*/false));
  EXPECT_EQ(repo->config().major, 1);
  EXPECT_EQ(repo->config().minor, minor);
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, UnfencedCommitIds(*repo));
  ASSERT_EQ(ids.size(), 4u);
  // The group checkpoint is the latest committed checkpoint (format.md §6.1).
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo->LatestCommitId());
  EXPECT_EQ(latest, ids[3]);
  for (int n = 1; n <= 3; ++n) {
    SCOPED_TRACE(::testing::Message() << "checkpoint " << ids[n - 1] << " (the " << n << "th)");
    ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get()));
    RestoreOptions o;
    o.id = ids[n - 1];
    o.on_unregistered = OnUnregistered::kCreate;
    ASSERT_OK_AND_ASSIGN(CommitRecord record, ckpt->Restore(o));
    EXPECT_EQ(record.metadata["checkpoint"], std::to_string(n));
    Region* grid = ckpt->FindRegion("grid");
    ASSERT_NE(grid, nullptr);
    EXPECT_EQ(ToHex(Sha256(std::string_view(grid->data(), grid->size()))), kGridSha256[n]);
    EXPECT_EQ(Entries(ckpt.get(), "index"), testdata::IndexAtCheckpoint(n));
  }
  // The group checkpoint, restored onto one participant that owns every key group (a rescale).
  const uint64_t group_id = ids[3];
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get()));
  RestoreOptions o;
  o.id = group_id;
  o.on_unregistered = OnUnregistered::kCreate;
  ASSERT_OK_AND_ASSIGN(CommitRecord record, ckpt->Restore(o));
  ASSERT_EQ(record.participants.size(), 2u);
  EXPECT_EQ(record.metadata["checkpoint"], "group");
  EXPECT_EQ(Entries(ckpt.get(), "shared"), testdata::SharedAtGroupCheckpoint());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> acked, repo->ListAcks(group_id));
  EXPECT_EQ(acked, (std::vector<std::string>{"left", "right"}));
  ASSERT_OK_AND_ASSIGN(CommitRecord ack, repo->ReadAck(group_id, "left"));
  EXPECT_EQ(ack.participants.at(0).name, "left");
  // Format 1.2 added incarnations (1.1 records read as incarnation 0) and uses a non-zero epoch.
  const bool v12 = minor >= 2;
  EXPECT_EQ(ack.participants.at(0).incarnation, v12 ? 7u : 0u);
  EXPECT_EQ(record.participants.at(0).incarnation, v12 ? 7u : 0u);
  EXPECT_EQ(record.participants.at(1).incarnation, v12 ? 3u : 0u);
  EXPECT_EQ(record.epoch, v12 ? 2u : 0u);
}

// Format 1.1 added keyed state and group checkpoints with acknowledgements (format.md §5.3, §11).
TEST_F(CompatTest, SavedRepositoryV1_1RestoresRegionsKeyedStateAndGroupCheckpoint) {
  CopySaved("repo-v1.1");
  ExpectSavedRepositoryRestores(dir_.Join("repo"), 1);
}

// Format 1.2 added the participant's incarnation to commit records and acknowledgements (§6, §11).
TEST_F(CompatTest, SavedRepositoryV1_2RestoresAndKeepsIncarnationsAndEpoch) {
  CopySaved("repo-v1.2");
  ExpectSavedRepositoryRestores(dir_.Join("repo"), 2);
}

// Format 1.3 added retention policies, pins and condemnations (§13) and the packs' nonce frame
// (§4): the saved policy (generation 2) and pin read back, and a collection (a dry run: the saved
// copy's objects are young anyway) keeps what they keep.
TEST_F(CompatTest, SavedRepositoryV1_3RestoresAndKeepsItsPolicyAndPin) {
  CopySaved("repo-v1.3");
  ExpectSavedRepositoryRestores(dir_.Join("repo"), 3);
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(dir_.Join("repo"), /*create=*/false));
  ASSERT_OK_AND_ASSIGN(std::optional<RetentionPolicy> policy, ReadRetentionPolicy(*repo));
  ASSERT_TRUE(policy.has_value());
  EXPECT_EQ(policy->generation, 2u);
  EXPECT_EQ(policy->keep_last, std::optional<uint64_t>(2));
  EXPECT_EQ(policy->keep_within, std::optional<absl::Duration>(absl::Hours(24)));
  EXPECT_EQ(policy->checkpoint_timeout, absl::Seconds(60));
  ASSERT_OK_AND_ASSIGN(std::vector<Pin> pins, ListPins(*repo));
  ASSERT_EQ(pins.size(), 1u);
  EXPECT_EQ(pins[0].name, "first");
  EXPECT_EQ(pins[0].id, 1u);
  GcOptions dry;
  dry.dry_run = true;
  ASSERT_OK_AND_ASSIGN(GcReport report, CollectGarbage(*repo, dry));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
  // keep-within 24 h judges the saved checkpoints' creation against today: whatever it decides,
  // the pinned one, the latest and keep-last 2 are kept, and nothing is removed.
  for (uint64_t id : {ids[0], ids[2], ids[3]}) {
    EXPECT_NE(std::find(report.kept_checkpoints.begin(), report.kept_checkpoints.end(), id),
              report.kept_checkpoints.end())
        << id;
  }
  EXPECT_TRUE(report.removed_checkpoints.empty());
}

// Format 1.4 added consolidations (§14): the saved repository's third checkpoint is consolidated
// (every block copied into new packs) and restores from one link per state object.
TEST_F(CompatTest, SavedRepositoryV1_4RestoresItsConsolidatedCheckpoint) {
  CopySaved("repo-v1.4");
  ExpectSavedRepositoryRestores(dir_.Join("repo"), 4);
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(dir_.Join("repo"), /*create=*/false));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
  using InForce = std::map<uint64_t, uint64_t>;
  ASSERT_OK_AND_ASSIGN(InForce in_force, ListConsolidations(*repo));
  EXPECT_EQ(in_force, (InForce{{ids[2], 1}}));
  ASSERT_OK_AND_ASSIGN(CommitRecord third, repo->ReadCommit(ids[2]));
  PackTable packs;
  ASSERT_OK_AND_ASSIGN(ResolvedObject grid, ResolveObject(*repo, third, "p0", "grid", &packs));
  EXPECT_EQ(grid.chain, std::vector<uint64_t>{ids[2]});
  EXPECT_TRUE(grid.consolidated);
}

// Format 1.5 added epoch records and fencing (§15): the saved repository holds epochs 2 and 3, and
// a group checkpoint of epoch 2 committed in the race with epoch 3 (after the new coordinator read
// its base), the highest id, fenced: not the latest, not restorable by id, not kept by GC.
TEST_F(CompatTest, SavedRepositoryV1_5FencesTheOldCoordinatorsLateCommit) {
  CopySaved("repo-v1.5");
  ExpectSavedRepositoryRestores(dir_.Join("repo"), 5);
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(dir_.Join("repo"), /*create=*/false));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
  ASSERT_EQ(ids.size(), 5u);
  const uint64_t group_id = ids[3];
  const uint64_t fenced_id = ids[4];
  ASSERT_OK_AND_ASSIGN(std::vector<EpochRecord> epochs, repo->ListEpochs());
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_EQ(epochs[0].epoch, 2u);
  EXPECT_EQ(epochs[0].base, ids[2]);
  EXPECT_EQ(epochs[0].leader, "coordinator-a");
  EXPECT_EQ(epochs[1].epoch, 3u);
  EXPECT_EQ(epochs[1].base, group_id);
  EXPECT_EQ(epochs[1].previous, 2u);
  EXPECT_EQ(epochs[1].leader, "coordinator-b");
  ASSERT_OK_AND_ASSIGN(CommitRecord fenced, repo->ReadCommit(fenced_id));
  EXPECT_EQ(fenced.epoch, 2u);
  EXPECT_EQ(fenced.parent, group_id);
  EXPECT_EQ(fenced.metadata["checkpoint"], "fenced");
  EXPECT_EQ(FencedBy(epochs, fenced), 3u);
  // The fenced checkpoint is the highest id but not the latest: a restore without an id returns
  // the group checkpoint's entries, never the fenced ones.
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo->LatestCommitId());
  EXPECT_EQ(latest, group_id);
  {
    ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get()));
    RestoreOptions o;
    o.on_unregistered = OnUnregistered::kCreate;
    ASSERT_OK_AND_ASSIGN(CommitRecord restored, ckpt->Restore(o));
    EXPECT_EQ(restored.id, group_id);
    EXPECT_EQ(Entries(ckpt.get(), "shared"), testdata::SharedAtGroupCheckpoint());
  }
  {
    ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get()));
    RestoreOptions o;
    o.id = fenced_id;
    o.on_unregistered = OnUnregistered::kCreate;
    const absl::Status s = ckpt->Restore(o).status();
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_NE(std::string(s.message()).find("fenced by epoch 3"), std::string::npos) << s;
  }
  // GC (a dry run) keeps it not, even as the highest id, and would condemn it.
  GcOptions dry;
  dry.dry_run = true;
  ASSERT_OK_AND_ASSIGN(GcReport report, CollectGarbage(*repo, dry));
  EXPECT_EQ(report.fenced_checkpoints, std::vector<uint64_t>{fenced_id});
  EXPECT_EQ(std::find(report.kept_checkpoints.begin(), report.kept_checkpoints.end(), fenced_id),
            report.kept_checkpoints.end());
  EXPECT_NE(std::find(report.kept_checkpoints.begin(), report.kept_checkpoints.end(), group_id),
            report.kept_checkpoints.end());
  EXPECT_NE(std::find(report.condemned_checkpoints.begin(), report.condemned_checkpoints.end(),
                      fenced_id),
            report.condemned_checkpoints.end());
}

// Format 1.6 added the latest-commit index (§6.2). In the saved repository it names the fenced
// checkpoint, the last one committed: a reader starts its listing there, finds only a fenced
// commit, and lists every commit, so the group checkpoint is still the latest. The index is never
// trusted: missing, damaged, too high or too low, the answer is the same, and id reservation still
// starts above every id.
TEST_F(CompatTest, SavedRepositoryV1_6LatestCommitIndexIsAHintNeverTheAnswer) {
  CopySaved("repo-v1.6");
  ExpectSavedRepositoryRestores(dir_.Join("repo"), 6);
  const std::string index = dir_.Join("repo/index/latest-commit");
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(dir_.Join("repo"), /*create=*/false));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
  ASSERT_EQ(ids.size(), 5u);
  const uint64_t group_id = ids[3];
  const uint64_t fenced_id = ids[4];
  EXPECT_EQ(testing::ReadFileOrEmpty(index), CommitKey(fenced_id))
      << "the index names the last commit written, fenced or not";
  for (const std::string& bytes :
       {std::string(""), std::string("garbage"), CommitKey(fenced_id) + "\n", CommitKey(group_id),
        CommitKey(ids[0]), CommitKey(999999), std::string("commits/1"), std::string("<removed>")}) {
    SCOPED_TRACE(bytes);
    std::filesystem::remove(index);
    if (bytes != "<removed>") {
      std::FILE* f = std::fopen(index.c_str(), "w");
      ASSERT_NE(f, nullptr);
      std::fwrite(bytes.data(), 1, bytes.size(), f);
      std::fclose(f);
    }
    ASSERT_OK_AND_ASSIGN(auto reader, Repository::OpenLocal(dir_.Join("repo"), false));
    ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, reader->LatestCommitId());
    EXPECT_EQ(latest, group_id);
    ASSERT_OK_AND_ASSIGN(uint64_t reserved, reader->ReserveCheckpointId());
    EXPECT_GT(reserved, fenced_id) << "above every id reserved or committed";
  }
}

// Repositories saved before 1.3 have no policy: they keep every committed checkpoint, and a
// collection removes none of them.
TEST_F(CompatTest, SavedRepositoriesWithoutAPolicyKeepEveryCheckpoint) {
  for (const char* name : {"repo-v1.0", "repo-v1.1", "repo-v1.2"}) {
    CopySaved(name);
    ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(dir_.Join("repo"), /*create=*/false));
    ASSERT_OK_AND_ASSIGN(std::optional<RetentionPolicy> policy, ReadRetentionPolicy(*repo));
    EXPECT_FALSE(policy.has_value()) << name;
    ASSERT_OK_AND_ASSIGN(GcReport report, CollectGarbage(*repo));
    ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
    EXPECT_EQ(report.kept_checkpoints, ids) << name;
    EXPECT_TRUE(report.condemned_checkpoints.empty()) << name;
    EXPECT_EQ(report.deleted_commits + report.deleted_manifests + report.deleted_packs, 0u) << name;
  }
}

}  // namespace
}  // namespace ickpt
