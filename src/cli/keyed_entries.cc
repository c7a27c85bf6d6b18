#include "src/cli/keyed_entries.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

// Remembers the keys handed out, which is what ReadKeyed asks (Contains) to skip the older records
// of a key a newer manifest decided; forwards each entry to fn.
class ForwardingSink final : public KeyedRestoreSink {
 public:
  explicit ForwardingSink(
      absl::FunctionRef<absl::Status(std::string_view key, std::string_view value)> fn)
      : fn_(fn) {}

  bool Contains(std::string_view key) const override { return decided_.contains(ToAbsl(key)); }
  absl::Status Put(std::string_view key, std::string_view value) override {
    decided_.emplace(key);
    return fn_(key, value);
  }

 private:
  absl::FunctionRef<absl::Status(std::string_view key, std::string_view value)> fn_;
  absl::flat_hash_set<std::string> decided_;
};

}  // namespace

std::vector<std::pair<uint32_t, uint32_t>> KeyGroupBatches(
    const std::vector<const ResolvedKeyed*>& states, uint64_t max_records) {
  const std::vector<std::pair<uint32_t, uint32_t>> everything = {{0, UINT32_MAX}};
  if (states.empty()) return everything;
  const uint32_t key_groups = states.front()->key_groups;
  for (const ResolvedKeyed* s : states) {
    if (s->key_groups != key_groups) return everything;
  }
  std::vector<uint64_t> records(key_groups, 0);
  for (const ResolvedKeyed* s : states) {
    for (const KeyedChain& chain : s->chains) {
      for (const Manifest& m : chain.manifests) {
        for (const KeyGroupSpan& g : m.groups) {
          // ResolveKeyed checked G against every manifest, and the decoder every group against G;
          // the bound check keeps a disagreement from indexing out of range all the same.
          if (g.group < key_groups) records[g.group] += g.records;
        }
      }
    }
  }
  std::vector<std::pair<uint32_t, uint32_t>> out;
  uint32_t first = 0;
  uint64_t in_batch = 0;
  for (uint32_t g = 0; g < key_groups; ++g) {
    if (g > first && in_batch + records[g] > max_records) {
      out.emplace_back(first, g);
      first = g;
      in_batch = 0;
    }
    in_batch += records[g];
  }
  out.emplace_back(first, key_groups);
  return out;
}

absl::Status ForEachKeyedEntry(
    const RepositoryReader& repo, const ResolvedKeyed& keyed, uint32_t group_first,
    uint32_t group_end,
    absl::FunctionRef<absl::Status(std::string_view key, std::string_view value)> fn) {
  ForwardingSink sink(fn);
  KeyedReadOptions options;
  options.group_first = group_first;
  options.group_end = group_end;
  absl::StatusOr<KeyedReadStats> stats = ReadKeyed(repo, keyed, options, &sink);
  return stats.status();
}

absl::Status ForEachKeyedEntryBatched(
    const RepositoryReader& repo, const ResolvedKeyed& keyed,
    absl::FunctionRef<absl::Status(std::string_view key, std::string_view value)> fn) {
  for (const auto& [first, end] : KeyGroupBatches({&keyed})) {
    if (absl::Status s = ForEachKeyedEntry(repo, keyed, first, end, fn); !s.ok()) return s;
  }
  return absl::OkStatus();
}

const StateObjectRecord* FindKeyedRecord(const CommitRecord& commit, std::string_view name) {
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& o : p.state_objects) {
      if (o.name == name && o.type == StateObjectType::kKeyed) return &o;
    }
  }
  return nullptr;
}

}  // namespace ickpt::cli
