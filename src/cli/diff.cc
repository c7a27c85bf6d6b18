// `ickpt diff A B`: which blocks of which state objects differ between two checkpoints.
//
// Compares block locations (format.md §9), not data: a block whose location differs (another pack
// or offset, or zero vs. non-zero) counts as changed, even if its bytes happen to be identical. No
// pack is read.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "src/ckpt/restore.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
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

struct ObjectDiff {
  std::string participant;
  std::string name;
  std::string status;  // changed | same | added | removed
  uint64_t changed_blocks = 0;
  uint64_t changed_bytes = 0;
  std::vector<std::pair<uint64_t, uint64_t>> extents;  // offset, length in bytes
};

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

int RunDiff(const DiffOptions& options) {
  for (const std::string* id : {&options.a, &options.b}) {
    if (!CheckCheckpointIdArgument(*id)) return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<Repository>> repo = OpenRepositoryReadOnly(options.repo);
  if (!repo.ok()) return Fail(repo.status());
  CommitRecord commits[2];
  const std::string* texts[2] = {&options.a, &options.b};
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<CommitRecord> commit = ReadCheckpointArgument(**repo, *texts[i]);
    if (!commit.ok()) return Fail(commit.status());
    commits[i] = *std::move(commit);
  }
  // (participant, name) -> logical bytes, per side.
  std::map<std::pair<std::string, std::string>, uint64_t> sides[2];
  for (int i = 0; i < 2; ++i) {
    for (const ParticipantRecord& p : commits[i].participants) {
      for (const StateObjectRecord& so : p.state_objects) {
        sides[i][{p.name, so.name}] = so.logical_bytes;
      }
    }
  }
  std::map<std::pair<std::string, std::string>, int> all;
  for (const auto& [key, _] : sides[0]) all[key] |= 1;
  for (const auto& [key, _] : sides[1]) all[key] |= 2;

  PackTable packs;
  std::vector<ObjectDiff> diffs;
  for (const auto& [key, presence] : all) {
    ObjectDiff d;
    if (presence != 3) {
      const int side = presence == 1 ? 0 : 1;
      d.status = presence == 1 ? "removed" : "added";
      d.changed_bytes = sides[side][key];
    } else {
      absl::StatusOr<ResolvedObject> ra =
          ResolveObject(**repo, commits[0], key.first, key.second, &packs);
      if (!ra.ok()) return Fail(ra.status());
      absl::StatusOr<ResolvedObject> rb =
          ResolveObject(**repo, commits[1], key.first, key.second, &packs);
      if (!rb.ok()) return Fail(rb.status());
      d = Compare(*ra, *rb);
    }
    d.participant = key.first;
    d.name = key.second;
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
      o["status"] = d.status;
      o["changed_bytes"] = d.changed_bytes;
      o["changed_blocks"] = d.changed_blocks;
      nlohmann::json extents = nlohmann::json::array();
      for (const auto& [offset, length] : d.extents) {
        extents.push_back({{"offset", offset}, {"length", length}});
      }
      o["extents"] = std::move(extents);
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
    if (d.status == "changed") {
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
      "rewritten with identical content into another pack counts as changed.");
  sub->add_option("A", options->a, "First checkpoint id, or 'latest'")->required();
  sub->add_option("B", options->b, "Second checkpoint id, or 'latest'")->required();
  sub->add_option("--repo", options->repo, "Repository directory")->required();
  sub->add_flag("--json", options->json,
                "JSON: {a, b, state_objects: [{name, participant, status, changed_bytes, "
                "extents: [{offset, length}]}], changed_bytes}");
  return Command{sub, [options] { return RunDiff(*options); }};
}

}  // namespace ickpt::cli
