// `ickpt demo --workers N`: a distributed job surviving failures, shown (issue 16). The launcher
// starts a throw-away etcd on loopback, two `ickpt coordinator` instances and N worker processes
// (`ickpt demo-worker`, hidden). Each worker is a participant (include/ickpt/coordination.h) that
// trains its partition of a sparse model from a replayable input stream (cluster_model.h). With
// chaos on, the launcher SIGKILLs a random worker at a random (seeded) moment and relaunches it,
// and later SIGKILLs the leading coordinator (the standby takes over; the killed one comes back as
// the new standby). At the end it asks for a last checkpoint, stops everything, and verifies that
// (1) every worker's final state and (2) every worker's part of that last committed checkpoint,
// restored from the repository, are bit-identical to a failure-free run computed in-process.
//
// Workers report on their stdout, one line per event (the launcher prints them live):
//   joined <incarnation>
//   restored <sequence> <checkpoint|none> <step> <microseconds> ok|MISMATCH
//   checkpoint <id> <step> <pause microseconds>
//   declined <id> <reason>
//   step <n>
//   done <sequence> <sha256>
//   error <message>
// A worker leaves the job and exits on SIGTERM; it dies with the launcher (PR_SET_PDEATHSIG).
#include "src/cli/cluster_demo.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "ickpt/checkpointer.h"
#include "ickpt/coordination.h"
#include "ickpt/repository.h"
#include "src/cli/cluster_model.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/coord/coordination_store.h"
#include "src/coord/local_etcd.h"
#include "src/coord/protocol.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

namespace model = cluster_model;

constexpr char kJob[] = "demo";

// ---------------------------------------------------------------------------------------------
// The worker.

struct WorkerCliOptions {
  std::string etcd;
  std::string job = kJob;
  std::string repo;
  std::string name;
  std::string tracker = "auto";
  uint64_t table_bytes = 0;
  uint64_t steps = 0;
  uint64_t seed = 0;
  int64_t step_ms = 100;
  int64_t lease_ttl_s = 2;
};

std::atomic<bool> worker_stop{false};

// A worker's state objects in its checkpointer (as the worker and the launcher's verification
// register them).
struct WorkerState {
  Region* table = nullptr;
  KeyedState* counters = nullptr;
  KeyedState* positions = nullptr;
};

absl::StatusOr<WorkerState> RegisterWorkerState(Checkpointer& ck, uint64_t table_bytes,
                                                TrackerKind tracker) {
  RegionOptions ro;
  ro.size = table_bytes;
  ro.tracker = tracker;
  absl::StatusOr<Region*> table = ck.AddRegion(model::kTableName, ro);
  if (!table.ok()) return table.status();
  KeyedStateOptions ko;
  ko.key_groups = model::kKeyGroups;
  absl::StatusOr<KeyedState*> counters = ck.AddKeyedState(model::kCountersName, ko);
  if (!counters.ok()) return counters.status();
  absl::StatusOr<KeyedState*> positions = ck.AddKeyedState(model::kPositionsName, ko);
  if (!positions.ok()) return positions.status();
  return WorkerState{*table, *counters, *positions};
}

// model::WorkerStateHash of what the state objects hold.
std::string HashOf(const WorkerState& state) {
  std::map<std::string, std::string> positions, counters;
  state.positions->ForEach(
      [&](std::string_view k, std::string_view v) { positions.emplace(k, v); });
  state.counters->ForEach([&](std::string_view k, std::string_view v) { counters.emplace(k, v); });
  return model::WorkerStateHash(std::string_view(state.table->data(), state.table->size()),
                                positions, counters);
}

class Worker {
 public:
  explicit Worker(WorkerCliOptions options) : o_(std::move(options)) {}

