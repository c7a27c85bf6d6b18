// `ickpt log`: every checkpoint of a repository, ascending by id.
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

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
  nlohmann::json out = nlohmann::json::array();
  if (!options.json) {
    std::cout << fmt::format("{:>8} {:>8} {:<11} {:>5} {:>12} {:>12}  {}\n", "id", "parent", "kind",
                             "depth", "logical", "stored", "created (UTC)");
  }
  for (uint64_t id : *ids) {
    absl::StatusOr<CommitRecord> commit = (*repo)->ReadCommit(id);
    if (!commit.ok()) {
      // A commit record that exists but does not verify is damage: reported, never skipped.
      PrintError(commit.status().message());
      exit_code = WorseExit(exit_code, ExitCodeFor(commit.status()));
      if (exit_code == kExitNotFound) exit_code = kExitDamaged;  // listed, then gone or unreadable
      continue;
    }
    if (options.json) {
      out.push_back(CommitSummaryJson(*commit));
    } else {
      std::cout << fmt::format(
          "{:>8} {:>8} {:<11} {:>5} {:>12} {:>12}  {}\n", commit->id,
          commit->parent.has_value() ? std::to_string(*commit->parent) : std::string("-"),
          CheckpointKindName(commit->kind), commit->depth, FormatBytes(commit->logical_bytes),
          FormatBytes(commit->stored_bytes), ShortTime(commit->created));
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
