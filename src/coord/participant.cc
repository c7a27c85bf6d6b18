// A participant (docs/protocol.md §6): joins with a lease, and at each safe point settles
// outcomes, applies a recovery, or captures a triggered checkpoint; acknowledgements are written
// as persistence ends.
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <thread>

#include "src/util/str.h"
#include "src/coord/coordination_store.h"
#include "src/coord/coordinator_internal.h"
#include "src/coord/lease_keeper.h"
#include "src/coord/protocol.h"
#include "ickpt/coordination.h"
#include "src/util/log.h"
#include "src/util/mutex.h"

namespace ickpt {

using coord::Compare;
using coord::CoordinationStore;
using coord::JobSnapshot;
using coord::KeyRange;
using coord::TxnOp;

namespace {
// How long the service thread waits for a change of the keys it watches before it reads them
// anyway: a resync for what no watched key announces (an older leader's outcome, which does not
// delete the trigger; a lost lease). Acknowledgements do not wait for it: the acknowledger thread
// writes each one as persistence ends. One watch per resync: at 1,024 participants, waits cut
// into 500 ms watches (so that a stop ended them sooner) kept etcd too busy for the job to start
// in 2 minutes (coord_scale_bench); a WaitCancel ends the wait at a stop instead.
constexpr absl::Duration kResyncInterval = absl::Seconds(2);
}  // namespace

CheckpointerOptions Assignment::Apply(CheckpointerOptions base) const {
  base.group_member = true;
  base.participant = name;
  base.incarnation = incarnation;
  base.participant_index = participant_index;
  base.participant_count = participant_count;
  return base;
}

struct Participant::Impl {
  std::shared_ptr<CoordinationStore> store;
  Repository* repo = nullptr;
  ParticipantOptions options;
  coord::LeaseKeeper lease_keeper;

  // Serialises safe points and the service thread's acknowledgements and outcomes; held while
  // the checkpointer is used or replaced.
  Mutex mu;
  uint64_t incarnation ABSL_GUARDED_BY(mu) = 0;
  Checkpointer* checkpointer ABSL_GUARDED_BY(mu) = nullptr;
  std::optional<Assignment> assignment ABSL_GUARDED_BY(mu);
  // Captures of this incarnation since its last restore: id -> handle, the trigger's epoch,
  // acknowledged (the ack key written), and the outcome handed to the checkpointer.
  struct Taken {
    std::optional<CheckpointHandle> handle;
    uint64_t epoch = 0;
    bool acknowledged = false;
    bool settled = false;
  };
  std::map<uint64_t, Taken> taken ABSL_GUARDED_BY(mu);
  // Triggers at or below this id are handled (taken, declined, or older than the assignment).
  uint64_t handled_through ABSL_GUARDED_BY(mu) = 0;
  // The recovery record as last read (Read fetches it again only when its revision changes).
  std::optional<coord::KeyValue> recovery_kv ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  // ParticipantTestPeer::SetOutcomeObserver: told of each outcome handed to the checkpointer.
  std::function<void(uint64_t, CheckpointOutcome)> outcome_observer ABSL_GUARDED_BY(mu);
  std::atomic<uint64_t> incarnation_for_peers{0};
  std::thread service;
  std::thread acknowledger;
  coord::WaitCancel stop_waits;  // ends the service thread's wait when the participant stops

  Impl(std::shared_ptr<CoordinationStore> s, Repository* r, ParticipantOptions o)
      : store(std::move(s)),
        repo(r),
        options(std::move(o)),
        lease_keeper(store.get(), options.lease_ttl) {}

  ~Impl() {
    {
      MutexLock lock(&mu);
      stopping = true;
    }
    stop_waits.Cancel();
    if (service.joinable()) service.join();
    if (acknowledger.joinable()) acknowledger.join();
    lease_keeper.Revoke();
  }

