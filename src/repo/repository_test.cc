#include "ickpt/repository.h"

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "src/repo/commit_record.h"
#include "src/repo/keys.h"
#include "src/store/fault_store.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/coding.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// Lets several Repository objects (processes, or one before and after a crash) share one store:
// each gets a wrapper that does not own it.
class RepositoryTest : public ::testing::Test {
 protected:
  std::unique_ptr<ObjectStore> SharedStore() {
    return std::make_unique<ObjectStoreWrapper>(store_.get());
  }
  std::unique_ptr<Repository> CreateRepo() {
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::Create(SharedStore());
    EXPECT_TRUE(repo.ok()) << repo.status();
    return repo.ok() ? *std::move(repo) : nullptr;
  }
  std::unique_ptr<Repository> OpenRepo() {
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::Open(SharedStore());
    EXPECT_TRUE(repo.ok()) << repo.status();
    return repo.ok() ? *std::move(repo) : nullptr;
  }
  static CommitRecord Record(uint64_t id) {
    CommitRecord r;
    r.id = id;
    r.created = absl::FromUnixNanos(1'800'000'000'000'000'000 + id);
    const std::string sha = ToHex(Sha256(std::to_string(id)));
    StateObjectRecord o;
    o.name = "heap";
    o.manifest = ManifestKey(sha);
    o.manifest_sha256 = sha;
    o.tracker = "explicit";
    r.participants = {{.name = "p0", .state_objects = {o}}};
    r.metadata = {{"offset", std::to_string(id * 10)}};
    return r;
  }

  std::unique_ptr<ObjectStore> store_ = NewMemoryStore();
};

TEST_F(RepositoryTest, CreateThenOpenSeesTheSameConfig) {
  RepositoryOptions options;
  options.config.block_size = 65536;
  options.config.compression_level = 9;
  absl::StatusOr<std::unique_ptr<Repository>> created = Repository::Create(SharedStore(), options);
  ASSERT_TRUE(created.ok()) << created.status();
  const RepositoryConfig& c = (*created)->config();
  EXPECT_EQ(c.repository_id.size(), 32u);
  EXPECT_EQ(c.block_size, 65536u);
  EXPECT_GT(c.created, absl::Now() - absl::Minutes(5));

  std::unique_ptr<Repository> opened = OpenRepo();
  ASSERT_NE(opened, nullptr);
  EXPECT_EQ(opened->config().repository_id, c.repository_id);
  EXPECT_EQ(opened->config().created, c.created);
  EXPECT_EQ(opened->config().block_size, 65536u);
  EXPECT_EQ(opened->config().compression_level, 9);
  EXPECT_EQ(opened->config().major, 1);
  // format.md §1.1: a writer writes the version it implements, whatever the struct held.
  EXPECT_EQ(options.config.minor, 1);
  EXPECT_EQ(opened->config().minor, 6);
}

TEST_F(RepositoryTest, CreateTwiceIsAlreadyExists) {
  CreateRepo();
  absl::Status s = Repository::Create(SharedStore()).status();
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
}

TEST_F(RepositoryTest, CreateRejectsBadConfig) {
  RepositoryOptions options;
  options.config.block_size = 1000;
  EXPECT_TRUE(absl::IsInvalidArgument(Repository::Create(SharedStore(), options).status()));
  options = {};
  options.config.compression_level = 20;
  EXPECT_TRUE(absl::IsInvalidArgument(Repository::Create(SharedStore(), options).status()));
  // Nothing was written.
  EXPECT_TRUE(absl::IsNotFound(store_->Get("config").status()));
}

TEST_F(RepositoryTest, OpenOnEmptyStoreIsNotFound) {
  absl::Status s = Repository::Open(SharedStore()).status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(Msg(s).find("not an ickpt repository"), std::string::npos) << s;
}