  int Run() {
    absl::StatusOr<TrackerKind> tracker = ParseTrackerName(o_.tracker);
    if (!tracker.ok()) return Die(tracker.status());
    tracker_ = *tracker;
    absl::StatusOr<std::shared_ptr<coord::CoordinationStore>> store = ConnectEtcd(o_.etcd);
    if (!store.ok()) return Die(store.status());
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenUrl(o_.repo, false);
    if (!repo.ok()) return Die(repo.status());
    repo_ = *std::move(repo);
    ParticipantOptions po;
    po.job = o_.job;
    po.name = o_.name;
    po.lease_ttl = absl::Seconds(o_.lease_ttl_s);
    po.prepare = [this](const Assignment& a) { return Prepare(a); };
    po.metadata = [this] {
      return std::map<std::string, std::string>{{StrCat("step/", o_.name), StrCat(done_)}};
    };
    absl::StatusOr<std::unique_ptr<Participant>> participant =
        Participant::Join(*store, repo_.get(), po);
    if (!participant.ok()) return Die(participant.status());
    participant_ = *std::move(participant);
    Emit(StrCat("joined ", participant_->incarnation()));
    while (!worker_stop.load()) {
      const absl::Time polled = absl::Now();
      absl::StatusOr<PollResult> r = participant_->Poll(done_ + 1);
      if (!r.ok()) {
        Emit(StrCat("error ", r.status().ToString()));
        absl::SleepFor(absl::Milliseconds(100));
        continue;
      }
      switch (r->event) {
        case PollResult::Event::kUnassigned:
          absl::SleepFor(absl::Milliseconds(20));
          continue;
        case PollResult::Event::kRestored:
          if (!Restored(*r, absl::Now() - polled)) return kExitDamaged;
          break;
        case PollResult::Event::kCheckpointed:
          Emit(StrCat("checkpoint ", r->checkpoint_id, " ", done_, " ",
                      absl::ToInt64Microseconds(r->pause)));
          break;
        case PollResult::Event::kDeclined:
          Emit(StrCat("declined ", r->checkpoint_id, " ", r->reason));
          break;
        case PollResult::Event::kNone:
          break;
      }
      if (!assignment_.has_value()) continue;
      if (done_ < o_.steps) {
        DoStep();
        Emit(StrCat("step ", done_));
        absl::SleepFor(absl::Milliseconds(o_.step_ms));
      } else {
        if (reported_done_ != assignment_->sequence) {
          reported_done_ = assignment_->sequence;
          Emit(StrCat("done ", assignment_->sequence, " ", Hash()));
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
    return kExitOk;  // the participant leaves after its pending persistence
  }

 private:
  absl::StatusOr<Checkpointer*> Prepare(const Assignment& a) {
    CheckpointerOptions base;
    base.persist_threads = 1;
    // The leading coordinator consolidates and collects garbage for the whole job.
    base.consolidate_in_background = false;
    base.gc_after_commit = false;
    checkpointer_.reset();
    absl::StatusOr<std::unique_ptr<Checkpointer>> ck =
        Checkpointer::Open(repo_.get(), a.Apply(base));
    if (!ck.ok()) return ck.status();
    checkpointer_ = *std::move(ck);
    absl::StatusOr<WorkerState> state =
        RegisterWorkerState(*checkpointer_, o_.table_bytes, tracker_);
    if (!state.ok()) return state.status();
    state_ = *state;
    return checkpointer_.get();
  }

  // After a restore: the positions say where the input resumes; the state is checked against a
  // failure-free replay up to there.
  bool Restored(const PollResult& r, absl::Duration took) {
    assignment_ = r.assignment;
    splits_ = model::OwnedSplits(state_.positions->group_first(), state_.positions->group_end());
    std::optional<uint64_t> records;
    bool consistent = true;
    for (uint32_t s : splits_) {
      std::optional<std::string_view> v = state_.positions->Get(model::PositionKey(s));
      uint64_t n = 0;
      if (v.has_value() && !absl::SimpleAtoi(ToAbsl(*v), &n)) consistent = false;
      if (!records.has_value()) records = n;
      if (*records != n) consistent = false;
    }
    if (!r.restored.has_value()) {
      model::InitTable(state_.table->data(), state_.table->size(), o_.seed,
                       assignment_->participant_index);
    }
    done_ = records.value_or(0) / model::kRecordsPerStep;
    const bool ok = consistent && records.value_or(0) % model::kRecordsPerStep == 0 &&
                    Hash() == model::ReferenceHash(state_.table->size(), o_.seed,
                                                   assignment_->participant_index,
                                                   assignment_->participant_count, done_);
    Emit(StrCat("restored ", assignment_->sequence, " ",
                r.restored.has_value() ? StrCat(r.restored->id) : std::string("none"), " ", done_,
                " ", absl::ToInt64Microseconds(took), ok ? " ok" : " MISMATCH"));
    return ok;
  }

  void DoStep() {
    ++done_;
    model::Step(
        state_.table->data(), state_.table->size(), o_.seed, done_, splits_,
        [&](const std::string& key) {
          uint64_t n = 0;
          if (std::optional<std::string_view> v = state_.counters->Get(key); v.has_value()) {
            if (!absl::SimpleAtoi(ToAbsl(*v), &n)) n = 0;
          }
          Check(state_.counters->Put(key, StrCat(n + 1)));
        },
        [&](const std::string& key, uint64_t records) {
          Check(state_.positions->Put(key, StrCat(records)));
        });
  }

  std::string Hash() const { return HashOf(state_); }

  void Check(const absl::Status& s) {
    if (!s.ok()) Emit(StrCat("error ", s.ToString()));
  }

  void Emit(const std::string& line) { std::cout << line << "\n" << std::flush; }

  int Die(const absl::Status& s) {
    Emit(StrCat("error ", s.ToString()));
    return Fail(s);
  }

  const WorkerCliOptions o_;
  TrackerKind tracker_ = TrackerKind::kAuto;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unique_ptr<Participant> participant_;
  WorkerState state_;
  std::vector<uint32_t> splits_;
  std::optional<Assignment> assignment_;
  uint64_t done_ = 0;
  uint64_t reported_done_ = 0;
};

void OnWorkerStopSignal(int) { worker_stop = true; }

int RunWorker(const WorkerCliOptions& options) {
  signal(SIGPIPE, SIG_IGN);
  // SIGTERM or SIGINT: leave the job after the pending persistence, and exit 0.
  struct sigaction action = {};
  action.sa_handler = OnWorkerStopSignal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  Worker worker(options);
  return worker.Run();
}

// ---------------------------------------------------------------------------------------------
// The launcher.

// One child process: a worker (stdout piped to the launcher) or a coordinator.
struct Proc {
  std::string name;
  pid_t pid = -1;
  int out = -1;  // the child's stdout (workers)
  std::string buffer;
  std::string log;  // its stderr
};

absl::StatusOr<Proc> Spawn(const std::string& name, std::vector<std::string> args, bool piped,
                           const std::string& log) {
  int up[2] = {-1, -1};
  if (piped && pipe2(up, O_CLOEXEC) != 0) {
    return absl::UnknownError(StrCat("pipe: ", std::strerror(errno)));
  }
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::UnknownError(StrCat("open ", log, ": ", std::strerror(errno)));
  const int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  std::fflush(stderr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::UnknownError(StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // the demo's processes die with the launcher
    if (getppid() != parent) _exit(126);
    dup2(null_fd, STDIN_FILENO);
    dup2(piped ? up[1] : log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  Proc p;
  p.name = name;
  p.pid = pid;
  p.log = log;
  if (piped) {
    close(up[1]);
    p.out = up[0];
    fcntl(p.out, F_SETFL, fcntl(p.out, F_GETFL) | O_NONBLOCK);
  }
  return p;
}

void CloseProc(Proc& p) {
  if (p.out >= 0) close(p.out);
  p.out = -1;
}

// Waits up to `timeout` for `p` to exit; SIGKILLs it after. Returns its wait status.
int Reap(Proc& p, absl::Duration timeout) {
  int status = 0;
  const absl::Time deadline = absl::Now() + timeout;
  while (p.pid > 0) {
    const pid_t r = waitpid(p.pid, &status, WNOHANG);
    if (r == p.pid || (r < 0 && errno != EINTR)) break;
    if (absl::Now() >= deadline) {
      kill(p.pid, SIGKILL);
      waitpid(p.pid, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  p.pid = -1;
  CloseProc(p);
  return status;
}

std::string LogTail(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  std::string all;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) all.append(buf, n);
  std::fclose(f);
  return all.size() <= 2000 ? all : all.substr(all.size() - 2000);
}

// The seeded chaos: which worker dies at which step of the slowest worker, and when the leader
// dies.
struct ChaosPlan {
  uint32_t worker = 0;
  uint64_t worker_kill_step = 0;
  uint64_t leader_kill_step = 0;
};

ChaosPlan PlanChaos(const ClusterDemoOptions& o) {
  std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ULL + 16);
  ChaosPlan plan;
  plan.worker = static_cast<uint32_t>(rng() % o.workers);
  plan.worker_kill_step = o.steps * 3 / 10 + rng() % std::max<uint64_t>(1, o.steps / 5);
  plan.leader_kill_step = o.steps * 6 / 10 + rng() % std::max<uint64_t>(1, o.steps / 5);
  return plan;
}

struct CheckpointSeen {
  int64_t max_pause_us = 0;
  uint32_t captures = 0;
};

class Launcher {
 public:
  explicit Launcher(const ClusterDemoOptions& o) : o_(o), plan_(PlanChaos(o)), live_(!o.json) {}

  int Run() {
    const absl::Time start = absl::Now();
    if (absl::Status s = Setup(); !s.ok()) return Fail(s);
    absl::Status run = Supervise();
    std::optional<uint64_t> final_id;
    if (run.ok()) {
      absl::StatusOr<uint64_t> id = FinalCheckpoint();
      if (id.ok())
        final_id = *id;
      else
        run = id.status();
    }
    Shutdown();
    if (!run.ok()) {
      keep_dir_ = true;  // the processes' logs explain it
      PrintError(StrCat("the logs of etcd, the coordinators and the workers are kept in ", dir_));
      return Fail(run);
    }
    absl::Status verified = Verify(*final_id);
    if (!verified.ok()) {
      keep_dir_ = true;
      PrintError(StrCat("the logs of etcd, the coordinators and the workers are kept in ", dir_));
    }
    elapsed_s_ = absl::ToDoubleSeconds(absl::Now() - start);
    return Report(*final_id, verified);
  }

  ~Launcher() {
    for (Proc& p : workers_) Reap(p, absl::ZeroDuration());
    for (Proc& p : coordinators_) Reap(p, absl::ZeroDuration());
    etcd_.reset();
    if (!dir_.empty() && !keep_dir_) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

 private:
  void Live(const std::string& line) { live_.Line(line); }

  std::string WorkerName(uint32_t i) const { return fmt::format("worker-{:02}", i); }

  absl::Status Setup() {
    char tmpl[] = "/tmp/ickpt-demo-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      return absl::UnknownError(StrCat("mkdtemp /tmp: ", std::strerror(errno)));
    }
    dir_ = tmpl;
    repo_path_ = o_.repo;
    {
      absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenUrl(repo_path_, true);
      if (!repo.ok()) return repo.status();
      absl::StatusOr<std::optional<uint64_t>> latest = (*repo)->LatestCommitId();
      if (!latest.ok()) return latest.status();
      if (latest->has_value()) {
        return absl::FailedPreconditionError(StrCat(
            "repository ", repo_path_, " already holds checkpoints; the demo needs a new one"));
      }
    }
    if (!coord::LocalEtcd::Available()) {
      return absl::FailedPreconditionError(
          "the distributed demo runs a throw-away etcd: /usr/bin/etcd is not installed (Debian "
          "package etcd-server; scripts/setup.sh installs it)");
    }
    coord::LocalEtcdOptions etcd_options;
    etcd_options.dir = dir_;
    absl::StatusOr<std::unique_ptr<coord::LocalEtcd>> etcd = coord::LocalEtcd::Start(etcd_options);
    if (!etcd.ok()) return etcd.status();
    etcd_ = *std::move(etcd);
    absl::StatusOr<std::shared_ptr<coord::CoordinationStore>> store =
        ConnectEtcd(etcd_->endpoint());
    if (!store.ok()) return store.status();
    store_ = *std::move(store);
    if (!o_.json) {
      std::cout << fmt::format(
          "ickpt demo --workers {}: repository {}\n  etcd {} (pid {}, throw-away, in {}); "
          "coordinators coord-a and coord-b (checkpoint every {}); {} workers, each a partition "
          "of a sparse model: a {} embedding table (region '{}') and keyed states '{}' and "
          "'{}', consuming {} input splits for {} steps; seed {}; chaos {}\n",
          o_.workers, repo_path_, etcd_->endpoint(), etcd_->pid(), dir_, o_.interval, o_.workers,
          FormatBytes(o_.table_bytes), model::kTableName, model::kCountersName,
          model::kPositionsName, model::kSplits, o_.steps, o_.seed,
          o_.chaos ? fmt::format("on (worker-{:02} dies near step {}, the leading coordinator "
                                 "near step {})",
                                 plan_.worker, plan_.worker_kill_step, plan_.leader_kill_step)
                   : std::string("off"));
    }
    for (const char* name : {"coord-a", "coord-b"}) {
      absl::StatusOr<Proc> p = SpawnCoordinator(name);
      if (!p.ok()) return p.status();
      coordinators_.push_back(*std::move(p));
    }
    for (uint32_t i = 0; i < o_.workers; ++i) {
      absl::StatusOr<Proc> p = SpawnWorker(i);
      if (!p.ok()) return p.status();
      workers_.push_back(*std::move(p));
    }
    steps_.assign(o_.workers, 0);
    done_.assign(o_.workers, std::nullopt);
    restored_seq_.assign(o_.workers, 0);
    return absl::OkStatus();
  }

  absl::StatusOr<Proc> SpawnCoordinator(const std::string& name) {
    return Spawn(name,
                 {"ickpt", "coordinator", "--etcd", etcd_->endpoint(), "--job", kJob, "--repo",
                  repo_path_, "--name", name, "--interval", o_.interval, "--timeout", "30s",
                  "--participants", StrCat(o_.workers), "--lease-ttl", "2s"},
                 false, StrCat(dir_, "/", name, ".log"));
  }

  absl::StatusOr<Proc> SpawnWorker(uint32_t i) {
    const std::string name = WorkerName(i);
    return Spawn(
        name,
        {"ickpt", "demo-worker", "--etcd", etcd_->endpoint(), "--repo", repo_path_, "--name", name,
         "--size", StrCat(o_.table_bytes), "--steps", StrCat(o_.steps), "--seed", StrCat(o_.seed),
         "--step-ms", StrCat(o_.step_ms), "--tracker", o_.tracker},
        true, StrCat(dir_, "/", name, ".log"));
  }

  // Runs until every worker reported its final state under the recovery in force, with every
  // planned kill done.
  absl::Status Supervise() {
    const absl::Time deadline = absl::Now() + absl::Minutes(10);
    absl::Time last_read = absl::InfinitePast();
    while (true) {
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            StrCat("the job did not finish within 10 minutes; logs in ", dir_));
      }
      if (absl::Status s = ReadWorkers(); !s.ok()) return s;
      if (absl::Now() - last_read >= absl::Milliseconds(100)) {
        last_read = absl::Now();
        if (absl::Status s = ReadJob(); !s.ok()) return s;
      }
      if (absl::Status s = Chaos(); !s.ok()) return s;
      if (Finished()) return absl::OkStatus();
    }
  }

  bool Finished() const {
    if (o_.chaos && (!worker_killed_ || !leader_killed_ || coordinator_down_.has_value())) {
      return false;
    }
    if (sequence_ == 0) return false;
    for (const std::optional<uint64_t>& d : done_) {
      if (!d.has_value() || *d != sequence_) return false;
    }
    return true;
  }

  absl::Status ReadWorkers() {
    std::vector<pollfd> fds;
    for (const Proc& p : workers_) fds.push_back({p.out, POLLIN, 0});
    if (poll(fds.data(), fds.size(), 50) < 0 && errno != EINTR) {
      return absl::UnknownError(StrCat("poll: ", std::strerror(errno)));
    }
    for (uint32_t i = 0; i < workers_.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Proc& p = workers_[i];
      char buf[4096];
      ssize_t n;
      while ((n = read(p.out, buf, sizeof buf)) > 0) p.buffer.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = p.buffer.find('\n')) != std::string::npos) {
        const std::string line = p.buffer.substr(0, nl);
        p.buffer.erase(0, nl + 1);
        if (absl::Status s = OnWorkerLine(i, line); !s.ok()) return s;
      }
      if (n == 0) {  // the worker exited on its own: a failure of the demo
        const int status = Reap(p, absl::Seconds(5));
        return absl::InternalError(StrCat(p.name, " exited unexpectedly (wait status ", status,
                                          "); its log ", p.log, ":\n", LogTail(p.log)));
      }
    }
    return absl::OkStatus();
  }

  absl::Status OnWorkerLine(uint32_t i, const std::string& line) {
    const std::vector<std::string> w = absl::StrSplit(line, ' ');
    if (w.empty()) return absl::OkStatus();
    const std::string& name = workers_[i].name;
    uint64_t a = 0, b = 0;
    if (w[0] == "step" && w.size() == 2 && absl::SimpleAtoi(w[1], &a)) {
      steps_[i] = a;
    } else if (w[0] == "checkpoint" && w.size() == 4 && absl::SimpleAtoi(w[1], &a)) {
      int64_t pause_us = 0;
      if (!absl::SimpleAtoi(w[3], &pause_us)) pause_us = 0;
      CheckpointSeen& seen = captures_[a];
      seen.max_pause_us = std::max(seen.max_pause_us, pause_us);
      ++seen.captures;
    } else if (w[0] == "restored" && w.size() == 6 && absl::SimpleAtoi(w[1], &a)) {
      if (w[5] != "ok") {
        return absl::DataLossError(StrCat(name, " restored ", w[2],
                                          " to a state that differs from "
                                          "a failure-free run up to its step ",
                                          w[3]));
      }
      uint64_t step = 0;
      if (!absl::SimpleAtoi(w[3], &step)) step = 0;
      steps_[i] = step;
      restored_seq_[i] = a;
      done_[i].reset();
      if (w[2] != "none") ++restores_;
      int64_t us = 0;
      if (!absl::SimpleAtoi(w[4], &us)) us = 0;
      restore_us_.push_back(us);
      MaybeRecovered(a, w[2]);
    } else if (w[0] == "done" && w.size() == 3 && absl::SimpleAtoi(w[1], &a)) {
      done_[i] = a;
      final_hash_[name] = w[2];
    } else if (w[0] == "declined" && w.size() >= 3) {
      // The reason is the rest of the line, spaces included.
      Live(StrCat(name, " declined checkpoint ", w[1], ": ",
                  line.substr(w[0].size() + w[1].size() + 2)));
    } else if (w[0] == "error") {
      Live(StrCat(name, ": ", line.substr(6)));
    } else if (w[0] == "joined" && w.size() == 2 && absl::SimpleAtoi(w[1], &b)) {
      if (workers_joined_ >= o_.workers) Live(StrCat(name, " joined again, incarnation ", b));
      ++workers_joined_;
    }
    return absl::OkStatus();
  }

  // Every worker restored under recovery `sequence`: the recovery is complete.
  void MaybeRecovered(uint64_t sequence, const std::string& checkpoint) {
    for (uint64_t s : restored_seq_) {
      if (s != sequence) return;
    }
    if (sequence <= completed_sequence_) return;
    completed_sequence_ = sequence;
    if (sequence == 1 && kill_time_ == absl::InfinitePast()) {
      Live(StrCat(
          "all ", o_.workers, " workers assigned and running (recovery 1: ",
          checkpoint == "none" ? std::string("started empty") : StrCat("checkpoint ", checkpoint),
          ")"));
      return;
    }
    const double since_kill_s =
        kill_time_ == absl::InfinitePast() ? 0 : absl::ToDoubleSeconds(absl::Now() - kill_time_);
    if (kill_time_ != absl::InfinitePast()) recovery_s_.push_back(since_kill_s);
    Live(StrCat("recovery ", sequence, " complete: every worker ",
                checkpoint == "none" ? std::string("started over (nothing committed yet)")
                                     : StrCat("restored checkpoint ", checkpoint),
                kill_time_ == absl::InfinitePast()
                    ? std::string()
                    : fmt::format(", {:.2f} s after the kill", since_kill_s)));
    kill_time_ = absl::InfinitePast();
  }

  absl::Status ReadJob() {
    absl::StatusOr<coord::RangeResult> range = store_->GetPrefix(coord::JobPrefix(kJob));
    if (!range.ok()) return range.status();
    const coord::JobSnapshot snap = coord::DecodeJobSnapshot(kJob, *range);
    if (const coord::JobSnapshot::Candidate* leader = snap.leader(); leader != nullptr) {
      if (leader->value.name != leader_) {
        if (!leader_.empty()) {
          ++leader_changes_;
          Live(StrCat(
              leader->value.name, " leads now (epoch ", leader->create_revision, ")",
              leader_kill_time_ == absl::InfinitePast()
                  ? std::string()
                  : fmt::format(", {:.2f} s after {} was killed",
                                absl::ToDoubleSeconds(absl::Now() - leader_kill_time_), leader_)));
          leader_kill_time_ = absl::InfinitePast();
        } else {
          Live(StrCat(leader->value.name, " leads (epoch ", leader->create_revision, ")"));
        }
        leader_ = leader->value.name;
      }
    }
    if (snap.recovery.has_value() && snap.recovery->sequence != sequence_) {
      if (sequence_ != 0) {
        ++recoveries_;
        Live(StrCat("recovery ", snap.recovery->sequence, " started: every worker goes back to ",
                    snap.recovery->checkpoint.has_value()
                        ? StrCat("checkpoint ", *snap.recovery->checkpoint)
                        : std::string("the start")));
      }
      sequence_ = snap.recovery->sequence;
    }
    for (const auto& [id, outcome] : snap.outcomes) {
      if (id <= last_outcome_) continue;
      last_outcome_ = id;
      const coord::TriggerFacts trigger = coord::TriggerFactsOf(snap, outcome);
      int64_t duration_ms = -1;
      if (trigger.triggered_ms > 0 && outcome.decided_ms >= trigger.triggered_ms) {
        duration_ms = outcome.decided_ms - trigger.triggered_ms;
        durations_ms_[id] = duration_ms;
      }
      if (outcome.outcome == coord::Outcome::kCommitted) {
        const CheckpointSeen& seen = captures_[id];
        Live(fmt::format(
            "checkpoint {} committed: {} participants, {} logical, {} written, pause max {}, "
            "{} from trigger to commit",
            id, trigger.participants ? StrCat(*trigger.participants) : std::string("?"),
            outcome.logical_bytes ? FormatBytes(*outcome.logical_bytes) : std::string("?"),
            outcome.stored_bytes ? FormatBytes(*outcome.stored_bytes) : std::string("?"),
            seen.captures > 0 ? FormatNanos(seen.max_pause_us * 1000) : std::string("?"),
            duration_ms >= 0 ? FormatNanos(duration_ms * 1000000) : std::string("?")));
      } else {
        aborted_[id] = outcome.reason;
        Live(StrCat("checkpoint ", id, " aborted: ", outcome.reason));
      }
    }
    return absl::OkStatus();
  }

  uint64_t SlowestStep() const { return *std::min_element(steps_.begin(), steps_.end()); }

  absl::Status Chaos() {
    if (coordinator_down_.has_value() && absl::Now() - down_since_ >= absl::Seconds(1)) {
      // The killed coordinator comes back: it is the new standby.
      const std::string name = coordinators_[*coordinator_down_].name;
      absl::StatusOr<Proc> p = SpawnCoordinator(name);
      if (!p.ok()) return p.status();
      coordinators_[*coordinator_down_] = *std::move(p);
      Live(StrCat(name, " relaunched (pid ", coordinators_[*coordinator_down_].pid,
                  "): it is the standby now"));
      coordinator_down_.reset();
    }
    if (!o_.chaos || completed_sequence_ == 0) return absl::OkStatus();
    if (!worker_killed_ && SlowestStep() >= plan_.worker_kill_step) {
      worker_killed_ = true;
      Proc& p = workers_[plan_.worker];
      const pid_t pid = p.pid;
      kill(pid, SIGKILL);
      Reap(p, absl::InfiniteDuration());
      kill_time_ = absl::Now();
      ++kills_;
      Live(
          StrCat("chaos: SIGKILL ", p.name, " (pid ", pid, ") at its step ", steps_[plan_.worker]));
      absl::StatusOr<Proc> relaunched = SpawnWorker(plan_.worker);
      if (!relaunched.ok()) return relaunched.status();
      workers_[plan_.worker] = *std::move(relaunched);
      restored_seq_[plan_.worker] = 0;
      done_[plan_.worker].reset();
      Live(StrCat(p.name, " relaunched (pid ", workers_[plan_.worker].pid, ")"));
      return absl::OkStatus();
    }
    // The leader dies once the worker's recovery is over, so that the two failures are seen apart.
    if (worker_killed_ && !leader_killed_ && kill_time_ == absl::InfinitePast() &&
        SlowestStep() >= plan_.leader_kill_step && !leader_.empty()) {
      for (size_t c = 0; c < coordinators_.size(); ++c) {
        if (coordinators_[c].name != leader_) continue;
        leader_killed_ = true;
        const pid_t pid = coordinators_[c].pid;
        kill(pid, SIGKILL);
        Reap(coordinators_[c], absl::InfiniteDuration());
        ++kills_;
        leader_kill_time_ = down_since_ = absl::Now();
        coordinator_down_ = c;
        Live(StrCat("chaos: SIGKILL the leading coordinator ", leader_, " (pid ", pid, ")"));
        break;
      }
    }
    return absl::OkStatus();
  }

  // A last checkpoint of the final state, asked for as `ickpt trigger` does.
  absl::StatusOr<uint64_t> FinalCheckpoint() {
    Live("every worker finished its input; asking for a last checkpoint");
    absl::StatusOr<std::pair<uint64_t, CheckpointOutcome>> r =
        RequestCheckpoint(store_, kJob, false, std::nullopt, absl::Minutes(2));
    if (!r.ok()) return r.status();
    if (r->second != CheckpointOutcome::kCommitted) {
      return absl::AbortedError(StrCat("the last checkpoint (", r->first, ") was aborted"));
    }
    // The workers' capture reports, then the outcome line.
    for (int i = 0; i < 4; ++i) {
      if (absl::Status s = ReadWorkers(); !s.ok()) return s;
    }
    if (absl::Status s = ReadJob(); !s.ok()) return s;
    return r->first;
  }

  void Shutdown() {
    for (Proc& p : workers_) {
      if (p.pid > 0) kill(p.pid, SIGTERM);  // they leave the job and exit
    }
    for (Proc& p : workers_) Reap(p, absl::Seconds(30));
    for (Proc& p : coordinators_) {
      if (p.pid > 0) kill(p.pid, SIGTERM);
    }
    for (Proc& p : coordinators_) Reap(p, absl::Seconds(10));
    store_.reset();
    etcd_.reset();
  }

  // Restores each worker's part of checkpoint `id` from the repository, as a relaunched job would,
  // and compares it with a failure-free run.
  absl::Status Verify(uint64_t id) {
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenUrl(repo_path_, false);
    if (!repo.ok()) return repo.status();
    absl::StatusOr<CommitRecord> record = (*repo)->ReadCommit(id);
    if (!record.ok()) return record.status();
    Assignment a;
    for (uint32_t i = 0; i < o_.workers; ++i) a.participants.push_back(WorkerName(i));
    a.participant_count = o_.workers;
    absl::Status result;
    for (uint32_t i = 0; i < o_.workers; ++i) {
      const std::string name = WorkerName(i);
      WorkerCheck& check = checks_[name];
      check.expected = model::ReferenceHash(o_.table_bytes, o_.seed, i, o_.workers, o_.steps);
      check.reported = final_hash_[name];
      a.name = name;
      a.participant_index = i;
      CheckpointerOptions base;
      base.consolidate_in_background = false;
      base.gc_after_commit = false;
      absl::StatusOr<std::unique_ptr<Checkpointer>> ck =
          Checkpointer::Open(repo->get(), a.Apply(base));
      if (!ck.ok()) return ck.status();
      absl::StatusOr<WorkerState> state =
          RegisterWorkerState(**ck, o_.table_bytes, TrackerKind::kAuto);
      if (!state.ok()) return state.status();
      RestoreOptions ropts;
      ropts.id = id;
      absl::StatusOr<CommitRecord> restored = (*ck)->Restore(ropts);
      if (!restored.ok()) return restored.status();
      check.restored = HashOf(*state);
      if (check.expected.empty() || check.reported != check.expected ||
          check.restored != check.expected) {
        result = absl::DataLossError(StrCat(name, ": final state differs from a failure-free run"));
      }
    }
    return result;
  }

  int Report(uint64_t final_id, const absl::Status& verified) {
    absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(repo_path_);
    if (!repo.ok()) return Fail(repo.status());
    absl::StatusOr<std::vector<uint64_t>> ids = (*repo)->ListCommitIds();
    if (!ids.ok()) return Fail(ids.status());
    std::vector<CommitRecord> commits;
    for (uint64_t id : *ids) {
      absl::StatusOr<CommitRecord> c = (*repo)->ReadCommit(id);
      if (!c.ok()) return Fail(c.status());
      commits.push_back(*std::move(c));
    }
    const bool ok = verified.ok();
    if (o_.json) {
      nlohmann::json j;
      j["verified"] = ok;
      j["workers"] = o_.workers;
      j["repo"] = repo_path_;
      j["seed"] = o_.seed;
      j["steps"] = o_.steps;
      j["table_bytes"] = o_.table_bytes;
      j["chaos"] = o_.chaos;
      j["kills"] = kills_;
      j["restores"] = restores_;
      j["recoveries"] = recoveries_;
      j["leader_changes"] = leader_changes_;
      j["recovery_s"] = recovery_s_;
      j["final_checkpoint"] = final_id;
      j["elapsed_s"] = elapsed_s_;
      nlohmann::json list = nlohmann::json::array();
      for (const CommitRecord& c : commits) {
        nlohmann::json e = CommitSummaryJson(c);
        e["pause_ms"] = CommitPauseNs(c) / 1e6;
        e["persist_ms"] = CommitPersistNs(c) / 1e6;
        auto d = durations_ms_.find(c.id);
        e["duration_ms"] = d == durations_ms_.end() ? nlohmann::json() : nlohmann::json(d->second);
        list.push_back(std::move(e));
      }
      j["checkpoints"] = std::move(list);
      nlohmann::json aborted = nlohmann::json::array();
      for (const auto& [id, reason] : aborted_) aborted.push_back({{"id", id}, {"reason", reason}});
      j["aborted"] = std::move(aborted);
      nlohmann::json states = nlohmann::json::array();
      for (const auto& [name, check] : checks_) {
        states.push_back({{"name", name},
                          {"expected_sha256", check.expected},
                          {"final_sha256", check.reported},
                          {"restored_sha256", check.restored}});
      }
      j["states"] = std::move(states);
      if (!ok) j["error"] = std::string(verified.message());
      std::cout << j.dump(2) << "\n";
      return ok ? kExitOk : kExitFailure;
    }
    std::cout << fmt::format("\n{:>6} {:<11} {:>6} {:>11} {:>11} {:>10} {:>10} {:>10}\n", "id",
                             "kind", "parts", "logical", "written", "pause", "persist", "duration");
    for (const CommitRecord& c : commits) {
      auto d = durations_ms_.find(c.id);
      std::cout << fmt::format(
          "{:>6} {:<11} {:>6} {:>11} {:>11} {:>10} {:>10} {:>10}\n", c.id,
          CheckpointKindName(c.kind), c.participants.size(), FormatBytes(c.logical_bytes),
          FormatBytes(c.stored_bytes), FormatNanos(CommitPauseNs(c)),
          FormatNanos(CommitPersistNs(c)),
          d == durations_ms_.end() ? std::string("-") : FormatNanos(d->second * 1000000));
    }
    if (!aborted_.empty()) {
      std::cout << "\naborted:\n";
      for (const auto& [id, reason] : aborted_) std::cout << fmt::format("{:>6} {}\n", id, reason);
    }
    std::cout << "\nfinal state of each worker (sha256, first 16 digits): failure-free run | "
                 "reported by the worker | restored from checkpoint "
              << final_id << "\n";
    for (const auto& [name, check] : checks_) {
      std::cout << fmt::format("  {}  {} | {} | {}\n", name, check.expected.substr(0, 16),
                               check.reported.substr(0, 16), check.restored.substr(0, 16));
    }
    std::string recovery_times;
    for (double s : recovery_s_)
      recovery_times += fmt::format("{}{:.2f} s", recovery_times.empty() ? "" : ", ", s);
    std::cout << fmt::format(
        "\nkills {}, recoveries {}{}, restores {}, leader changes {}; {:.1f} s\n", kills_,
        recoveries_,
        recovery_times.empty()
            ? ""
            : StrCat(" (", recovery_times, " from kill to every worker restored)"),
        restores_, leader_changes_, elapsed_s_);
    std::cout << fmt::format("verdict: {}\n",
                             ok ? "VERIFIED, bit-identical to a failure-free run" : "MISMATCH");
    if (!ok) PrintError(verified.message());
    return ok ? kExitOk : kExitFailure;
  }

  struct WorkerCheck {
    std::string expected, reported, restored;
  };

  const ClusterDemoOptions& o_;
  const ChaosPlan plan_;
  LiveLog live_;
  std::string dir_;  // etcd's data and every process's log; removed unless the demo failed
  bool keep_dir_ = false;
  std::string repo_path_;
  std::unique_ptr<coord::LocalEtcd> etcd_;
  std::shared_ptr<coord::CoordinationStore> store_;
  std::vector<Proc> workers_;
  std::vector<Proc> coordinators_;
  std::vector<uint64_t> steps_;
  std::vector<std::optional<uint64_t>> done_;  // the recovery sequence a worker finished under
  std::vector<uint64_t> restored_seq_;
  std::map<std::string, std::string> final_hash_;
  std::map<std::string, WorkerCheck> checks_;
  std::map<uint64_t, CheckpointSeen> captures_;
  std::map<uint64_t, int64_t> durations_ms_;
  std::map<uint64_t, std::string> aborted_;
  std::vector<int64_t> restore_us_;
  std::vector<double> recovery_s_;
  uint32_t workers_joined_ = 0;
  uint64_t sequence_ = 0;            // the recovery record's sequence, as last read
  uint64_t completed_sequence_ = 0;  // the last sequence every worker restored under
  uint64_t last_outcome_ = 0;
  std::string leader_;
  bool worker_killed_ = false;
  bool leader_killed_ = false;
  std::optional<size_t> coordinator_down_;
  absl::Time down_since_ = absl::InfinitePast();
  absl::Time kill_time_ = absl::InfinitePast();
  absl::Time leader_kill_time_ = absl::InfinitePast();
  uint64_t kills_ = 0, restores_ = 0, recoveries_ = 0, leader_changes_ = 0;
  double elapsed_s_ = 0;
};

}  // namespace

int RunClusterDemo(const ClusterDemoOptions& options) {
  signal(SIGPIPE, SIG_IGN);
  Launcher launcher(options);
  return launcher.Run();
}

Command RegisterDemoWorker(CLI::App& app) {
  auto options = std::make_shared<WorkerCliOptions>();
  CLI::App* sub = app.add_subcommand("demo-worker", "A worker process of `ickpt demo --workers`.");
  sub->group("");  // hidden
  sub->add_option("--etcd", options->etcd)->required();
  sub->add_option("--job", options->job);
  AddRepoOption(sub, &options->repo);
  sub->add_option("--name", options->name)->required();
  sub->add_option("--size", options->table_bytes)->required();
  sub->add_option("--steps", options->steps)->required();
  sub->add_option("--seed", options->seed)->required();
  sub->add_option("--step-ms", options->step_ms);
  sub->add_option("--tracker", options->tracker);
  sub->add_option("--lease-ttl", options->lease_ttl_s);
  return Command{sub, [options] { return RunWorker(*options); }};
}

}  // namespace ickpt::cli
