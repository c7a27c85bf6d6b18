// `ickpt show ID`: one checkpoint with its state objects and metadata.
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/repo/commit_record.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

struct ShowOptions {
  std::string repo;
  std::string id;
  bool json = false;
};

// A keyed state over every participant that holds part of it (its key groups are split among
// them, format.md §5.3), from the commit record alone: no manifest is read.
struct KeyedTotal {
  std::string name;
  uint32_t key_groups = 0;
  uint64_t entries = 0;
  uint64_t logical_bytes = 0;
  std::vector<std::string> participants;
};

std::vector<KeyedTotal> KeyedTotals(const CommitRecord& commit) {
  std::map<std::string, KeyedTotal> by_name;
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& so : p.state_objects) {
      if (so.type != StateObjectType::kKeyed) continue;
      KeyedTotal& t = by_name[so.name];
      t.name = so.name;
      t.key_groups = so.key_groups;
      t.entries += so.entries;
      t.logical_bytes += so.logical_bytes;
      t.participants.push_back(p.name);
    }
  }
  std::vector<KeyedTotal> out;
  for (auto& [name, total] : by_name) out.push_back(std::move(total));
  return out;
}

nlohmann::json ShowJson(const CommitRecord& commit, std::optional<uint64_t> fenced_by) {
  nlohmann::json j = CommitSummaryJson(commit);
  j["epoch"] = commit.epoch;
  j["fenced_by"] = fenced_by.has_value() ? nlohmann::json(*fenced_by) : nlohmann::json(nullptr);
  j["pause_ns"] = CommitPauseNs(commit);
  j["persist_ns"] = CommitPersistNs(commit);
  nlohmann::json objects = nlohmann::json::array();
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& so : p.state_objects) {
      nlohmann::json o;
      o["name"] = so.name;
      o["type"] = std::string(StateObjectTypeName(so.type));
      o["participant"] = p.name;
      o["logical_bytes"] = so.logical_bytes;
      o["stored_bytes"] = so.stored_bytes;
      o["tracker"] = so.tracker;
      o["kind"] = std::string(CheckpointKindName(so.kind));
      o["depth"] = so.depth;
      o["changed_blocks"] = so.changed_blocks;
      o["raw_bytes"] = so.raw_bytes;
      o["pause_ns"] = so.pause_ns;
      o["persist_ns"] = so.persist_ns;
      o["manifest"] = so.manifest;
      o["manifest_sha256"] = so.manifest_sha256;
      o["manifest_bytes"] = so.manifest_bytes;
      if (so.type == StateObjectType::kKeyed) {
        // This participant's part (format.md §6); logical_bytes is its entries' key and value
        // bytes. Region objects keep exactly their fields.
        o["key_groups"] = so.key_groups;
        o["entries"] = so.entries;
        o["changed_entries"] = so.changed_entries;
        o["tombstones"] = so.tombstones;
      }
      objects.push_back(std::move(o));
    }
  }
  j["state_objects"] = std::move(objects);
  nlohmann::json keyed = nlohmann::json::array();
  for (const KeyedTotal& k : KeyedTotals(commit)) {
    keyed.push_back({{"name", k.name},
                     {"key_groups", k.key_groups},
                     {"entries", k.entries},
                     {"logical_bytes", k.logical_bytes},
                     {"participants", k.participants}});
  }
  j["keyed_states"] = std::move(keyed);
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [k, v] : commit.metadata) metadata[k] = v;
  j["metadata"] = std::move(metadata);
  return j;
}

