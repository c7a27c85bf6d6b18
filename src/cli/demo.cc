// `ickpt demo`: crash recovery, shown. A supervisor runs a simulation (a region "grid" and a keyed
// state "index" beside it, demo_sim.h) in a child process that checkpoints every few steps,
// SIGKILLs it at a random (seeded) moment, possibly while a checkpoint is persisting, restarts it
// from the latest committed checkpoint, and checks that the final state (grid and index) is
// bit-identical to an uninterrupted run computed in-process.
//
// The child is this binary re-executed (/proc/self/exe demo-child ...). It reports events on its
// stdout, one line each, and waits for "go" on its stdin after each, so the supervisor kills it at
// a known point while its persist threads keep running:
//   fresh | restored <id> <step> <restore_ns>
//   step <n>              after step n
//   ckpt <id> <step>      after the capture of checkpoint <id>; it is persisting now
//   done <sha256 hex>     the final state
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "src/cli/cluster_demo.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/cli/demo_sim.h"
#include "src/util/hash.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

constexpr char kRegionName[] = "grid";
constexpr char kIndexName[] = "index";

struct DemoOptions {
  std::string repo;
  std::string size = "1GiB";
  uint64_t steps = 24;
  uint64_t seed = 1;
  uint64_t every = 2;
  std::string tracker = "auto";
  bool json = false;
  uint32_t workers = 0;  // > 1: the distributed demo (cluster_demo.cc)
  bool no_chaos = false;
  std::string interval = "2s";
  int64_t step_ms = 100;
  bool size_given = false;
  bool steps_given = false;
};

struct ChildOptions {
  std::string repo;
  uint64_t size = 0;
  uint64_t steps = 0;
  uint64_t seed = 0;
  uint64_t every = 2;
  std::string tracker = "auto";
  bool resume = false;
};

// ---------------------------------------------------------------------------------------------
// The child: the simulation with checkpoints.

bool Report(const std::string& line) {
  std::cout << line << "\n" << std::flush;
  std::string ack;
  return static_cast<bool>(std::getline(std::cin, ack)) && ack == "go";
}