TEST_F(RepositoryTest, OpenOrCreateCreatesOnceThenOpens) {
  absl::StatusOr<std::unique_ptr<Repository>> first = Repository::OpenOrCreate(SharedStore());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<Repository>> second = Repository::OpenOrCreate(SharedStore());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*first)->config().repository_id, (*second)->config().repository_id);
}

TEST_F(RepositoryTest, DamagedConfigIsDataLoss) {
  CreateRepo();
  const std::string config = *store_->Get("config");
  for (size_t i = 0; i < config.size(); i += 7) {
    std::string damaged = config;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x04);
    ASSERT_TRUE(store_->Put("config", damaged).ok());
    absl::Status s = Repository::Open(SharedStore()).status();
    EXPECT_FALSE(s.ok()) << "byte " << i;
    // Byte 8 is the major version: flipping it makes the config look newer, FailedPrecondition.
    if (i != 8) {
      EXPECT_TRUE(absl::IsDataLoss(s)) << "byte " << i << ": " << s;
    }
  }
  ASSERT_TRUE(store_->Put("config", config.substr(0, config.size() - 1)).ok());
  EXPECT_TRUE(absl::IsDataLoss(Repository::Open(SharedStore()).status()));
}

TEST_F(RepositoryTest, NewerMajorConfigIsRefused) {
  RepositoryConfig c;
  c.major = 2;
  c.minor = 0;
  c.repository_id = std::string(32, 'a');
  ASSERT_TRUE(store_->Publish("config", EncodeConfig(c)).ok());
  absl::Status s = Repository::Open(SharedStore()).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("2.0"), std::string::npos) << s;
  // OpenOrCreate must not "create" over it either.
  EXPECT_TRUE(absl::IsFailedPrecondition(Repository::OpenOrCreate(SharedStore()).status()));
}

TEST_F(RepositoryTest, IdsStrictlyIncreaseAcrossRepositoryObjects) {
  std::unique_ptr<Repository> a = CreateRepo();
  std::unique_ptr<Repository> b = OpenRepo();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(*a->ReserveCheckpointId());
    ids.push_back(*b->ReserveCheckpointId());
  }
  EXPECT_EQ(ids.front(), 1u);
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_GT(ids[i], ids[i - 1]) << i;
  EXPECT_TRUE(store_->Size(IdReservationKey(ids.back())).ok());
}

TEST_F(RepositoryTest, IdsAreNeverReusedAfterACrashWithoutCommit) {
  uint64_t last = 0;
  {
    std::unique_ptr<Repository> before = CreateRepo();
    last = *before->ReserveCheckpointId();
    last = *before->ReserveCheckpointId();
  }  // "crash": nothing committed, the process state is gone
  std::unique_ptr<Repository> after = OpenRepo();
  absl::StatusOr<uint64_t> next = after->ReserveCheckpointId();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, last + 1);
}

TEST_F(RepositoryTest, IdsStartAfterTheHighestCommitEvenWithoutReservations) {
  std::unique_ptr<Repository> repo = CreateRepo();
  // GC may delete reservations (§7); commits alone still bound the next id.
  ASSERT_TRUE(repo->PublishCommit(Record(17)).ok());
  EXPECT_EQ(*OpenRepo()->ReserveCheckpointId(), 18u);
}

TEST_F(RepositoryTest, ReservationSkipsIdsTakenByOthers) {
  std::unique_ptr<Repository> repo = CreateRepo();
  EXPECT_EQ(*repo->ReserveCheckpointId(), 1u);
  // Another writer took 2..40 after our first listing.
  for (uint64_t id = 2; id <= 40; ++id) ASSERT_TRUE(store_->Publish(IdReservationKey(id), "").ok());
  EXPECT_EQ(*repo->ReserveCheckpointId(), 41u);
}

