// Crash torture under real process death: a child process checkpoints a deterministic workload
// into a local repository as fast as it can and is killed with SIGKILL at a random moment, over and
// over, restarting from the latest checkpoint each time. After every kill the parent checks that
// the repository's latest commit restores to exactly the workload's state recorded in that commit's
// metadata, and that no checkpoint the child saw committed (Wait() returned OK) was lost.
//
// The workload: region "grid" grows every few steps, region "aux" is added at step kAuxStep (both
// pure functions of the step), keyed state "table" exists from the start, and step s applies
// mutations drawn from Mix(seed, salt, s) on top of the state after step s - 1, starting from zeros
// and an empty table: block writes, zeroing and MADV_DONTNEED in the regions, puts (binary keys,
// values of 0 to 300 bytes) and erases in the table. Now and then the child restores an OLDER
// checkpoint and continues from it under a fresh salt (a branch). Every commit records in its
// metadata its step and its history, the list of (step, salt) points where a branch began, so the
// state at a commit is a pure function of its metadata; the parent replays it into plain buffers.
//
// Driver knobs (environment):
//   ICKPT_TORTURE_KILLS    kills to make (default 60: the CI mode)
//   ICKPT_TORTURE_SECONDS  time budget for the kills (default 45); running out first fails
//   ICKPT_TORTURE_SEED     seed of the kill delays (default 1)
// Long mode: ICKPT_TORTURE_KILLS=1000 ICKPT_TORTURE_SECONDS=1800. The test prints one summary line,
//   torture: kills=N restores=N kills_during_persist=N lost_commits=N corrupt_restores=N
// where the last two must be 0.
//
// At the end every committed checkpoint is restored and compared, every pack is verified in full
// (VerifyPack) and every manifest decoded and checked against its name.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/checkpointer.h"
#include "ickpt/repository.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/pack.h"
#include "src/repo/repository_internal.h"
#include "src/testing/restore_util.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"
#include "src/util/hash.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kSeed = 0x6b696c6c;  // "kill"
constexpr char kGrid[] = "grid";
constexpr char kAux[] = "aux";
constexpr char kTable[] = "table";
constexpr uint32_t kTableGroups = 32;
// "grid" starts at kGridBlocks0 blocks and grows by kGridGrowth blocks every kGrowEvery steps, up
// to kGridGrowths times. "aux" (kAuxBlocks) exists from step kAuxStep on.
constexpr uint64_t kGridBlocks0 = 768;
constexpr uint64_t kGridGrowth = 16;
constexpr uint64_t kGrowEvery = 2;
constexpr uint64_t kGridGrowths = 64;
constexpr uint64_t kAuxStep = 5;
constexpr uint64_t kAuxBlocks = 256;

uint64_t GridBlocks(uint64_t step) {
  return kGridBlocks0 + kGridGrowth * std::min(step / kGrowEvery, kGridGrowths);
}

