// `ickpt diff A B`: which blocks of which state objects differ between two checkpoints.
//
// Regions: compares block locations (format.md §9), not data: a block whose location differs
// (another pack or offset, or zero vs. non-zero) counts as changed, even if its bytes happen to be
// identical. No pack is read.
//
// Keyed states: compared as a whole over every participant (participant "*"), since their key
// groups may be split differently at A and B (a rescale). Entries are read from both sides, batch
// of key groups by batch (keyed_entries.h), and counted as added, removed or changed (same key,
// other value). Values are compared by size and XXH3-64, so memory holds one batch of A's keys
// and a hash per key, not A's values. When both sides resolve to the very same manifests nothing
// is read.
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/container/flat_hash_map.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/cli/keyed_entries.h"
#include "src/repo/keyed_reader.h"
#include "src/repo/region_reader.h"
#include "src/util/hash.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

constexpr size_t kMaxTextExtents = 100;

struct DiffOptions {
  std::string repo;
  std::string a;
  std::string b;
  bool json = false;
};

// The participant a keyed state is listed under: all of them.
constexpr std::string_view kAllParticipants = "*";

struct ObjectDiff {
  std::string participant;
  std::string name;
  StateObjectType type = StateObjectType::kRegion;
  std::string status;  // changed | same | added | removed
  uint64_t changed_blocks = 0;
  uint64_t changed_bytes = 0;
  std::vector<std::pair<uint64_t, uint64_t>> extents;  // offset, length in bytes
  // Keyed states only.
  uint64_t added_entries = 0;
  uint64_t removed_entries = 0;
  uint64_t changed_entries = 0;
};

// One side's view of a state object from its commit record.
struct SideObject {
  uint64_t logical_bytes = 0;
  uint64_t entries = 0;  // keyed: live entries at capture, over every participant
};

// (type, participant, name): a keyed state is one object over all participants.
using ObjectKey = std::tuple<StateObjectType, std::string, std::string>;

bool SameLocation(const BlockLocation& x, const BlockLocation& y) {
  if (x.is_zero() || y.is_zero()) return x.is_zero() && y.is_zero();
  return x.pack == y.pack && x.raw_offset == y.raw_offset;
}

// Both objects resolved with the same PackTable, so pack indices compare.
ObjectDiff Compare(const ResolvedObject& a, const ResolvedObject& b) {
  ObjectDiff d;
  const uint64_t count = std::max(a.block_count, b.block_count);
  // Different block sizes: every block differs.
  const bool comparable = a.block_size == b.block_size;
  const uint64_t block_size = b.block_size;
  for (uint64_t i = 0; i < count; ++i) {
    const bool changed = !comparable || i >= a.block_count || i >= b.block_count ||
                         !SameLocation(a.locations[i], b.locations[i]);
    if (!changed) continue;
    ++d.changed_blocks;
    const uint64_t offset = i * block_size;
    if (!d.extents.empty() && d.extents.back().first + d.extents.back().second == offset) {
      d.extents.back().second += block_size;
    } else {
      d.extents.emplace_back(offset, block_size);
    }
  }
  d.changed_bytes = d.changed_blocks * block_size;
  d.status = d.changed_blocks == 0 ? "same" : "changed";
  return d;
}

// True if both resolve to the same manifests: then they hold the same entries.
bool SameManifests(const ResolvedKeyed& a, const ResolvedKeyed& b) {
  if (a.chains.size() != b.chains.size()) return false;
  for (size_t i = 0; i < a.chains.size(); ++i) {
    if (a.chains[i].manifest_keys != b.chains[i].manifest_keys) return false;
  }
  return true;
}