  // Joins (again): a new lease, and members/<name> written under it; its revision is the new
  // incarnation (§3). Unassigned until a recovery names this incarnation.
  absl::Status JoinLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    absl::StatusOr<int64_t> lease = lease_keeper.Renew();
    if (!lease.ok()) return lease.status();
    absl::StatusOr<int64_t> rev =
        store->Put(coord::MemberKey(options.job, options.name),
                   coord::EncodeMember({getpid(), coord::ThisHostName()}), *lease);
    if (!rev.ok()) return rev.status();
    incarnation = static_cast<uint64_t>(*rev);
    incarnation_for_peers = incarnation;
    assignment.reset();
    taken.clear();
    ICKPT_LOG_INFO("participant {} joined job {}: incarnation {}", options.name, options.job,
                   incarnation);
    return absl::OkStatus();
  }

  // A write of this participant, applied only while it is still the incarnation that joined (§6).
  absl::Status MemberWrite(const std::string& key, const std::string& value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    absl::StatusOr<coord::TxnResult> r = store->Txn(
        {Compare::ModRevisionIs(coord::MemberKey(options.job, options.name),
                                static_cast<int64_t>(incarnation))},
        {TxnOp::Put(key, value)});
    if (!r.ok()) return r.status();
    if (!r->succeeded) {
      return absl::FailedPreconditionError(StrCat("participant ", options.name, " incarnation ",
                                                  incarnation, " was replaced"));
    }
    return absl::OkStatus();
  }

