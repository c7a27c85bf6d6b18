// Checkpoints on a real S3 store (a Ceph RADOS Gateway, testing::SharedRgw or one of the test's
// own): incremental checkpoints, restores of every one of them, the latest-commit index (format.md
// §6.2), consolidation and GC work unchanged on S3; a gateway killed in the middle of a checkpoint
// fails that checkpoint cleanly, and after it is back the next one commits and everything restores.
#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"
#include "src/repo/keys.h"
#include "src/testing/manual_clock_store.h"
#include "src/testing/restore_util.h"
#include "src/testing/rgw_server.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr uint64_t kBlocks = 256;
constexpr uint64_t kRegionBytes = kBlocks * 4096;

S3StoreOptions OptionsFor(const testing::RgwServer& rgw, const std::string& bucket) {
  S3StoreOptions o;
  o.endpoint = rgw.endpoint();
  o.bucket = bucket;
  o.prefix = "jobs/one";
  o.region = rgw.region();
  o.credentials.access_key_id = rgw.access_key();
  o.credentials.secret_access_key = rgw.secret_key();
  o.probe_publish = true;
  return o;
}

// What a checkpoint held.
using Content = testing::RegionAndKeyed;

class S3CheckpointTest : public ::testing::Test {
 protected:
  // Opens a checkpointer with a region and a keyed state on `store` (wrapped to let the GC grace
  // period pass instantly).
  void OpenOn(ObjectStore* store, bool create) {
    checkpointer_.reset();
    repo_.reset();
    auto wrapped = std::make_unique<testing::ManualClockStore>(store, clock_);
    if (create) {
      RepositoryOptions options;
      options.retention = RetentionPolicy{};
      options.retention->keep_last = 1;  // the consolidated latest alone
      ASSERT_OK_AND_ASSIGN(repo_, Repository::Create(std::move(wrapped), options));
    } else {
      ASSERT_OK_AND_ASSIGN(repo_, Repository::Open(std::move(wrapped)));
    }
    CheckpointerOptions copts;
    copts.policy = NewFullEveryNPolicy(1000);  // one chain: every later one is incremental
    copts.gc_after_commit = false;
    copts.consolidate_in_background = false;
    copts.uploads_in_flight = 8;  // a round trip per pack: more at once (docs/s3.md)
    ASSERT_OK_AND_ASSIGN(checkpointer_, Checkpointer::Open(repo_.get(), copts));
    ASSERT_OK_AND_ASSIGN(region_, checkpointer_->AddRegion("grid", {.size = kRegionBytes}));
    ASSERT_OK_AND_ASSIGN(kv_, checkpointer_->AddKeyedState("kv"));
  }

  Content Held() const { return testing::ContentOf(*region_, *kv_); }
  void Change() {
    for (int i = 0; i < 8; ++i) {
      const uint64_t block = rng_() % kBlocks;
      const std::string bytes = testing::RandomBytes(4096, rng_());
      std::memcpy(region_->data() + block * 4096, bytes.data(), bytes.size());
    }
    for (int i = 0; i < 30; ++i) {
      const std::string key = "k" + std::to_string(rng_() % 300);
      if (rng_() % 4 == 0) {
        kv_->Erase(key);
      } else {
        EXPECT_OK(kv_->Put(key, testing::RandomBytes(1 + rng_() % 200, rng_())));
      }
    }
  }
  absl::StatusOr<CommitRecord> Checkpoint() {
    absl::StatusOr<CheckpointHandle> handle = checkpointer_->Checkpoint();
    if (!handle.ok()) return handle.status();
    return handle->Wait();
  }
  uint64_t Step() {
    Change();
    absl::StatusOr<CommitRecord> record = Checkpoint();
    EXPECT_OK(record.status());
    if (!record.ok()) return 0;
    expected_[record->id] = Held();
    return record->id;
  }
  absl::StatusOr<Content> Restored(std::optional<uint64_t> id) {
    return testing::RestoredGridAndKv(repo_.get(), id);
  }
  void ExpectEveryCheckpointRestores() {
    for (const auto& [id, content] : expected_) {
      SCOPED_TRACE(id);
      absl::StatusOr<Content> restored = Restored(id);
      ASSERT_OK(restored.status());
      EXPECT_TRUE(*restored == content) << "checkpoint " << id << " restored other bytes";
    }
  }

  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Checkpointer> checkpointer_;
  Region* region_ = nullptr;
  KeyedState* kv_ = nullptr;
  std::mt19937_64 rng_{14};
  std::map<uint64_t, Content> expected_;
};

