// Garbage collection and consolidation beside a running writer and readers, each a separate
// process, all killed with SIGKILL at random points (format.md §13.4, §14), on a real local
// repository with real time. The writer consolidates in the background too, and its complete
// manifests reuse blocks that the consolidator process moves (§14.5). Claims checked:
//   - no reader ever reports damage: a checkpoint removed while read is "not found", and every
//     checkpoint a reader restores is bit-exact;
//   - no collector ever finds damage (it refuses to delete on damage, and there must be none);
//   - every consolidation verifies (it reads the checkpoint both ways before publishing);
//   - after the processes stop and a final collection, the stored packs and manifests are exactly
//     those the remaining commit records reach, those are exactly the kept checkpoints and what
//     they need, and every one restores bit-exact.
//
// Environment:
//   ICKPT_GC_TORTURE_SECONDS  how long the processes run (default 20); long runs: 600 and more
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "src/repo/keys.h"
#include "src/repo/reachability.h"
#include "src/repo/repository_internal.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

constexpr uint64_t kBlocks = 64;
constexpr uint64_t kBlockBytes = 4096;
constexpr absl::Duration kGrace = absl::Seconds(2);
constexpr absl::Duration kCheckpointTimeout = absl::Seconds(1);
constexpr absl::Duration kLockTtl = absl::Seconds(3);
constexpr uint64_t kKeepLast = 3;

// Exit codes of a child that found something wrong (a killed child has none).
constexpr int kExitDamaged = 3;
constexpr int kExitWrongBytes = 4;
constexpr int kExitError = 5;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// Step s writes three blocks chosen by s, each filled from (s, block): the region's content after
// step s is a pure function of s, so any process can compute what a checkpoint must hold.
void ApplyStep(uint64_t step, char* data) {
  std::mt19937_64 rng(step);
  for (int i = 0; i < 3; ++i) {
    const uint64_t block = rng() % kBlocks;
    uint64_t x = step * 1'000'003 + block;
    for (uint64_t off = 0; off < kBlockBytes; off += 8) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      std::memcpy(data + block * kBlockBytes + off, &x, 8);
    }
  }
}

std::string ContentAfter(uint64_t step) {
  std::string content(kBlocks * kBlockBytes, '\0');
  for (uint64_t s = 1; s <= step; ++s) ApplyStep(s, content.data());
  return content;
}

CheckpointerOptions WriterOptions() {
  CheckpointerOptions options;
  options.policy = NewFullEveryNPolicy(6);  // full checkpoints reuse blocks (§14.5)
  options.gc_after_commit = false;          // the collector is a process of its own here
  options.consolidate_after_links = 3;
  options.consolidate.lock_ttl = kLockTtl;
  options.persist_threads = 1;
  options.capture_threads = 1;
  return options;
}

// Restores checkpoint `id` and compares it with its step. OK, or NotFound if it was removed.
absl::Status RestoreAndCheck(Repository* repo, uint64_t id, int* exit_code) {
  absl::StatusOr<CommitRecord> record = repo->ReadCommit(id);
  if (!record.ok()) return record.status();
  CheckpointerOptions options = WriterOptions();
  absl::StatusOr<std::unique_ptr<Checkpointer>> c = Checkpointer::Open(repo, options);
  if (!c.ok()) return c.status();
  RestoreOptions restore;
  restore.id = id;
  restore.on_unregistered = OnUnregistered::kCreate;
  absl::StatusOr<CommitRecord> restored = (*c)->Restore(restore);
  if (!restored.ok()) return restored.status();
  const uint64_t step = std::stoull(record->metadata.at("step"));
  Region* grid = (*c)->FindRegion("grid");
  if (grid == nullptr || std::string(grid->data(), grid->size()) != ContentAfter(step)) {
    *exit_code = kExitWrongBytes;
    return absl::InternalError(
        StrCat("checkpoint ", id, " (step ", step, ") restored wrong bytes"));
  }
  return absl::OkStatus();
}

[[noreturn]] void Die(int code, const std::string& why) {
  std::fprintf(stderr, "gc torture child %d: %s\n", getpid(), why.c_str());
  std::fflush(stderr);
  _exit(code);
}