  // What this participant acts on (§6): its member and recovered keys, the recovery record,
  // the triggers it has not handled, and the outcomes of its captures not yet settled and of
  // those triggers. Never the other participants' keys, and the values of the trigger and the
  // recovery record (each names every participant) only when new: a read costs about the same
  // at 4 participants and at 1,024 (the snapshot's members and recovered hold this participant
  // only, and handled triggers appear as ids without values). One read at one revision, then,
  // only when something is new, a second read of the new values.
  absl::StatusOr<JobSnapshot> Read() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const std::string& job = options.job;
    std::vector<KeyRange> ranges = {KeyRange::Single(coord::MemberKey(job, options.name)),
                                    KeyRange::Single(coord::RecoveredKey(job, options.name)),
                                    coord::ParticipantRange(job).KeysOnly()};
    std::optional<uint64_t> first, last;
    for (const auto& [id, t] : taken) {
      if (t.settled) continue;
      if (!first.has_value()) first = id;
      last = id;
    }
    if (first.has_value()) {
      // Outcome keys sort by id: one range from the oldest unsettled capture to the newest.
      ranges.push_back(
          KeyRange::Between(coord::OutcomeKey(options.job, *first),
                            coord::PrefixRangeEnd(coord::OutcomeKey(options.job, *last))));
    }
    absl::StatusOr<coord::MultiRangeResult> read = store->GetRanges(ranges);
    if (!read.ok()) return read.status();
    coord::RangeResult all;
    all.revision = read->revision;
    std::vector<KeyRange> fetch;
    std::vector<uint64_t> handled_ids;
    const std::string recovery_key = coord::RecoveryKey(job);
    const std::string triggers = coord::TriggersPrefix(job);
    bool recovery_present = false;
    for (size_t i = 0; i < read->ranges.size(); ++i) {
      for (coord::KeyValue& kv : read->ranges[i]) {
        if (i != 2) {
          all.kvs.push_back(std::move(kv));
          continue;
        }
        if (kv.key == recovery_key) {
          recovery_present = true;
          if (!recovery_kv.has_value() || recovery_kv->mod_revision != kv.mod_revision) {
            fetch.push_back(KeyRange::Single(recovery_key));
          }
        } else if (kv.key.compare(0, triggers.size(), triggers) == 0) {
          const std::optional<uint64_t> id = coord::ParseId20(kv.key.substr(triggers.size()));
          if (!id.has_value()) continue;
          if (*id <= handled_through) {
            handled_ids.push_back(*id);
          } else {
            fetch.push_back(KeyRange::Single(kv.key));
            fetch.push_back(KeyRange::Single(coord::OutcomeKey(job, *id)));
          }
        }
      }
    }
    if (!recovery_present) recovery_kv.reset();
    if (!fetch.empty()) {
      absl::StatusOr<coord::MultiRangeResult> values = store->GetRanges(fetch);
      if (!values.ok()) return values.status();
      for (size_t i = 0; i < fetch.size(); ++i) {
        if (fetch[i].key == recovery_key) {
          // Gone since the first read (never, in the protocol): no stale record is acted on.
          if (values->ranges[i].empty()) {
            recovery_kv.reset();
          } else {
            recovery_kv = values->ranges[i].front();
          }
          continue;
        }
        for (coord::KeyValue& kv : values->ranges[i]) all.kvs.push_back(std::move(kv));
      }
    }
    if (recovery_present && recovery_kv.has_value()) all.kvs.push_back(*recovery_kv);
    JobSnapshot snap = coord::DecodeJobSnapshot(job, all);
    // Handled triggers: their ids only (RecoverLocked starts after the newest one).
    for (uint64_t id : handled_ids) snap.triggers[id].id = id;
    return snap;
  }

  // The first capture waiting for its acknowledgement, if any.
  std::optional<CheckpointHandle> UnacknowledgedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (const auto& [id, t] : taken) {
      if (!t.acknowledged && t.handle.has_value()) return t.handle;
    }
    return std::nullopt;
  }

  // The acknowledger thread (§6.3): as soon as a capture's persistence ends, writes its
  // acknowledgement, whichever thread captured it (a Poll of the application, or a safe point of
  // the service thread), without waiting for a store change.
  void Acknowledge() {
    for (;;) {
      std::optional<CheckpointHandle> persisting;
      {
        MutexLock lock(&mu);
        mu.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return stopping || UnacknowledgedLocked().has_value();
        });
        if (stopping) return;
        persisting = UnacknowledgedLocked();
      }
      persisting->Wait().IgnoreError();  // outside the lock; the result goes into the ack
      absl::Status s;
      {
        MutexLock lock(&mu);
        if (stopping) return;
        s = AcknowledgeLocked(/*wait=*/false);
      }
      if (!s.ok()) {
        ICKPT_LOG_INFO("participant {}: acknowledging: {}", options.name, s.ToString());
        absl::SleepFor(absl::Milliseconds(200));  // the store failed: not in a tight loop
      }
    }
  }

  // Rejoins if the lease was lost (§8: a participant whose lease expired rejoins with a new
  // incarnation and waits for the recovery that follows).
  absl::Status EnsureMemberLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!lease_keeper.lost()) return absl::OkStatus();
    absl::StatusOr<coord::RangeResult> member =
        store->Get(coord::MemberKey(options.job, options.name));
    if (!member.ok()) return member.status();
    if (!member->kvs.empty() &&
        static_cast<uint64_t>(member->kvs[0].mod_revision) != incarnation) {
      // Another process joined under this name while this one was stopped: it must not take the
      // name back (§6).
      return absl::FailedPreconditionError(
          StrCat("participant ", options.name, " incarnation ", incarnation,
                 " was replaced by incarnation ", member->kvs[0].mod_revision));
    }
    ICKPT_LOG_WARN("participant {} lost its lease: rejoining", options.name);
    return JoinLocked();
  }

  // Writes the acknowledgement of every capture whose persistence ended (§6.3). With `wait`,
  // waits for persistence first (in place, lock held: waiting outside it is the acknowledger
  // thread's job).
  absl::Status AcknowledgeLocked(bool wait) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (auto& [id, t] : taken) {
      if (t.acknowledged || !t.handle.has_value()) continue;
      if (!wait && !t.handle->done()) continue;
      absl::StatusOr<CommitRecord> result = t.handle->Wait();
      coord::Ack ack{incarnation, t.epoch, coord::AckStatus::kAcknowledged, ""};
      if (!result.ok()) {
        ack.status = coord::AckStatus::kFailed;
        ack.reason = std::string(result.status().ToString());
      } else {
        ack.epoch = result->epoch;
      }
      absl::Status s =
          MemberWrite(coord::AckKey(options.job, id, options.name), coord::EncodeAck(ack));
      if (!s.ok() && !absl::IsFailedPrecondition(s)) return s;
      t.acknowledged = true;
    }
    return absl::OkStatus();
  }

  // §6.1: hands every outcome of a capture of this incarnation to the checkpointer.
  void SettleLocked(const JobSnapshot& snap) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (checkpointer == nullptr) return;
    for (auto& [id, t] : taken) {
      if (t.settled) continue;
      auto outcome = snap.outcomes.find(id);
      if (outcome == snap.outcomes.end()) continue;
      const CheckpointOutcome o = outcome->second.outcome == coord::Outcome::kCommitted
                                      ? CheckpointOutcome::kCommitted
                                      : CheckpointOutcome::kAborted;
      absl::Status s = checkpointer->Outcome(id, o);
      if (!s.ok()) {
        ICKPT_LOG_ERROR("participant {}: outcome {} of checkpoint {}: {}", options.name,
                        coord::OutcomeName(outcome->second.outcome), id, s.ToString());
      }
      t.settled = true;
      if (outcome_observer) outcome_observer(id, o);
    }
    // Entries both settled and acknowledged are done; keep the rest.
    for (auto it = taken.begin(); it != taken.end();) {
      it = it->second.settled && it->second.acknowledged ? taken.erase(it) : std::next(it);
    }
  }

  // Does what needs a safe point (§6.2, §6.3). `step`: the application's step, if it has steps.
  absl::StatusOr<PollResult> SafePointLocked(std::optional<uint64_t> step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (absl::Status s = EnsureMemberLocked(); !s.ok()) return s;
    absl::StatusOr<JobSnapshot> snap = Read();
    if (!snap.ok()) return snap.status();
    auto me = snap->members.find(options.name);
    if (me != snap->members.end() && me->second.incarnation != incarnation) {
      // Another process joined under this name (this one stalled and was relaunched): nothing
      // this incarnation writes can count (§6), and it must not take the name back.
      return absl::FailedPreconditionError(
          StrCat("participant ", options.name, " incarnation ", incarnation,
                 " was replaced by incarnation ", me->second.incarnation));
    }
    if (me == snap->members.end()) {
      // Our member key is gone (the lease ended while this process was stopped or cut off):
      // join again, with a new incarnation, and wait to be assigned (§8).
      ICKPT_LOG_WARN("participant {} incarnation {} is no longer a member: rejoining",
                     options.name, incarnation);
      if (absl::Status s = JoinLocked(); !s.ok()) return s;
      snap = Read();
      if (!snap.ok()) return snap.status();
    }
    if (absl::Status s = AcknowledgeLocked(/*wait=*/false); !s.ok()) return s;
    SettleLocked(*snap);
    PollResult result;
    // §6.2: a recovery this incarnation has not applied.
    if (snap->recovery.has_value() &&
        (!assignment.has_value() || assignment->sequence != snap->recovery->sequence)) {
      const coord::RecoveryValue& recovery = *snap->recovery;
      auto me = std::find(recovery.participants.begin(), recovery.participants.end(),
                          options.name);
      // A restore of this sequence that failed is reported once; the leader steps back (§5.3).
      // One reported restored while this incarnation is not assigned means the report was
      // applied but its reply lost: restore again (the state held may be anything since).
      auto recovered = snap->recovered.find(options.name);
      const bool failed_already = recovered != snap->recovered.end() &&
                                  recovered->second.sequence == recovery.sequence &&
                                  recovered->second.incarnation == incarnation &&
                                  recovered->second.status == coord::RecoveredStatus::kFailed;
      if (me != recovery.participants.end() && !failed_already) {
        return RecoverLocked(*snap, static_cast<uint32_t>(me - recovery.participants.begin()));
      }
      if (me == recovery.participants.end()) assignment.reset();
    }
    if (!assignment.has_value()) {
      result.event = PollResult::Event::kUnassigned;
      return result;
    }
    // §6.3: the newest trigger asked of this incarnation, not handled and without outcome.
    for (auto it = snap->triggers.rbegin(); it != snap->triggers.rend(); ++it) {
      const coord::Trigger& trigger = it->second;
      if (trigger.id <= handled_through) break;
      if (snap->outcomes.count(trigger.id) > 0) continue;
      auto expected = trigger.participants.find(options.name);
      if (expected == trigger.participants.end() || expected->second != incarnation) continue;
      if (trigger.step.has_value() && step.has_value()) {
        if (*step < *trigger.step) return result;  // not there yet: capture at that step
        if (*step > *trigger.step) {
          handled_through = trigger.id;
          return Decline(trigger, StrCat("past step ", *trigger.step, " (at step ", *step, ")"));
        }
      }
      return Capture(trigger, step);
    }
    return result;
  }

  absl::StatusOr<PollResult> Decline(const coord::Trigger& trigger, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    coord::Ack ack{incarnation, trigger.epoch, coord::AckStatus::kDeclined, reason};
    absl::Status s =
        MemberWrite(coord::AckKey(options.job, trigger.id, options.name), coord::EncodeAck(ack));
    if (!s.ok()) return s;
    PollResult result;
    result.event = PollResult::Event::kDeclined;
    result.checkpoint_id = trigger.id;
    result.reason = reason;
    return result;
  }

  absl::StatusOr<PollResult> Capture(const coord::Trigger& trigger, std::optional<uint64_t> step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    handled_through = trigger.id;
    CheckpointOptions co;
    if (options.metadata) co.metadata = options.metadata();
    if (step.has_value()) co.metadata[StrCat("step/", options.name)] = StrCat(*step);
    co.id = trigger.id;
    co.epoch = trigger.epoch;
    co.full = trigger.full;
    absl::StatusOr<CheckpointHandle> handle = checkpointer->Checkpoint(co);
    if (!handle.ok()) {
      if (absl::IsResourceExhausted(handle.status())) {
        // §6.3: out of staging is a decline, not a failure; nothing is lost.
        return Decline(trigger, std::string(handle.status().message()));
      }
      coord::Ack ack{incarnation, trigger.epoch, coord::AckStatus::kFailed,
                     handle.status().ToString()};
      absl::Status s = MemberWrite(coord::AckKey(options.job, trigger.id, options.name),
                                   coord::EncodeAck(ack));
      if (!s.ok()) return s;
      return handle.status();
    }
    PollResult result;
    result.event = PollResult::Event::kCheckpointed;
    result.checkpoint_id = trigger.id;
    result.pause = handle->pause();
    Taken& t = taken[trigger.id];
    t.handle = *std::move(handle);
    t.epoch = trigger.epoch;
    return result;
  }

  // §6.2: restores exactly the checkpoint the recovery names.
  absl::StatusOr<PollResult> RecoverLocked(const JobSnapshot& snap, uint32_t index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const coord::RecoveryValue& recovery = *snap.recovery;
    Assignment a;
    a.sequence = recovery.sequence;
    a.epoch = recovery.epoch;
    a.checkpoint = recovery.checkpoint;
    a.participants = recovery.participants;
    a.name = options.name;
    a.incarnation = incarnation;
    a.participant_index = index;
    a.participant_count = static_cast<uint32_t>(recovery.participants.size());
    auto report = [&](const absl::Status& failure)
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) -> absl::Status {
      coord::Recovered r{recovery.sequence, incarnation,
                         failure.ok() ? coord::RecoveredStatus::kRestored
                                      : coord::RecoveredStatus::kFailed,
                         failure.ok() ? "" : failure.ToString()};
      return MemberWrite(coord::RecoveredKey(options.job, options.name),
                         coord::EncodeRecovered(r));
    };
    // Whatever this incarnation captured before is superseded by the restore.
    taken.clear();
    handled_through = snap.triggers.empty() ? 0 : snap.triggers.rbegin()->first;
    assignment.reset();
    absl::StatusOr<Checkpointer*> ck = options.prepare(a);
    if (!ck.ok() || *ck == nullptr) {
      const absl::Status failure =
          ck.ok() ? absl::InternalError("prepare returned no checkpointer") : ck.status();
      if (absl::Status s = report(failure); !s.ok()) return s;
      return failure;
    }
    checkpointer = *ck;
    std::optional<CommitRecord> restored;
    if (a.checkpoint.has_value()) {
      RestoreOptions ro;
      ro.id = a.checkpoint;
      ro.on_unregistered = options.on_unregistered;
      ro.on_absent = options.on_absent;
      absl::StatusOr<CommitRecord> record = checkpointer->Restore(ro);
      if (!record.ok()) {
        const absl::Status failure(record.status().code(),
                                   StrCat("participant ", options.name, " restoring checkpoint ",
                                          *a.checkpoint, ": ", record.status().message()));
        if (absl::Status s = report(failure); !s.ok()) return s;
        return failure;
      }
      restored = *std::move(record);
    }
    if (absl::Status s = report(absl::OkStatus()); !s.ok()) return s;
    assignment = a;
    ICKPT_LOG_INFO("participant {} restored {} for recovery {}", options.name,
                   a.checkpoint ? StrCat("checkpoint ", *a.checkpoint) : "nothing (empty start)",
                   a.sequence);
    if (options.on_restored) options.on_restored(a, restored);
    PollResult result;
    result.event = PollResult::Event::kRestored;
    result.assignment = std::move(a);
    result.restored = std::move(restored);
    return result;
  }

  // The service thread: outcomes, and in callback mode the safe points. It wakes on a change of
  // ParticipantRange (a trigger, its deletion with the outcome, a recovery, a request) or after
  // kResyncInterval.
  void Serve() {
    int64_t revision = 0;
    for (;;) {
      bool needs_safe_point = false;
      {
        MutexLock lock(&mu);
        if (stopping) return;
        absl::Status s = EnsureMemberLocked();
        absl::StatusOr<JobSnapshot> snap = s.ok() ? Read() : absl::StatusOr<JobSnapshot>(s);
        if (snap.ok()) {
          revision = snap->revision;
          SettleLocked(*snap);
          needs_safe_point = options.safe_point && NeedsSafePointLocked(*snap);
        } else {
          s = snap.status();
          revision = 0;
        }
        if (!s.ok()) ICKPT_LOG_INFO("participant {}: {}", options.name, s.ToString());
      }
      if (needs_safe_point) {
        options.safe_point([this] {
          MutexLock lock(&mu);
          absl::StatusOr<PollResult> r = SafePointLocked(std::nullopt);
          if (!r.ok()) ICKPT_LOG_WARN("participant {}: {}", options.name, r.status().ToString());
        });
        continue;
      }
      if (revision == 0) {
        absl::SleepFor(absl::Milliseconds(200));
        continue;
      }
      // A failed wait is followed by a read that reports it.
      store
          ->WaitForChangeIn(coord::ParticipantRange(options.job), revision, kResyncInterval,
                            &stop_waits)
          .IgnoreError();
    }
  }

  bool NeedsSafePointLocked(const JobSnapshot& snap) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (snap.recovery.has_value() &&
        (!assignment.has_value() || assignment->sequence != snap.recovery->sequence)) {
      const auto& ps = snap.recovery->participants;
      return std::find(ps.begin(), ps.end(), options.name) != ps.end();
    }
    if (!assignment.has_value()) return false;
    for (auto it = snap.triggers.rbegin(); it != snap.triggers.rend(); ++it) {
      if (it->first <= handled_through) break;
      if (snap.outcomes.count(it->first) > 0) continue;
      auto expected = it->second.participants.find(options.name);
      if (expected != it->second.participants.end() && expected->second == incarnation) return true;
    }
    return false;
  }
};