void PrintText(const CommitRecord& commit, std::optional<uint64_t> fenced_by) {
  std::cout << fmt::format("checkpoint {}\n", commit.id);
  std::cout << fmt::format("  parent:        {}\n",
                           commit.parent.has_value() ? std::to_string(*commit.parent) : "-");
  std::cout << fmt::format("  kind:          {} (depth {})\n", CheckpointKindName(commit.kind),
                           commit.depth);
  std::cout << fmt::format("  created:       {}\n", ickpt::FormatTime(commit.created));
  std::cout << fmt::format("  epoch:         {}\n", commit.epoch);
  if (fenced_by.has_value()) {
    std::cout << fmt::format(
        "  fenced:        by epoch {}: not part of the history (format.md §15.3)\n", *fenced_by);
  }
  std::cout << fmt::format("  logical size:  {} ({} bytes)\n", FormatBytes(commit.logical_bytes),
                           commit.logical_bytes);
  std::cout << fmt::format("  stored bytes:  {} ({} bytes)\n", FormatBytes(commit.stored_bytes),
                           commit.stored_bytes);
  std::cout << fmt::format("  pause:         {}\n", FormatNanos(CommitPauseNs(commit)));
  std::cout << fmt::format("  persist:       {}\n", FormatNanos(CommitPersistNs(commit)));
  std::cout << fmt::format("  participants:  {}\n", commit.participants.size());
  if (!commit.metadata.empty()) {
    std::cout << "  metadata:\n";
    for (const auto& [k, v] : commit.metadata) std::cout << fmt::format("    {} = {}\n", k, v);
  }
  std::cout << "  state objects:\n";
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& so : p.state_objects) {
      if (so.type == StateObjectType::kKeyed) {
        std::cout << fmt::format("    {}/{} (keyed, {} key groups)\n", p.name, so.name,
                                 so.key_groups);
        std::cout << fmt::format(
            "      {} depth {}, {} entries ({}), {} changed entries ({} tombstones, {} captured), "
            "{} stored\n",
            CheckpointKindName(so.kind), so.depth, so.entries, FormatBytes(so.logical_bytes),
            so.changed_entries, so.tombstones, FormatBytes(so.raw_bytes),
            FormatBytes(so.stored_bytes));
      } else {
        std::cout << fmt::format("    {}/{} ({}, tracker {})\n", p.name, so.name,
                                 StateObjectTypeName(so.type), so.tracker);
        std::cout << fmt::format(
            "      {} depth {}, {} logical, {} changed blocks ({} captured), {} stored\n",
            CheckpointKindName(so.kind), so.depth, FormatBytes(so.logical_bytes), so.changed_blocks,
            FormatBytes(so.raw_bytes), FormatBytes(so.stored_bytes));
      }
      std::cout << fmt::format("      pause {}, persist {}\n", FormatNanos(so.pause_ns),
                               FormatNanos(so.persist_ns));
      std::cout << fmt::format("      manifest {} ({} bytes)\n", so.manifest, so.manifest_bytes);
    }
  }
  const std::vector<KeyedTotal> keyed = KeyedTotals(commit);
  if (!keyed.empty()) {
    std::cout << "  keyed states (over every participant; read with 'ickpt get' / 'ickpt dump'):\n";
    for (const KeyedTotal& k : keyed) {
      std::cout << fmt::format(
          "    {}: {} entries, {} ({} bytes), {} key groups, {} participant{}\n", k.name, k.entries,
          FormatBytes(k.logical_bytes), k.logical_bytes, k.key_groups, k.participants.size(),
          k.participants.size() == 1 ? "" : "s");
    }
  }
}

int RunShow(const ShowOptions& options) {
  if (!CheckCheckpointIdArgument(options.id)) return kExitUsage;
  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(options.repo);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<CommitRecord> commit = ReadCheckpointArgument(**repo, options.id);
  if (!commit.ok()) return Fail(commit.status());
  // Whether a newer coordinator epoch fenced it out of the history (format.md §15.3). A damaged
  // epoch record leaves that unknown: the checkpoint is shown, the damage reported.
  int exit_code = kExitOk;
  std::optional<uint64_t> fenced_by;
  if (absl::StatusOr<std::vector<EpochRecord>> epochs = (*repo)->ListEpochs(); epochs.ok()) {
    fenced_by = FencedBy(*epochs, *commit);
  } else {
    PrintError(epochs.status().message());
    exit_code = ExitCodeFor(epochs.status());
  }
  if (options.json) {
    std::cout << ShowJson(*commit, fenced_by).dump(2) << "\n";
  } else {
    PrintText(*commit, fenced_by);
  }
  return exit_code;
}

}  // namespace

Command RegisterShow(CLI::App& app) {
  auto options = std::make_shared<ShowOptions>();
  CLI::App* sub =
      app.add_subcommand("show", "Show one checkpoint: its state objects and metadata.");
  sub->add_option("ID", options->id, "Checkpoint id, or 'latest'")->required();
  AddRepoOption(sub, &options->repo);
  sub->add_flag("--json", options->json,
                "One JSON object: epoch, fenced_by (the coordinator epoch that fenced the commit "
                "out of the history, format.md §15, or null), ... Each of state_objects has name, "
                "type (region|keyed), participant, logical_bytes, stored_bytes, kind, depth, ...; "
                "a keyed one also has "
                "key_groups, entries (live at capture), changed_entries (records in this "
                "checkpoint's manifest) and tombstones (of those, erasures), and its logical_bytes "
                "is the entries' key and value bytes. keyed_states sums each keyed state over its "
                "participants: [{name, key_groups, entries, logical_bytes, participants}]");
  return Command{sub, [options] { return RunShow(*options); }};
}

}  // namespace ickpt::cli