int RunChild(const ChildOptions& options) {
  absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenUrl(options.repo, false);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<std::unique_ptr<Checkpointer>> checkpointer = Checkpointer::Open(repo->get());
  if (!checkpointer.ok()) return Fail(checkpointer.status());
  RegionOptions region_options;
  region_options.size = options.size;
  absl::StatusOr<TrackerKind> tracker = ParseTrackerName(options.tracker);
  if (!tracker.ok()) {
    PrintError(tracker.status().message());
    return kExitUsage;
  }
  region_options.tracker = *tracker;
  absl::StatusOr<Region*> region = (*checkpointer)->AddRegion(kRegionName, region_options);
  if (!region.ok()) return Fail(region.status());
  const uint64_t size = (*region)->size();
  absl::StatusOr<KeyedState*> index = (*checkpointer)->AddKeyedState(kIndexName);
  if (!index.ok()) return Fail(index.status());
  absl::Status index_status;

  uint64_t step = 0;
  absl::StatusOr<std::optional<uint64_t>> latest = (*repo)->LatestCommitId();
  if (!latest.ok()) return Fail(latest.status());
  if (options.resume && latest->has_value()) {
    const absl::Time start = absl::Now();
    // A bar on the terminal (the child's stderr is the supervisor's) while a large region
    // restores.
    Progress progress(StrCat("restoring checkpoint ", **latest), size);
    RestoreOptions restore_options;
    restore_options.id = **latest;
    restore_options.progress = [&progress](uint64_t done, uint64_t) { progress.Set(done); };
    absl::StatusOr<CommitRecord> restored = (*checkpointer)->Restore(restore_options);
    progress.Finish();
    if (!restored.ok()) return Fail(restored.status());
    const int64_t ns = absl::ToInt64Nanoseconds(absl::Now() - start);
    auto it = restored->metadata.find("step");
    if (it == restored->metadata.end()) {
      PrintError(StrCat("checkpoint ", restored->id, " has no 'step' in its metadata"));
      return kExitFailure;
    }
    step = std::stoull(it->second);
    if (!Report(StrCat("restored ", restored->id, " ", step, " ", ns))) return kExitFailure;
  } else {
    InitGrid((*region)->data(), size, options.seed);
    if (!Report("fresh")) return kExitFailure;
  }

  std::vector<CheckpointHandle> handles;
  for (++step; step <= options.steps; ++step) {
    StepGrid((*region)->data(), size, options.seed, step);
    StepIndex((*region)->data(), size, options.seed, step,
              [&](std::string_view key, std::string_view value) {
                if (absl::Status s = (*index)->Put(key, value); !s.ok()) index_status = s;
              },
              [&](std::string_view key) { (*index)->Erase(key); });
    if (!index_status.ok()) return Fail(index_status);
    if (!Report(StrCat("step ", step))) return kExitFailure;
    if (step % options.every != 0) continue;
    CheckpointOptions copts;
    copts.metadata["step"] = std::to_string(step);
    absl::StatusOr<CheckpointHandle> handle = (*checkpointer)->Checkpoint(copts);
    if (!handle.ok()) return Fail(handle.status());
    handles.push_back(*handle);
    if (!Report(StrCat("ckpt ", handle->id(), " ", step))) return kExitFailure;
  }
  for (const CheckpointHandle& h : handles) {
    if (absl::StatusOr<CommitRecord> r = h.Wait(); !r.ok()) return Fail(r.status());
  }
  std::map<std::string, std::string> entries;
  (*index)->ForEach([&](std::string_view k, std::string_view v) { entries.emplace(k, v); });
  const std::string hash = StateHash(std::string_view((*region)->data(), size), entries);
  std::cout << "done " << hash << "\n" << std::flush;
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// The supervisor.

struct Child {
  pid_t pid = -1;
  FILE* from = nullptr;  // its stdout
  int to = -1;           // its stdin
};

absl::StatusOr<Child> SpawnChild(const std::string& repo, uint64_t size, const DemoOptions& o,
                                 bool resume) {
  int down[2], up[2];  // supervisor -> child, child -> supervisor
  if (pipe2(down, O_CLOEXEC) != 0 || pipe2(up, O_CLOEXEC) != 0) {
    return absl::UnknownError(StrCat("pipe: ", std::strerror(errno)));
  }
  std::vector<std::string> args = {"ickpt",     "demo-child",
                                   "--repo",    repo,
                                   "--size",    std::to_string(size),
                                   "--steps",   std::to_string(o.steps),
                                   "--seed",    std::to_string(o.seed),
                                   "--every",   std::to_string(o.every),
                                   "--tracker", o.tracker};
  if (resume) args.push_back("--resume");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) return absl::UnknownError(StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    dup2(down[0], STDIN_FILENO);
    dup2(up[1], STDOUT_FILENO);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(down[0]);
  close(up[1]);
  Child child;
  child.pid = pid;
  child.to = down[1];
  child.from = fdopen(up[0], "r");
  return child;
}

void CloseChild(Child& child) {
  if (child.from != nullptr) std::fclose(child.from);
  if (child.to >= 0) close(child.to);
  child.from = nullptr;
  child.to = -1;
}

// Waits for the child; OK if it exited with 0.
absl::Status ReapChild(Child& child) {
  int status = 0;
  while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  CloseChild(child);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  if (WIFSIGNALED(status)) {
    return absl::UnknownError(StrCat("the simulation process died of signal ", WTERMSIG(status)));
  }
  return absl::UnknownError(
      StrCat("the simulation process failed with exit code ", WEXITSTATUS(status)));
}

bool ReadLine(FILE* f, std::string* line) {
  line->clear();
  int c;
  while ((c = std::fgetc(f)) != EOF) {
    if (c == '\n') return true;
    line->push_back(static_cast<char>(c));
  }
  return !line->empty();
}

// Where the supervisor kills the child: after the event "<kind> <n>" (ckpt: the n-th checkpoint of
// the run, while it persists; step: after step n), plus a delay.
struct KillPlan {
  bool at_checkpoint = false;
  uint64_t n = 0;
  int64_t delay_us = 0;
};

KillPlan PlanKill(const DemoOptions& o) {
  std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ULL + 7);
  KillPlan plan;
  const uint64_t checkpoints = o.steps / o.every;
  plan.at_checkpoint = checkpoints > 0 && rng() % 3 != 0;
  plan.n = plan.at_checkpoint ? 1 + rng() % checkpoints : 1 + rng() % o.steps;
  plan.delay_us = static_cast<int64_t>(rng() % 20000);
  return plan;
}