TEST_F(RepositoryTest, ConcurrentReservationsAreUnique) {
  CreateRepo();
  std::vector<std::unique_ptr<Repository>> repos;
  for (int i = 0; i < 4; ++i) repos.push_back(OpenRepo());
  std::vector<std::vector<uint64_t>> got(repos.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < repos.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        absl::StatusOr<uint64_t> id = repos[t]->ReserveCheckpointId();
        ASSERT_TRUE(id.ok()) << id.status();
        got[t].push_back(*id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<uint64_t> all;
  for (const auto& ids : got) {
    for (size_t i = 1; i < ids.size(); ++i) EXPECT_GT(ids[i], ids[i - 1]);
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), repos.size() * 50);
}

TEST_F(RepositoryTest, CommitRoundTrip) {
  std::unique_ptr<Repository> repo = CreateRepo();
  EXPECT_EQ(*repo->LatestCommitId(), std::nullopt);
  const uint64_t id = *repo->ReserveCheckpointId();
  ASSERT_TRUE(repo->PublishCommit(Record(id)).ok());
  const uint64_t id2 = *repo->ReserveCheckpointId();
  CommitRecord r2 = Record(id2);
  r2.parent = id;
  r2.kind = CheckpointKind::kIncremental;
  r2.depth = 1;
  r2.participants[0].state_objects[0].kind = CheckpointKind::kIncremental;
  r2.participants[0].state_objects[0].depth = 1;
  ASSERT_TRUE(repo->PublishCommit(r2).ok());

  std::unique_ptr<Repository> reader = OpenRepo();
  EXPECT_EQ(*reader->ListCommitIds(), (std::vector<uint64_t>{id, id2}));
  EXPECT_EQ(*reader->LatestCommitId(), id2);
  absl::StatusOr<CommitRecord> read = reader->ReadCommit(id2);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->id, id2);
  EXPECT_EQ(read->parent, id);
  EXPECT_EQ(read->kind, CheckpointKind::kIncremental);
  EXPECT_EQ(read->created, r2.created);
  EXPECT_EQ(read->metadata, r2.metadata);
  EXPECT_EQ(read->participants[0].state_objects[0].manifest,
            r2.participants[0].state_objects[0].manifest);
}

TEST_F(RepositoryTest, PublishingACommitTwiceIsAlreadyExists) {
  std::unique_ptr<Repository> repo = CreateRepo();
  ASSERT_TRUE(repo->PublishCommit(Record(3)).ok());
  absl::Status s = OpenRepo()->PublishCommit(Record(3));
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_NE(Msg(s).find("checkpoint 3"), std::string::npos) << s;
}

TEST_F(RepositoryTest, PublishRejectsAnInvalidRecord) {
  std::unique_ptr<Repository> repo = CreateRepo();
  CommitRecord r = Record(4);
  r.kind = CheckpointKind::kIncremental;  // no parent
  EXPECT_TRUE(absl::IsInvalidArgument(repo->PublishCommit(r)));
  EXPECT_TRUE(absl::IsNotFound(store_->Get(CommitKey(4)).status()));
}

TEST_F(RepositoryTest, ReadCommitErrors) {
  std::unique_ptr<Repository> repo = CreateRepo();
  absl::Status s = repo->ReadCommit(42).status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(Msg(s).find("checkpoint 42 not found"), std::string::npos) << s;

  // A valid record under the wrong key: damage, not checkpoint 9.
  ASSERT_TRUE(store_->Publish(CommitKey(10), EncodeCommitRecord(Record(9))).ok());
  s = repo->ReadCommit(10).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;

  // A damaged record is reported, never skipped (§6).
  std::string bytes = EncodeCommitRecord(Record(11));
  bytes[20] ^= 1;
  ASSERT_TRUE(store_->Publish(CommitKey(11), bytes).ok());
  s = repo->ReadCommit(11).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(Msg(s).find(CommitKey(11)), std::string::npos) << s;
  EXPECT_EQ(*repo->ListCommitIds(), (std::vector<uint64_t>{10, 11}));
}