TEST_F(S3CheckpointTest, IncrementalsRestoreConsolidateAndCollectOnS3) {
  testing::RgwServer* rgw = testing::SharedRgw();
  if (rgw == nullptr) {
    if (!testing::RgwServer::Available()) GTEST_SKIP() << "Ceph is not installed";
    FAIL() << "Ceph is installed but no gateway could be had (see stderr)";
  }
  const std::string bucket = "ckpt-test-" + RandomHex128().substr(0, 16);
  ASSERT_OK(rgw->CreateBucket(bucket));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ObjectStore> s3, OpenS3Store(OptionsFor(*rgw, bucket)));
  OpenOn(s3.get(), /*create=*/true);

  std::vector<uint64_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(Step());
  ASSERT_OK_AND_ASSIGN(CommitRecord last, repo_->ReadCommit(ids.back()));
  EXPECT_EQ(last.kind, CheckpointKind::kIncremental);
  EXPECT_EQ(last.depth, 5u);
  ExpectEveryCheckpointRestores();

  // The latest-commit index names the last commit, and a reader finds the latest through it.
  EXPECT_EQ(*s3->Get(std::string(kLatestCommitIndexKey)), CommitKey(ids.back()));
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo_->LatestCommitId());
  EXPECT_EQ(latest, ids.back());

  // A consolidation of the latest, checked against its chain; then GC, after the grace period,
  // removes what only the older checkpoints needed. Every kept checkpoint still restores.
  ConsolidateOptions consolidate;
  consolidate.verify = true;
  ASSERT_OK(Consolidate(*repo_, ids.back(), consolidate).status());
  clock_->Advance(absl::Hours(2));
  ASSERT_OK_AND_ASSIGN(GcReport condemn, CollectGarbage(*repo_));
  clock_->Advance(absl::Hours(2));
  ASSERT_OK_AND_ASSIGN(GcReport sweep, CollectGarbage(*repo_));
  EXPECT_GT(sweep.deleted_commits + condemn.deleted_commits, 0u);
  EXPECT_GT(sweep.deleted_packs + condemn.deleted_packs, 0u);
  for (auto it = expected_.begin(); it != expected_.end();) {
    absl::StatusOr<CommitRecord> kept = repo_->ReadCommit(it->first);
    it = kept.ok() ? std::next(it) : expected_.erase(it);
  }
  EXPECT_EQ(expected_.size(), 1u) << "keep-last 1";
  ExpectEveryCheckpointRestores();
  // The history goes on after GC, from the index.
  const uint64_t next = Step();
  EXPECT_GT(next, ids.back());
  EXPECT_EQ(*repo_->LatestCommitId(), next);
  ExpectEveryCheckpointRestores();
}

// A store that runs `hook` once, immediately before the first pack is put through it.
class BeforeFirstPack : public ObjectStoreWrapper {
 public:
  BeforeFirstPack(ObjectStore* target, std::function<void()> hook)
      : ObjectStoreWrapper(target), hook_(std::move(hook)) {}
  absl::Status Put(std::string_view key, std::string_view data) override {
    if (key.starts_with(kPacksPrefix) && armed_.exchange(false)) hook_();
    return ObjectStoreWrapper::Put(key, data);
  }
  void Arm() { armed_ = true; }

 private:
  std::function<void()> hook_;
  std::atomic<bool> armed_{false};
};

TEST_F(S3CheckpointTest, GatewayKilledMidCheckpointFailsItCleanlyAndTheNextCommits) {
  if (!testing::RgwServer::Available()) GTEST_SKIP() << "Ceph is not installed";
  // A gateway of this test's own: killing the shared one would fail other tests.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<testing::RgwServer> rgw, testing::RgwServer::Start());
  const std::string bucket = "killed-gateway";
  ASSERT_OK(rgw->CreateBucket(bucket));
  S3StoreOptions options = OptionsFor(*rgw, bucket);
  // Give up within seconds while the gateway is down.
  options.max_attempts = 3;
  options.initial_backoff = absl::Milliseconds(50);
  options.call_deadline = absl::Seconds(10);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ObjectStore> s3, OpenS3Store(options));
  testing::RgwServer* gateway = rgw.get();
  BeforeFirstPack killer(s3.get(), [gateway] { gateway->KillGateway(); });
  OpenOn(&killer, /*create=*/true);

  const uint64_t first = Step();
  ASSERT_NE(first, 0u);
  const Content at_first = Held();
  Change();
  killer.Arm();
  absl::StatusOr<CommitRecord> failed = Checkpoint();
  ASSERT_FALSE(failed.ok()) << "checkpoint " << failed->id << " committed with the gateway down";
  EXPECT_TRUE(absl::IsUnavailable(failed.status()) || absl::IsDeadlineExceeded(failed.status()) ||
              absl::IsAborted(failed.status()))
      << failed.status();

  ASSERT_OK(rgw->RestartGateway());
  // The next checkpoint captures the failed one's changes again and commits.
  const uint64_t next = Step();
  ASSERT_GT(next, first);
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest, repo_->LatestCommitId());
  EXPECT_EQ(latest, next);
  ASSERT_OK_AND_ASSIGN(Content restored_first, Restored(first));
  EXPECT_TRUE(restored_first == at_first);
  ExpectEveryCheckpointRestores();
  // Reopened from scratch, the repository has exactly the two commits.
  OpenOn(s3.get(), /*create=*/false);
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo_->ListCommitIds());
  EXPECT_EQ(ids, (std::vector<uint64_t>{first, next}));
}

}  // namespace
}  // namespace ickpt
