// `ickpt policy`: what the repository's history says about checkpointing it: the pause, how much
// changes between checkpoints, how deep the latest chain is and what restoring it costs (the cost
// model of src/repo/cost_model.h), how much the store holds for it, and the checkpoint interval
// from Young/Daly's formula. Read-only: opens nothing for writing and writes nothing.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/repo/cost_model.h"
#include "src/repo/keys.h"
#include "src/repo/object_check.h"
#include "src/repo/reachability.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

// Above this effective depth the latest checkpoint is worth consolidating whatever the RTO.
constexpr uint64_t kDeepChain = 16;

struct PolicyOptions {
  std::string repo;
  std::string rto;
  std::string mtbf;
  bool json = false;
  CLI::Option* rto_option = nullptr;
  CLI::Option* mtbf_option = nullptr;
};

// The median of `values` (the mean of the two middle ones for an even count); nullopt if empty.
std::optional<double> Median(std::vector<double> values) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Σ pause_ns over the checkpoint's state objects, in ms.
double SummedPauseMs(const CommitRecord& commit) {
  int64_t ns = 0;
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& so : p.state_objects) ns += so.pause_ns;
  }
  return static_cast<double>(ns) / 1e6;
}

// Σ raw_bytes / Σ logical_bytes over the checkpoint's regions (the fraction of their blocks it
// captured); nullopt if it has no region bytes.
std::optional<double> RegionChangeRate(const CommitRecord& commit) {
  uint64_t raw = 0, logical = 0;
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& so : p.state_objects) {
      if (so.type != StateObjectType::kRegion) continue;
      raw += so.raw_bytes;
      logical += so.logical_bytes;
    }
  }
  if (logical == 0) return std::nullopt;
  return static_cast<double>(raw) / static_cast<double>(logical);
}

struct ChangeRate {
  std::optional<double> median;
  size_t checkpoints = 0;      // records the median is over
  bool latest_lineage = true;  // over the incrementals of the latest lineage; false: every record
};

// The median change rate over the incremental checkpoints of the latest lineage (the latest
// checkpoint and its ancestors by `parent`, as far as their records were read), or over every
// record if that lineage has none.
ChangeRate MedianChangeRate(const std::map<uint64_t, CommitRecord>& records) {
  std::vector<const CommitRecord*> incrementals;
  for (const CommitRecord* c = &records.rbegin()->second; c != nullptr;) {
    if (c->kind == CheckpointKind::kIncremental) incrementals.push_back(c);
    // A parent precedes its child (format.md §6), so the walk ends.
    auto parent =
        c->parent.has_value() && *c->parent < c->id ? records.find(*c->parent) : records.end();
    c = parent == records.end() ? nullptr : &parent->second;
  }
  ChangeRate out;
  if (incrementals.empty()) {
    out.latest_lineage = false;
    for (const auto& [id, c] : records) incrementals.push_back(&c);
  }
  std::vector<double> rates;
  for (const CommitRecord* c : incrementals) {
    if (std::optional<double> r = RegionChangeRate(*c); r.has_value()) rates.push_back(*r);
  }
  out.checkpoints = rates.size();
  out.median = Median(std::move(rates));
  return out;
}

// Bytes of packs and manifests: those reachable from every commit record, and those listed but
// reachable from none.
struct SpaceUse {
  uint64_t reachable_bytes = 0;
  uint64_t orphan_bytes = 0;
};

absl::StatusOr<SpaceUse> MeasureSpaceUse(const RepositoryReader& repo,
                                         const std::vector<uint64_t>& ids, int* exit_code) {
  absl::StatusOr<Reachable> reachable = ComputeReachable(repo, ids);
  if (!reachable.ok()) return reachable.status();
  for (const ReachProblem& problem : reachable->problems) {
    PrintError(StrCat(problem.key, ": ", problem.status.message()));
    *exit_code = WorseExit(*exit_code, ExitCodeFor(problem.status));
  }
  absl::StatusOr<std::vector<ObjectInfo>> objects = ListRepositoryObjects(repo);
  if (!objects.ok()) return objects.status();
  SpaceUse use;
  for (const ObjectInfo& o : *objects) {
    const bool pack = o.key.starts_with(kPacksPrefix);
    if (!pack && !o.key.starts_with(kManifestsPrefix)) continue;
    const bool reached =
        pack ? reachable->packs.contains(o.key) : reachable->manifests.contains(o.key);
    (reached ? use.reachable_bytes : use.orphan_bytes) += o.size;
  }
  return use;
}

nlohmann::json NumberOrNull(std::optional<double> value) {
  return value.has_value() && std::isfinite(*value) ? nlohmann::json(*value) : nlohmann::json();
}

std::string Fixed(std::optional<double> value, int digits) {
  return value.has_value() && std::isfinite(*value) ? fmt::format("{:.{}f}", *value, digits)
                                                    : std::string("-");
}