TEST_F(RepositoryTest, StrayKeysUnderCommitsAreIgnored) {
  std::unique_ptr<Repository> repo = CreateRepo();
  ASSERT_TRUE(repo->PublishCommit(Record(5)).ok());
  ASSERT_TRUE(store_->Put("commits/readme", "x").ok());
  ASSERT_TRUE(store_->Put("commits/00000000000000000099.bak", "x").ok());
  EXPECT_EQ(*repo->ListCommitIds(), (std::vector<uint64_t>{5}));
  EXPECT_EQ(*repo->ReserveCheckpointId(), 6u);
}

}  // namespace
}  // namespace ickpt

namespace ickpt {
namespace {

// The group commit (format.md §11) on its own: what it refuses, and what the record it writes
// holds.
class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::Create(NewMemoryStore());
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = *std::move(repo);
  }
  // An acknowledgement of checkpoint `id` by `participant`, full unless `parent` is given.
  static CommitRecord Ack(uint64_t id, const std::string& participant,
                          std::optional<uint64_t> parent = std::nullopt) {
    CommitRecord r;
    r.id = id;
    r.parent = parent;
    r.created = absl::FromUnixNanos(1'800'000'000'000'000'000 + id * 1000 + participant.size());
    const std::string sha = ToHex(Sha256(participant + std::to_string(id)));
    StateObjectRecord o;
    o.name = "kv";
    o.type = StateObjectType::kKeyed;
    o.manifest = ManifestKey(sha);
    o.manifest_sha256 = sha;
    o.tracker = "keyed";
    o.key_groups = 128;
    o.entries = 10;
    o.logical_bytes = 100;
    o.stored_bytes = 50;
    if (parent.has_value()) {
      o.kind = CheckpointKind::kIncremental;
      o.depth = 1;
      r.kind = CheckpointKind::kIncremental;
      r.depth = 1;
    }
    r.participants = {{.name = participant, .state_objects = {o}}};
    r.logical_bytes = 100;
    r.stored_bytes = 50;
    return r;
  }
  std::unique_ptr<Repository> repo_;
};

TEST_F(GroupCommitTest, CommitsEveryAcknowledgementInOneRecord) {
  CommitRecord a = Ack(1, "p0"), b = Ack(1, "p1");
  a.metadata = {{"offset/p0", "10"}};
  b.metadata = {{"offset/p1", "20"}};
  ASSERT_TRUE(repo_->PublishAck(a).ok());
  ASSERT_TRUE(repo_->PublishAck(b).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(repo_->PublishAck(a)));
  GroupCommitOptions options;
  options.participants = {"p1", "p0"};
  options.metadata = {{"job", "wordcount"}};
  absl::StatusOr<CommitRecord> c = repo_->CommitGroup(1, options);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->participants.size(), 2u);
  EXPECT_EQ(c->participants[0].name, "p0");  // participant-name order
  EXPECT_EQ(c->logical_bytes, 200u);
  EXPECT_EQ(c->stored_bytes, 100u);
  EXPECT_EQ(c->created, a.created);  // the earliest
  EXPECT_EQ(c->metadata.size(), 3u);
  absl::StatusOr<CommitRecord> read = repo_->ReadCommit(1);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->participants.size(), 2u);
  EXPECT_TRUE(absl::IsAlreadyExists(repo_->CommitGroup(1, options).status()));
}