Participant::Participant(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Participant::~Participant() = default;

const std::string& Participant::name() const { return impl_->options.name; }

uint64_t Participant::incarnation() const { return impl_->incarnation_for_peers.load(); }

absl::StatusOr<std::unique_ptr<Participant>> Participant::Join(
    std::shared_ptr<CoordinationStore> store, Repository* repository, ParticipantOptions options) {
  absl::StatusOr<std::unique_ptr<Participant>> p = coord::ParticipantTestPeer::JoinManual(
      std::move(store), repository, std::move(options));
  if (!p.ok()) return p.status();
  Impl* impl = (*p)->impl_.get();
  impl->service = std::thread([impl] { impl->Serve(); });
  impl->acknowledger = std::thread([impl] { impl->Acknowledge(); });
  return p;
}

absl::StatusOr<PollResult> Participant::Poll(uint64_t step) {
  MutexLock lock(&impl_->mu);
  return impl_->SafePointLocked(step);
}

absl::StatusOr<PollResult> Participant::WaitForAssignment(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int64_t revision = 0;
    {
      MutexLock lock(&impl_->mu);
      absl::StatusOr<PollResult> r = impl_->SafePointLocked(std::nullopt);
      if (r.ok() && r->event == PollResult::Event::kRestored) return r;
      if (r.ok() && r->event != PollResult::Event::kUnassigned && impl_->assignment.has_value()) {
        return r;  // assigned before this call
      }
      if (!r.ok() && !absl::IsUnavailable(r.status())) return r.status();
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(StrCat("participant ", impl_->options.name,
                                                " was not assigned within ",
                                                absl::FormatDuration(timeout)));
    }
    absl::StatusOr<coord::RangeResult> r = impl_->store->Get(coord::RecoveryKey(impl_->options.job));
    if (r.ok()) revision = r->revision;
    if (revision > 0) {
      impl_->store
          ->WaitForChangeIn(coord::ParticipantRange(impl_->options.job), revision,
                            std::min(absl::Milliseconds(500), deadline - absl::Now()), nullptr)
          .IgnoreError();  // the next poll reads again
    } else {
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
}

absl::Status Participant::ReportFailure(std::string_view reason) {
  MutexLock lock(&impl_->mu);
  ICKPT_LOG_WARN("participant {} reports a failure: {}", impl_->options.name, reason);
  // A new incarnation is how the leader learns it (§5.4): the old one's state is not trusted.
  return impl_->JoinLocked();
}

namespace coord {

absl::StatusOr<std::unique_ptr<Participant>> ParticipantTestPeer::JoinManual(
    std::shared_ptr<CoordinationStore> store, Repository* repository, ParticipantOptions options) {
  if (store == nullptr || repository == nullptr) {
    return absl::InvalidArgumentError("a participant needs a coordination store and a repository");
  }
  if (absl::Status s = ValidateCoordinationName("job", options.job); !s.ok()) return s;
  if (absl::Status s = ValidateCoordinationName("participant", options.name); !s.ok()) return s;
  if (!options.prepare) {
    return absl::InvalidArgumentError("ParticipantOptions::prepare is required");
  }
  if (absl::Status s = ValidateLeaseTtl(options.lease_ttl); !s.ok()) return s;
  auto impl = std::make_unique<Participant::Impl>(std::move(store), repository, std::move(options));
  {
    MutexLock lock(&impl->mu);
    if (absl::Status s = impl->JoinLocked(); !s.ok()) return s;
  }
  return std::unique_ptr<Participant>(new Participant(std::move(impl)));
}

absl::Status ParticipantTestPeer::FlushAcks(Participant& participant) {
  Participant::Impl& impl = *participant.impl_;
  MutexLock lock(&impl.mu);
  return impl.AcknowledgeLocked(/*wait=*/true);
}

int64_t ParticipantTestPeer::Lease(Participant& participant) {
  return participant.impl_->lease_keeper.lease();
}

void ParticipantTestPeer::SetOutcomeObserver(
    Participant& participant,
    std::function<void(uint64_t id, CheckpointOutcome outcome)> observer) {
  Participant::Impl& impl = *participant.impl_;
  MutexLock lock(&impl.mu);
  impl.outcome_observer = std::move(observer);
}

}  // namespace coord
}  // namespace ickpt