int RunPolicy(const PolicyOptions& o) {
  // A duration flag given must parse and be above 0; false on a usage error (printed).
  auto parse = [](const CLI::Option* option, std::string_view flag, const std::string& text,
                  std::optional<absl::Duration>* out) {
    if (option->count() == 0) return true;
    *out = ParseDurationFlag(flag, text, /*whole_seconds=*/false);
    if (!out->has_value()) return false;
    if (**out > absl::ZeroDuration()) return true;
    PrintError(StrCat(flag, " ", text, ": expected a duration above 0"));
    return false;
  };
  std::optional<absl::Duration> rto, mtbf;
  if (!parse(o.rto_option, "--rto", o.rto, &rto)) return kExitUsage;
  if (!parse(o.mtbf_option, "--mtbf", o.mtbf, &mtbf)) return kExitUsage;

  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(o.repo);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<std::vector<uint64_t>> ids = (*repo)->ListCommitIds();
  if (!ids.ok()) return Fail(ids.status());
  absl::StatusOr<std::vector<EpochRecord>> epochs = (*repo)->ListEpochs();
  if (!epochs.ok()) return Fail(epochs.status());
  int exit_code = kExitOk;
  std::map<uint64_t, CommitRecord> records;
  for (uint64_t id : *ids) {
    absl::StatusOr<CommitRecord> commit = (*repo)->ReadCommit(id);
    // Listed, then removed by GC (format.md §13.4): no longer a checkpoint, not damage.
    if (absl::IsNotFound(commit.status())) continue;
    if (!commit.ok()) {
      PrintError(commit.status().message());
      exit_code = WorseExit(exit_code, ExitCodeFor(commit.status()));
      continue;
    }
    // A fenced commit (format.md §15) is not part of the history: not the latest, no pause.
    if (FencedBy(*epochs, *commit).has_value()) continue;
    records.emplace(id, *std::move(commit));
  }
  if (records.empty()) {
    if (exit_code != kExitOk) return exit_code;
    PrintError(StrCat("repository ", (*repo)->Describe(),
                      " has no checkpoints: there is no history to report on"));
    return kExitNotFound;
  }
  const CommitRecord& latest = records.rbegin()->second;

  std::vector<double> pauses;
  for (const auto& [id, c] : records) pauses.push_back(SummedPauseMs(c));
  const double pause_ms_p50 = *Median(std::move(pauses));
  const ChangeRate change = MedianChangeRate(records);

  absl::StatusOr<RestoreWork> work = MeasureRestoreWork(**repo, latest);
  if (!work.ok()) return Fail(work.status());
  // A checkpoint that references no pack (every block zero) reads only manifests: nothing to time.
  std::optional<ReadSpeed> speed;
  if (absl::StatusOr<ReadSpeed> s = MeasureReadSpeed(**repo, latest); s.ok()) {
    speed = *s;
  } else if (!absl::IsFailedPrecondition(s.status())) {
    return Fail(s.status());
  }
  const double estimated_restore_s = EstimatedRestoreSeconds(*work, speed.value_or(ReadSpeed{}));

  std::vector<uint64_t> all_ids;
  for (const auto& [id, c] : records) all_ids.push_back(id);
  absl::StatusOr<SpaceUse> space = MeasureSpaceUse(**repo, all_ids, &exit_code);
  if (!space.ok()) return Fail(space.status());
  std::optional<double> space_amplification;
  if (latest.logical_bytes > 0) {
    space_amplification =
        static_cast<double>(space->reachable_bytes) / static_cast<double>(latest.logical_bytes);
  }

  std::optional<double> young_daly;
  if (mtbf.has_value()) {
    young_daly = YoungDalyIntervalSeconds(pause_ms_p50 / 1000, absl::ToDoubleSeconds(*mtbf));
  }
  std::optional<bool> meets_rto;
  if (rto.has_value()) meets_rto = estimated_restore_s <= absl::ToDoubleSeconds(*rto);
  const bool consolidate =
      (meets_rto.has_value() && !*meets_rto) || work->max_effective_depth > kDeepChain;
  const std::string recommendation =
      consolidate ? "consolidate the latest checkpoint (ickpt compact)" : "nothing to do";

  if (o.json) {
    nlohmann::json j;
    j["checkpoints"] = records.size();
    j["latest"] = latest.id;
    j["pause_ms_p50"] = pause_ms_p50;
    j["change_rate"] = NumberOrNull(change.median);
    j["change_rate_checkpoints"] = change.checkpoints;
    j["change_rate_scope"] = change.latest_lineage ? "latest_lineage" : "all";
    j["chain_depth"] = work->max_effective_depth;
    j["estimated_restore_s"] = estimated_restore_s;
    j["restore_bytes"] = work->bytes;
    j["restore_objects"] = work->objects;
    j["restore_links"] = work->links;
    j["restore_packs"] = work->packs;
    j["read_bytes_per_second"] =
        NumberOrNull(speed.has_value() ? std::optional(speed->bytes_per_second) : std::nullopt);
    j["read_seconds_per_object"] =
        NumberOrNull(speed.has_value() ? std::optional(speed->seconds_per_object) : std::nullopt);
    j["space_amplification"] = NumberOrNull(space_amplification);
    j["reachable_bytes"] = space->reachable_bytes;
    j["logical_bytes"] = latest.logical_bytes;
    j["orphan_bytes"] = space->orphan_bytes;
    j["young_daly_interval_s"] = NumberOrNull(young_daly);
    if (mtbf.has_value()) j["mtbf_s"] = absl::ToDoubleSeconds(*mtbf);
    if (rto.has_value()) {
      j["rto_s"] = absl::ToDoubleSeconds(*rto);
      j["meets_rto"] = *meets_rto;
    }
    j["recommendation"] = recommendation;
    std::cout << j.dump(2) << "\n";
    return exit_code;
  }

  std::cout << fmt::format("checkpoints:           {} (latest {})\n", records.size(), latest.id);
  std::cout << fmt::format("pause p50:             {:.3f} ms (summed over state objects)\n",
                           pause_ms_p50);
  std::cout << fmt::format(
      "change rate p50:       {} (over {} {})\n", Fixed(change.median, 4), change.checkpoints,
      change.latest_lineage ? "incremental checkpoints of the latest lineage"
                            : "checkpoints: the latest lineage has no incremental one");
  std::cout << fmt::format(
      "chain depth:           {} (effective: manifests a restore walks beyond the full one)\n",
      work->max_effective_depth);
  std::cout << fmt::format("estimated restore:     {} ({} in {} objects, {} manifests, {} packs)\n",
                           FormatNanos(static_cast<int64_t>(estimated_restore_s * 1e9)),
                           FormatBytes(work->bytes), work->objects, work->links, work->packs);
  if (speed.has_value()) {
    std::cout << fmt::format("read speed:            {}/s, {} per object\n",
                             FormatBytes(static_cast<uint64_t>(speed->bytes_per_second)),
                             FormatNanos(static_cast<int64_t>(speed->seconds_per_object * 1e9)));
  } else {
    std::cout << "read speed:            - (the latest checkpoint references no pack)\n";
  }
  std::cout << fmt::format(
      "space amplification:   {} ({} of packs and manifests reachable, {} logical)\n",
      Fixed(space_amplification, 2), FormatBytes(space->reachable_bytes),
      FormatBytes(latest.logical_bytes));
  std::cout << fmt::format("orphan bytes:          {}\n", FormatBytes(space->orphan_bytes));
  if (young_daly.has_value()) {
    std::cout << fmt::format("young/daly interval:   {:.1f} s (mtbf {})\n", *young_daly,
                             absl::FormatDuration(*mtbf));
  } else {
    std::cout << "young/daly interval:   - (give --mtbf)\n";
  }
  if (rto.has_value()) {
    std::cout << fmt::format("rto:                   {} ({})\n", absl::FormatDuration(*rto),
                             *meets_rto ? "met" : "not met");
  }
  std::cout << "recommendation:        " << recommendation << "\n";
  return exit_code;
}

}  // namespace