TEST_F(GroupCommitTest, RefusesWithoutWritingAnything) {
  auto refused = [&](uint64_t id, const GroupCommitOptions& options, std::string_view why) {
    absl::Status s = repo_->CommitGroup(id, options).status();
    EXPECT_TRUE(absl::IsFailedPrecondition(s) || absl::IsInvalidArgument(s)) << s;
    EXPECT_NE(std::string(s.message()).find(why), std::string::npos) << s;
    EXPECT_TRUE(absl::IsNotFound(repo_->ReadCommit(id).status()));
  };
  GroupCommitOptions both;
  both.participants = {"p0", "p1"};
  // A participant missing.
  ASSERT_TRUE(repo_->PublishAck(Ack(1, "p0")).ok());
  refused(1, both, "'p1'");
  // Parents disagree.
  ASSERT_TRUE(repo_->PublishAck(Ack(2, "p0")).ok());
  ASSERT_TRUE(repo_->PublishAck(Ack(2, "p1", /*parent=*/1)).ok());
  refused(2, both, "parent");
  // Built on a checkpoint that is not committed.
  ASSERT_TRUE(repo_->PublishAck(Ack(3, "p0", 1)).ok());
  ASSERT_TRUE(repo_->PublishAck(Ack(3, "p1", 1)).ok());
  refused(3, both, "not committed");
  // Metadata given twice with different values, and an epoch that is not the group's.
  CommitRecord a = Ack(4, "p0"), b = Ack(4, "p1");
  a.metadata = {{"offset", "1"}};
  b.metadata = {{"offset", "2"}};
  ASSERT_TRUE(repo_->PublishAck(a).ok());
  ASSERT_TRUE(repo_->PublishAck(b).ok());
  refused(4, both, "metadata");
  ASSERT_TRUE(repo_->PublishAck(Ack(5, "p0")).ok());
  ASSERT_TRUE(repo_->PublishAck(Ack(5, "p1")).ok());
  GroupCommitOptions epoch = both;
  epoch.epoch = 7;
  refused(5, epoch, "epoch");
  // A participant named twice, or none.
  GroupCommitOptions twice;
  twice.participants = {"p0", "p0"};
  refused(5, twice, "twice");
  refused(5, GroupCommitOptions{}, "no participant");
  // An acknowledgement must be of one participant with a name usable in a key.
  CommitRecord bad = Ack(6, "P 0");
  EXPECT_TRUE(absl::IsInvalidArgument(repo_->PublishAck(bad)));
  CommitRecord two = Ack(6, "p0");
  two.participants.push_back(Ack(6, "p1").participants[0]);
  EXPECT_TRUE(absl::IsInvalidArgument(repo_->PublishAck(two)));
  // After all that, the listing shows exactly what was acknowledged.
  absl::StatusOr<std::vector<std::string>> acks = repo_->ListAcks(2);
  ASSERT_TRUE(acks.ok());
  EXPECT_EQ(*acks, (std::vector<std::string>{"p0", "p1"}));
}

}  // namespace
}  // namespace ickpt

