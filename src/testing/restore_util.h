// A checkpoint restored into a fresh Checkpointer, for tests that check what a repository holds
// (header only: it needs the ckpt layer, which the testing library does not link).
#pragma once

#include <memory>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "ickpt/checkpointer.h"

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

}  // namespace ickpt::testing
