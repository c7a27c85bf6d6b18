// Fault injection at both storage layers: every I/O call of a checkpoint failed in turn. Each
// failure must end that checkpoint with a clean error, leave the process running, and the next
// checkpoint must succeed and contain every change (checked by restoring it).
//
// The same for a restore: every read call of a restore failed in turn (and every object it reads
// damaged in turn); each ends in a clean error naming the cause, the checkpointer refuses
// checkpoints only if the restore had started changing state, and a retried restore is bit-exact.
//
// Power-loss torture: checkpoints cut by a simulated power loss after a random number of
// file-system operations; the latest commit must restore to exactly what it captured.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "src/store/fault_file_system.h"
#include "src/store/fault_store.h"
#include "src/testing/restore_util.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// A region as a fresh checkpointer restored it, and the commit record it came from.
struct RestoredRegion {
  CommitRecord record;
  std::string bytes;
};
// Restores checkpoint `id` (the latest if nullopt) of `repo` into a new Checkpointer that creates
// the checkpoint's regions, and returns the bytes of region `name`. NotFound if the checkpoint has
// no such region; the restore's own error otherwise.
absl::StatusOr<RestoredRegion> RestoreRegionFresh(Repository* repo, std::optional<uint64_t> id,
                                                  std::string_view name) {
  absl::StatusOr<testing::FreshRestore> restored = testing::RestoreFresh(repo, id);
  if (!restored.ok()) return restored.status();
  Region* region = restored->checkpointer->FindRegion(name);
  if (region == nullptr) {
    return absl::NotFoundError(
        StrCat("checkpoint ", restored->record.id, " has no region '", name, "'"));
  }
  return RestoredRegion{std::move(restored->record), std::string(region->data(), region->size())};
}

constexpr uint32_t kBlock = 4096;

void Scribble(Region* r, std::mt19937_64& rng, int blocks) {
  for (int i = 0; i < blocks; ++i) {
    char* p = r->data() + (rng() % r->block_count()) * kBlock;
    for (uint32_t k = 0; k < kBlock; k += 8) {
      uint64_t v = rng();
      std::memcpy(p + k, &v, 8);
    }
  }
}

// Restores the latest checkpoint of `repo` into a fresh checkpointer and compares with `expected`.
void ExpectLatestEquals(Repository* repo, const std::string& expected) {
  ASSERT_OK_AND_ASSIGN(RestoredRegion latest, RestoreRegionFresh(repo, std::nullopt, "grid"));
  ASSERT_EQ(latest.bytes.size(), expected.size());
  EXPECT_EQ(0, std::memcmp(latest.bytes.data(), expected.data(), expected.size()));
}

// The persist and restore pipelines as the fault tests run them (docs/persist.md): small packs, so
// that a checkpoint writes many, several of them put at once, and restores reading several at once.
RepositoryOptions SmallPacks() {
  RepositoryOptions options;
  options.config.pack_target_bytes = 16 << 10;  // four 4 KiB blocks a pack
  return options;
}
CheckpointerOptions ManyInFlight() {
  CheckpointerOptions co;
  co.persist_threads = 2;
  co.uploads_in_flight = 4;
  co.restore_threads = 4;
  return co;
}