[[noreturn]] void RunWriter(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenLocal(path, false);
  if (!repo.ok()) Die(kExitError, repo.status().ToString());
  absl::StatusOr<std::unique_ptr<Checkpointer>> c =
      Checkpointer::Open(repo->get(), WriterOptions());
  if (!c.ok()) Die(kExitError, c.status().ToString());
  absl::StatusOr<Region*> grid = (*c)->AddRegion("grid", {.size = kBlocks * kBlockBytes});
  if (!grid.ok()) Die(kExitError, grid.status().ToString());
  uint64_t step = 0;
  absl::StatusOr<std::optional<uint64_t>> latest = (*repo)->LatestCommitId();
  if (!latest.ok()) Die(kExitError, latest.status().ToString());
  if (latest->has_value()) {
    // The latest is always kept (format.md §13.1), so a restart always finds it.
    absl::StatusOr<CommitRecord> r = (*c)->Restore();
    if (!r.ok())
      Die(absl::IsDataLoss(r.status()) ? kExitDamaged : kExitError, r.status().ToString());
    step = std::stoull(r->metadata.at("step"));
  }
  for (;;) {
    ApplyStep(++step, (*grid)->data());
    CheckpointOptions options;
    options.metadata["step"] = std::to_string(step);
    absl::StatusOr<CheckpointHandle> h = (*c)->Checkpoint(options);
    if (!h.ok()) Die(kExitError, h.status().ToString());
    // A failed checkpoint's changes go into the next one, whose step covers them.
    (void)h->Wait();
  }
}

