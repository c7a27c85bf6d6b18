// Test access to coordinators and participants without their background threads, so that protocol
// tests decide exactly when each side acts (deterministic sync points: every round of a
// coordinator and every safe point of a participant is one explicit call).
//
// Thread safety: as the classes they reach.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/coordination.h"

namespace ickpt::coord {

class CoordinatorTestPeer {
 public:
  // A coordinator instance that only acts in RunRound(); its lease is still kept alive on a
  // thread of its own (leases expire by the clock).
  static absl::StatusOr<std::unique_ptr<Coordinator>> StartManual(
      std::shared_ptr<CoordinationStore> store, Repository* repository,
      CoordinatorOptions options);
  // One round (docs/protocol.md §5): campaign if needed, read the job, decide, write.
  static absl::Status RunRound(Coordinator& coordinator);
  // Maintenance started by commits has finished (it runs on a thread of its own).
  static void WaitForMaintenance(Coordinator& coordinator);
};

class ParticipantTestPeer {
 public:
  // A participant without its service thread: acknowledgements and outcomes are handled in
  // Poll() only. Its lease is still kept alive on a thread of its own.
  static absl::StatusOr<std::unique_ptr<Participant>> JoinManual(
      std::shared_ptr<CoordinationStore> store, Repository* repository,
      ParticipantOptions options);
  // Waits for every capture's persistence to end and publishes its acknowledgement.
  static absl::Status FlushAcks(Participant& participant);
  // The lease, e.g. to expire it in a MemoryCoordinationStore.
  static int64_t Lease(Participant& participant);
  // Calls `observer(id, outcome)` each time the participant hands an outcome to its checkpointer
  // (docs/protocol.md §6.1), right after, on the thread that settles it (the service thread or
  // Poll()) and with the participant's lock held: it must not call the participant. Replaces any
  // earlier observer; an empty function removes it. For bench/coord_scale_bench.cc (when each
  // participant learned an outcome).
  static void SetOutcomeObserver(
      Participant& participant,
      std::function<void(uint64_t id, CheckpointOutcome outcome)> observer);
};

}  // namespace ickpt::coord
