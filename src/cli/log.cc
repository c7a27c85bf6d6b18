// `ickpt log`: every checkpoint of a repository, ascending by id.
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
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

// A state object of a checkpoint: (participant, name).
using ObjectName = std::pair<std::string, std::string>;

// The effective depth of each state object of the checkpoints read so far: how many manifests
// beyond the full one a restore walks (format.md §14.2), from commit records and consolidations
// alone (no manifest is read). Checkpoints must be added in ascending id order (a parent precedes
// its children).
class EffectiveDepths {
 public:
  explicit EffectiveDepths(std::map<uint64_t, uint64_t> consolidations)
      : consolidations_(std::move(consolidations)) {}

  bool consolidated(uint64_t id) const { return consolidations_.contains(id); }

  // The checkpoint's effective depth, the maximum over its state objects: 0 once it is
  // consolidated; otherwise per object 0 if its manifest is full, else the same object's in the
  // parent + 1 (0 for a consolidated parent). Where the parent's record was not read, or lacks the
  // object, the recorded depth stands.
  uint64_t Add(const CommitRecord& commit) {
    std::map<ObjectName, uint64_t>& mine = depths_[commit.id];
    const bool self_consolidated = consolidated(commit.id);
    const bool parent_consolidated = commit.parent.has_value() && consolidated(*commit.parent);
    const std::map<ObjectName, uint64_t>* parent = nullptr;
    if (commit.parent.has_value()) {
      auto it = depths_.find(*commit.parent);
      if (it != depths_.end()) parent = &it->second;
    }
    uint64_t max_depth = 0;
    for (const ParticipantRecord& p : commit.participants) {
      for (const StateObjectRecord& so : p.state_objects) {
        ObjectName name(p.name, so.name);
        uint64_t depth = so.depth;
        if (self_consolidated || so.kind == CheckpointKind::kFull) {
          depth = 0;
        } else if (parent_consolidated) {
          depth = 1;
        } else if (parent != nullptr) {
          if (auto it = parent->find(name); it != parent->end()) depth = it->second + 1;
        }
        mine[std::move(name)] = depth;
        max_depth = std::max(max_depth, depth);
      }
    }
    return max_depth;
  }

 private:
  std::map<uint64_t, uint64_t> consolidations_;
  std::map<uint64_t, std::map<ObjectName, uint64_t>> depths_;
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
  // Consolidation (format.md §14): which checkpoints have a complete manifest set in force.
  std::map<uint64_t, uint64_t> consolidations;
  if (absl::StatusOr<std::map<uint64_t, uint64_t>> m = ListConsolidations(**repo); m.ok()) {
    consolidations = *std::move(m);
  } else {
    PrintError(m.status().message());
    exit_code = WorseExit(exit_code, ExitCodeFor(m.status()));
  }
  EffectiveDepths effective(std::move(consolidations));
  // Coordinator epochs (format.md §15): which commits a newer epoch fenced out of the history.
  std::vector<EpochRecord> epochs;
  if (absl::StatusOr<std::vector<EpochRecord>> e = (*repo)->ListEpochs(); e.ok()) {
    epochs = *std::move(e);
  } else {
    PrintError(e.status().message());
    exit_code = WorseExit(exit_code, ExitCodeFor(e.status()));
  }
  nlohmann::json out = nlohmann::json::array();
  if (!options.json) {
    std::cout << fmt::format("{:>8} {:>8} {:<11} {:>5} {:>9} {:>12} {:>12}  {:<20} {}\n", "id",
                             "parent", "kind", "depth", "effective", "logical", "stored",
                             "created (UTC)", "retention");
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
    const uint64_t effective_depth = effective.Add(*commit);
    const bool consolidated = effective.consolidated(id);
    const std::optional<uint64_t> fenced_by = FencedBy(epochs, *commit);
    if (options.json) {
      nlohmann::json j = CommitSummaryJson(*commit);
      j["condemned"] = condemned.contains(id);
      j["pins"] = pinned_as;
      j["effective_depth"] = effective_depth;
      j["consolidated"] = consolidated;
      j["fenced_by"] = fenced_by.has_value() ? nlohmann::json(*fenced_by) : nlohmann::json(nullptr);
      j["metadata"] = commit->metadata;
      out.push_back(std::move(j));
    } else {
      std::string retention = consolidated ? "consolidated" : "";
      if (fenced_by.has_value()) {
        retention += StrCat(retention.empty() ? "" : " ", "fenced by epoch ", *fenced_by);
      }
      if (condemned.contains(id)) retention += StrCat(retention.empty() ? "" : " ", "condemned");
      for (const std::string& name : pinned_as) {
        retention += StrCat(retention.empty() ? "" : " ", "pin:", name);
      }
      std::cout << fmt::format(
          "{:>8} {:>8} {:<11} {:>5} {:>9} {:>12} {:>12}  {:<20} {}\n", commit->id,
          commit->parent.has_value() ? std::to_string(*commit->parent) : std::string("-"),
          CheckpointKindName(commit->kind), commit->depth, effective_depth,
          FormatBytes(commit->logical_bytes), FormatBytes(commit->stored_bytes),
          ShortTime(commit->created), retention);
    }
  }
  if (options.json) std::cout << out.dump(2) << "\n";
  return exit_code;
}

}  // namespace

Command RegisterLog(CLI::App& app) {
  auto options = std::make_shared<LogOptions>();
  CLI::App* sub = app.add_subcommand(
      "log",
      "List every checkpoint, ascending by id, with its recorded depth and its effective one "
      "(what a restore walks: 0 once consolidated by ickpt compact).");
  AddRepoOption(sub, &options->repo);
  sub->add_flag("--json", options->json,
                "JSON array: id, parent, kind, depth (the commit record's: increments since the "
                "full checkpoint), effective_depth (how many of them a restore walks: 0 once "
                "consolidated, else counted from the nearest consolidated ancestor), consolidated "
                "(bool), logical_bytes, stored_bytes, created, participants, condemned (bool), "
                "pins (names), fenced_by (the coordinator epoch that fenced the commit out of the "
                "history, format.md §15, or null), metadata (object of strings)");
  return Command{sub, [options] { return RunLog(*options); }};
}

}  // namespace ickpt::cli
