// A malicious or damaged repository against the restore path (format.md §10): names taken from
// objects never become paths outside the repository, and counts taken from objects never size an
// allocation before they are bounded. Each test is named after what it guards.
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "src/repo/commit_record.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/region_reader.h"
#include "src/repo/repository_internal.h"
#include "src/state/region_internal.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlock = 4096;

// Remembers every key a read asked for.
class KeyLogStore : public ObjectStoreWrapper {
 public:
  using ObjectStoreWrapper::ObjectStoreWrapper;
  absl::StatusOr<std::string> Get(std::string_view key) override {
    Note(key);
    return ObjectStoreWrapper::Get(key);
  }
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    Note(key);
    return ObjectStoreWrapper::GetRange(key, offset, length);
  }
  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    Note(key);
    return ObjectStoreWrapper::Size(key);
  }
  bool Asked(std::string_view key) {
    std::lock_guard<std::mutex> lock(mu_);
    return keys_.contains(std::string(key));
  }

 private:
  void Note(std::string_view key) {
    std::lock_guard<std::mutex> lock(mu_);
    keys_.insert(std::string(key));
  }
  std::mutex mu_;
  std::set<std::string> keys_;
};

class RestoreSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = std::make_unique<KeyLogStore>(base_.get());
    log_ = log.get();
    ASSERT_OK_AND_ASSIGN(repo_, Repository::Create(std::move(log)));
  }

  // A commit record (id `id`) whose one state object "grid" names `manifest` with hash `sha`.
  static CommitRecord RecordNaming(uint64_t id, std::string manifest, std::string sha) {
    CommitRecord r;
    r.id = id;
    r.created = absl::Now();
    ParticipantRecord p;
    p.name = "p0";
    StateObjectRecord o;
    o.name = "grid";
    o.manifest = std::move(manifest);
    o.manifest_sha256 = std::move(sha);
    o.tracker = "hash";
    p.state_objects.push_back(o);
    r.participants.push_back(p);
    return r;
  }

  // Publishes `record` as written, bypassing the writer's validation (a malicious writer).
  void PublishRaw(const CommitRecord& record) {
    ASSERT_OK(RepositoryInternal::store(*repo_)->Publish(CommitKey(record.id),
                                                         EncodeCommitRecord(record)));
  }

  // Stores `m` as a manifest and publishes a valid commit record naming it.
  void PublishManifest(const Manifest& m) {
    const std::string bytes = EncodeManifest(m);
    const std::string sha = ToHex(Sha256(bytes));
    ASSERT_OK(RepositoryInternal::store(*repo_)->Put(ManifestKey(sha), bytes));
    CommitRecord r = RecordNaming(m.checkpoint_id, ManifestKey(sha), sha);
    r.participants[0].state_objects[0].manifest_bytes = bytes.size();
    ASSERT_OK(ValidateCommitRecord(r));
    PublishRaw(r);
  }

  // A full manifest of checkpoint 1 with `block_count` blocks, all zero (one extent).
  static Manifest ZeroManifest(uint64_t block_count) {
    Manifest m;
    m.checkpoint_id = 1;
    m.kind = CheckpointKind::kFull;
    m.participant = "p0";
    m.object_name = "grid";
    m.block_size = kBlock;
    m.block_count = block_count;
    m.extents.push_back(Extent{0, block_count, 0, 0});
    return m;
  }

  absl::StatusOr<CommitRecord> RestoreInto(Checkpointer* ckpt) {
    RestoreOptions options;
    options.on_unregistered = OnUnregistered::kCreate;
    return ckpt->Restore(options);
  }

  std::unique_ptr<ObjectStore> base_ = NewMemoryStore();
  KeyLogStore* log_ = nullptr;
  std::unique_ptr<Repository> repo_;
};

const char* const kHostileManifestKeys[] = {
    "../../etc/passwd",
    "/abs",
    "manifests/../config",
    "manifests/ab/../../../../etc/passwd",
};

std::string ValidSha() { return std::string(64, 'a'); }