// Object-store layer: fail call n of a checkpoint for every n the checkpoint makes, with several
// packs in flight. A checkpoint that fails commits nothing.
TEST(StoreFaultMatrixTest, EveryFailedCallFailsCleanlyAndTheNextCheckpointCarriesEverything) {
  auto base = NewMemoryStore();
  auto fault = std::make_unique<FaultInjectionStore>(base.get());
  FaultInjectionStore* faults = fault.get();
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(fault), SmallPacks()));
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get(), ManyInFlight()));
  RegionOptions ro;
  ro.size = 64 * kBlock;
  ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
  std::mt19937_64 rng(7);
  Scribble(r, rng, 64);
  ASSERT_OK(ckpt->Checkpoint().value().Wait().status());

  // Count the calls one checkpoint of 24 changed blocks makes: six packs or more.
  Scribble(r, rng, 24);
  const int64_t before = faults->call_count();
  ASSERT_OK(ckpt->Checkpoint().value().Wait().status());
  const int64_t calls = faults->call_count() - before;
  ASSERT_GE(calls, 6);  // packs, manifest, commit record (+ the next id, reserved ahead)

  int failed = 0;
  for (int64_t n = 1; n <= calls + 2; ++n) {
    SCOPED_TRACE(::testing::Message() << "failing call " << n << " of " << calls);
    Scribble(r, rng, 24);
    ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest_before, repo->LatestCommitId());
    faults->FailNthCall(n, absl::UnavailableError("injected I/O error"));
    auto handle = ckpt->Checkpoint();
    if (handle.ok()) {
      absl::Status s = handle->Wait().status();
      if (!s.ok()) {
        ++failed;
        EXPECT_NE(std::string(s.message()).find("injected"), std::string::npos) << s;
        faults->ClearFaults();
        ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> latest_after, repo->LatestCommitId());
        EXPECT_EQ(latest_after, latest_before) << "a failed checkpoint committed";
      }
    }
    faults->ClearFaults();
    const std::string expected(r->data(), r->size());
    ASSERT_OK_AND_ASSIGN(auto next, ckpt->Checkpoint());
    ASSERT_OK(next.Wait().status());
    ExpectLatestEquals(repo.get(), expected);
  }
  EXPECT_GE(failed, 6);
}

// File-system layer under the local store: fail every mutating file-system call in turn, with
// each kind of failure, and also cut the power after each failure.
TEST(FileSystemFaultMatrixTest, EveryFailedOperationFailsCleanly) {
  testing::TempDir dir;
  FaultInjectionFileSystem fs(DefaultFileSystem());
  LocalStoreOptions so;
  so.file_system = &fs;
  so.create_if_missing = true;
  ASSERT_OK_AND_ASSIGN(auto store, OpenLocalStore(dir.Join("repo"), so));
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(store), SmallPacks()));
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get(), ManyInFlight()));
  RegionOptions ro;
  ro.size = 32 * kBlock;
  ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
  std::mt19937_64 rng(9);
  Scribble(r, rng, 32);
  ASSERT_OK(ckpt->Checkpoint().value().Wait().status());

  Scribble(r, rng, 4);
  const int64_t before = fs.operation_count();
  ASSERT_OK(ckpt->Checkpoint().value().Wait().status());
  const int64_t ops = fs.operation_count() - before;
  ASSERT_GT(ops, 5);

  const absl::Status kinds[] = {absl::UnavailableError("injected EIO"),
                                absl::ResourceExhaustedError("injected ENOSPC")};
  for (const absl::Status& kind : kinds) {
    for (int64_t n = 1; n <= ops + 1; ++n) {
      SCOPED_TRACE(::testing::Message() << kind << " at operation " << n << " of " << ops);
      Scribble(r, rng, 2);
      fs.FailNthOperation(n, kind);
      auto handle = ckpt->Checkpoint();
      if (handle.ok()) handle->Wait().status().IgnoreError();  // may fail: that is the point
      fs.ClearFaults();
      const std::string expected(r->data(), r->size());
      ASSERT_OK_AND_ASSIGN(auto next, ckpt->Checkpoint());
      ASSERT_OK(next.Wait().status());
      ExpectLatestEquals(repo.get(), expected);
    }
  }
}