absl::StatusOr<ObjectDiff> CompareKeyed(const RepositoryReader& repo, const CommitRecord& commit_a,
                                        const CommitRecord& commit_b, const std::string& name) {
  absl::StatusOr<ResolvedKeyed> a = ResolveKeyed(repo, commit_a, name);
  if (!a.ok()) return a.status();
  absl::StatusOr<ResolvedKeyed> b = ResolveKeyed(repo, commit_b, name);
  if (!b.ok()) return b.status();
  ObjectDiff d;
  d.type = StateObjectType::kKeyed;
  d.status = "same";
  if (SameManifests(*a, *b)) return d;
  struct Seen {
    uint64_t value_hash;
    uint64_t value_size;
    uint64_t entry_bytes;  // key and value
  };
  for (const auto& [first, end] : KeyGroupBatches({&*a, &*b})) {
    absl::flat_hash_map<std::string, Seen> before;
    absl::Status s =
        ForEachKeyedEntry(repo, *a, first, end, [&](std::string_view key, std::string_view value) {
          before.try_emplace(ToAbsl(key),
                             Seen{Xxh3(value), value.size(), key.size() + value.size()});
          return absl::OkStatus();
        });
    if (!s.ok()) return s;
    s = ForEachKeyedEntry(repo, *b, first, end, [&](std::string_view key, std::string_view value) {
      auto it = before.find(ToAbsl(key));
      if (it == before.end()) {
        ++d.added_entries;
        d.changed_bytes += key.size() + value.size();
        return absl::OkStatus();
      }
      if (it->second.value_size != value.size() || it->second.value_hash != Xxh3(value)) {
        ++d.changed_entries;
        d.changed_bytes += key.size() + value.size();
      }
      before.erase(it);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    for (const auto& [key, seen] : before) {
      ++d.removed_entries;
      d.changed_bytes += seen.entry_bytes;
    }
  }
  if (d.added_entries + d.removed_entries + d.changed_entries > 0) d.status = "changed";
  return d;
}

int RunDiff(const DiffOptions& options) {
  for (const std::string* id : {&options.a, &options.b}) {
    if (!CheckCheckpointIdArgument(*id)) return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(options.repo);
  if (!repo.ok()) return Fail(repo.status());
  CommitRecord commits[2];
  const std::string* texts[2] = {&options.a, &options.b};
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<CommitRecord> commit = ReadCheckpointArgument(**repo, *texts[i]);
    if (!commit.ok()) return Fail(commit.status());
    commits[i] = *std::move(commit);
  }
  std::map<ObjectKey, SideObject> sides[2];
  for (int i = 0; i < 2; ++i) {
    for (const ParticipantRecord& p : commits[i].participants) {
      for (const StateObjectRecord& so : p.state_objects) {
        const bool keyed = so.type == StateObjectType::kKeyed;
        SideObject& side =
            sides[i][ObjectKey{so.type, keyed ? std::string(kAllParticipants) : p.name, so.name}];
        side.logical_bytes += so.logical_bytes;
        side.entries += so.entries;
      }
    }
  }
  std::map<ObjectKey, int> all;
  for (const auto& [key, _] : sides[0]) all[key] |= 1;
  for (const auto& [key, _] : sides[1]) all[key] |= 2;

  PackTable packs;
  std::vector<ObjectDiff> diffs;
  for (const auto& [key, presence] : all) {
    const auto& [type, participant, name] = key;
    ObjectDiff d;
    if (presence != 3) {
      const int side = presence == 1 ? 0 : 1;
      d.status = presence == 1 ? "removed" : "added";
      d.changed_bytes = sides[side][key].logical_bytes;
      if (type == StateObjectType::kKeyed) {
        (presence == 1 ? d.removed_entries : d.added_entries) = sides[side][key].entries;
      }
    } else if (type == StateObjectType::kKeyed) {
      absl::StatusOr<ObjectDiff> keyed = CompareKeyed(**repo, commits[0], commits[1], name);
      if (!keyed.ok()) return Fail(keyed.status());
      d = *std::move(keyed);
    } else {
      absl::StatusOr<ResolvedObject> ra =
          ResolveObject(**repo, commits[0], participant, name, &packs);
      if (!ra.ok()) return Fail(ra.status());
      absl::StatusOr<ResolvedObject> rb =
          ResolveObject(**repo, commits[1], participant, name, &packs);
      if (!rb.ok()) return Fail(rb.status());
      d = Compare(*ra, *rb);
    }
    d.type = type;
    d.participant = participant;
    d.name = name;
    diffs.push_back(std::move(d));
  }

  uint64_t total_bytes = 0, total_blocks = 0;
  for (const ObjectDiff& d : diffs) {
    total_bytes += d.changed_bytes;
    total_blocks += d.changed_blocks;
  }
  if (options.json) {
    nlohmann::json j;
    j["a"] = commits[0].id;
    j["b"] = commits[1].id;
    nlohmann::json objects = nlohmann::json::array();
    for (const ObjectDiff& d : diffs) {
      nlohmann::json o;
      o["name"] = d.name;
      o["participant"] = d.participant;
      o["type"] = std::string(StateObjectTypeName(d.type));
      o["status"] = d.status;
      o["changed_bytes"] = d.changed_bytes;
      o["changed_blocks"] = d.changed_blocks;
      nlohmann::json extents = nlohmann::json::array();
      for (const auto& [offset, length] : d.extents) {
        extents.push_back({{"offset", offset}, {"length", length}});
      }
      o["extents"] = std::move(extents);
      if (d.type == StateObjectType::kKeyed) {
        o["added_entries"] = d.added_entries;
        o["removed_entries"] = d.removed_entries;
        o["changed_entries"] = d.changed_entries;
      }
      objects.push_back(std::move(o));
    }
    j["state_objects"] = std::move(objects);
    j["changed_bytes"] = total_bytes;
    j["changed_blocks"] = total_blocks;
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("diff checkpoint {} -> {}\n", commits[0].id, commits[1].id);
  for (const ObjectDiff& d : diffs) {
    std::cout << fmt::format("  {}/{}: {}", d.participant, d.name, d.status);
    if (d.type == StateObjectType::kKeyed && d.status != "same") {
      std::cout << fmt::format(" (keyed), {} added, {} removed, {} changed entries ({})",
                               d.added_entries, d.removed_entries, d.changed_entries,
                               FormatBytes(d.changed_bytes));
    } else if (d.status == "changed") {
      std::cout << fmt::format(", {} in {} blocks, {} extents", FormatBytes(d.changed_bytes),
                               d.changed_blocks, d.extents.size());
    } else if (d.status != "same") {
      std::cout << fmt::format(" ({})", FormatBytes(d.changed_bytes));
    }
    std::cout << "\n";
    for (size_t i = 0; i < d.extents.size() && i < kMaxTextExtents; ++i) {
      std::cout << fmt::format("    offset {:>14}  length {:>12}\n", d.extents[i].first,
                               d.extents[i].second);
    }
    if (d.extents.size() > kMaxTextExtents) {
      std::cout << fmt::format("    ... {} more extents (use --json for all)\n",
                               d.extents.size() - kMaxTextExtents);
    }
  }
  std::cout << fmt::format("total: {} changed ({} bytes, {} blocks)\n", FormatBytes(total_bytes),
                           total_bytes, total_blocks);
  return kExitOk;
}

}  // namespace

Command RegisterDiff(CLI::App& app) {
  auto options = std::make_shared<DiffOptions>();
  CLI::App* sub = app.add_subcommand(
      "diff",
      "List the blocks that differ between checkpoints A and B, per state object, as extents "
      "(offset, length in bytes). Compares where blocks are stored, not their bytes: a block "
      "rewritten with identical content into another pack counts as changed. Keyed states are "
      "compared entry by entry over all participants (listed under participant '*'): entries "
      "added, removed, and changed (same key, another value; values compared by size and "
      "XXH3-64); their changed_bytes are the key and value bytes of those entries.");
  sub->add_option("A", options->a, "First checkpoint id, or 'latest'")->required();
  sub->add_option("B", options->b, "Second checkpoint id, or 'latest'")->required();
  AddRepoOption(sub, &options->repo);
  sub->add_flag("--json", options->json,
                "JSON: {a, b, state_objects: [{name, participant, type, status, changed_bytes, "
                "changed_blocks, extents: [{offset, length}], and for keyed states "
                "added_entries, removed_entries, changed_entries}], changed_bytes, "
                "changed_blocks}");
  return Command{sub, [options] { return RunDiff(*options); }};
}

}  // namespace ickpt::cli