// ReadManifest validates the key itself, whoever built the record: the key never reaches the store.
TEST_F(RestoreSecurityTest, ResolveRefusesManifestKeysThatTraverseOrAreAbsolute) {
  std::vector<std::string> keys(std::begin(kHostileManifestKeys), std::end(kHostileManifestKeys));
  keys.push_back(std::string(100'000, 'a'));             // overly long
  keys.push_back("manifests/" + std::string(300, 'a'));  // long, and no hash key
  keys.push_back(ManifestKey(std::string(64, 'b')));     // a valid key, not of this hash
  for (const std::string& key : keys) {
    SCOPED_TRACE(key.substr(0, 60));
    const CommitRecord record = RecordNaming(1, key, ValidSha());
    PackTable packs;
    absl::StatusOr<ResolvedObject> r = ResolveObject(*repo_, record, "p0", "grid", &packs);
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
    EXPECT_FALSE(log_->Asked(key)) << "the store was asked for a hostile key";
    EXPECT_LT(r.status().message().size(), 1000u) << "the message repeats an unbounded name";
  }
}

// The same keys in a commit record in the repository: the decoder refuses the record as damage,
// the key never reaches the store, and nothing was changed, so checkpoints go on.
TEST_F(RestoreSecurityTest, RestoreRefusesCommitRecordsNamingHostileManifestKeys) {
  std::vector<std::string> keys(std::begin(kHostileManifestKeys), std::end(kHostileManifestKeys));
  keys.push_back(std::string(1'000'000, 'a'));
  uint64_t id = 1;
  for (const std::string& key : keys) {
    SCOPED_TRACE(key.substr(0, 60));
    ASSERT_NO_FATAL_FAILURE(PublishRaw(RecordNaming(id, key, ValidSha())));
    ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo_.get()));
    RestoreOptions options;
    options.id = id;
    options.on_unregistered = OnUnregistered::kCreate;
    absl::StatusOr<CommitRecord> r = ckpt->Restore(options);
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
    EXPECT_FALSE(log_->Asked(key));
    EXPECT_LT(r.status().message().size(), 1000u) << "the message repeats an unbounded name";
    EXPECT_EQ(ckpt->FindRegion("grid"), nullptr) << "a refused restore created a region";
    RegionOptions ro;
    ro.size = kBlock;
    ASSERT_OK(ckpt->AddRegion("grid", ro).status());
    ASSERT_OK_AND_ASSIGN(auto handle, ckpt->Checkpoint());
    ASSERT_OK_AND_ASSIGN(CommitRecord committed, handle.Wait());
    id = committed.id + 1;
  }
}

// block_count 2^60 of 4 KiB blocks is 2^72 bytes (the product wraps in 64 bits): the decoder
// refuses it against the 1 PiB limit before the restore sizes anything by it.
TEST_F(RestoreSecurityTest, RestoreRefusesBlockCount2To60BeforeAllocating) {
  ASSERT_NO_FATAL_FAILURE(PublishManifest(ZeroManifest(uint64_t{1} << 60)));
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo_.get()));
  absl::StatusOr<CommitRecord> r = RestoreInto(ckpt.get());
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_NE(std::string(r.status().message()).find("1 PiB"), std::string::npos) << r.status();
  EXPECT_EQ(ckpt->FindRegion("grid"), nullptr);
}

// At the limit (2^38 blocks of 4 KiB, 1 PiB exactly) the decoder accepts the manifest, but the
// restore's per-block location table (16 bytes a block, 4 TiB) cannot fit this machine: refused as
// ResourceExhausted before it is allocated, and without changing state.
TEST_F(RestoreSecurityTest, RestoreRefusesALocationTableLargerThanMemoryBeforeAllocating) {
  const uint64_t blocks = kMaxStateObjectBytes / kBlock;
  ASSERT_NO_FATAL_FAILURE(PublishManifest(ZeroManifest(blocks)));
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo_.get()));
  absl::StatusOr<CommitRecord> r = RestoreInto(ckpt.get());
  EXPECT_TRUE(absl::IsResourceExhausted(r.status())) << r.status();
  EXPECT_EQ(ckpt->FindRegion("grid"), nullptr);
  RegionOptions ro;
  ro.size = kBlock;
  ASSERT_OK(ckpt->AddRegion("grid", ro).status());
  EXPECT_OK(ckpt->Checkpoint().status()) << "a refused restore changed nothing";
}

// One block over the limit is damage, whatever the memory.
TEST_F(RestoreSecurityTest, ManifestDecoderRefusesAnObjectOverOnePiB) {
  const std::string bytes = EncodeManifest(ZeroManifest(kMaxStateObjectBytes / kBlock + 1));
  absl::StatusOr<Manifest> m = DecodeManifest(bytes, "manifests/test");
  EXPECT_TRUE(absl::IsDataLoss(m.status())) << m.status();
  EXPECT_OK(
      DecodeManifest(EncodeManifest(ZeroManifest(kMaxStateObjectBytes / kBlock)), "manifests/test")
          .status());
}

// Resize, which a restore calls with a count read from a manifest, checks the count before it
// multiplies (2^60 × 4096 wraps to 0) and leaves the region as it was.
TEST(RegionResizeTest, ResizeRefusesBlockCountsOverOnePiBAndKeepsTheRegion) {
  RegionOptions ro;
  ro.size = 4 * kBlock;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Region> region, RegionAccess::Create("grid", ro, kBlock));
  std::memset(region->data(), 7, region->size());
  for (uint64_t count : {uint64_t{1} << 60, kMaxStateObjectBytes / kBlock + 1, ~uint64_t{0}}) {
    SCOPED_TRACE(count);
    absl::Status s = RegionAccess::Resize(*region, count);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_EQ(region->block_count(), 4u);
    EXPECT_EQ(region->data()[region->size() - 1], 7);
  }
  ro.size = kMaxStateObjectBytes + 1;
  EXPECT_TRUE(absl::IsInvalidArgument(RegionAccess::Create("big", ro, kBlock).status()));
  ro.size = ~uint64_t{0};  // rounding up to blocks would wrap
  EXPECT_TRUE(absl::IsInvalidArgument(RegionAccess::Create("big", ro, kBlock).status()));
}

}  // namespace
}  // namespace ickpt