[[noreturn]] void RunCollector(const std::string& path, uint64_t seed) {
  std::mt19937_64 rng(seed);
  absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenLocal(path, false);
  if (!repo.ok()) Die(kExitError, repo.status().ToString());
  GcOptions options;
  options.grace = kGrace;
  options.lock_ttl = kLockTtl;
  for (;;) {
    absl::StatusOr<GcReport> report = CollectGarbage(**repo, options);
    if (absl::IsDataLoss(report.status())) Die(kExitDamaged, report.status().ToString());
    if (!report.ok() && !absl::IsAborted(report.status())) {
      Die(kExitError, report.status().ToString());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
  }
}

// Consolidates the latest or a random committed checkpoint, copying out of packs used below a
// random fraction, and verifies every consolidation against the chain it replaces.
[[noreturn]] void RunConsolidator(const std::string& path, const std::string& tally,
                                  uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int tally_fd = open(tally.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
  absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenLocal(path, false);
  if (!repo.ok()) Die(kExitError, repo.status().ToString());
  for (;;) {
    absl::StatusOr<std::vector<uint64_t>> ids = (*repo)->ListCommitIds();
    if (!ids.ok()) Die(kExitError, ids.status().ToString());
    if (!ids->empty()) {
      const uint64_t id = rng() % 2 == 0 ? ids->back() : (*ids)[rng() % ids->size()];
      ConsolidateOptions options;
      options.min_pack_use = std::array<double, 3>{0, 0.5, 1.0}[rng() % 3];
      options.verify = true;
      options.lock_ttl = kLockTtl;
      absl::StatusOr<ConsolidationReport> report = Consolidate(**repo, id, options);
      const absl::Status& s = report.status();
      if (absl::IsDataLoss(s)) Die(kExitDamaged, s.ToString());
      if (absl::IsInternal(s)) Die(kExitWrongBytes, s.ToString());
      // Lock busy or a lost race; removed or condemned meanwhile; too slow: all expected.
      if (!s.ok() && !absl::IsAborted(s) && !absl::IsNotFound(s) &&
          !absl::IsFailedPrecondition(s) && !absl::IsDeadlineExceeded(s)) {
        Die(kExitError, s.ToString());
      }
      if (s.ok() && report->generation != 0) (void)!write(tally_fd, "c", 1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
  }
}

// Readers append one byte per checkpoint verified ('v') or found removed ('r') to `tally`, and
// the consolidator one per consolidation published ('c'), so that the test can show that each
// happened.
[[noreturn]] void RunReader(const std::string& path, const std::string& tally, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int tally_fd = open(tally.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
  absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenLocal(path, false);
  if (!repo.ok()) Die(kExitError, repo.status().ToString());
  for (;;) {
    absl::StatusOr<std::vector<uint64_t>> ids = (*repo)->ListCommitIds();
    if (!ids.ok()) Die(kExitError, ids.status().ToString());
    if (ids->empty()) continue;
    // Mostly the oldest ones: those are what the collector removes.
    const uint64_t id = (*ids)[rng() % 2 == 0 ? 0 : rng() % ids->size()];
    int code = kExitDamaged;
    absl::Status s = RestoreAndCheck(repo->get(), id, &code);
    if (s.ok() || absl::IsNotFound(s)) {
      (void)!write(tally_fd, s.ok() ? "v" : "r", 1);
      continue;
    }
    Die(absl::IsDataLoss(s) || code == kExitWrongBytes ? code : kExitError, s.ToString());
  }
}

enum class Role { kWriter, kCollector, kConsolidator, kReader };

struct Child {
  Role role;
  pid_t pid = -1;
};

TEST(GcTortureTest, WriterCollectorConsolidatorAndReadersKilledAtRandomLoseNothing) {
  testing::TempDir dir;
  const std::string path = dir.Join("repo");
  {
    RetentionPolicy policy;
    policy.keep_last = kKeepLast;
    policy.checkpoint_timeout = kCheckpointTimeout;
    RepositoryOptions options;
    options.retention = policy;
    ASSERT_OK(Repository::OpenLocal(path, /*create=*/true, options).status());
  }
  const auto budget = std::chrono::seconds(EnvInt("ICKPT_GC_TORTURE_SECONDS", 20));
  std::mt19937_64 rng(EnvInt("ICKPT_GC_TORTURE_SEED", 1));
  uint64_t seed = 100;
  auto spawn = [&](Role role) {
    const uint64_t child_seed = ++seed;
    const pid_t pid = fork();
    if (pid == 0) {
      switch (role) {
        case Role::kWriter:
          RunWriter(path);
        case Role::kCollector:
          RunCollector(path, child_seed);
        case Role::kConsolidator:
          RunConsolidator(path, dir.Join("tally"), child_seed);
        case Role::kReader:
          RunReader(path, dir.Join("tally"), child_seed);
      }
    }
    return Child{role, pid};
  };
  std::vector<Child> children = {spawn(Role::kWriter), spawn(Role::kCollector),
                                 spawn(Role::kConsolidator), spawn(Role::kReader),
                                 spawn(Role::kReader)};
  std::map<Role, int> kills;
  // A child that exits by itself found something wrong: its exit code says what.
  auto check_exited = [&](const Child& c, int wstatus) {
    if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) return;
    ADD_FAILURE() << "child (role " << static_cast<int>(c.role) << ") ended with status " << wstatus
                  << " (exit " << (WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1)
                  << "; 3 = damaged, 4 = wrong bytes or a consolidation that did not verify, "
                     "5 = error; its stderr says why)";
  };
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < budget && !HasFailure()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 400));
    for (Child& c : children) {
      int wstatus = 0;
      if (waitpid(c.pid, &wstatus, WNOHANG) == c.pid) {
        check_exited(c, wstatus);
        c = spawn(c.role);
      }
    }
    Child& victim = children[rng() % children.size()];
    ASSERT_EQ(0, kill(victim.pid, SIGKILL));
    int wstatus = 0;
    ASSERT_EQ(victim.pid, waitpid(victim.pid, &wstatus, 0));
    check_exited(victim, wstatus);
    ++kills[victim.role];
    victim = spawn(victim.role);
  }
  for (Child& c : children) {
    kill(c.pid, SIGKILL);
    int wstatus = 0;
    waitpid(c.pid, &wstatus, 0);
    check_exited(c, wstatus);
  }
  ASSERT_FALSE(HasFailure());

  // The final collection: once the last writer's leftovers and the last collector's lock are
  // older than the grace period and the ttl, one run condemns, and one after the grace period
  // removes.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Repository> repo, Repository::OpenLocal(path, false));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> before, repo->ListCommitIds());
  GcOptions options;
  options.grace = kGrace;
  options.lock_ttl = kLockTtl;
  absl::SleepFor(std::max(kGrace, kLockTtl) + absl::Milliseconds(300));
  ASSERT_OK(CollectGarbage(*repo, options).status());
  absl::SleepFor(kGrace + absl::Milliseconds(300));
  ASSERT_OK_AND_ASSIGN(GcReport last, CollectGarbage(*repo, options));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
  ASSERT_GE(ids.size(), kKeepLast);
  // What remains is exactly the kept checkpoints and what they need.
  const std::vector<uint64_t> kept(ids.end() - kKeepLast, ids.end());
  ASSERT_OK_AND_ASSIGN(Reachable needed, ComputeReachable(*repo, kept));
  std::set<uint64_t> needed_ids;
  for (const std::string& key : needed.commits) needed_ids.insert(*ParseIdKey(key, kCommitsPrefix));
  EXPECT_EQ(std::set<uint64_t>(ids.begin(), ids.end()), needed_ids);
  // The stored packs and manifests are exactly those reached.
  ObjectStore* store = RepositoryInternal::store(*repo);
  std::set<std::string> stored, reached;
  for (std::string_view prefix : {kPacksPrefix, kManifestsPrefix}) {
    ASSERT_OK_AND_ASSIGN(std::vector<ObjectInfo> objects, store->List(prefix));
    for (const ObjectInfo& info : objects) stored.insert(info.key);
  }
  reached.insert(needed.packs.begin(), needed.packs.end());
  reached.insert(needed.manifests.begin(), needed.manifests.end());
  EXPECT_EQ(stored, reached);
  ASSERT_OK_AND_ASSIGN(std::vector<ObjectInfo> leftovers, store->List("condemned/"));
  EXPECT_TRUE(leftovers.empty());
  // Consolidations left: only those in force of the remaining checkpoints (§14.4).
  ASSERT_OK_AND_ASSIGN(leftovers, store->List("merges/"));
  std::set<std::string> consolidations;
  for (const ObjectInfo& info : leftovers) consolidations.insert(info.key);
  EXPECT_EQ(consolidations, needed.consolidations);
  ASSERT_OK_AND_ASSIGN(leftovers, store->List("acks/"));
  EXPECT_TRUE(leftovers.empty());
  ASSERT_OK_AND_ASSIGN(leftovers, store->List("ids/"));
  EXPECT_EQ(leftovers.size(), 1u);
  for (uint64_t id : ids) {
    int code = 0;
    EXPECT_OK(RestoreAndCheck(repo.get(), id, &code)) << "checkpoint " << id;
  }
  uint64_t verified = 0, removed = 0, consolidated = 0;
  {
    std::string tally(1 << 20, '\0');
    const int fd = open(dir.Join("tally").c_str(), O_RDONLY);
    ssize_t n = 0;
    while (fd >= 0 && (n = read(fd, tally.data(), tally.size())) > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        (tally[i] == 'v' ? verified : tally[i] == 'c' ? consolidated : removed)++;
      }
    }
    if (fd >= 0) close(fd);
  }
  std::printf(
      "gc torture: %zu commits at the end of the run (latest id %llu), %zu kept, %zu of them "
      "consolidated; %llu consolidations published by the consolidator; kills: writer %d, "
      "collector %d, consolidator %d, readers %d; readers "
      "verified %llu restores bit-exact and found %llu checkpoints removed while they read; the "
      "last run deleted %llu objects\n",
      before.size(), before.empty() ? 0ULL : static_cast<unsigned long long>(before.back()),
      ids.size(), consolidations.size(), static_cast<unsigned long long>(consolidated),
      kills[Role::kWriter], kills[Role::kCollector], kills[Role::kConsolidator],
      kills[Role::kReader], static_cast<unsigned long long>(verified),
      static_cast<unsigned long long>(removed),
      static_cast<unsigned long long>(last.deleted_objects));
  EXPECT_GT(verified, 0u);
  EXPECT_GT(consolidated, 0u);
  EXPECT_GT(kills[Role::kWriter] + kills[Role::kCollector], 0);
}

}  // namespace
}  // namespace ickpt
