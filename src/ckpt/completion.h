// How a persisted checkpoint of one participant becomes part of the history: the one place where a
// process's own checkpoints and a group member's differ (format.md §6, §11).
//
//   LocalCommit:           the checkpointer reserves its ids and publishes the commit record;
//                          the checkpoint is committed when persisting ends.
//   GroupAcknowledgement:  the group gives the id; the checkpointer publishes its acknowledgement;
//                          the outcome comes later from the group (Checkpointer::Outcome).
//
// Thread safety: const methods may be called from any thread; Publish from the persist thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/checkpointer.h"
#include "ickpt/repository.h"

namespace ickpt {

class Completion {
 public:
  virtual ~Completion() = default;
  // InvalidArgument if `options` do not fit this kind of checkpointer (a group id or not).
  virtual absl::Status CheckOptions(const CheckpointOptions& options) const = 0;
  // Whether the checkpointer reserves its own ids (ahead, on the persist thread).
  virtual bool reserves_ids() const = 0;
  // Whether outcomes are announced by someone else (Checkpointer::Outcome accepts them).
  virtual bool outcomes_announced() const = 0;
  // The record of checkpoint `id` that this participant's part of a later checkpoint builds on:
  // its commit record, or (while the group has not committed it) this participant's
  // acknowledgement.
  virtual absl::StatusOr<CommitRecord> ReadBase(uint64_t id) const = 0;
  // Publishes `record` (one participant). Returns true if the checkpoint is committed now, false
  // if its outcome is pending.
  virtual absl::StatusOr<bool> Publish(const CommitRecord& record) = 0;
};

// `repo` must outlive the result.
std::unique_ptr<Completion> NewLocalCommit(Repository* repo);
std::unique_ptr<Completion> NewGroupAcknowledgement(Repository* repo, std::string participant);

}  // namespace ickpt