struct RunResult {
  std::string final_hash;
  uint64_t kills = 0;
  uint64_t restores = 0;
  std::string kill_point;
  std::optional<uint64_t> restored_id;
  uint64_t restored_step = 0;
  int64_t restore_ns = 0;
};

absl::StatusOr<RunResult> Supervise(const std::string& repo, uint64_t size, const DemoOptions& o,
                                    LiveLog* live) {
  const KillPlan plan = PlanKill(o);
  RunResult result;
  bool resume = false;
  uint64_t checkpoints_seen = 0;
  for (;;) {
    absl::StatusOr<Child> spawned = SpawnChild(repo, size, o, resume);
    if (!spawned.ok()) return spawned.status();
    Child child = *spawned;
    bool killed = false;
    std::string line;
    while (ReadLine(child.from, &line)) {
      const std::vector<std::string> ev = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (ev.empty()) continue;
      if (ev[0] == "done" && ev.size() == 2) {
        result.final_hash = ev[1];
        break;
      }
      if (ev[0] == "restored" && ev.size() == 4) {
        result.restored_id = std::stoull(ev[1]);
        result.restored_step = std::stoull(ev[2]);
        result.restore_ns = std::stoll(ev[3]);
        live->Line(fmt::format("restarted: restored checkpoint {} (step {}) in {}, resuming at "
                               "step {}",
                               ev[1], ev[2], FormatNanos(result.restore_ns),
                               result.restored_step + 1));
      } else if (ev[0] == "fresh" && resume) {
        live->Line("restarted: no checkpoint was committed yet, starting over");
      }
      bool kill_now = false;
      if (result.kills == 0) {
        if (ev[0] == "ckpt" && ev.size() == 3) {
          ++checkpoints_seen;
          if (plan.at_checkpoint && checkpoints_seen == plan.n) {
            kill_now = true;
            result.kill_point = StrCat("during persist of checkpoint ", ev[1], " (step ", ev[2],
                                       "), ", plan.delay_us / 1000.0, " ms after its capture");
          }
        } else if (ev[0] == "step" && ev.size() == 2 && !plan.at_checkpoint &&
                   std::stoull(ev[1]) == plan.n) {
          kill_now = true;
          result.kill_point = StrCat("after step ", ev[1], " (+", plan.delay_us / 1000.0, " ms)");
        }
      }
      if (kill_now) {
        std::this_thread::sleep_for(std::chrono::microseconds(plan.delay_us));
        kill(child.pid, SIGKILL);
        ++result.kills;
        killed = true;
        live->Line(StrCat("SIGKILL the simulation ", result.kill_point));
        break;
      }
      if (write(child.to, "go\n", 3) != 3) break;  // the child died: ReapChild says how
    }
    if (killed) {
      int status = 0;
      while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
      }
      CloseChild(child);
      resume = true;
      ++result.restores;
      continue;
    }
    if (absl::Status s = ReapChild(child); !s.ok()) return s;
    if (result.final_hash.empty()) {
      return absl::UnknownError("the simulation process ended without reporting its final state");
    }
    return result;
  }
}

