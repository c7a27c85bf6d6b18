// `ickpt trigger --etcd URL --job NAME [--full] [--json]`: asks the job's leader for a checkpoint
// now (a request key, docs/protocol.md §3) and waits for its outcome. Exit 0 if it committed, 1 if
// it aborted or no outcome came within --timeout.
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ickpt/coordination.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/cli/etcd_flags.h"
#include "src/coord/coordination_store.h"
#include "src/coord/protocol.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

struct TriggerCliOptions {
  EtcdFlags etcd;
  std::string job;
  bool full = false;
  bool json = false;
  std::string timeout = "10m";
};

int RunTrigger(const TriggerCliOptions& o) {
  if (absl::Status s = coord::ValidateCoordinationName("job", o.job); !s.ok()) {
    PrintError(s.message());
    return kExitUsage;
  }
  std::optional<absl::Duration> timeout = ParseDurationFlag("--timeout", o.timeout, false);
  if (!timeout) return kExitUsage;
  int exit_code = kExitOk;
  std::shared_ptr<coord::CoordinationStore> store = ConnectEtcdOrExplain(o.etcd, &exit_code);
  if (store == nullptr) return exit_code;
  // Without a leader nobody would take the request: say so now instead of waiting out --timeout.
  absl::StatusOr<coord::RangeResult> leaders = store->GetPrefix(coord::LeaderPrefix(o.job));
  if (!leaders.ok()) return Fail(leaders.status());
  if (leaders->kvs.empty()) {
    return Fail(
        absl::UnavailableError(StrCat("job '", o.job, "' has no coordinator in ", store->Describe(),
                                      ": start one with `ickpt coordinator`")));
  }
  absl::StatusOr<std::pair<uint64_t, CheckpointOutcome>> result =
      RequestCheckpoint(store, o.job, o.full, std::nullopt, *timeout);
  if (!result.ok()) return Fail(result.status());
  const auto [id, outcome] = *result;
  // The reason of an abort, from the outcome key (best effort: the answer is the outcome).
  std::string reason;
  if (absl::StatusOr<coord::RangeResult> r = store->Get(coord::OutcomeKey(o.job, id));
      r.ok() && !r->kvs.empty()) {
    if (absl::StatusOr<coord::OutcomeValue> v =
            coord::DecodeOutcome(r->kvs[0].key, r->kvs[0].value);
        v.ok()) {
      reason = v->reason;
    }
  }
  const bool committed = outcome == CheckpointOutcome::kCommitted;
  if (o.json) {
    nlohmann::json j{{"id", id}, {"outcome", committed ? "committed" : "aborted"}};
    if (!committed) j["reason"] = reason;
    std::cout << j.dump() << "\n";
  } else {
    std::cout << fmt::format("checkpoint {} {}{}\n", id, committed ? "committed" : "aborted",
                             reason.empty() ? std::string() : StrCat(": ", reason));
  }
  return committed ? kExitOk : kExitFailure;
}

}  // namespace

Command RegisterTrigger(CLI::App& app) {
  auto options = std::make_shared<TriggerCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "trigger",
      "Ask a distributed job's leader for a checkpoint now and wait for its outcome: exit 0 if "
      "it committed, 1 if it aborted.");
  AddEtcdFlags(sub, &options->etcd);
  sub->add_option("--job", options->job, "The job's name")->required();
  sub->add_flag("--full", options->full, "A full checkpoint (no base)");
  sub->add_flag("--json", options->json, "One JSON object: id, outcome (and reason if aborted)");
  sub->add_option("--timeout", options->timeout, "How long to wait for the outcome")
      ->capture_default_str();
  return Command{sub, [options] { return RunTrigger(*options); }};
}

}  // namespace ickpt::cli