namespace ickpt {
namespace {

// A store that says it cannot publish without overwrite (an S3 bucket without conditional writes,
// say): nothing is written there.
class OverwritingStore : public ObjectStoreWrapper {
 public:
  using ObjectStoreWrapper::ObjectStoreWrapper;
  bool publishes_without_overwrite() const override { return false; }
};

TEST_F(RepositoryTest, StoreThatCannotPublishWithoutOverwriteIsRefusedForWriting) {
  absl::Status s = Repository::Create(std::make_unique<OverwritingStore>(store_.get())).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  ASSERT_OK_AND_ASSIGN(std::vector<ObjectInfo> objects, store_->List(""));
  EXPECT_TRUE(objects.empty()) << "nothing may be written";
  ASSERT_NE(CreateRepo(), nullptr);
  s = Repository::Open(std::make_unique<OverwritingStore>(store_.get())).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  s = Repository::OpenOrCreate(std::make_unique<OverwritingStore>(store_.get())).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
}

// format.md §7, §12.1: an empty reservation cannot tell whose it is, so one that failed
// ambiguously (written, reply lost) counts as lost and the next id is reserved.
TEST_F(RepositoryTest, IdReservationAfterAnAmbiguousFailureMovesToTheNextId) {
  std::unique_ptr<Repository> first = CreateRepo();
  ASSERT_OK_AND_ASSIGN(uint64_t a, first->ReserveCheckpointId());
  auto faulty = std::make_unique<FaultInjectionStore>(store_.get());
  FaultInjectionStore* faults = faulty.get();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo, Repository::Open(std::move(faulty)));
  faults->LoseReplyOfNthCallMatching(IdReservationKey(a + 1), 1);
  ASSERT_OK_AND_ASSIGN(uint64_t b, repo->ReserveCheckpointId());
  EXPECT_EQ(b, a + 2) << "id " << a + 1 << " landed but its reply was lost: it is skipped";
  ASSERT_OK(store_->Size(IdReservationKey(a + 1)).status());
  // Nobody else gets the lost id either.
  ASSERT_OK_AND_ASSIGN(uint64_t c, first->ReserveCheckpointId());
  EXPECT_GT(c, b);
}

// format.md §12.1: a commit record and an acknowledgement whose publish landed but whose reply was
// lost are this writer's success; a second writer of other bytes is told AlreadyExists.
TEST_F(RepositoryTest, CommitAndAckAfterALostReplyAreTheWritersOwn) {
  ASSERT_NE(CreateRepo(), nullptr);
  auto faulty = std::make_unique<FaultInjectionStore>(store_.get());
  FaultInjectionStore* faults = faulty.get();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo, Repository::Open(std::move(faulty)));
  faults->LoseReplyOfNthCallMatching("commits/", 1);
  ASSERT_OK(repo->PublishCommit(Record(5)));
  ASSERT_OK_AND_ASSIGN(CommitRecord read, repo->ReadCommit(5));
  EXPECT_EQ(read.metadata, Record(5).metadata);
  CommitRecord other = Record(5);
  other.metadata["offset"] = "other";
  EXPECT_TRUE(absl::IsAlreadyExists(OpenRepo()->PublishCommit(other)));

  CommitRecord ack = Record(7);
  faults->LoseReplyOfNthCallMatching("acks/", 1);
  ASSERT_OK(repo->PublishAck(ack));
  ASSERT_OK_AND_ASSIGN(CommitRecord read_ack, repo->ReadAck(7, "p0"));
  EXPECT_EQ(read_ack.id, 7u);
}

TEST(RepositoryUrlTest, PathsAndFileUrlsAreAcceptedOtherSchemesAreRefusedByName) {
  EXPECT_OK(ValidateRepositoryUrl("/var/ckpt/job1"));
  EXPECT_OK(ValidateRepositoryUrl("relative/dir"));
  EXPECT_OK(ValidateRepositoryUrl("file:///var/ckpt/job1"));
  EXPECT_OK(ValidateRepositoryUrl("file://localhost/var/ckpt/job1"));
  EXPECT_OK(ValidateRepositoryUrl("s3://bucket/x?endpoint=http://127.0.0.1:7480"));
  // An s3:// URL that is malformed is refused saying why (s3_store_test has the cases).
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateRepositoryUrl("s3://bucket/x")));
  for (const char* url : {"gs://b/p", "http://host/p", "S3://b"}) {
    absl::Status s = ValidateRepositoryUrl(url);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << url;
    const std::string scheme = std::string(url).substr(0, std::string(url).find(':'));
    EXPECT_NE(Msg(s).find("'" + scheme + "'"), std::string::npos) << s;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateRepositoryUrl("")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateRepositoryUrl("file://")));
}

TEST(RepositoryUrlTest, FileUrlOpensTheLocalRepositoryAndUnknownSchemesCreateNothing) {
  testing::TempDir dir;
  const std::string path = dir.Join("repo");
  ASSERT_OK(Repository::OpenUrl("file://" + path, /*create=*/true).status());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RepositoryReader> reader, Repository::OpenReadOnly(path));
  EXPECT_EQ(reader->config().major, 1);
  const std::string cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  absl::Status s = Repository::OpenUrl("s3://bucket/x", /*create=*/true).status();
  std::filesystem::current_path(cwd);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_FALSE(std::filesystem::exists(dir.Join("s3:"))) << "a directory named 's3:' was created";
}

}  // namespace
}  // namespace ickpt
