// Distributed checkpoints of a job of several processes (docs/protocol.md): participants that hold
// state and take part in checkpoints, and coordinators that trigger, commit, fence and recover,
// talking through a coordination store (etcd, or in-process).
//
// Thread safety: a Participant's Poll(), ReportFailure() and Leave() are serialised internally and
// may be called from any thread; a Coordinator is safe for concurrent use.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"

namespace ickpt {

namespace coord {
class CoordinationStore;  // src/coord/coordination_store.h
class CoordinatorTestPeer;
class ParticipantTestPeer;
}

// The etcd cluster at `endpoints` ("http://HOST:PORT", comma-separated; the next one is tried
// when one cannot be reached). InvalidArgument naming a malformed endpoint. Does not contact etcd:
// the first call that does reports Unavailable if none answers.
absl::StatusOr<std::shared_ptr<coord::CoordinationStore>> ConnectEtcd(std::string_view endpoints);

// How to reach a secured etcd (docs/protocol.md §10): etcd's own TLS and authentication.
struct EtcdConnectOptions {
  // "https://HOST:PORT" (or http://), comma-separated, as above.
  std::string endpoints;
  // PEM file of the CA that signed the servers' certificates (https endpoints). Empty: the
  // system's CA store.
  std::string ca_file;
  // PEM client certificate and its key, for an etcd run with --client-cert-auth. Both or neither.
  std::string cert_file;
  std::string key_file;
  // An etcd user and its password, for an etcd with authentication on. Empty user: none. The
  // password is never logged nor put in an error message or Describe().
  std::string user;
  std::string password;
};
// Like ConnectEtcd(endpoints), with TLS and authentication. InvalidArgument for a malformed
// endpoint, a certificate without its key (or the reverse), or a file that cannot be read. Does
// not contact etcd; the first call that does reports a refused certificate as Unavailable naming
// the endpoint and the TLS error, and wrong credentials as PermissionDenied naming the user.
absl::StatusOr<std::shared_ptr<coord::CoordinationStore>> ConnectEtcd(
    const EtcdConnectOptions& options);

// A coordination store in this process: participants and coordinators of one process (tests, or
// a job whose participants are threads).
std::shared_ptr<coord::CoordinationStore> NewInProcessCoordination();

// What a recovery assigns to one participant (docs/protocol.md §3, §6).
struct Assignment {
  uint64_t sequence = 0;                // the recovery record's sequence
  uint64_t epoch = 0;                   // the leader's epoch that wrote it
  std::optional<uint64_t> checkpoint;   // the checkpoint to restore; nullopt: start empty
  std::vector<std::string> participants;  // every participant of the job, sorted
  std::string name;                     // this participant
  uint64_t incarnation = 0;             // this participant's incarnation
  uint32_t participant_index = 0;       // this participant's place in `participants`
  uint32_t participant_count = 1;       // participants.size()

  // `base` with everything the assignment fixes: group_member, participant, incarnation,
  // participant_index and participant_count.
  CheckpointerOptions Apply(CheckpointerOptions base) const;
};

struct ParticipantOptions {
  // The job (docs/protocol.md §3: 1-64 of [a-z0-9._-]) and this participant's name in it (the
  // same rule; also its name in commit records).
  std::string job;
  std::string name;
  // How long the participant stays a member without keeping its lease alive (kept alive every
  // ttl / 3). Whole seconds, >= 1 s. Default 5 s.
  absl::Duration lease_ttl = absl::Seconds(5);
  // Called at every recovery, at a safe point, before the restore: returns the checkpointer that
  // holds this participant's state for `assignment`, opened with `assignment.Apply(...)` and with
  // every state object registered. It may return the previous one when nothing it fixes changed;
  // when `assignment.checkpoint` is nullopt the state objects must be empty (the job starts over).
  // The checkpointer must outlive the participant or the next call. Required.
  std::function<absl::StatusOr<Checkpointer*>(const Assignment& assignment)> prepare;
  // How restores treat state objects the checkpoint and the checkpointer do not share (the id is
  // the recovery's).
  OnUnregistered on_unregistered = OnUnregistered::kFail;
  OnAbsent on_absent = OnAbsent::kFail;
  // Added to the metadata of each checkpoint this participant takes, called at the capture (e.g.
  // input positions). Keys must not collide with other participants' unless the values agree:
  // prefix them with the participant name. Optional.
  std::function<std::map<std::string, std::string>()> metadata;
  // Without it, the application calls Poll() between steps (bulk-synchronous mode). With it, the
  // participant's own thread calls it when a checkpoint or a recovery needs a safe point: the
  // application stops writing its state, calls `at_safe_point()`, and resumes. Steps named by
  // triggers do not apply in this mode (a capture happens at the next safe point). The
  // participant's destructor waits for a call in progress: do not destroy it while holding what
  // the callback waits for. Optional.
  std::function<void(absl::FunctionRef<void()> at_safe_point)> safe_point;
  // Called after every restore (on the thread at the safe point), with the record restored, or
  // nullopt when the job starts empty. Optional; Poll() also reports it.
  std::function<void(const Assignment&, const std::optional<CommitRecord>&)> on_restored;
};

// What a safe point did.
struct PollResult {
  enum class Event {
    kNone,         // nothing to do
    kUnassigned,   // waiting for the coordinator's assignment: do not run steps yet
    kCheckpointed, // captured checkpoint `checkpoint_id`; it persists in the background
    kDeclined,     // declined checkpoint `checkpoint_id` (`reason`)
    kRestored,     // restored (`restored`, or nullopt: start empty): resume from it
  };
  Event event = Event::kNone;
  uint64_t checkpoint_id = 0;
  absl::Duration pause;
  std::string reason;
  std::optional<Assignment> assignment;   // kRestored
  std::optional<CommitRecord> restored;   // kRestored with a checkpoint
};

class Participant {
 public:
  // Joins `job` with a new lease and a new incarnation (docs/protocol.md §3), and starts the
  // threads that keep the lease alive and, as persistence ends, acknowledge. `repository` must
  // outlive the participant. Errors: InvalidArgument (options), Unavailable (the store).
  static absl::StatusOr<std::unique_ptr<Participant>> Join(
      std::shared_ptr<coord::CoordinationStore> store, Repository* repository,
      ParticipantOptions options);
  // Leaves the job (revokes the lease) after persistence of a pending capture ends.
  ~Participant();
  Participant(const Participant&) = delete;
  Participant& operator=(const Participant&) = delete;