std::string ReferenceHash(uint64_t size, const DemoOptions& o) {
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return "";
  char* data = static_cast<char*>(mem);
  InitGrid(data, size, o.seed);
  std::map<std::string, std::string> index;
  for (uint64_t s = 1; s <= o.steps; ++s) {
    StepGrid(data, size, o.seed, s);
    StepIndex(
        data, size, o.seed, s,
        [&](std::string_view key, std::string_view value) { index[std::string(key)] = value; },
        [&](std::string_view key) { index.erase(std::string(key)); });
  }
  std::string hash = StateHash(std::string_view(data, size), index);
  munmap(mem, size);
  return hash;
}

std::string DefaultRepoPath() {
  const std::string base =
      "./ickpt-demo-" + absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone());
  std::string path = base;
  struct stat st;
  for (int i = 2; stat(path.c_str(), &st) == 0; ++i) path = base + "-" + std::to_string(i);
  return path;
}

int RunDistributedDemo(const DemoOptions& o) {
  if (o.workers < 2) {
    PrintError("--workers needs at least 2 (without it, the single-process demo runs)");
    return kExitUsage;
  }
  ClusterDemoOptions c;
  c.workers = o.workers;
  c.repo = o.repo.empty() ? DefaultRepoPath() : o.repo;
  c.seed = o.seed;
  c.chaos = !o.no_chaos;
  c.json = o.json;
  c.tracker = o.tracker;
  c.step_ms = o.step_ms;
  c.interval = o.interval;
  if (!ParseDurationFlag("--interval", o.interval, false)) return kExitUsage;
  if (o.steps_given) c.steps = o.steps;
  if (o.size_given) {
    absl::StatusOr<uint64_t> size = ParseSize(o.size);
    if (!size.ok()) {
      PrintError(size.status().message());
      return kExitUsage;
    }
    // Whole MiB: a whole number of blocks and of the model's rows.
    c.table_bytes = std::max<uint64_t>(1, (*size + (1 << 20) - 1) >> 20) << 20;
  }
  if (c.steps < 10) {
    PrintError("the distributed demo needs --steps >= 10");
    return kExitUsage;
  }
  return RunClusterDemo(c);
}

