// Writes the saved repository of the current format version, testdata/repo-v<major>.<minor> (see
// testdata_grid.h for its content). Run once per format version and commit the result:
//   make_testdata testdata/repo-v1.1
// The output directory must not exist yet: a saved repository is never rewritten.
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"
#include "tools/testdata_grid.h"

namespace {

int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "make_testdata: %s: %s\n", what, status.ToString().c_str());
  return 1;
}

// Runs `hook` once, immediately before the first epoch record is published through it: how the
// old coordinator's commit lands between a new coordinator's read of the latest checkpoint and its
// epoch record (format.md §15.5).
class BeforeEpochPublish : public ickpt::ObjectStoreWrapper {
 public:
  BeforeEpochPublish(ickpt::ObjectStore* target, std::function<void()> hook)
      : ObjectStoreWrapper(target), hook_(std::move(hook)) {}
  absl::Status Publish(std::string_view key, std::string_view data) override {
    if (key.starts_with("epochs/") && hook_) std::exchange(hook_, nullptr)();
    return ObjectStoreWrapper::Publish(key, data);
  }

 private:
  std::function<void()> hook_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace ickpt;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_testdata <new repository directory>\n");
    return 2;
  }
  RepositoryOptions options;
  options.config.block_size = testdata::kGridBlock;
  auto repo = Repository::OpenLocal(argv[1], /*create=*/true, options);
  if (!repo.ok()) return Fail("create repository", repo.status());
  auto latest = (*repo)->LatestCommitId();
  if (!latest.ok() || latest->has_value()) {
    std::fprintf(stderr, "make_testdata: %s already holds checkpoints\n", argv[1]);
    return 1;
  }
  auto ckpt = Checkpointer::Open(repo->get());
  if (!ckpt.ok()) return Fail("open checkpointer", ckpt.status());
  RegionOptions ro;
  ro.size = testdata::kGridBlocksV1 * testdata::kGridBlock;
  ro.block_size = testdata::kGridBlock;
  ro.tracker = TrackerKind::kHash;
  auto region = (*ckpt)->AddRegion("grid", ro);
  if (!region.ok()) return Fail("add region", region.status());
  Region* grid = *region;
  auto index = (*ckpt)->AddKeyedState("index", {.key_groups = testdata::kIndexKeyGroups});
  if (!index.ok()) return Fail("add keyed state", index.status());
  for (int n = 1; n <= 3; ++n) {
    const std::string content = testdata::GridAtCheckpoint(n);
    if (content.size() > grid->size()) {
      if (absl::Status s = grid->Grow(content.size()); !s.ok()) return Fail("grow", s);
    }
    std::memcpy(grid->data(), content.data(), content.size());
    const auto entries = testdata::IndexAtCheckpoint(n);
    std::vector<std::string> gone;
    (*index)->ForEach([&](std::string_view key, std::string_view) {
      if (!entries.contains(std::string(key))) gone.emplace_back(key);
    });
    for (const std::string& key : gone) (*index)->Erase(key);
    for (const auto& [key, value] : entries) {
      if (absl::Status s = (*index)->Put(key, value); !s.ok()) return Fail("put", s);
    }
    CheckpointOptions co;
    co.metadata["checkpoint"] = std::to_string(n);
    auto handle = (*ckpt)->Checkpoint(co);
    if (!handle.ok()) return Fail("checkpoint", handle.status());
    auto record = handle->Wait();
    if (!record.ok()) return Fail("persist", record.status());
    std::printf("checkpoint %llu: %s, %llu bytes, %llu changed blocks\n",
                static_cast<unsigned long long>(record->id),
                std::string(CheckpointKindName(record->kind)).c_str(),
                static_cast<unsigned long long>(record->logical_bytes),
                static_cast<unsigned long long>(
                    record->participants.at(0).state_objects.at(0).changed_blocks));
  }
  // Format 1.5: the coordinator of the group checkpoint begins its epoch first (format.md §15.2).
  auto epoch2 = (*repo)->BeginEpoch(2, "coordinator-a");
  if (!epoch2.ok()) return Fail("begin epoch 2", epoch2.status());
  std::printf("epoch 2 begun from checkpoint %llu\n",
              static_cast<unsigned long long>(epoch2->base.value_or(0)));
  // A group checkpoint of two participants, each holding its key groups of "shared". The members
  // stay open for the fenced checkpoint of format 1.5 below.
  auto id = (*repo)->ReserveCheckpointId();
  if (!id.ok()) return Fail("reserve id", id.status());
  const char* names[] = {"left", "right"};
  std::vector<std::unique_ptr<Checkpointer>> members;
  std::vector<KeyedState*> shared_states;
  // Each member puts `entries` of its own key groups and acknowledges checkpoint `ckpt_id`.
  auto member_checkpoint = [&](uint32_t i, const std::map<std::string, std::string>& entries,
                               uint64_t ckpt_id, const char* label) -> absl::Status {
    KeyedState* shared = shared_states[i];
    for (const auto& [key, value] : entries) {
      const uint32_t group = KeyGroupOf(key, testdata::kSharedKeyGroups);
      if (group < shared->group_first() || group >= shared->group_end()) continue;
      if (absl::Status s = shared->Put(key, value); !s.ok()) return s;
    }
    CheckpointOptions co;
    co.id = ckpt_id;
    co.metadata["checkpoint"] = label;
    co.epoch = 2;
    auto handle = members[i]->Checkpoint(co);
    if (!handle.ok()) return handle.status();
    return handle->Wait().status();
  };
  for (uint32_t i = 0; i < 2; ++i) {
    CheckpointerOptions o;
    o.participant = names[i];
    o.participant_index = i;
    o.participant_count = 2;
    o.group_member = true;
    o.incarnation = i == 0 ? 7 : 3;  // format 1.2: acknowledgements carry the incarnation
    auto member = Checkpointer::Open(repo->get(), o);
    if (!member.ok()) return Fail("open group member", member.status());
    auto shared = (*member)->AddKeyedState("shared", {.key_groups = testdata::kSharedKeyGroups});
    if (!shared.ok()) return Fail("add keyed state", shared.status());
    members.push_back(*std::move(member));
    shared_states.push_back(*shared);
    if (absl::Status s = member_checkpoint(i, testdata::SharedAtGroupCheckpoint(), *id, "group");
        !s.ok()) {
      return Fail("group checkpoint", s);
    }
  }
  GroupCommitOptions group;
  group.participants = {"left", "right"};
  group.epoch = 2;
  group.incarnations = {{"left", 7}, {"right", 3}};
  auto committed = (*repo)->CommitGroup(*id, group);
  if (!committed.ok()) return Fail("group commit", committed.status());
  std::printf("checkpoint %llu: group of 2\n", static_cast<unsigned long long>(*id));
  // Format 1.3: a second retention policy generation (the first, keep-last 3, came with the
  // repository) and a pin.
  RetentionPolicy policy;
  policy.keep_last = 2;
  policy.keep_within = absl::Hours(24);
  policy.checkpoint_timeout = absl::Seconds(60);
  if (auto stored = SetRetentionPolicy(**repo, policy); !stored.ok()) {
    return Fail("set retention policy", stored.status());
  }
  if (absl::Status s = PinCheckpoint(**repo, 1, "first"); !s.ok()) return Fail("pin", s);
  std::printf("retention policy generation 2, pin 'first' on checkpoint 1\n");
  // Format 1.4: the third checkpoint (the latest of the single writer's chain) consolidated, every
  // block copied into new packs.
  auto ids = (*repo)->ListCommitIds();
  if (!ids.ok() || ids->size() < 3) return Fail("list commits", ids.status());
  ConsolidateOptions consolidate;
  consolidate.min_pack_use = 1.0;
  consolidate.verify = true;
  auto report = Consolidate(**repo, (*ids)[2], consolidate);
  if (!report.ok()) return Fail("consolidate", report.status());
  std::printf("checkpoint %llu consolidated: generation %llu, %llu -> %llu links\n",
              static_cast<unsigned long long>((*ids)[2]),
              static_cast<unsigned long long>(report->generation),
              static_cast<unsigned long long>(report->links_before),
              static_cast<unsigned long long>(report->links_after));
  // Format 1.5: the race of format.md §15.5. The old coordinator (epoch 2) has a second group
  // checkpoint acknowledged; a new coordinator begins epoch 3, and the old one's group commit lands
  // after the new one read the latest checkpoint (the group checkpoint) and before it published
  // epochs/3. That commit, the highest id, is fenced.
  auto fenced_id = (*repo)->ReserveCheckpointId();
  if (!fenced_id.ok()) return Fail("reserve id", fenced_id.status());
  for (uint32_t i = 0; i < 2; ++i) {
    if (absl::Status s =
            member_checkpoint(i, testdata::SharedAtFencedCheckpoint(), *fenced_id, "fenced");
        !s.ok()) {
      return Fail("fenced group checkpoint", s);
    }
  }
  auto local = OpenLocalStore(argv[1]);
  if (!local.ok()) return Fail("open store", local.status());
  absl::Status old_commit = absl::UnknownError("the old coordinator never committed");
  auto new_coordinator = Repository::Open(std::make_unique<BeforeEpochPublish>(
      local->get(), [&] { old_commit = (*repo)->CommitGroup(*fenced_id, group).status(); }));
  if (!new_coordinator.ok()) return Fail("open repository", new_coordinator.status());
  auto epoch3 = (*new_coordinator)->BeginEpoch(3, "coordinator-b");
  if (!epoch3.ok()) return Fail("begin epoch 3", epoch3.status());
  if (!old_commit.ok()) return Fail("old coordinator's group commit", old_commit);
  auto latest_now = (*repo)->LatestCommitId();
  if (!latest_now.ok()) return Fail("latest", latest_now.status());
  if (epoch3->base != *id || *latest_now != *id) {
    std::fprintf(stderr, "make_testdata: epoch 3 did not fence checkpoint %llu\n",
                 static_cast<unsigned long long>(*fenced_id));
    return 1;
  }
  std::printf("epoch 3 begun from checkpoint %llu; checkpoint %llu of epoch 2 fenced\n",
              static_cast<unsigned long long>(*id), static_cast<unsigned long long>(*fenced_id));
  return 0;
}
