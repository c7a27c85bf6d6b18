// `ickpt log`: every checkpoint of a repository, ascending by id.
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ickpt/maintenance.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

struct LogOptions {
  std::string repo;
  bool json = false;
};

int RunLog(const LogOptions& options) {
  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(options.repo);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<std::vector<uint64_t>> ids = (*repo)->ListCommitIds();
  if (!ids.ok()) return Fail(ids.status());

  int exit_code = kExitOk;
  // Retention (format.md §13): which checkpoints are condemned and which are pinned, by name.
  std::set<uint64_t> condemned;
  std::map<uint64_t, std::vector<std::string>> pins;
  if (absl::StatusOr<std::vector<uint64_t>> c = ListCondemned(**repo); c.ok()) {
    condemned.insert(c->begin(), c->end());
  } else {
    PrintError(c.status().message());
    exit_code = WorseExit(exit_code, ExitCodeFor(c.status()));
  }
  if (absl::StatusOr<std::vector<Pin>> p = ListPins(**repo); p.ok()) {
    for (const Pin& pin : *p) pins[pin.id].push_back(pin.name);
  } else {
    PrintError(p.status().message());
    exit_code = WorseExit(exit_code, ExitCodeFor(p.status()));
  }
  nlohmann::json out = nlohmann::json::array();
  if (!options.json) {
    std::cout << fmt::format("{:>8} {:>8} {:<11} {:>5} {:>12} {:>12}  {:<20} {}\n", "id", "parent",
                             "kind", "depth", "logical", "stored", "created (UTC)", "retention");
  }
  for (uint64_t id : *ids) {
    absl::StatusOr<CommitRecord> commit = (*repo)->ReadCommit(id);
    // Listed, then removed by GC (format.md §13.4): it is no longer a checkpoint, not damage.
    if (absl::IsNotFound(commit.status())) continue;
    if (!commit.ok()) {
      // A commit record that exists but does not verify is damage: reported, never skipped.
      PrintError(commit.status().message());
      exit_code = WorseExit(exit_code, ExitCodeFor(commit.status()));
      continue;
    }
    const std::vector<std::string>& pinned_as = pins[id];
    if (options.json) {
      nlohmann::json j = CommitSummaryJson(*commit);
      j["condemned"] = condemned.contains(id);
      j["pins"] = pinned_as;
      out.push_back(std::move(j));
    } else {
      std::string retention = condemned.contains(id) ? "condemned" : "";
      for (const std::string& name : pinned_as) {
        retention += StrCat(retention.empty() ? "" : " ", "pin:", name);
      }
      std::cout << fmt::format(
          "{:>8} {:>8} {:<11} {:>5} {:>12} {:>12}  {:<20} {}\n", commit->id,
          commit->parent.has_value() ? std::to_string(*commit->parent) : std::string("-"),
          CheckpointKindName(commit->kind), commit->depth, FormatBytes(commit->logical_bytes),
          FormatBytes(commit->stored_bytes), ShortTime(commit->created), retention);
    }
  }
  if (options.json) std::cout << out.dump(2) << "\n";
  return exit_code;
}

}  // namespace

Command RegisterLog(CLI::App& app) {
  auto options = std::make_shared<LogOptions>();
  CLI::App* sub = app.add_subcommand("log", "List every checkpoint, ascending by id.");
  AddRepoOption(sub, &options->repo);
  sub->add_flag("--json", options->json,
                "JSON array: id, parent, kind, depth, logical_bytes, stored_bytes, created, "
                "participants");
  return Command{sub, [options] { return RunLog(*options); }};
}

}  // namespace ickpt::cli
