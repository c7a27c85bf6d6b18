// A checkpoint restored into a fresh Checkpointer, for tests that check what a repository holds
// (header only: it needs the ckpt layer, which the testing library does not link).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "ickpt/checkpointer.h"
#include "ickpt/keyed_state.h"
#include "ickpt/region.h"

namespace ickpt::testing {

struct FreshRestore {
  std::unique_ptr<Checkpointer> checkpointer;  // holds the restored state objects
  CommitRecord record;
};

// Restores checkpoint `id` (the latest if nullopt) of `repo` into a new Checkpointer that
// registered nothing and creates every state object of the checkpoint. The restore's error if it
// fails.
inline absl::StatusOr<FreshRestore> RestoreFresh(Repository* repo, std::optional<uint64_t> id) {
  absl::StatusOr<std::unique_ptr<Checkpointer>> ckpt = Checkpointer::Open(repo);
  if (!ckpt.ok()) return ckpt.status();
  RestoreOptions options;
  options.id = id;
  options.on_unregistered = OnUnregistered::kCreate;
  absl::StatusOr<CommitRecord> record = (*ckpt)->Restore(options);
  if (!record.ok()) return record.status();
  return FreshRestore{*std::move(ckpt), *std::move(record)};
}

// What a region and a keyed state held: the region's bytes and the keyed state's entries,
// compared whole.
struct RegionAndKeyed {
  std::string grid;
  std::map<std::string, std::string> kv;
  bool operator==(const RegionAndKeyed&) const = default;
};

inline RegionAndKeyed ContentOf(const Region& region, const KeyedState& kv) {
  RegionAndKeyed c;
  c.grid.assign(region.data(), region.size());
  kv.ForEach([&](std::string_view k, std::string_view v) { c.kv.emplace(k, v); });
  return c;
}

// Checkpoint `id` (the latest if nullopt) of `repo` restored as RestoreFresh does: the content of
// region "grid" and keyed state "kv". NotFound if the checkpoint lacks either.
inline absl::StatusOr<RegionAndKeyed> RestoredGridAndKv(Repository* repo,
                                                        std::optional<uint64_t> id) {
  absl::StatusOr<FreshRestore> r = RestoreFresh(repo, id);
  if (!r.ok()) return r.status();
  Region* region = r->checkpointer->FindRegion("grid");
  KeyedState* kv = r->checkpointer->FindKeyedState("kv");
  if (region == nullptr || kv == nullptr) return absl::NotFoundError("state objects missing");
  return ContentOf(*region, *kv);
}

}  // namespace ickpt::testing