  const std::string& name() const;
  uint64_t incarnation() const;
  // Bulk-synchronous mode: called between steps, when the application may stop writing, with the
  // number of the step about to run. Settles outcomes, applies a recovery (restoring: the call
  // returns kRestored and the application resumes from the record), or captures a checkpoint the
  // coordinator triggered. Errors: a failed restore (the leader is told and starts another
  // recovery; the state is undefined until a later Poll() restores), Unavailable (the store).
  absl::StatusOr<PollResult> Poll(uint64_t step);
  // Blocks, polling, until this participant is assigned and has restored (or started empty).
  absl::StatusOr<PollResult> WaitForAssignment(absl::Duration timeout);
  // Tells the leader this process failed (its state cannot be trusted): the participant rejoins
  // with a new incarnation and the leader starts a recovery.
  absl::Status ReportFailure(std::string_view reason);

  struct Impl;

 private:
  friend class coord::ParticipantTestPeer;
  explicit Participant(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct CoordinatorOptions {
  std::string job;
  // This instance's name, shown as leader. Default: "<host>-<pid>".
  std::string name;
  // Time between triggers, from one trigger to the next. Default 30 s.
  absl::Duration interval = absl::Seconds(30);
  // A checkpoint not committed this long after its trigger is aborted. Must not exceed the
  // repository retention policy's checkpoint_timeout (GC's grace relies on it; Start refuses with
  // InvalidArgument). Default 10 min.
  absl::Duration timeout = absl::Minutes(10);
  // At least this long between an outcome and the next trigger. Default 0.
  absl::Duration min_pause = absl::ZeroDuration();
  // Consecutive failed checkpoints (a participant's failure, a timeout) after which a recovery
  // starts. Declines do not count. Default 3.
  int tolerable_failures = 3;
  // The job's participants: wait for this many members before the first assignment. 0: whoever
  // joined once the first member has waited one lease ttl. Default 0.
  uint32_t participants = 0;
  // The coordinator's lease (whole seconds, >= 1 s): a leader that stops keeping it alive for this
  // long is replaced. Default 5 s.
  absl::Duration lease_ttl = absl::Seconds(5);
  // The leader's maintenance after commits (docs/protocol.md §5.8): consolidation at this many
  // links, and GC every gc_interval in a repository with a retention policy. Default on.
  bool maintenance = true;
  uint64_t consolidate_after_links = 8;
  ConsolidateOptions consolidate;
  absl::Duration gc_interval = absl::Minutes(10);
  GcOptions gc;
};

// The checks of Coordinator::Start that need no repository: InvalidArgument naming what is wrong.
absl::Status ValidateCoordinatorOptions(const CoordinatorOptions& options);

// What a coordinator instance has seen and done (its own counts, since it started).
struct CoordinatorStats {
  bool leading = false;
  uint64_t epoch = 0;
  uint64_t leader_terms = 0;  // times this instance took office
  uint64_t triggered = 0;
  uint64_t committed = 0;
  uint64_t aborted = 0;
  uint64_t recoveries = 0;
  std::optional<uint64_t> last_committed;
  std::string last_abort_reason;
};

class Coordinator {
 public:
  // Starts an instance: it campaigns for leadership on its own thread and, while it leads, runs
  // the job (docs/protocol.md §5). `repository` must outlive it. Errors: InvalidArgument
  // (options, or a timeout above the retention policy's checkpoint_timeout).
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(
      std::shared_ptr<coord::CoordinationStore> store, Repository* repository,
      CoordinatorOptions options);
  // Stops: resigns leadership (revokes its lease) and joins its threads.
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  CoordinatorStats stats() const;

  struct Impl;

 private:
  friend class coord::CoordinatorTestPeer;
  explicit Coordinator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Asks the job's leader for a checkpoint now (a full one if `full`; at `step` if given), and waits
// up to `timeout` for its outcome. Returns the checkpoint id and outcome. DeadlineExceeded if no
// outcome came in time (the request is withdrawn if it was not taken yet).
absl::StatusOr<std::pair<uint64_t, CheckpointOutcome>> RequestCheckpoint(
    std::shared_ptr<coord::CoordinationStore> store, std::string_view job, bool full,
    std::optional<uint64_t> step, absl::Duration timeout);

}  // namespace ickpt