// Failed fsync and short writes, each followed by a power cut: what was committed before survives.
TEST(FileSystemFaultMatrixTest, PowerLossAfterFailedSyncOrShortWriteKeepsCommittedState) {
  testing::TempDir dir;
  FaultInjectionFileSystem fs(DefaultFileSystem());
  LocalStoreOptions so;
  so.file_system = &fs;
  so.create_if_missing = true;
  ASSERT_OK_AND_ASSIGN(auto store, OpenLocalStore(dir.Join("repo"), so));
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(store)));
  RegionOptions ro;
  ro.size = 16 * kBlock;
  std::mt19937_64 rng(3);
  std::string committed;  // the region as of the latest successful checkpoint
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE(::testing::Message() << "round " << round);
    ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get()));
    ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
    if (!committed.empty()) {
      ASSERT_OK(ckpt->Restore().status());
    }
    Scribble(r, rng, 3);
    const std::string captured(r->data(), r->size());
    const int64_t n = 1 + static_cast<int64_t>(rng() % 6);
    if (round % 2 == 0) {
      fs.FailNthSync(n, absl::UnavailableError("injected fsync failure"));
    } else {
      fs.ShortWriteNth(n);
    }
    auto handle = ckpt->Checkpoint();
    const bool ok = handle.ok() && handle->Wait().ok();
    fs.ClearFaults();
    ckpt.reset();
    if (ok) committed = captured;
    ASSERT_OK(fs.SimulatePowerLoss());
    // After the power cut the latest commit restores to exactly what it captured.
    ASSERT_OK_AND_ASSIGN(auto latest, repo->LatestCommitId());
    ASSERT_EQ(latest.has_value(), !committed.empty());
    if (latest.has_value()) ExpectLatestEquals(repo.get(), committed);
  }
}

// ---------------------------------------------------------------------------------------------
// Restore fault matrix

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// What one read call of a restore touched (an object key or a file path) and how many bytes it
// returned.
struct ReadCall {
  std::string name;
  uint64_t bytes = 0;
};

// Object-store layer: logs every read call, so a test knows what the nth call of a restore reads.
class ReadLogStore : public ObjectStoreWrapper {
 public:
  using ObjectStoreWrapper::ObjectStoreWrapper;
  absl::StatusOr<std::string> Get(std::string_view key) override {
    absl::StatusOr<std::string> r = ObjectStoreWrapper::Get(key);
    Note(key, r.ok() ? r->size() : 0);
    return r;
  }
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    absl::StatusOr<std::string> r = ObjectStoreWrapper::GetRange(key, offset, length);
    Note(key, r.ok() ? r->size() : 0);
    return r;
  }
  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    Note(key, 0);
    return ObjectStoreWrapper::Size(key);
  }
  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override {
    Note(prefix, 0);
    return ObjectStoreWrapper::ListPage(prefix, start_after, max_keys);
  }
  std::vector<ReadCall> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(reads_, {});
  }

 private:
  void Note(std::string_view key, uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    reads_.push_back(ReadCall{std::string(key), bytes});
  }
  std::mutex mu_;
  std::vector<ReadCall> reads_;
};

// File-system layer: forwards to the real file system and logs the read calls.
class ReadLogFileSystem : public FileSystemWrapper {
 public:
  absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t offset,
                                       uint64_t length) override {
    absl::StatusOr<std::string> r = target()->ReadFile(path, offset, length);
    Note(path, r.ok() ? r->size() : 0);
    return r;
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    Note(path, 0);
    return target()->FileSize(path);
  }
  absl::StatusOr<absl::Time> ModificationTime(const std::string& path) override {
    Note(path, 0);
    return target()->ModificationTime(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    Note(path, 0);
    return target()->ListDir(path);
  }
  absl::StatusOr<bool> IsDirectory(const std::string& path) override {
    Note(path, 0);
    return target()->IsDirectory(path);
  }
  std::vector<ReadCall> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(reads_, {});
  }

 private:
  void Note(const std::string& path, uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    reads_.push_back(ReadCall{path, bytes});
  }
  std::mutex mu_;
  std::vector<ReadCall> reads_;
};

// A checkpointer with region "grid" over a repository holding a chain: one full checkpoint and four
// incrementals, spread over many small packs. `target` is the newest checkpoint of the chain and
// `expected` what it restores to.
struct Chain {
  std::unique_ptr<Repository> repo;
  std::unique_ptr<Checkpointer> ckpt;
  Region* region = nullptr;
  uint64_t target = 0;
  std::string expected;
  std::mt19937_64 rng{11};

