// Fault injection at both storage layers: every I/O call of a checkpoint failed in turn. Each
// failure must end that checkpoint with a clean error, leave the process running, and the next
// checkpoint must succeed and contain every change (checked by restoring it).
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "src/store/fault_file_system.h"
#include "src/store/fault_store.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"

namespace ickpt {
namespace {

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
  ASSERT_OK_AND_ASSIGN(testing::RestoredRegion latest,
                       testing::RestoreRegionFresh(repo, std::nullopt, "grid"));
  ASSERT_EQ(latest.bytes.size(), expected.size());
  EXPECT_EQ(0, std::memcmp(latest.bytes.data(), expected.data(), expected.size()));
}

// Object-store layer: fail call n of a checkpoint for every n the checkpoint makes.
TEST(StoreFaultMatrixTest, EveryFailedCallFailsCleanlyAndTheNextCheckpointCarriesEverything) {
  auto base = NewMemoryStore();
  auto fault = std::make_unique<FaultInjectionStore>(base.get());
  FaultInjectionStore* faults = fault.get();
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(fault)));
  CheckpointerOptions co;
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get(), co));
  RegionOptions ro;
  ro.size = 64 * kBlock;
  ASSERT_OK_AND_ASSIGN(Region * r, ckpt->AddRegion("grid", ro));
  std::mt19937_64 rng(7);
  Scribble(r, rng, 64);
  ASSERT_OK(ckpt->Checkpoint().value().Wait().status());

  // Count the calls one checkpoint makes.
  Scribble(r, rng, 5);
  const int64_t before = faults->call_count();
  ASSERT_OK(ckpt->Checkpoint().value().Wait().status());
  const int64_t calls = faults->call_count() - before;
  ASSERT_GE(calls, 3);  // pack, manifest, commit record (+ the next id, reserved ahead)

  for (int64_t n = 1; n <= calls + 2; ++n) {
    SCOPED_TRACE(::testing::Message() << "failing call " << n << " of " << calls);
    Scribble(r, rng, 3);
    faults->FailNthCall(n, absl::UnavailableError("injected I/O error"));
    auto handle = ckpt->Checkpoint();
    if (handle.ok()) {
      absl::Status s = handle->Wait().status();
      if (!s.ok()) {
        EXPECT_NE(std::string(s.message()).find("injected"), std::string::npos) << s;
      }
    }
    faults->ClearFaults();
    const std::string expected(r->data(), r->size());
    ASSERT_OK_AND_ASSIGN(auto next, ckpt->Checkpoint());
    ASSERT_OK(next.Wait().status());
    ExpectLatestEquals(repo.get(), expected);
  }
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
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::Create(std::move(store)));
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpointer::Open(repo.get()));
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

}  // namespace
}  // namespace ickpt