int RunDemo(const DemoOptions& o) {
  if (o.workers > 0) return RunDistributedDemo(o);
  const absl::Time start = absl::Now();
  absl::StatusOr<uint64_t> size = ParseSize(o.size);
  if (!size.ok()) {
    PrintError(size.status().message());
    return kExitUsage;
  }
  if (*size < 3 * kGridRowBytes || o.steps == 0 || o.every == 0) {
    PrintError("demo needs --size of at least 12KiB, --steps >= 1 and --every >= 1");
    return kExitUsage;
  }
  const uint64_t grid_size = (*size + kGridRowBytes - 1) / kGridRowBytes * kGridRowBytes;
  const std::string repo_path = o.repo.empty() ? DefaultRepoPath() : o.repo;
  {
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenUrl(repo_path, true);
    if (!repo.ok()) return Fail(repo.status());
    absl::StatusOr<std::optional<uint64_t>> latest = (*repo)->LatestCommitId();
    if (!latest.ok()) return Fail(latest.status());
    if (latest->has_value()) {
      PrintError(
          StrCat("repository ", repo_path, " already holds checkpoints; the demo needs a new one"));
      return kExitFailure;
    }
  }
  if (!o.json) {
    std::cout << fmt::format(
        "ickpt demo: repository {}\n  region '{}' of {} and keyed state '{}' ({} rows indexed "
        "a step), {} steps, a checkpoint every {} steps, seed {}\n",
        repo_path, kRegionName, FormatBytes(grid_size), kIndexName, kIndexRowsPerStep, o.steps,
        o.every, o.seed);
  }
  signal(SIGPIPE, SIG_IGN);
  LiveLog live(!o.json);
  absl::StatusOr<RunResult> run = absl::UnknownError("not run");
  {
    CommitWatcher watcher(repo_path, &live);
    run = Supervise(repo_path, grid_size, o, &live);
  }
  if (!run.ok()) return Fail(run.status());
  const std::string expected = ReferenceHash(grid_size, o);
  const bool verified = !expected.empty() && expected == run->final_hash;

  // Consolidation (format.md §14), as `ickpt compact` does it: the latest checkpoint gets a
  // complete manifest set, checked against the chain it replaces (the simulation's own
  // checkpointer may have consolidated it in the background already: then nothing is left to do).
  // Then retention (§13): the repository's policy (keep-last 3 when the demo created it) condemns
  // the older checkpoints; a later gc removes them once the grace period has passed.
  absl::StatusOr<GcReport> gc = absl::UnknownError("not run");
  absl::StatusOr<ConsolidationReport> compacted = absl::UnknownError("not run");
  std::map<uint64_t, uint64_t> consolidations;
  {
    absl::StatusOr<std::unique_ptr<Repository>> writable = Repository::OpenUrl(repo_path, false);
    if (!writable.ok()) return Fail(writable.status());
    absl::StatusOr<std::optional<uint64_t>> latest = (*writable)->LatestCommitId();
    if (!latest.ok()) return Fail(latest.status());
    if (latest->has_value()) {
      ConsolidateOptions options;
      options.verify = true;
      compacted = Consolidate(**writable, **latest, options);
      if (!compacted.ok()) return Fail(compacted.status());
    }
    gc = CollectGarbage(**writable);
    if (!gc.ok()) return Fail(gc.status());
    absl::StatusOr<std::map<uint64_t, uint64_t>> in_force = ListConsolidations(**writable);
    if (!in_force.ok()) return Fail(in_force.status());
    consolidations = *std::move(in_force);
  }

  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(repo_path);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<std::vector<uint64_t>> ids = (*repo)->ListCommitIds();
  if (!ids.ok()) return Fail(ids.status());
  std::vector<CommitRecord> commits;
  for (uint64_t id : *ids) {
    absl::StatusOr<CommitRecord> c = (*repo)->ReadCommit(id);
    if (!c.ok()) return Fail(c.status());
    commits.push_back(*std::move(c));
  }
  const double elapsed_s = absl::ToDoubleSeconds(absl::Now() - start);

  if (o.json) {
    nlohmann::json j;
    j["verified"] = verified;
    j["repo"] = repo_path;
    j["size"] = grid_size;
    j["steps"] = o.steps;
    j["seed"] = o.seed;
    j["kills"] = run->kills;
    j["restores"] = run->restores;
    j["kill_point"] = run->kill_point;
    j["restored_checkpoint"] =
        run->restored_id.has_value() ? nlohmann::json(*run->restored_id) : nlohmann::json();
    j["resumed_at_step"] = run->restored_step + 1;
    j["restore_ms"] = run->restore_ns / 1e6;
    j["final_sha256"] = run->final_hash;
    j["expected_sha256"] = expected;
    j["elapsed_s"] = elapsed_s;
    nlohmann::json list = nlohmann::json::array();
    for (const CommitRecord& c : commits) {
      nlohmann::json e = CommitSummaryJson(c);
      auto it = c.metadata.find("step");
      e["step"] = it == c.metadata.end() ? nlohmann::json() : nlohmann::json(it->second);
      e["pause_ms"] = CommitPauseNs(c) / 1e6;
      if (!c.participants.empty() && !c.participants[0].state_objects.empty()) {
        e["tracker"] = c.participants[0].state_objects[0].tracker;
      }
      e["persist_ms"] = CommitPersistNs(c) / 1e6;
      list.push_back(std::move(e));
    }
    j["checkpoints"] = std::move(list);
    j["gc"] = {{"policy_generation", gc->policy_generation.has_value()
                                         ? nlohmann::json(*gc->policy_generation)
                                         : nlohmann::json()},
               {"kept_checkpoints", gc->kept_checkpoints},
               {"needed_checkpoints", gc->needed_checkpoints},
               {"condemned_checkpoints", gc->condemned_checkpoints},
               {"deleted_objects", gc->deleted_objects}};
    nlohmann::json consolidated = nlohmann::json::array();
    for (const auto& [id, generation] : consolidations) consolidated.push_back(id);
    j["consolidation"] = {{"consolidated_checkpoints", consolidated}};
    if (compacted.ok()) {
      j["consolidation"]["latest"] = {{"id", compacted->id},
                                      {"generation", compacted->generation},
                                      {"links_before", compacted->links_before},
                                      {"links_after", compacted->links_after},
                                      {"packs_before", compacted->packs_before},
                                      {"packs_after", compacted->packs_after},
                                      {"verified", compacted->verified}};
    }
    std::cout << j.dump(2) << "\n";
    return verified ? kExitOk : kExitFailure;
  }
  std::cout << fmt::format("  killed the simulation (SIGKILL) {}\n",
                           run->kills > 0 ? run->kill_point : "never");
  if (run->restores > 0) {
    if (run->restored_id.has_value()) {
      std::cout << fmt::format(
          "  restarted it: restored checkpoint {} (step {}) in {}, resumed at step {}\n",
          *run->restored_id, run->restored_step, FormatNanos(run->restore_ns),
          run->restored_step + 1);
    } else {
      std::cout << "  restarted it: no checkpoint was committed yet, started over\n";
    }
  }
  if (!commits.empty() && !commits.back().participants.empty() &&
      !commits.back().participants[0].state_objects.empty()) {
    std::cout << fmt::format("  dirty tracking: {}\n",
                             commits.back().participants[0].state_objects[0].tracker);
    for (const StateObjectRecord& o : commits.back().participants[0].state_objects) {
      if (o.type != StateObjectType::kKeyed) continue;
      std::cout << fmt::format(
          "  keyed state '{}': {} entries in the last checkpoint, {} changed entries captured "
          "(per-entry tracking)\n",
          o.name, o.entries, o.changed_entries);
    }
  }
  std::cout << fmt::format("\n{:>6} {:<11} {:>5} {:>11} {:>11} {:>10} {:>10}\n", "id", "kind",
                           "step", "logical", "written", "pause", "persist");
  for (const CommitRecord& c : commits) {
    auto it = c.metadata.find("step");
    std::cout << fmt::format("{:>6} {:<11} {:>5} {:>11} {:>11} {:>10} {:>10}{}\n", c.id,
                             CheckpointKindName(c.kind), it == c.metadata.end() ? "-" : it->second,
                             FormatBytes(c.logical_bytes), FormatBytes(c.stored_bytes),
                             FormatNanos(CommitPauseNs(c)), FormatNanos(CommitPersistNs(c)),
                             run->restored_id == c.id ? "  <- restored" : "");
  }
  auto join = [](const std::vector<uint64_t>& ids) {
    std::string out;
    for (uint64_t id : ids) out += StrCat(out.empty() ? "" : " ", id);
    return out.empty() ? std::string("none") : out;
  };
  std::vector<uint64_t> consolidated_ids;
  for (const auto& [id, generation] : consolidations) consolidated_ids.push_back(id);
  if (compacted.ok()) {
    std::cout << fmt::format(
        "\nconsolidation: {} (a restore of checkpoint {} reads {} -> {} manifests, {} -> {} "
        "packs); consolidated checkpoints: {}\n",
        compacted->generation == 0
            ? std::string("the latest needed none")
            : StrCat("the latest consolidated, generation ", compacted->generation, ", verified"),
        compacted->id, compacted->links_before, compacted->links_after, compacted->packs_before,
        compacted->packs_after, join(consolidated_ids));
  }
  std::cout << fmt::format(
      "\nretention ({}): keeps {}, and {} that they need; condemned {} (`ickpt gc` removes them "
      "once the grace period, 1 h by default, has passed)\n",
      gc->policy_generation.has_value() ? StrCat("policy generation ", *gc->policy_generation)
                                        : std::string("no policy: everything is kept"),
      join(gc->kept_checkpoints), join(gc->needed_checkpoints), join(gc->condemned_checkpoints));
  std::cout << fmt::format("\nfinal state sha256 {}\nuninterrupted run  {}\n", run->final_hash,
                           expected);
  std::cout << fmt::format("verdict: {} ({} kill(s), {} restore(s), {:.1f} s)\n",
                           verified ? "VERIFIED, bit-identical" : "MISMATCH", run->kills,
                           run->restores, elapsed_s);
  if (!verified) PrintError("the recovered run's final state differs from the uninterrupted run");
  return verified ? kExitOk : kExitFailure;
}

}  // namespace