  void Build(std::unique_ptr<ObjectStore> store) {
    ASSERT_OK_AND_ASSIGN(repo, Repository::Create(std::move(store), SmallPacks()));
    ASSERT_OK_AND_ASSIGN(ckpt, Checkpointer::Open(repo.get(), ManyInFlight()));
    RegionOptions ro;
    ro.size = 32 * kBlock;
    ASSERT_OK_AND_ASSIGN(region, ckpt->AddRegion("grid", ro));
    Scribble(region, rng, 32);
    for (int i = 0; i < 5; ++i) {
      if (i > 0) Scribble(region, rng, 5);
      ASSERT_OK_AND_ASSIGN(auto handle, ckpt->Checkpoint());
      ASSERT_OK_AND_ASSIGN(CommitRecord record, handle.Wait());
      EXPECT_EQ(record.kind, i == 0 ? CheckpointKind::kFull : CheckpointKind::kIncremental);
      target = record.id;
    }
    expected.assign(region->data(), region->size());
  }

  RestoreOptions TargetOptions() const {
    RestoreOptions ro;
    ro.id = target;
    return ro;
  }

  bool RegionIs(const std::string& bytes) const {
    return region->size() == bytes.size() &&
           std::memcmp(region->data(), bytes.data(), bytes.size()) == 0;
  }

  // Restores `target` without faults: must be bit-exact.
  void ExpectRestoresExactly() {
    ASSERT_OK(ckpt->Restore(TargetOptions()).status());
    EXPECT_TRUE(RegionIs(expected)) << "restored bytes differ";
  }

  // Fails read call n of a restore of `target` for every n in [1, reads.size()], through
  // `inject(n)`; `is_data(name)` says whether a read is of pack data (read after the restore began
  // to change state). After each failure: a clean error containing `injected`, checkpoints refused
  // exactly when state may have changed, the retried restore bit-exact, the next checkpoint OK.
  template <typename Inject, typename Clear, typename IsData>
  void FailEveryRead(const std::vector<ReadCall>& reads, Inject inject, Clear clear, IsData is_data,
                     std::string_view injected) {
    int refused = 0, allowed = 0;
    for (size_t n = 1; n <= reads.size(); ++n) {
      SCOPED_TRACE(::testing::Message() << "failing read " << n << " of " << reads.size() << " ("
                                        << reads[n - 1].name << ")");
      Scribble(region, rng, 3);
      const std::string before(region->data(), region->size());
      inject(static_cast<int64_t>(n));
      absl::StatusOr<CommitRecord> failed = ckpt->Restore(TargetOptions());
      clear();
      ASSERT_FALSE(failed.ok()) << "a restore with a failed read succeeded";
      EXPECT_NE(std::string(failed.status().message()).find(injected), std::string::npos)
          << failed.status();
      // Reads run on several threads, so the nth read need not be the object logged nth; the
      // error names whichever object it was.
      const std::string message(failed.status().message());
      EXPECT_TRUE(message.find("commits/") != std::string::npos ||
                  message.find("manifests/") != std::string::npos ||
                  message.find("packs/") != std::string::npos ||
                  message.find("ids/") != std::string::npos ||
                  message.find("merges/") != std::string::npos ||
                  message.find("epochs/") != std::string::npos)
          << "the error does not name the object: " << failed.status();
      EXPECT_FALSE(absl::IsDataLoss(failed.status()))
          << "an I/O error must not be reported as damage: " << failed.status();
      const bool data_phase = is_data(reads[n - 1].name);
      if (!RegionIs(before)) {
        EXPECT_TRUE(data_phase) << "a failed read of metadata changed state";
      }
      absl::StatusOr<CheckpointHandle> attempt = ckpt->TryCheckpoint();
      if (data_phase) {
        ++refused;
        EXPECT_TRUE(absl::IsFailedPrecondition(attempt.status())) << attempt.status();
      } else {
        ++allowed;
        ASSERT_OK(attempt.status()) << "a restore that changed nothing must not block checkpoints";
        ASSERT_OK(attempt->Wait().status());
      }
      ASSERT_NO_FATAL_FAILURE(ExpectRestoresExactly());
      ASSERT_OK_AND_ASSIGN(auto next, ckpt->Checkpoint());
      ASSERT_OK(next.Wait().status());
      ExpectLatestEquals(repo.get(), expected);
    }
    EXPECT_GT(refused, 0);
    EXPECT_GT(allowed, 0);
  }
};

