// Crash consistency under real process death: a child process checkpoints a deterministic workload
// into a local repository as fast as it can and is killed with SIGKILL at a random moment, over and
// over, restarting from the latest checkpoint each time. After every kill the parent checks that the
// repository's latest commit restores to exactly the workload's state at the step recorded in that
// commit's metadata, and that no checkpoint the child saw committed (Wait() returned OK) was lost.
//
// The workload's state after step N is a pure function of (seed, N): step s applies mutations drawn
// from Mix(seed, s) on top of the state after step s - 1, starting from zeros. The parent replays
// the steps into a plain buffer to know what every checkpoint must restore to.
//
// At the end every committed checkpoint is restored and compared, every pack is verified in full
// (VerifyPack) and every manifest decoded and checked against its name.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/repository.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/pack.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kRegionBytes = 4 << 20;  // 1024 blocks
constexpr uint64_t kBlocks = kRegionBytes / kBlock;
constexpr uint64_t kSeed = 0x6b696c6c;  // "kill"
constexpr char kRegionName[] = "grid";

// SplitMix64 finaliser: the per-step seed.
uint64_t Mix(uint64_t seed, uint64_t step) {
  uint64_t z = seed ^ (step * 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Applies step `step` of the workload to `mem` (kRegionBytes, block-aligned). In the child `mem`
// is region memory and freed blocks are released with MADV_DONTNEED (they read back as zero); in
// the parent's replay they are zeroed.
void ApplyStep(char* mem, uint64_t seed, uint64_t step, bool use_madvise) {
  std::mt19937_64 rng(Mix(seed, step));
  const int ops = 1 + static_cast<int>(rng() % 12);
  for (int op = 0; op < ops; ++op) {
    const uint64_t kind = rng() % 10;
    const uint64_t first = rng() % kBlocks;
    const uint64_t run = std::min<uint64_t>(kBlocks - first, 1 + rng() % (kind < 6 ? 8 : 4));
    char* p = mem + first * kBlock;
    const uint64_t bytes = run * kBlock;
    if (kind < 6) {  // random (incompressible) data
      for (uint64_t k = 0; k < bytes; k += 8) {
        const uint64_t v = rng();
        std::memcpy(p + k, &v, 8);
      }
    } else if (kind < 8) {  // zeroed by the application
      std::memset(p, 0, bytes);
    } else if (kind == 8) {  // released to the kernel
      if (use_madvise) {
        if (madvise(p, bytes, MADV_DONTNEED) != 0) std::abort();
      } else {
        std::memset(p, 0, bytes);
      }
    } else {  // one scattered byte
      p[rng() % bytes] ^= static_cast<char>(1 + rng() % 255);
    }
  }
}

// The workload state, replayed forward on demand. Steps only ever increase while it is used.
class Replay {
 public:
  Replay() : state_(kRegionBytes, '\0') {}
  const std::string& At(uint64_t step) {
    if (step < step_) {
      state_.assign(kRegionBytes, '\0');
      step_ = 0;
    }
    while (step_ < step) ApplyStep(state_.data(), kSeed, ++step_, /*use_madvise=*/false);
    return state_;
  }

 private:
  std::string state_;
  uint64_t step_ = 0;
};

[[noreturn]] void Die(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "kill_test child: %s: %s\n", what, status.ToString().c_str());
  std::fflush(stderr);
  _exit(2);
}

// Messages from the child, 8 bytes each: a step, with kCaptured set once Checkpoint() returned for
// it (captured, now persisting) and clear once its Wait() returned OK (committed).
constexpr uint64_t kCaptured = uint64_t{1} << 63;

// The child: resume from the latest checkpoint and checkpoint every step until killed, reporting
// captures and commits on `ack_fd`.
[[noreturn]] void RunChild(const std::string& repo_path, int ack_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
  RepositoryOptions ro;
  ro.config.pack_target_bytes = 256 << 10;
  auto repo = Repository::OpenLocal(repo_path, /*create=*/true, ro);
  if (!repo.ok()) Die("open repository", repo.status());
  auto ckpt = Checkpointer::Open(repo->get());
  if (!ckpt.ok()) Die("open checkpointer", ckpt.status());
  RegionOptions region_options;
  region_options.size = kRegionBytes;
  region_options.block_size = kBlock;
  region_options.tracker = TrackerKind::kHash;
  auto region = (*ckpt)->AddRegion(kRegionName, region_options);
  if (!region.ok()) Die("add region", region.status());
  uint64_t step = 0;
  auto latest = (*repo)->LatestCommitId();
  if (!latest.ok()) Die("latest", latest.status());
  if (latest->has_value()) {
    auto restored = (*ckpt)->Restore();
    if (!restored.ok()) Die("restore", restored.status());
    step = std::stoull(restored->metadata.at("step"));
  }
  std::optional<CheckpointHandle> pending;
  uint64_t pending_step = 0;
  for (;;) {
    ++step;
    ApplyStep((*region)->data(), kSeed, step, /*use_madvise=*/true);
    CheckpointOptions co;
    co.metadata["step"] = std::to_string(step);
    // Waits for the previous checkpoint to persist, then captures; persistence of this one overlaps
    // the next step's mutations.
    auto handle = (*ckpt)->Checkpoint(co);
    if (!handle.ok()) Die("checkpoint", handle.status());
    const uint64_t captured = step | kCaptured;
    if (write(ack_fd, &captured, sizeof captured) != sizeof captured) _exit(3);
    if (pending.has_value()) {
      auto record = pending->Wait();
      if (!record.ok()) Die("wait", record.status());
      if (write(ack_fd, &pending_step, sizeof pending_step) != sizeof pending_step) _exit(3);
    }
    pending = *handle;
    pending_step = step;
  }
}

// Restores checkpoint `id` (latest if nullopt) into a fresh checkpointer and returns the region
// bytes and the step recorded in the commit.
struct Restored {
  uint64_t id = 0;
  uint64_t step = 0;
  std::string bytes;
};
absl::StatusOr<Restored> RestoreFresh(Repository* repo, std::optional<uint64_t> id) {
  absl::StatusOr<testing::RestoredRegion> restored =
      testing::RestoreRegionFresh(repo, id, kRegionName);
  if (!restored.ok()) return restored.status();
  Restored out;
  out.id = restored->record.id;
  out.step = std::stoull(restored->record.metadata.at("step"));
  out.bytes = std::move(restored->bytes);
  return out;
}

// Reservations without a commit record: checkpoints that were started but never committed.
absl::StatusOr<std::set<uint64_t>> UncommittedReservations(Repository* repo) {
  std::set<uint64_t> ids;
  auto reserved = repo->store()->List(kIdsPrefix);
  if (!reserved.ok()) return reserved.status();
  for (const ObjectInfo& info : *reserved) {
    if (auto id = ParseIdKey(info.key, kIdsPrefix)) ids.insert(*id);
  }
  auto committed = repo->ListCommitIds();
  if (!committed.ok()) return committed.status();
  for (uint64_t id : *committed) ids.erase(id);
  return ids;
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

TEST(KillTest, SigkillAtRandomMomentsNeverLosesOrCorruptsACommit) {
  testing::TempDir dir;
  const std::string repo_path = dir.Join("repo");
  const int min_kills = EnvInt("ICKPT_KILL_TEST_KILLS", 60);
  const auto budget = std::chrono::seconds(EnvInt("ICKPT_KILL_TEST_SECONDS", 45));
  const auto start = std::chrono::steady_clock::now();
  std::mt19937_64 rng(EnvInt("ICKPT_KILL_TEST_SEED", 1));

  Replay replay;
  int kills = 0, restores = 0, lost_commits = 0, corrupt_restores = 0, empty_after_kill = 0;
  int kills_mid_checkpoint = 0;  // reserved ids without a commit record (some reserved ahead)
  int kills_during_persistence = 0;  // a captured checkpoint's commit record never appeared
  uint64_t acked_step = 0;       // highest step the child saw committed, over all runs
  uint64_t latest_step = 0;
  std::set<uint64_t> seen_uncommitted;

  while (kills < min_kills || std::chrono::steady_clock::now() - start < budget / 3) {
    if (std::chrono::steady_clock::now() - start > budget) break;
    int fds[2];
    ASSERT_EQ(0, pipe(fds));
    const int delay_ms = 1 + static_cast<int>(rng() % 60);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunChild(repo_path, fds[1]);
    }
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ASSERT_EQ(0, kill(pid, SIGKILL));
    int wstatus = 0;
    ASSERT_EQ(pid, waitpid(pid, &wstatus, 0));
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "the child died on its own (status " << wstatus << "); see its stderr";
    ++kills;
    uint64_t message = 0, captured_step = 0;
    while (read(fds[0], &message, sizeof message) == sizeof message) {
      if (message & kCaptured) {
        captured_step = std::max(captured_step, message & ~kCaptured);
      } else {
        acked_step = std::max(acked_step, message);
      }
    }
    close(fds[0]);

    // The first kills may land before the repository exists.
    if (access((repo_path + "/config").c_str(), F_OK) != 0) {
      ++empty_after_kill;
      continue;
    }
    ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(repo_path, /*create=*/false));
    ASSERT_OK_AND_ASSIGN(auto uncommitted, UncommittedReservations(repo.get()));
    for (uint64_t id : uncommitted) {
      if (seen_uncommitted.insert(id).second) ++kills_mid_checkpoint;
    }
    ASSERT_OK_AND_ASSIGN(auto latest, repo->LatestCommitId());
    if (!latest.has_value()) {
      ++empty_after_kill;
      EXPECT_EQ(acked_step, 0u) << "checkpoints were acknowledged but none is in the repository";
      continue;
    }
    auto restored = RestoreFresh(repo.get(), std::nullopt);
    ASSERT_OK(restored.status()) << "after kill " << kills;
    ++restores;
    if (restored->step < acked_step || restored->step < latest_step) {
      ++lost_commits;
      ADD_FAILURE() << "after kill " << kills << " the latest commit " << restored->id
                    << " holds step " << restored->step << " but step "
                    << std::max(acked_step, latest_step) << " was committed";
    }
    latest_step = std::max(latest_step, restored->step);
    // The kill came after the capture of `captured_step`; if its commit is not there, the kill
    // landed while it was persisting.
    if (captured_step > restored->step) ++kills_during_persistence;
    const std::string& expected = replay.At(restored->step);
    if (restored->bytes != expected) {
      ++corrupt_restores;
      ADD_FAILURE() << "after kill " << kills << " checkpoint " << restored->id << " (step "
                    << restored->step << ") does not restore to the workload's state";
    }
  }

  // Full check: every committed checkpoint restores exactly; every object verifies.
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(repo_path, /*create=*/false));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
  Replay full_replay;
  uint64_t previous_step = 0;
  int checked_commits = 0;
  for (uint64_t id : ids) {
    auto restored = RestoreFresh(repo.get(), id);
    ASSERT_OK(restored.status()) << "checkpoint " << id;
    // Steps never decrease with ids: each run resumes from the latest commit.
    ASSERT_GE(restored->step, previous_step) << "checkpoint " << id;
    previous_step = restored->step;
    if (restored->bytes != full_replay.At(restored->step)) {
      ++corrupt_restores;
      ADD_FAILURE() << "checkpoint " << id << " (step " << restored->step << ") differs";
    }
    ++checked_commits;
  }
  ObjectStore* store = repo->store();
  ASSERT_OK_AND_ASSIGN(auto packs, store->List(kPacksPrefix));
  for (const ObjectInfo& info : packs) {
    auto hash = ParseHashKey(info.key, kPacksPrefix);
    ASSERT_TRUE(hash.has_value()) << info.key;
    ASSERT_OK_AND_ASSIGN(std::string bytes, store->Get(info.key));
    EXPECT_OK(VerifyPack(bytes, *hash, info.key).status());
  }
  ASSERT_OK_AND_ASSIGN(auto manifests, store->List(kManifestsPrefix));
  for (const ObjectInfo& info : manifests) {
    auto hash = ParseHashKey(info.key, kManifestsPrefix);
    ASSERT_TRUE(hash.has_value()) << info.key;
    ASSERT_OK_AND_ASSIGN(std::string bytes, store->Get(info.key));
    EXPECT_EQ(ToHex(Sha256(bytes)), *hash) << info.key;
    EXPECT_OK(DecodeManifest(bytes, info.key).status());
  }

  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "kill_test: kills=" << kills << " restores=" << restores
            << " kills_during_persistence=" << kills_during_persistence
            << " uncommitted_reservations=" << kills_mid_checkpoint
            << " empty_after_kill=" << empty_after_kill << " lost_commits=" << lost_commits
            << " corrupt_restores=" << corrupt_restores << " commits=" << checked_commits
            << " packs=" << packs.size() << " manifests=" << manifests.size()
            << " final_step=" << latest_step << " acked_step=" << acked_step << " seconds="
            << seconds << std::endl;
  ::testing::Test::RecordProperty("kills", kills);
  ::testing::Test::RecordProperty("restores", restores);
  ::testing::Test::RecordProperty("kills_during_persistence", kills_during_persistence);
  ::testing::Test::RecordProperty("uncommitted_reservations", kills_mid_checkpoint);
  ::testing::Test::RecordProperty("lost_commits", lost_commits);
  ::testing::Test::RecordProperty("corrupt_restores", corrupt_restores);
  ::testing::Test::RecordProperty("commits_checked", checked_commits);
  EXPECT_GE(kills, min_kills) << "the time budget ran out first";
  EXPECT_EQ(lost_commits, 0);
  EXPECT_EQ(corrupt_restores, 0);
  EXPECT_GT(restores, kills / 2);
  // Some kills must have hit a checkpoint after its capture and before its commit record.
  EXPECT_GT(kills_during_persistence, 0);
}

}  // namespace
}  // namespace ickpt