// SplitMix64 finaliser: the per-step seed.
uint64_t Mix(uint64_t seed, uint64_t step) {
  uint64_t z = seed ^ (step * 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Where branches began: steps after `from_step` (up to the next segment's) use `salt`. The first
// segment is always {0, 0}.
struct Segment {
  uint64_t from_step = 0;
  uint64_t salt = 0;
  bool operator==(const Segment&) const = default;
};
using History = std::vector<Segment>;

std::string EncodeHistory(const History& h) {
  std::string out;
  for (const Segment& s : h) {
    if (!out.empty()) out += ';';
    out += StrCat(s.from_step, ":", s.salt);
  }
  return out;
}

bool ParseU64(std::string_view text, uint64_t* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

std::optional<History> ParseHistory(std::string_view text) {
  History h;
  while (!text.empty()) {
    const size_t semi = text.find(';');
    const std::string_view part = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    const size_t colon = part.find(':');
    Segment s;
    if (colon == std::string_view::npos || !ParseU64(part.substr(0, colon), &s.from_step) ||
        !ParseU64(part.substr(colon + 1), &s.salt)) {
      return std::nullopt;
    }
    h.push_back(s);
  }
  if (h.empty() || h.front() != Segment{}) return std::nullopt;
  return h;
}

uint64_t SaltAt(const History& h, uint64_t step) {
  uint64_t salt = 0;
  for (const Segment& s : h) {
    if (s.from_step < step) salt = s.salt;
  }
  return salt;
}

// The segments that decide steps 1..step.
History Truncate(const History& h, uint64_t step) {
  History out;
  for (const Segment& s : h) {
    if (s.from_step < step) out.push_back(s);
  }
  return out;
}

// Applies `ops` random mutations to `blocks` blocks at `mem`. In the child `mem` is region memory
// and freed blocks are released with MADV_DONTNEED (they read back as zero); in the parent's replay
// they are zeroed.
void Mutate(char* mem, uint64_t blocks, int ops, std::mt19937_64& rng, bool use_madvise) {
  for (int op = 0; op < ops; ++op) {
    const uint64_t kind = rng() % 10;
    const uint64_t first = rng() % blocks;
    const uint64_t run = std::min<uint64_t>(blocks - first, 1 + rng() % (kind < 6 ? 8 : 4));
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

using Table = std::map<std::string, std::string>;

// Where the table mutations go: the child's KeyedState, or the parent's replay map.
struct TableOps {
  KeyedState* state = nullptr;
  Table* map = nullptr;
  void Put(const std::string& key, const std::string& value) {
    if (state != nullptr) {
      if (!state->Put(key, value).ok()) std::abort();
    } else {
      (*map)[key] = value;
    }
  }
  void Erase(const std::string& key) {
    if (state != nullptr) {
      state->Erase(key);
    } else {
      map->erase(key);
    }
  }
};

// Table mutations: a small key space (so puts replace and erases hit), binary keys including the
// empty key, values of 0 to 300 bytes.
void MutateTable(TableOps ops, int count, std::mt19937_64& rng) {
  for (int i = 0; i < count; ++i) {
    const uint64_t n = rng() % 1500;
    std::string key(n % 50 == 0 ? 0 : 1 + n % 20, '\0');
    for (size_t k = 0; k < key.size(); ++k) key[k] = static_cast<char>((n * 37 + k * 101) & 0xff);
    if (rng() % 4 == 0) {
      ops.Erase(key);
    } else {
      std::string value(rng() % 301, '\0');
      for (char& c : value) c = static_cast<char>(rng());
      ops.Put(key, value);
    }
  }
}

// Applies the mutations of step `step` (regions already sized for it; `aux` null before kAuxStep).
void ApplyStep(char* grid, char* aux, TableOps table, uint64_t salt, uint64_t step,
               bool use_madvise) {
  std::mt19937_64 rng(Mix(kSeed + salt * 0xd1b54a32d192ed03ULL, step));
  Mutate(grid, GridBlocks(step), 1 + static_cast<int>(rng() % 12), rng, use_madvise);
  if (aux != nullptr) Mutate(aux, kAuxBlocks, 1 + static_cast<int>(rng() % 3), rng, use_madvise);
  MutateTable(table, 1 + static_cast<int>(rng() % 40), rng);
}

// The workload state as plain buffers: "aux" is empty before kAuxStep.
struct WorkloadState {
  std::string grid = std::string(GridBlocks(0) * kBlock, '\0');
  std::string aux;
  Table table;
  bool operator==(const WorkloadState&) const = default;
};

void Advance(WorkloadState& s, const History& h, uint64_t step) {
  s.grid.resize(GridBlocks(step) * kBlock, '\0');
  if (step >= kAuxStep && s.aux.empty()) s.aux.assign(kAuxBlocks * kBlock, '\0');
  ApplyStep(s.grid.data(), s.aux.empty() ? nullptr : s.aux.data(), TableOps{nullptr, &s.table},
            SaltAt(h, step), step, /*use_madvise=*/false);
}

// Replays the workload to (history, step), starting from the furthest cached state on the same
// path. A cached state at step t serves any history whose salts agree with its own up to t.
class Replay {
 public:
  const WorkloadState& At(const History& history, uint64_t step) {
    Snapshot* best = nullptr;
    for (Snapshot& s : cache_) {
      if (s.step <= step && (best == nullptr || s.step > best->step) &&
          Truncate(s.history, s.step) == Truncate(history, s.step)) {
        best = &s;
      }
    }
    Snapshot next{history, 0, WorkloadState{}, ++clock_};
    if (best != nullptr) {
      next.step = best->step;
      next.state = best->state;
    }
    while (next.step < step) Advance(next.state, history, ++next.step);
    if (cache_.size() >= kCacheSize) {
      cache_.erase(std::min_element(cache_.begin(), cache_.end(),
                                    [](const auto& a, const auto& b) { return a.used < b.used; }));
    }
    cache_.push_back(std::move(next));
    return cache_.back().state;
  }

 private:
  static constexpr size_t kCacheSize = 8;
  struct Snapshot {
    History history;
    uint64_t step = 0;
    WorkloadState state;
    uint64_t used = 0;
  };
  std::vector<Snapshot> cache_;
  uint64_t clock_ = 0;
};

[[noreturn]] void Die(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "kill_test child: %s: %s\n", what, status.ToString().c_str());
  std::fflush(stderr);
  _exit(2);
}

// Messages from the child, 8 bytes each: a checkpoint id with kCaptured set once Checkpoint()
// returned for it (captured, now persisting), clear once its Wait() returned OK (committed); or
// kBranched with the id of an older checkpoint the child restored to branch from it.
constexpr uint64_t kCaptured = uint64_t{1} << 63;
constexpr uint64_t kBranched = uint64_t{1} << 62;

void Send(int fd, uint64_t message) {
  if (write(fd, &message, sizeof message) != sizeof message) _exit(3);
}

// Where a run of the child stands: the step and history of its state.
struct Position {
  uint64_t step = 0;
  History history = {Segment{}};
};

Position PositionOf(const CommitRecord& record) {
  Position p;
  auto step = record.metadata.find("step");
  auto history = record.metadata.find("history");
  if (step == record.metadata.end() || history == record.metadata.end() ||
      !ParseU64(step->second, &p.step)) {
    Die("commit metadata", absl::DataLossError(StrCat("checkpoint ", record.id, " lacks step")));
  }
  std::optional<History> h = ParseHistory(history->second);
  if (!h.has_value()) {
    Die("commit metadata", absl::DataLossError(StrCat("checkpoint ", record.id, " history")));
  }
  p.history = *std::move(h);
  return p;
}

// A checkpointer with "grid" registered at its initial size (a restore resizes it).
std::unique_ptr<Checkpointer> OpenChild(Repository* repo, TrackerKind tracker) {
  // Several packs in flight, and a restore reading several at once, when the kill comes.
  CheckpointerOptions options;
  options.uploads_in_flight = 4;
  options.restore_threads = 4;
  auto ckpt = Checkpointer::Open(repo, options);
  if (!ckpt.ok()) Die("open checkpointer", ckpt.status());
  RegionOptions region_options;
  region_options.size = GridBlocks(0) * kBlock;
  region_options.block_size = kBlock;
  region_options.tracker = tracker;
  auto region = (*ckpt)->AddRegion(kGrid, region_options);
  if (!region.ok()) Die("add region", region.status());
  KeyedStateOptions table_options;
  table_options.key_groups = kTableGroups;
  auto table = (*ckpt)->AddKeyedState(kTable, table_options);
  if (!table.ok()) Die("add keyed state", table.status());
  return *std::move(ckpt);
}

// The child: resume from the latest checkpoint and checkpoint every step until killed, reporting
// captures, commits and branches on `ack_fd`.
[[noreturn]] void RunChild(const std::string& repo_path, int ack_fd, TrackerKind tracker) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
  RepositoryOptions ro;
  ro.config.pack_target_bytes = 256 << 10;
  auto repo = Repository::OpenLocal(repo_path, /*create=*/true, ro);
  if (!repo.ok()) Die("open repository", repo.status());
  std::unique_ptr<Checkpointer> ckpt = OpenChild(repo->get(), tracker);
  Position pos;
  auto latest = (*repo)->LatestCommitId();
  if (!latest.ok()) Die("latest", latest.status());
  if (latest->has_value()) {
    RestoreOptions options;
    options.on_unregistered = OnUnregistered::kCreate;
    auto restored = ckpt->Restore(options);
    if (!restored.ok()) Die("restore", restored.status());
    pos = PositionOf(*restored);
  }
  std::optional<CheckpointHandle> pending;
  for (;;) {
    ++pos.step;
    Region* grid = ckpt->FindRegion(kGrid);
    if (grid->block_count() < GridBlocks(pos.step)) {
      if (absl::Status s = grid->Grow(GridBlocks(pos.step) * kBlock); !s.ok()) Die("grow", s);
    }
    Region* aux = ckpt->FindRegion(kAux);
    if (pos.step >= kAuxStep && aux == nullptr) {
      RegionOptions aux_options;
      aux_options.size = kAuxBlocks * kBlock;
      aux_options.block_size = kBlock;
      aux_options.tracker = tracker;
      auto added = ckpt->AddRegion(kAux, aux_options);
      if (!added.ok()) Die("add aux", added.status());
      aux = *added;
    }
    ApplyStep(grid->data(), aux == nullptr ? nullptr : aux->data(),
              TableOps{ckpt->FindKeyedState(kTable), nullptr}, SaltAt(pos.history, pos.step),
              pos.step, /*use_madvise=*/true);
    CheckpointOptions co;
    co.metadata["step"] = std::to_string(pos.step);
    co.metadata["history"] = EncodeHistory(pos.history);
    // Waits for the previous checkpoint to persist, then captures; persistence of this one overlaps
    // the next step's mutations.
    auto handle = ckpt->Checkpoint(co);
    if (!handle.ok()) Die("checkpoint", handle.status());
    Send(ack_fd, handle->id() | kCaptured);
    if (pending.has_value()) {
      auto record = pending->Wait();
      if (!record.ok()) Die("wait", record.status());
      Send(ack_fd, pending->id());
    }
    pending = *handle;

    // Now and then (a pure function of the salt and the step) branch: restore an older checkpoint
    // and continue from it under a new salt.
    const uint64_t salt = SaltAt(pos.history, pos.step);
    const uint64_t roll = Mix(kSeed ^ 0xb4a7c4, salt * 1'000'003 + pos.step);
    if (roll % 5 != 0) continue;
    auto record = pending->Wait();
    if (!record.ok()) Die("wait", record.status());
    Send(ack_fd, pending->id());
    pending.reset();
    auto ids = (*repo)->ListCommitIds();
    if (!ids.ok()) Die("list", ids.status());
    if (ids->size() < 2) continue;
    const size_t back = 1 + (roll >> 8) % std::min<size_t>(8, ids->size() - 1);
    const uint64_t origin = (*ids)[ids->size() - 1 - back];
    RestoreOptions options;
    options.id = origin;
    options.on_unregistered = OnUnregistered::kCreate;  // "aux" came after the running state
    options.on_absent = OnAbsent::kFail;
    auto restored = ckpt->Restore(options);
    if (absl::IsNotFound(restored.status())) {
      // The origin predates "aux", which is registered here: branch from a fresh checkpointer, as a
      // restarted process would. The refused restore changed nothing.
      ckpt = OpenChild(repo->get(), tracker);
      restored = ckpt->Restore(options);
    }
    if (!restored.ok()) Die("branch restore", restored.status());
    Send(ack_fd, origin | kBranched);
    pos = PositionOf(*restored);
    // A salt no earlier branch used: ids only grow.
    pos.history.push_back(Segment{pos.step, ids->back() + 1});
  }
}

// A checkpoint restored into a fresh checkpointer, with the position its metadata records.
struct Restored {
  uint64_t id = 0;
  Position position;
  WorkloadState state;
};
absl::StatusOr<Restored> RestoreFresh(Repository* repo, std::optional<uint64_t> id) {
  absl::StatusOr<testing::FreshRestore> restored = testing::RestoreFresh(repo, id);
  if (!restored.ok()) return restored.status();
  Checkpointer* ckpt = restored->checkpointer.get();
  const CommitRecord* record = &restored->record;
  Restored out;
  out.id = record->id;
  auto step = record->metadata.find("step");
  auto history = record->metadata.find("history");
  if (step == record->metadata.end() || history == record->metadata.end() ||
      !ParseU64(step->second, &out.position.step)) {
    return absl::DataLossError(StrCat("checkpoint ", out.id, " lacks a step"));
  }
  std::optional<History> h = ParseHistory(history->second);
  if (!h.has_value()) {
    return absl::DataLossError(
        StrCat("checkpoint ", out.id, " has a bad history ", history->second));
  }
  out.position.history = *std::move(h);
  Region* grid = ckpt->FindRegion(kGrid);
  if (grid == nullptr) return absl::NotFoundError(StrCat("checkpoint ", out.id, " has no grid"));
  out.state.grid.assign(grid->data(), grid->size());
  if (Region* aux = ckpt->FindRegion(kAux); aux != nullptr) {
    out.state.aux.assign(aux->data(), aux->size());
  }
  KeyedState* table = ckpt->FindKeyedState(kTable);
  if (table == nullptr) return absl::NotFoundError(StrCat("checkpoint ", out.id, " has no table"));
  table->ForEach([&](std::string_view k, std::string_view v) { out.state.table.emplace(k, v); });
  return out;
}

// Reservations without a commit record: checkpoints that were started but never committed.
absl::StatusOr<std::set<uint64_t>> UncommittedReservations(Repository* repo) {
  std::set<uint64_t> ids;
  auto reserved = RepositoryInternal::store(*repo)->List(kIdsPrefix);
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
  const int target_kills = EnvInt("ICKPT_TORTURE_KILLS", 60);
  const auto budget = std::chrono::seconds(EnvInt("ICKPT_TORTURE_SECONDS", 45));
  const auto start = std::chrono::steady_clock::now();
  std::mt19937_64 rng(EnvInt("ICKPT_TORTURE_SEED", 1));

  Replay replay;
  int kills = 0, restores = 0, lost_commits = 0, corrupt_restores = 0, empty_after_kill = 0;
  int kills_mid_checkpoint = 0;  // reserved ids without a commit record (some reserved ahead)
  int kills_during_persist = 0;  // a captured checkpoint's commit record never appeared
  int branches = 0;
  uint64_t acked_id = 0;  // highest id the child saw committed, over all runs
  uint64_t max_step = 0;
  std::set<uint64_t> seen_uncommitted;
  // Added to the kill delay while kills find no new commit (a slow, busy machine), so that the
  // child always gets far enough to commit.
  int slack_ms = 0;
  uint64_t previous_latest = 0;

  // Each run of the child tracks its regions with the next tracker that works here, so that every
  // one is killed mid-checkpoint and restored from (the workload drops pages with MADV_DONTNEED).
  std::vector<TrackerKind> trackers;
  for (const TrackerReport& report : DescribeTrackers()) {
    if (report.works && report.kind != TrackerKind::kExplicit) trackers.push_back(report.kind);
  }
  std::map<TrackerKind, int> kills_by_tracker;

  while (kills < target_kills) {
    if (std::chrono::steady_clock::now() - start > budget) break;
    const TrackerKind tracker = trackers[kills % trackers.size()];
    int fds[2];
    ASSERT_EQ(0, pipe(fds));
    int delay_ms = 1 + static_cast<int>(rng() % 100) + slack_ms;
    // Every 8th run lives longer, so that runs also get far past their restore: several commits,
    // growth and branches, not only kills right after a restart.
    if (kills % 8 == 7) delay_ms += 150 + static_cast<int>(rng() % 250);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunChild(repo_path, fds[1], tracker);
    }
    ++kills_by_tracker[tracker];
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ASSERT_EQ(0, kill(pid, SIGKILL));
    int wstatus = 0;
    ASSERT_EQ(pid, waitpid(pid, &wstatus, 0));
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "the child died on its own (status " << wstatus << "); see its stderr";
    ++kills;
    uint64_t message = 0, captured_id = 0;
    std::vector<uint64_t> acked_this_run;
    while (read(fds[0], &message, sizeof message) == sizeof message) {
      if (message & kCaptured) {
        captured_id = std::max(captured_id, message & ~kCaptured);
      } else if (message & kBranched) {
        ++branches;
      } else {
        acked_this_run.push_back(message);
        acked_id = std::max(acked_id, message);
      }
    }
    close(fds[0]);

    // The first kills may land before the repository exists.
    if (access((repo_path + "/config").c_str(), F_OK) != 0) {
      ++empty_after_kill;
      slack_ms = std::min(slack_ms + 20, 2000);
      continue;
    }
    ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(repo_path, /*create=*/false));
    ASSERT_OK_AND_ASSIGN(auto uncommitted, UncommittedReservations(repo.get()));
    for (uint64_t id : uncommitted) {
      if (seen_uncommitted.insert(id).second) ++kills_mid_checkpoint;
    }
    ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> committed, repo->ListCommitIds());
    const std::set<uint64_t> committed_set(committed.begin(), committed.end());
    for (uint64_t id : acked_this_run) {
      if (!committed_set.contains(id)) {
        ++lost_commits;
        ADD_FAILURE() << "after kill " << kills << " checkpoint " << id
                      << " is missing, but the child saw it committed";
      }
    }
    const uint64_t latest_id = committed.empty() ? 0 : committed.back();
    slack_ms = latest_id > previous_latest ? 0 : std::min(slack_ms + 20, 2000);
    previous_latest = latest_id;
    if (committed.empty()) {
      ++empty_after_kill;
      EXPECT_EQ(acked_id, 0u) << "checkpoints were acknowledged but none is in the repository";
      continue;
    }
    auto restored = RestoreFresh(repo.get(), std::nullopt);
    ASSERT_OK(restored.status()) << "after kill " << kills;
    ++restores;
    EXPECT_EQ(restored->id, committed.back());
    if (restored->id < acked_id) {
      ++lost_commits;
      ADD_FAILURE() << "after kill " << kills << " the latest commit is " << restored->id << " but "
                    << acked_id << " was committed";
    }
    // The kill came after the capture of `captured_id`; if its commit is not there, the kill
    // landed while it was persisting.
    if (captured_id != 0 && !committed_set.contains(captured_id)) ++kills_during_persist;
    max_step = std::max(max_step, restored->position.step);
    if (restored->state != replay.At(restored->position.history, restored->position.step)) {
      ++corrupt_restores;
      ADD_FAILURE() << "after kill " << kills << " checkpoint " << restored->id << " (step "
                    << restored->position.step << ", history "
                    << EncodeHistory(restored->position.history)
                    << ") does not restore to the workload's state";
    }
  }
  const bool budget_ran_out = kills < target_kills;

  // Full check: every committed checkpoint restores exactly; every object verifies.
  ASSERT_OK_AND_ASSIGN(auto repo, Repository::OpenLocal(repo_path, /*create=*/false));
  ASSERT_OK_AND_ASSIGN(std::vector<uint64_t> ids, repo->ListCommitIds());
  int checked_commits = 0, grown_commits = 0, aux_commits = 0;
  size_t max_table_entries = 0;
  std::set<std::string> histories;
  for (uint64_t id : ids) {
    auto restored = RestoreFresh(repo.get(), id);
    ASSERT_OK(restored.status()) << "checkpoint " << id;
    if (restored->state != replay.At(restored->position.history, restored->position.step)) {
      ++corrupt_restores;
      ADD_FAILURE() << "checkpoint " << id << " (step " << restored->position.step << ") differs";
    }
    ++checked_commits;
    if (restored->state.grid.size() > GridBlocks(0) * kBlock) ++grown_commits;
    if (!restored->state.aux.empty()) ++aux_commits;
    max_table_entries = std::max(max_table_entries, restored->state.table.size());
    histories.insert(EncodeHistory(restored->position.history));
  }
  ObjectStore* store = RepositoryInternal::store(*repo);
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
  std::cerr << "kill_test details: branches=" << branches
            << " uncommitted_reservations=" << kills_mid_checkpoint
            << " empty_after_kill=" << empty_after_kill << " commits=" << checked_commits
            << " grown_commits=" << grown_commits << " aux_commits=" << aux_commits
            << " max_table_entries=" << max_table_entries << " histories=" << histories.size()
            << " packs=" << packs.size() << " manifests=" << manifests.size()
            << " max_step=" << max_step << " acked_id=" << acked_id << " seconds=" << seconds
            << std::endl;
  std::cout << "torture: kills=" << kills << " restores=" << restores
            << " kills_during_persist=" << kills_during_persist << " lost_commits=" << lost_commits
            << " corrupt_restores=" << corrupt_restores << " trackers=";
  for (const auto& [kind, n] : kills_by_tracker) std::cout << TrackerName(kind) << ":" << n << ",";
  std::cout << std::endl;
  ::testing::Test::RecordProperty("kills", kills);
  ::testing::Test::RecordProperty("restores", restores);
  ::testing::Test::RecordProperty("kills_during_persist", kills_during_persist);
  ::testing::Test::RecordProperty("branches", branches);
  ::testing::Test::RecordProperty("uncommitted_reservations", kills_mid_checkpoint);
  ::testing::Test::RecordProperty("lost_commits", lost_commits);
  ::testing::Test::RecordProperty("corrupt_restores", corrupt_restores);
  ::testing::Test::RecordProperty("commits_checked", checked_commits);
  EXPECT_FALSE(budget_ran_out) << "the time budget ran out after " << kills << " of "
                               << target_kills << " kills";
  EXPECT_EQ(lost_commits, 0);
  EXPECT_EQ(corrupt_restores, 0);
  EXPECT_GT(restores, kills / 2);
  // Some kills must have hit a checkpoint after its capture and before its commit record.
  EXPECT_GT(kills_during_persist, 0);
  // The keyed state was exercised, not only registered.
  EXPECT_GT(max_table_entries, 0u);
}

}  // namespace
}  // namespace ickpt