bool IsPackKey(std::string_view key) { return key.starts_with("packs/"); }
bool IsPackPath(std::string_view path) { return path.find("/packs/") != std::string_view::npos; }

// Object-store layer: every call of a restore of a chain failed in turn, without and with latency.
TEST(RestoreFaultMatrixTest, EveryFailedStoreCallOfARestoreFailsCleanlyAndARetryIsExact) {
  auto base = NewMemoryStore();
  ReadLogStore log(base.get());
  auto fault = std::make_unique<FaultInjectionStore>(&log);
  FaultInjectionStore* faults = fault.get();
  Chain c;
  ASSERT_NO_FATAL_FAILURE(c.Build(std::move(fault)));

  // Count the calls one restore of the chain makes, and what each reads.
  Scribble(c.region, c.rng, 3);
  log.Take();
  const int64_t before = faults->call_count();
  ASSERT_NO_FATAL_FAILURE(c.ExpectRestoresExactly());
  const int64_t calls = faults->call_count() - before;
  const std::vector<ReadCall> reads = log.Take();
  ASSERT_EQ(static_cast<int64_t>(reads.size()), calls);
  std::set<std::string> commits, manifests, packs;
  for (const ReadCall& r : reads) {
    if (r.name.starts_with("commits/")) commits.insert(r.name);
    if (r.name.starts_with("manifests/")) manifests.insert(r.name);
    if (IsPackKey(r.name)) packs.insert(r.name);
  }
  EXPECT_EQ(commits.size(), 5u);
  EXPECT_EQ(manifests.size(), 5u);
  EXPECT_GE(packs.size(), 8u);

  for (const absl::Duration latency : {absl::ZeroDuration(), absl::Microseconds(200)}) {
    SCOPED_TRACE(::testing::Message() << "latency " << latency);
    ASSERT_NO_FATAL_FAILURE(c.FailEveryRead(
        reads,
        [&](int64_t n) {
          faults->SetLatency(latency);
          faults->FailNthCall(n, absl::UnavailableError("injected store error"));
        },
        [&] { faults->ClearFaults(); }, IsPackKey, "injected store error"));
  }
  // Latency alone slows a restore down and changes nothing else.
  Scribble(c.region, c.rng, 3);
  faults->SetLatency(absl::Milliseconds(1));
  ASSERT_NO_FATAL_FAILURE(c.ExpectRestoresExactly());
  faults->ClearFaults();
  std::cout << "restore fault matrix (store): calls=" << calls << " commits=" << commits.size()
            << " manifests=" << manifests.size() << " packs=" << packs.size() << std::endl;
}

// File-system layer under the local store: every read call of a restore failed in turn.
TEST(RestoreFaultMatrixTest, EveryFailedFileSystemReadOfARestoreFailsCleanlyAndARetryIsExact) {
  testing::TempDir dir;
  ReadLogFileSystem log;
  FaultInjectionFileSystem fs(&log);
  LocalStoreOptions so;
  so.file_system = &fs;
  so.create_if_missing = true;
  ASSERT_OK_AND_ASSIGN(auto store, OpenLocalStore(dir.Join("repo"), so));
  Chain c;
  ASSERT_NO_FATAL_FAILURE(c.Build(std::move(store)));

  Scribble(c.region, c.rng, 3);
  log.Take();
  const int64_t before = fs.read_count();
  ASSERT_NO_FATAL_FAILURE(c.ExpectRestoresExactly());
  const int64_t reads_made = fs.read_count() - before;
  const std::vector<ReadCall> reads = log.Take();
  ASSERT_EQ(static_cast<int64_t>(reads.size()), reads_made);
  ASSERT_GT(reads_made, 20);

  ASSERT_NO_FATAL_FAILURE(c.FailEveryRead(
      reads, [&](int64_t n) { fs.FailNthRead(n, absl::UnavailableError("injected EIO on read")); },
      [&] { fs.ClearFaults(); }, IsPackPath, "injected EIO on read"));
  std::cout << "restore fault matrix (file system): reads=" << reads_made << std::endl;
}

