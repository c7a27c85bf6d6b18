// `ickpt coordinator --etcd URL[,URL...] --job NAME --repo URL`: one coordinator instance of a job
// (docs/protocol.md §5). Run two or more: one leads by election through etcd, the others wait to
// take over. Runs until SIGINT or SIGTERM, then resigns (the standby takes over at once).
#include <signal.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "ickpt/coordination.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/cli/etcd_flags.h"
#include "src/coord/coordination_store.h"
#include "src/util/log.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

struct CoordinatorCliOptions {
  EtcdFlags etcd;
  std::string job;
  std::string repo;
  std::string name;
  std::string interval = "30s";
  std::string timeout = "10m";
  std::string min_pause = "0s";
  std::string lease_ttl = "5s";
  int tolerable_failures = 3;
  uint32_t participants = 0;
  bool no_maintenance = false;
};

std::atomic<bool> stop_requested{false};

void OnStopSignal(int) { stop_requested = true; }

int RunCoordinator(const CoordinatorCliOptions& o) {
  CoordinatorOptions options;
  options.job = o.job;
  options.name = o.name;
  std::optional<absl::Duration> interval = ParseDurationFlag("--interval", o.interval, false);
  std::optional<absl::Duration> timeout = ParseDurationFlag("--timeout", o.timeout, false);
  std::optional<absl::Duration> min_pause = ParseDurationFlag("--min-pause", o.min_pause, false);
  std::optional<absl::Duration> ttl = ParseDurationFlag("--lease-ttl", o.lease_ttl, true);
  if (!interval || !timeout || !min_pause || !ttl) return kExitUsage;
  options.interval = *interval;
  options.timeout = *timeout;
  options.min_pause = *min_pause;
  options.lease_ttl = *ttl;
  options.tolerable_failures = o.tolerable_failures;
  options.participants = o.participants;
  options.maintenance = !o.no_maintenance;
  // Usage errors (2) before anything is opened or created.
  if (absl::Status s = ValidateCoordinatorOptions(options); !s.ok()) {
    PrintError(s.message());
    return kExitUsage;
  }
  int exit_code = kExitOk;
  std::shared_ptr<coord::CoordinationStore> store = ConnectEtcdOrExplain(o.etcd, &exit_code);
  if (store == nullptr) return exit_code;
  // The job's first coordinator creates the repository (participants open it).
  absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenUrl(o.repo, /*create=*/true);
  if (!repo.ok()) return Fail(repo.status());
  if (GetLogLevel() > LogLevel::kInfo) SetLogLevel(LogLevel::kInfo);  // a daemon: say what it does
  absl::StatusOr<std::unique_ptr<Coordinator>> coordinator =
      Coordinator::Start(store, repo->get(), options);
  if (!coordinator.ok()) {
    // InvalidArgument: a flag the repository refuses (a timeout above its policy's).
    if (absl::IsInvalidArgument(coordinator.status())) {
      PrintError(coordinator.status().message());
      return kExitUsage;
    }
    return Fail(coordinator.status());
  }
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  std::cerr << fmt::format("ickpt coordinator: job {} on {}, repository {}\n", o.job, store->Describe(),
                           (*repo)->Describe());
  while (!stop_requested) absl::SleepFor(absl::Milliseconds(100));
  const CoordinatorStats stats = (*coordinator)->stats();
  coordinator->reset();  // resigns
  std::cerr << fmt::format(
      "ickpt coordinator: stopped; led {} terms, triggered {}, committed {}, aborted {}, "
      "recoveries {}\n",
      stats.leader_terms, stats.triggered, stats.committed, stats.aborted, stats.recoveries);
  return kExitOk;
}

}  // namespace

Command RegisterCoordinator(CLI::App& app) {
  auto options = std::make_shared<CoordinatorCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "coordinator",
      "Run one coordinator instance of a distributed job (docs/protocol.md): run two or more; one "
      "leads through an etcd election, triggers checkpoints, commits them when every participant "
      "acknowledged, and recovers the job after failures; the others take over when it dies. "
      "Stops on SIGINT or SIGTERM.");
  AddEtcdFlags(sub, &options->etcd);
  sub->add_option("--job", options->job, "The job's name ([a-z0-9._-], up to 64)")->required();
  AddRepoOption(sub, &options->repo);
  sub->add_option("--name", options->name, "This instance's name (default: HOST-PID)");
  sub->add_option("--interval", options->interval, "Time between checkpoints")
      ->capture_default_str();
  sub->add_option("--timeout", options->timeout,
                  "Abort a checkpoint not committed this long after its trigger (at most the "
                  "retention policy's checkpoint timeout)")
      ->capture_default_str();
  sub->add_option("--min-pause", options->min_pause,
                  "At least this long between a checkpoint's end and the next trigger")
      ->capture_default_str();
  sub->add_option("--tolerable-failures", options->tolerable_failures,
                  "Consecutive failed checkpoints after which the job recovers")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--participants", options->participants,
                  "The job's participants: wait for this many before the first assignment (0: "
                  "whoever joined within one lease ttl); a different count than the job ran with "
                  "rescales it");
  sub->add_option("--lease-ttl", options->lease_ttl,
                  "How long a silent leader keeps office (whole seconds)")
      ->capture_default_str();
  sub->add_flag("--no-maintenance", options->no_maintenance,
                "Do not consolidate or collect garbage after commits");
  return Command{sub, [options] { return RunCoordinator(*options); }};
}

}  // namespace ickpt::cli
