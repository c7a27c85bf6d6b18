// `ickpt compact [ID]`: consolidation (format.md §14) through include/ickpt/maintenance.h. Gives a
// committed checkpoint a complete manifest set, so that restoring it reads no ancestor and few
// packs, and GC can collect the chain it replaced. Opens the repository for writing (never
// creating it) and runs under the maintenance lock, as `gc` does.
#include <cmath>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "ickpt/maintenance.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

struct CompactOptions {
  std::string repo;
  std::string id = "latest";
  std::string min_pack_use = "0.5";
  bool verify = false;
  bool json = false;
};

// A fraction in [0, 1]; on a usage error prints it and returns nullopt.
std::optional<double> ParseFraction(std::string_view flag, const std::string& text) {
  double value = 0;
  if (!absl::SimpleAtod(text, &value) || !std::isfinite(value) || value < 0 || value > 1) {
    PrintError(StrCat(flag, " ", text, ": expected a number from 0 to 1, e.g. 0.5"));
    return std::nullopt;
  }
  return value;
}

nlohmann::json CompactJson(const ConsolidationReport& r) {
  nlohmann::json j;
  j["id"] = r.id;
  j["generation"] = r.generation;
  j["consolidated"] = r.generation != 0;
  j["links_before"] = r.links_before;
  j["links_after"] = r.links_after;
  j["packs_before"] = r.packs_before;
  j["packs_after"] = r.packs_after;
  j["repacked_bytes"] = r.repacked_bytes;
  j["stored_bytes"] = r.stored_bytes;
  j["reused_manifests"] = r.reused_manifests;
  j["verified"] = r.verified;
  return j;
}

void PrintCompactText(const ConsolidationReport& r) {
  if (r.generation == 0) {
    std::cout << fmt::format(
        "checkpoint {}: nothing to do: its manifests in force are already full and use their "
        "packs well ({} manifests, {} packs a restore reads)\n",
        r.id, r.links_after, r.packs_after);
    return;
  }
  std::cout << fmt::format(
      "consolidated checkpoint {}: generation {} published; a restore reads {} -> {} manifests, "
      "{} -> {} packs\n",
      r.id, r.generation, r.links_before, r.links_after, r.packs_before, r.packs_after);
  std::cout << fmt::format("  repacked {} into new packs, stored {} (packs and manifests){}{}\n",
                           FormatBytes(r.repacked_bytes), FormatBytes(r.stored_bytes),
                           r.reused_manifests > 0
                               ? StrCat(", manifests reused as they were: ", r.reused_manifests)
                               : std::string(),
                           r.verified ? ", verified against the chain it replaces" : "");
}

int RunCompact(const CompactOptions& o) {
  if (!CheckCheckpointIdArgument(o.id)) return kExitUsage;
  std::optional<double> min_pack_use = ParseFraction("--min-pack-use", o.min_pack_use);
  if (!min_pack_use.has_value()) return kExitUsage;
  absl::StatusOr<std::unique_ptr<Repository>> repo = OpenRepositoryForWriting(o.repo);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<uint64_t> id = ResolveCheckpointId(**repo, o.id);
  if (!id.ok()) return Fail(id.status());
  // Consolidate checks this too, but its message is about a removal during the run: a checkpoint
  // that was never there is reported as `show` reports it (NotFound 4, DataLoss 3).
  if (absl::StatusOr<CommitRecord> commit = (*repo)->ReadCommit(*id); !commit.ok()) {
    return Fail(commit.status());
  }
  ConsolidateOptions options;
  options.min_pack_use = *min_pack_use;
  options.verify = o.verify;
  // NotFound (4), DataLoss (3); the lock held by another gc or compact, or another consolidation
  // of this checkpoint that published first (Aborted), a condemned checkpoint and the rest: 1.
  absl::StatusOr<ConsolidationReport> report = Consolidate(**repo, *id, options);
  if (!report.ok()) return Fail(report.status());
  if (o.json) {
    std::cout << CompactJson(*report).dump(2) << "\n";
  } else {
    PrintCompactText(*report);
  }
  return kExitOk;
}

}  // namespace

Command RegisterCompact(CLI::App& app) {
  auto options = std::make_shared<CompactOptions>();
  CLI::App* sub = app.add_subcommand(
      "compact",
      "Consolidate a checkpoint: give it a complete manifest set (same id, same bytes), so that "
      "restoring it reads none of its ancestors and gc can collect them. Exit 1 if a gc or another "
      "compact holds the maintenance lock.");
  sub->add_option("ID", options->id, "Checkpoint id, or 'latest'")->capture_default_str();
  AddRepoOption(sub, &options->repo);
  sub->add_option("--min-pack-use", options->min_pack_use,
                  "Copy the checkpoint's blocks out of a pack of which it uses less than this "
                  "fraction of the raw bytes (0: never copy; 1: copy out of every pack not used "
                  "whole)")
      ->type_name("FRACTION")
      ->capture_default_str();
  sub->add_flag("--verify", options->verify,
                "Before publishing, read the checkpoint through the new manifests and through the "
                "chain they replace, and refuse unless both are identical (reads it twice)");
  sub->add_flag("--json", options->json,
                "One JSON object: id, generation (0: nothing needed doing), consolidated (bool), "
                "links_before, links_after (manifests a restore reads), packs_before, packs_after, "
                "repacked_bytes, stored_bytes, reused_manifests, verified");
  return Command{sub, [options] { return RunCompact(*options); }};
}

}  // namespace ickpt::cli