Command RegisterDemo(CLI::App& app) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* sub = app.add_subcommand(
      "demo",
      "Crash recovery, shown: run a simulation that checkpoints every few steps in a child "
      "process, SIGKILL it at a random (seeded) moment, restart it from the latest checkpoint "
      "and check that its final state is bit-identical to an uninterrupted run. Exit 0 only if "
      "verified.");
  sub->add_option("--repo", options->repo,
                  "New repository: a directory, file://PATH or s3://BUCKET[/PREFIX]?endpoint=URL "
                  "(default: ./ickpt-demo-<time>, created; a bucket must exist)")
      ->check(RepoUrlValidator());
  sub->add_option("--size", options->size,
                  "Region size, e.g. 64MiB (with --workers: each worker's table; default 32MiB)")
      ->capture_default_str()
      ->each([options](const std::string&) { options->size_given = true; });
  sub->add_option("--steps", options->steps, "Simulation steps (with --workers: default 300)")
      ->capture_default_str()
      ->each([options](const std::string&) { options->steps_given = true; });
  sub->add_option("--seed", options->seed, "Seed of data and kill moment")->capture_default_str();
  sub->add_option("--every", options->every, "Checkpoint every N steps")->capture_default_str();
  sub->add_option("--tracker", options->tracker,
                  "Dirty tracker: auto, uffd-async, soft-dirty, uffd-sync, mprotect, hash "
                  "(`ickpt doctor` shows which work here)")
      ->capture_default_str();
  sub->add_flag("--json", options->json,
                "One JSON object: verified, checkpoints, kills, restores, restore_ms, repo, ... "
                "(with --workers also recoveries and leader_changes)");
  sub->add_option("--workers", options->workers,
                  "N > 1: the distributed demo: a throw-away etcd, two coordinators and N worker "
                  "processes; chaos kills a worker and the leading coordinator; the final state "
                  "is verified against a failure-free run");
  sub->add_flag("--no-chaos", options->no_chaos, "With --workers: kill nothing");
  sub->add_option("--interval", options->interval,
                  "With --workers: time between the coordinators' checkpoints")
      ->capture_default_str();
  sub->add_option("--step-ms", options->step_ms,
                  "With --workers: each worker's time per step (the input's pace)")
      ->capture_default_str();
  return Command{sub, [options] { return RunDemo(*options); }};
}

Command RegisterDemoChild(CLI::App& app) {
  auto options = std::make_shared<ChildOptions>();
  CLI::App* sub = app.add_subcommand("demo-child", "The simulation process of `ickpt demo`.");
  sub->group("");  // hidden
  AddRepoOption(sub, &options->repo);
  sub->add_option("--size", options->size)->required();
  sub->add_option("--steps", options->steps)->required();
  sub->add_option("--seed", options->seed)->required();
  sub->add_option("--every", options->every);
  sub->add_option("--tracker", options->tracker);
  sub->add_flag("--resume", options->resume);
  return Command{sub, [options] { return RunChild(*options); }};
}

}  // namespace ickpt::cli