// Every object a restore reads, damaged in turn (one bit flipped at the start, middle and end of
// each read of it): the restore reports DataLoss naming the object, or, when the flipped byte is
// one it fetched but never uses, restores the right bytes. Never wrong bytes.
TEST(RestoreFaultMatrixTest, AByteFlippedInAnyObjectARestoreReadsIsDataLossNeverWrongBytes) {
  auto base = NewMemoryStore();
  ReadLogStore log(base.get());
  auto fault = std::make_unique<FaultInjectionStore>(&log);
  FaultInjectionStore* faults = fault.get();
  Chain c;
  ASSERT_NO_FATAL_FAILURE(c.Build(std::move(fault)));
  Scribble(c.region, c.rng, 3);
  log.Take();
  ASSERT_NO_FATAL_FAILURE(c.ExpectRestoresExactly());
  // (key, offset in a read result) pairs: the first, middle and last byte of every read.
  std::set<std::pair<std::string, uint64_t>> flips;
  for (const ReadCall& r : log.Take()) {
    if (r.bytes == 0) continue;
    for (uint64_t at : {uint64_t{0}, r.bytes / 2, r.bytes - 1}) flips.emplace(r.name, at);
  }
  ASSERT_GT(flips.size(), 30u);
  int detected = 0, harmless = 0;
  for (const auto& [key, at] : flips) {
    SCOPED_TRACE(::testing::Message() << "flipping byte " << at << " of reads of " << key);
    Scribble(c.region, c.rng, 3);
    const std::string before(c.region->data(), c.region->size());
    faults->FlipByteOnRead(key, at);
    absl::StatusOr<CommitRecord> r = c.ckpt->Restore(c.TargetOptions());
    faults->ClearFaults();
    // Packs are read on several threads and every frame is verified before its bytes are copied:
    // after a failed restore each block holds what it held before or what the checkpoint holds,
    // never a byte of the damaged frame.
    for (uint64_t b = 0; b < c.region->block_count(); ++b) {
      const std::string_view now(c.region->data() + b * kBlock, kBlock);
      ASSERT_TRUE(now == std::string_view(before).substr(b * kBlock, kBlock) ||
                  now == std::string_view(c.expected).substr(b * kBlock, kBlock))
          << "block " << b << " holds bytes that are neither its old nor its restored content";
    }
    if (r.ok()) {
      ++harmless;
      EXPECT_TRUE(c.RegionIs(c.expected)) << "a restore handed out wrong bytes";
    } else {
      ++detected;
      EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
      // The message names the damaged object (a pack or manifest by its hash).
      const std::string hash = key.substr(key.rfind('/') + 1);
      EXPECT_NE(std::string(r.status().message()).find(hash), std::string::npos) << r.status();
    }
    ASSERT_NO_FATAL_FAILURE(c.ExpectRestoresExactly());
  }
  std::cout << "restore byte flips: " << flips.size() << " detected=" << detected
            << " harmless=" << harmless << std::endl;
  EXPECT_GT(detected, static_cast<int>(flips.size()) * 9 / 10);
}

// ---------------------------------------------------------------------------------------------
// Power-loss torture