Command RegisterPolicy(CLI::App& app) {
  auto options = std::make_shared<PolicyOptions>();
  CLI::App* sub = app.add_subcommand(
      "policy",
      "Report from the history what checkpointing this repository costs (pause, change rate, "
      "chain depth, estimated restore time, space) and whether to compact. Read-only; exit 4 if "
      "it has no checkpoints.");
  AddRepoOption(sub, &options->repo);
  options->rto_option =
      sub->add_option("--rto", options->rto,
                      "Recovery time objective: report whether the estimated restore meets it")
          ->type_name("DURATION");
  options->mtbf_option =
      sub->add_option("--mtbf", options->mtbf,
                      "Mean time between failures, for the Young/Daly interval (e.g. 1d)")
          ->type_name("DURATION");
  sub->add_flag(
      "--json", options->json,
      "One JSON object: checkpoints; pause_ms_p50 (median over commit records of the pause summed "
      "over their state objects, ms); change_rate (median, over the incremental checkpoints of "
      "the latest lineage or over every checkpoint if it has none, of the regions' Σ raw_bytes / "
      "Σ logical_bytes: the fraction of their blocks a checkpoint captured; null without "
      "regions); chain_depth (the latest checkpoint's effective depth); estimated_restore_s "
      "(restore_bytes in restore_objects requests at the read speed measured now, "
      "read_bytes_per_second and read_seconds_per_object); space_amplification (bytes of packs "
      "and manifests reachable from every checkpoint / the latest's logical_bytes); orphan_bytes "
      "(packs and manifests nothing reaches); young_daly_interval_s (null without --mtbf); "
      "rto_s and meets_rto (with --rto); recommendation ('consolidate the latest checkpoint "
      "(ickpt compact)' when the RTO is not met or chain_depth > 16, else 'nothing to do'); and "
      "more");
  return Command{sub, [options] { return RunPolicy(*options); }};
}

}  // namespace ickpt::cli