// Rounds of 1-4 checkpoints, each round cut short by a failed file-system operation at a random
// count (the writer stops there) followed by a simulated power loss. After every cut the latest
// commit must restore to exactly the state it captured (region "grid" and keyed state "table"), and
// no checkpoint whose Wait() returned OK may be lost. ICKPT_POWER_LOSS_ROUNDS sets the rounds
// (default 200).
TEST(PowerLossTortureTest, LatestCommitRestoresExactlyAfterPowerCutsAtRandomOperations) {
  const int rounds = EnvInt("ICKPT_POWER_LOSS_ROUNDS", 200);
  testing::TempDir dir;
  FaultInjectionFileSystem fs(DefaultFileSystem());
  LocalStoreOptions so;
  so.file_system = &fs;
  so.create_if_missing = true;
  ASSERT_OK_AND_ASSIGN(auto store, OpenLocalStore(dir.Join("repo"), so));
  RepositoryOptions options;
  options.config.pack_target_bytes = 16 << 10;
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(store), options));
  ASSERT_OK(fs.SimulatePowerLoss());  // nothing of the creation may be lost: it fsyncs everything
  RegionOptions ro;
  ro.size = 16 * kBlock;
  std::mt19937_64 rng(EnvInt("ICKPT_POWER_LOSS_SEED", 5));
  std::map<std::string, std::string> captured;  // by the "tag" metadata of a checkpoint
  using Table = std::map<std::string, std::string>;
  std::map<std::string, Table> captured_table;
  auto contents = [](const KeyedState& state) {
    Table out;
    state.ForEach([&](std::string_view k, std::string_view v) { out.emplace(k, v); });
    return out;
  };
  uint64_t acked_id = 0;
  int cut_mid_checkpoint = 0, lost = 0, corrupt = 0, restores = 0;
  const int64_t max_ops = 4 * 40;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE(::testing::Message() << "round " << round);
    ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get(), ManyInFlight()));
    ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
    ASSERT_OK_AND_ASSIGN(KeyedState * table, ckpt->AddKeyedState("table"));
    ASSERT_OK_AND_ASSIGN(auto latest, repo->LatestCommitId());
    if (latest.has_value()) {
      ASSERT_OK(ckpt->Restore().status());
    }
    fs.FailNthOperation(1 + static_cast<int64_t>(rng() % max_ops),
                        absl::UnavailableError("injected: the power goes out here"));
    const int checkpoints = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < checkpoints; ++k) {
      Scribble(r, rng, 1 + static_cast<int>(rng() % 4));
      for (int op = static_cast<int>(rng() % 8); op > 0; --op) {
        const std::string key = StrCat("k", rng() % 64);
        if (rng() % 3 == 0) {
          table->Erase(key);
        } else {
          ASSERT_OK(table->Put(key, testing::RandomBytes(rng() % 64, rng())));
        }
      }
      const std::string tag = StrCat(round, ".", k);
      captured[tag].assign(r->data(), r->size());
      captured_table[tag] = contents(*table);
      CheckpointOptions co;
      co.metadata["tag"] = tag;
      absl::StatusOr<CheckpointHandle> handle = ckpt->Checkpoint(co);
      absl::StatusOr<CommitRecord> record =
          handle.ok() ? handle->Wait() : absl::StatusOr<CommitRecord>(handle.status());
      if (!record.ok()) {
        ++cut_mid_checkpoint;
        break;  // the writer stopped at the failed operation: the power goes out now
      }
      acked_id = std::max(acked_id, record->id);
    }
    ckpt.reset();
    fs.ClearFaults();
    ASSERT_OK(fs.SimulatePowerLoss());

    ASSERT_OK_AND_ASSIGN(latest, repo->LatestCommitId());
    if (!latest.has_value()) {
      EXPECT_EQ(acked_id, 0u);
      continue;
    }
    if (*latest < acked_id) {
      ++lost;
      ADD_FAILURE() << "checkpoint " << acked_id << " was acknowledged, the latest is " << *latest;
    }
    ASSERT_OK_AND_ASSIGN(auto fresh, Checkpointer::Open(repo.get(), ManyInFlight()));
    ASSERT_OK_AND_ASSIGN(Region * grid, fresh->AddRegion("grid", ro));
    ASSERT_OK_AND_ASSIGN(KeyedState * restored_table, fresh->AddKeyedState("table"));
    ASSERT_OK_AND_ASSIGN(CommitRecord record, fresh->Restore());
    ++restores;
    const std::string& tag = record.metadata.at("tag");
    if (std::string(grid->data(), grid->size()) != captured.at(tag) ||
        contents(*restored_table) != captured_table.at(tag)) {
      ++corrupt;
      ADD_FAILURE() << "checkpoint " << record.id << " (" << tag
                    << ") does not restore to what it captured";
    }
  }
  std::cout << "power_loss: rounds=" << rounds << " cut_mid_checkpoint=" << cut_mid_checkpoint
            << " restores=" << restores << " lost_commits=" << lost
            << " corrupt_restores=" << corrupt << std::endl;
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(corrupt, 0);
  EXPECT_GT(cut_mid_checkpoint, rounds / 4);
}

}  // namespace
}  // namespace ickpt
