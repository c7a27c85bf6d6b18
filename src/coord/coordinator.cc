// The coordinator (docs/protocol.md §4, §5): campaigns for leadership and, while it leads, runs the
// job one round at a time: read the job's keys, decide, write (conditioned on its leadership),
// wait for a change or the next deadline.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "src/util/str.h"
#include "absl/strings/str_join.h"
#include "src/coord/coordination_store.h"
#include "src/coord/coordinator_internal.h"
#include "src/coord/lease_keeper.h"
#include "src/coord/protocol.h"
#include "ickpt/coordination.h"
#include "src/repo/cost_model.h"
#include "src/util/log.h"
#include "src/util/mutex.h"

namespace ickpt {

using coord::Compare;
using coord::CoordinationStore;
using coord::JobSnapshot;
using coord::TxnOp;

namespace {

// Keys of checkpoints this many ids below the latest outcome are deleted (§5.9).
constexpr uint64_t kKeptCheckpointKeys = 64;
// The longest a round waits for a change before it looks at its deadlines again.
constexpr absl::Duration kMaxWait = absl::Seconds(1);

}  // namespace

struct Coordinator::Impl {
  std::shared_ptr<CoordinationStore> store;
  Repository* repo = nullptr;
  CoordinatorOptions options;
  coord::LeaseKeeper lease_keeper;

  // Protocol state, touched only by the thread running rounds (the coordinator's own thread, or a
  // test calling RunRound).
  std::string my_key;    // leader/<lease>, empty when not campaigning
  int64_t epoch = 0;     // create_revision of my_key
  bool leading = false;
  absl::Time first_member_seen = absl::InfiniteFuture();
  // The recovery the job runs under, and whether every participant has restored it.
  uint64_t completed_recovery = 0;
  std::map<std::string, uint64_t> recovered_incarnations;  // of completed_recovery
  struct Pending {
    uint64_t id = 0;
    absl::Time triggered;
    int64_t triggered_ms = 0;  // the trigger's created_ms
    std::map<std::string, uint64_t> participants;
    std::vector<std::string> requests;  // tokens served by this checkpoint
  };
  std::optional<Pending> pending;
  absl::Time last_trigger = absl::InfinitePast();
  absl::Time last_outcome = absl::InfinitePast();
  // The highest id with an outcome, read or announced: outcomes far below it are deleted (§5.9).
  uint64_t newest_outcome = 0;
  // The recovery sequence of the last read: while it is not completed_recovery, rounds read the
  // recovered/ keys.
  uint64_t seen_recovery = 0;
  int consecutive_failures = 0;
  std::set<std::string> logged_damage;

  mutable Mutex mu;
  CoordinatorStats stats ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool maintenance_running ABSL_GUARDED_BY(mu) = false;
  absl::Time last_gc ABSL_GUARDED_BY(mu);
  std::thread maintenance_thread;
  std::thread thread;

  Impl(std::shared_ptr<CoordinationStore> s, Repository* r, CoordinatorOptions o)
      : store(std::move(s)),
        repo(r),
        options(std::move(o)),
        lease_keeper(store.get(), options.lease_ttl),
        last_gc(absl::Now()) {}

  ~Impl() {
    {
      MutexLock lock(&mu);
      stopping = true;
    }
    if (thread.joinable()) thread.join();
    if (maintenance_thread.joinable()) maintenance_thread.join();
    lease_keeper.Revoke();
  }

  bool Stopping() const {
    MutexLock lock(&mu);
    return stopping;
  }

  void Run() {
    int64_t revision = 0;
    while (!Stopping()) {
      absl::StatusOr<absl::Duration> wait = Round(&revision);
      absl::Duration timeout = kMaxWait;
      if (!wait.ok()) {
        ICKPT_LOG_WARN("coordinator {} of job {}: {}", options.name, options.job,
                       wait.status().ToString());
        timeout = absl::Milliseconds(200);  // a store that failed: retry soon, not in a loop
        revision = 0;
      } else {
        timeout = std::clamp(*wait, absl::Milliseconds(10), kMaxWait);
      }
      if (revision == 0) {
        absl::SleepFor(timeout);
        continue;
      }
      // A standby watches the election only (ReadJob).
      absl::StatusOr<int64_t> changed = store->WaitForChange(
          leading ? coord::JobPrefix(options.job) : coord::LeaderPrefix(options.job), revision,
          timeout);
      if (!changed.ok()) absl::SleepFor(absl::Milliseconds(200));
    }
  }

  void StepDown(std::string_view why) {
    if (leading) ICKPT_LOG_WARN("coordinator {} no longer leads job {}: {}", options.name,
                                options.job, why);
    leading = false;
    my_key.clear();
    epoch = 0;
    pending.reset();
    completed_recovery = 0;
    MutexLock lock(&mu);
    stats.leading = false;
    stats.epoch = 0;
  }

  // A write of the leader: applied only while its election key still exists with its epoch
  // (§4). FailedPrecondition when it no longer leads (the caller steps down).
  absl::Status LeaderWrite(std::vector<TxnOp> ops, std::vector<Compare> extra = {}) {
    std::vector<Compare> compares = {Compare::CreateRevisionIs(my_key, epoch)};
    for (Compare& c : extra) compares.push_back(std::move(c));
    absl::StatusOr<coord::TxnResult> r = store->Txn(compares, ops);
    if (!r.ok()) return r.status();
    if (!r->succeeded) {
      return absl::FailedPreconditionError(
          StrCat("the write of epoch ", epoch, " was refused: no longer the leader"));
    }
    return absl::OkStatus();
  }

  // One round (§5). Sets *revision to the revision read; returns how long to wait at most before
  // the next round.
  absl::StatusOr<absl::Duration> Round(int64_t* revision) {
    if (my_key.empty() || lease_keeper.lost()) {
      if (!my_key.empty()) StepDown("its lease was lost");
      absl::StatusOr<int64_t> lease = lease_keeper.Renew();
      if (!lease.ok()) return lease.status();
      my_key = coord::LeaderKey(options.job, *lease);
      absl::StatusOr<int64_t> rev = store->Put(
          my_key, coord::EncodeLeader({options.name, getpid(), coord::ThisHostName()}), *lease);
      if (!rev.ok()) {
        my_key.clear();
        return rev.status();
      }
      epoch = *rev;  // a new key: its create_revision is this put's revision
    }
    const bool with_recovered = seen_recovery != completed_recovery;
    absl::StatusOr<JobSnapshot> read = ReadJob(with_recovered);
    if (read.ok() && leading && !with_recovered && read->recovery.has_value() &&
        read->recovery->sequence != completed_recovery) {
      // A recovery this leader has not seen complete (it wrote it last round): read again with
      // the recovered/ keys.
      read = ReadJob(/*with_recovered=*/true);
    }
    if (!read.ok()) return read.status();
    JobSnapshot snap = *std::move(read);
    seen_recovery = snap.recovery.has_value() ? snap.recovery->sequence : 0;
    if (!snap.outcomes.empty()) {
      newest_outcome = std::max(newest_outcome, snap.outcomes.rbegin()->first);
    }
    *revision = snap.revision;
    for (const std::string& d : snap.damaged) {
      if (logged_damage.insert(d).second) ICKPT_LOG_ERROR("job {}: {}", options.job, d);
    }
    const JobSnapshot::Candidate* leader = snap.leader();
    const bool mine = leader != nullptr && coord::LeaderKey(options.job, leader->lease) == my_key;
    if (!mine) {
      const bool present = std::any_of(
          snap.candidates.begin(), snap.candidates.end(),
          [&](const auto& c) { return coord::LeaderKey(options.job, c.lease) == my_key; });
      if (!present) {
        // Our key is gone (the lease expired while we were stopped): campaign again.
        StepDown("its election key is gone");
        lease_keeper.Revoke();
        return absl::ZeroDuration();
      }
      if (leading) StepDown(StrCat("another instance leads (epoch ", leader->create_revision, ")"));
      return kMaxWait;
    }
    if (!leading) {
      absl::Status s = TakeOffice(snap);
      if (!s.ok()) return s;
    }
    return Lead(snap);
  }

  // The job's keys this round needs, at one revision. Until this instance leads, the election's
  // keys (leader/), and the whole prefix once they say it leads (taking office reads every trigger
  // and outcome): a standby costs one small read per change of the election. A leader reads the
  // leader keys, members, acknowledgements, the recovery record, requests and triggers; the
  // recovered/ keys only `with_recovered` (while a recovery is in progress); and of the outcomes
  // only those old enough to delete (§5.9). A round in steady state so reads members and the
  // pending checkpoint's acknowledgements, not the 64 kept outcomes and every recovered/ key.
  absl::StatusOr<JobSnapshot> ReadJob(bool with_recovered) {
    const std::string& job = options.job;
    if (!leading) {
      absl::StatusOr<coord::RangeResult> election = store->GetPrefix(coord::LeaderPrefix(job));
      if (!election.ok()) return election.status();
      JobSnapshot snap = coord::DecodeJobSnapshot(job, *election);
      const JobSnapshot::Candidate* leader = snap.leader();
      if (leader == nullptr || coord::LeaderKey(job, leader->lease) != my_key) return snap;
      absl::StatusOr<coord::RangeResult> whole = store->GetPrefix(coord::JobPrefix(job));
      if (!whole.ok()) return whole.status();
      return coord::DecodeJobSnapshot(job, *whole);
    }
    std::vector<coord::KeyRange> ranges = {coord::KeyRange::Prefix(coord::LeaderPrefix(job)),
                                           coord::KeyRange::Prefix(coord::MembersPrefix(job)),
                                           coord::KeyRange::Prefix(coord::AllAcksPrefix(job)),
                                           coord::ParticipantRange(job)};
    if (with_recovered) ranges.push_back(coord::KeyRange::Prefix(coord::RecoveredPrefix(job)));
    if (newest_outcome > kKeptCheckpointKeys) {
      ranges.push_back(
          coord::KeyRange::Between(coord::OutcomesPrefix(job),
                                   coord::OutcomeKey(job, newest_outcome - kKeptCheckpointKeys)));
    }
    absl::StatusOr<coord::MultiRangeResult> read = store->GetRanges(ranges);
    if (!read.ok()) return read.status();
    coord::RangeResult all;
    all.revision = read->revision;
    for (std::vector<coord::KeyValue>& kvs : read->ranges) {
      for (coord::KeyValue& kv : kvs) all.kvs.push_back(std::move(kv));
    }
    // The leader needs neither members' values (informational) nor the acknowledgements of
    // checkpoints other than the pending one (CleanUp deletes them by id).
    coord::SnapshotDecodeOptions decode;
    decode.member_values = false;
    decode.acks_of = pending.has_value() ? pending->id : 0;
    return coord::DecodeJobSnapshot(job, all, decode);
  }

  absl::Status TakeOffice(const JobSnapshot& snap) {
    absl::StatusOr<EpochRecord> record = repo->BeginEpoch(static_cast<uint64_t>(epoch),
                                                          options.name);
    if (!record.ok()) {
      if (absl::IsFailedPrecondition(record.status())) {
        // A newer epoch exists in the repository: this candidacy is stale. Start over.
        StepDown(record.status().ToString());
        lease_keeper.Revoke();
      }
      return record.status();
    }
    leading = true;
    {
      MutexLock lock(&mu);
      stats.leading = true;
      stats.epoch = static_cast<uint64_t>(epoch);
      ++stats.leader_terms;
    }
    ICKPT_LOG_INFO("coordinator {} leads job {} in epoch {} (base checkpoint {})", options.name,
                   options.job, epoch, record->base ? StrCat(*record->base) : "none");
    // §5.1: settle what the previous leader left pending.
    for (const auto& [id, trigger] : snap.triggers) {
      if (snap.outcomes.count(id) > 0) continue;
      coord::OutcomeValue outcome{id, static_cast<uint64_t>(epoch), coord::Outcome::kAborted,
                                  "leader changed"};
      outcome.triggered_ms = trigger.created_ms;
      outcome.participants = trigger.participants.size();
      if (record->base.has_value() && id <= *record->base) {
        absl::StatusOr<CommitRecord> commit = repo->ReadCommit(id);
        absl::StatusOr<std::vector<EpochRecord>> epochs =
            commit.ok() ? repo->ListEpochs() : absl::StatusOr<std::vector<EpochRecord>>();
        if (commit.ok() && !epochs.ok()) return epochs.status();
        if (commit.ok() && !FencedBy(*epochs, *commit).has_value()) {
          outcome.outcome = coord::Outcome::kCommitted;
          outcome.reason.clear();
        } else if (!absl::IsNotFound(commit.status())) {
          return commit.status();
        }
      }
      absl::Status s = Announce(outcome);
      if (!s.ok()) return s;
    }
    // The recovery the job runs under stays in force; whether it completed is read from the keys.
    completed_recovery = 0;
    pending.reset();
    last_trigger = absl::Now();  // the first trigger of a term waits one interval
    return absl::OkStatus();
  }

  // The outcome of the pending checkpoint.
  coord::OutcomeValue PendingOutcome(coord::Outcome decided, std::string reason) const {
    coord::OutcomeValue outcome{pending->id, static_cast<uint64_t>(epoch), decided,
                                std::move(reason)};
    outcome.triggered_ms = pending->triggered_ms;
    outcome.participants = pending->participants.size();
    return outcome;
  }

  // Writes outcome `decided`, stamped with the time, and for a commit with `commit`'s sizes. The
  // same transaction deletes the checkpoint's trigger and acknowledgements (§5.9): they are read
  // only until the outcome is announced, and the trigger's deletion is what wakes the
  // participants, whose watch leaves out outcomes/ (§6).
  absl::Status Announce(coord::OutcomeValue decided, const CommitRecord* commit = nullptr) {
    coord::OutcomeValue outcome = std::move(decided);
    outcome.decided_ms = absl::ToUnixMillis(absl::Now());
    if (commit != nullptr) {
      outcome.logical_bytes = commit->logical_bytes;
      outcome.stored_bytes = commit->stored_bytes;
    }
    absl::Status s = LeaderWrite(
        {TxnOp::Put(coord::OutcomeKey(options.job, outcome.id), coord::EncodeOutcome(outcome)),
         TxnOp::Delete(coord::TriggerKey(options.job, outcome.id)),
         TxnOp::DeletePrefix(coord::AcksPrefix(options.job, outcome.id))});
    if (absl::IsFailedPrecondition(s)) StepDown(s.ToString());
    if (!s.ok()) return s;
    ICKPT_LOG_INFO("job {}: checkpoint {} {}{}", options.job, outcome.id,
                   coord::OutcomeName(outcome.outcome),
                   outcome.reason.empty() ? "" : StrCat(" (", outcome.reason, ")"));
    Count(outcome);
    return absl::OkStatus();
  }

  // An outcome this leader announced, in its stats.
  void Count(const coord::OutcomeValue& outcome) {
    newest_outcome = std::max(newest_outcome, outcome.id);
    MutexLock lock(&mu);
    if (outcome.outcome == coord::Outcome::kCommitted) {
      ++stats.committed;
      stats.last_committed = outcome.id;
    } else {
      ++stats.aborted;
      stats.last_abort_reason = outcome.reason;
    }
  }

  absl::StatusOr<absl::Duration> Lead(const JobSnapshot& snap) {
    const absl::Time now = absl::Now();
    if (!snap.recovery.has_value()) return Assign(snap, now);
    const coord::RecoveryValue& recovery = *snap.recovery;
    if (options.participants > 0 && recovery.participants.size() != options.participants &&
        snap.members.size() >= options.participants) {
      // A rescale: this leader runs the job with another number of participants. Every member
      // restores the latest checkpoint with the new assignment (keyed state by key groups).
      std::vector<std::string> members = ChooseParticipants(snap);
      const std::string why = StrCat("rescale from ", recovery.participants.size(), " to ",
                                     members.size(), " participants");
      return StartRecovery(snap, why, std::nullopt, std::move(members));
    }
    if (completed_recovery != recovery.sequence) {
      return AwaitRecovery(snap, now);
    }
    // The job runs: is every participant still the incarnation that restored (§5.4)?
    for (const std::string& p : recovery.participants) {
      auto member = snap.members.find(p);
      if (member == snap.members.end() ||
          member->second.incarnation != recovered_incarnations[p]) {
        const std::string why = member == snap.members.end()
                                    ? StrCat("participant ", p, " lost")
                                    : StrCat("participant ", p, " rejoined");
        return StartRecovery(snap, why, std::nullopt);
      }
    }
    CleanUp(snap);
    if (pending.has_value()) return Collect(snap, now);
    return MaybeTrigger(snap, now);
  }

  // §5.2: the first assignment of the job.
  absl::StatusOr<absl::Duration> Assign(const JobSnapshot& snap, absl::Time now) {
    if (snap.members.empty()) {
      first_member_seen = absl::InfiniteFuture();
      return kMaxWait;
    }
    if (options.participants > 0) {
      if (snap.members.size() < options.participants) return kMaxWait;
    } else {
      if (first_member_seen == absl::InfiniteFuture()) first_member_seen = now;
      if (now - first_member_seen < options.lease_ttl) {
        return options.lease_ttl - (now - first_member_seen);
      }
    }
    absl::StatusOr<std::optional<uint64_t>> latest = repo->LatestCommitId();
    if (!latest.ok()) return latest.status();
    coord::RecoveryValue recovery;
    recovery.sequence = 1;
    recovery.epoch = static_cast<uint64_t>(epoch);
    recovery.checkpoint = *latest;
    recovery.participants = ChooseParticipants(snap);
    absl::Status s =
        LeaderWrite({TxnOp::Put(coord::RecoveryKey(options.job), coord::EncodeRecovery(recovery))},
                    {Compare::Absent(coord::RecoveryKey(options.job))});
    if (absl::IsFailedPrecondition(s)) StepDown(s.ToString());
    if (!s.ok()) return s;
    ICKPT_LOG_INFO("job {}: assigned {} participants ({}), starting from checkpoint {}",
                   options.job, recovery.participants.size(),
                   absl::StrJoin(recovery.participants, ","),
                   latest->has_value() ? StrCat(**latest) : "none");
    return absl::ZeroDuration();
  }

  // The participants of a new assignment: the members in name order, the first
  // options.participants of them when that is set (more members than that are spares).
  std::vector<std::string> ChooseParticipants(const JobSnapshot& snap) const {
    std::vector<std::string> names;
    for (const auto& [name, member] : snap.members) {
      if (options.participants > 0 && names.size() == options.participants) break;
      names.push_back(name);
    }
    return names;
  }

  // §5.3: waits for every participant of the recovery to restore it.
  absl::StatusOr<absl::Duration> AwaitRecovery(const JobSnapshot& snap, absl::Time now) {
    const coord::RecoveryValue& recovery = *snap.recovery;
    (void)now;
    bool complete = true;
    std::map<std::string, uint64_t> incarnations;
    for (const std::string& p : recovery.participants) {
      auto member = snap.members.find(p);
      auto done = snap.recovered.find(p);
      if (member == snap.members.end() || done == snap.recovered.end() ||
          done->second.sequence != recovery.sequence ||
          done->second.incarnation != member->second.incarnation) {
        complete = false;
        continue;
      }
      if (done->second.status == coord::RecoveredStatus::kFailed) {
        // §5.3: the named checkpoint cannot be restored by p: step back to the committed
        // checkpoint before it.
        absl::StatusOr<std::optional<uint64_t>> previous = PreviousCommitted(recovery.checkpoint);
        if (!previous.ok()) return previous.status();
        return StartRecovery(snap,
                             StrCat("participant ", p, " could not restore checkpoint ",
                                    recovery.checkpoint ? StrCat(*recovery.checkpoint) : "none",
                                    ": ", done->second.reason),
                             std::optional<std::optional<uint64_t>>(*previous));
      }
      incarnations[p] = member->second.incarnation;
    }
    if (!complete) return kMaxWait;
    completed_recovery = recovery.sequence;
    recovered_incarnations = std::move(incarnations);
    consecutive_failures = 0;
    last_trigger = absl::Now();
    ICKPT_LOG_INFO("job {}: recovery {} complete, from checkpoint {}", options.job,
                   recovery.sequence, recovery.checkpoint ? StrCat(*recovery.checkpoint) : "none");
    return absl::ZeroDuration();
  }

  // The newest committed checkpoint below `below` (nullopt: none, or `below` is none).
  absl::StatusOr<std::optional<uint64_t>> PreviousCommitted(std::optional<uint64_t> below) {
    if (!below.has_value()) return std::nullopt;
    absl::StatusOr<CommitRecord> commit = repo->ReadCommit(*below);
    if (commit.ok()) return commit->parent;
    // A commit record that no longer reads: the newest one below it that is part of the history.
    absl::StatusOr<std::vector<uint64_t>> ids = repo->ListCommitIds();
    if (!ids.ok()) return ids.status();
    absl::StatusOr<std::vector<EpochRecord>> epochs = repo->ListEpochs();
    if (!epochs.ok()) return epochs.status();
    for (auto it = ids->rbegin(); it != ids->rend(); ++it) {
      if (*it >= *below) continue;
      absl::StatusOr<CommitRecord> c = repo->ReadCommit(*it);
      if (c.ok() && !FencedBy(*epochs, *c).has_value()) return *it;
    }
    return std::nullopt;
  }

  // §5.4: aborts what is pending and writes the next recovery record, naming `checkpoint`, or the
  // latest committed checkpoint when not given.
  absl::StatusOr<absl::Duration> StartRecovery(
      const JobSnapshot& snap, const std::string& why,
      std::optional<std::optional<uint64_t>> checkpoint,
      std::vector<std::string> participants = {}) {
    if (pending.has_value()) {
      absl::StatusOr<bool> aborted = Abort(why);
      if (!aborted.ok()) return aborted.status();
      if (!*aborted) return absl::ZeroDuration();  // it committed after all; re-read
    }
    if (!checkpoint.has_value()) {
      absl::StatusOr<std::optional<uint64_t>> latest = repo->LatestCommitId();
      if (!latest.ok()) return latest.status();
      checkpoint = *latest;
    }
    coord::RecoveryValue recovery = *snap.recovery;
    ++recovery.sequence;
    recovery.epoch = static_cast<uint64_t>(epoch);
    recovery.checkpoint = *checkpoint;
    if (!participants.empty()) recovery.participants = std::move(participants);
    absl::Status s = LeaderWrite(
        {TxnOp::Put(coord::RecoveryKey(options.job), coord::EncodeRecovery(recovery))},
        {Compare::ModRevisionIs(coord::RecoveryKey(options.job), snap.recovery_mod_revision)});
    if (absl::IsFailedPrecondition(s)) StepDown(s.ToString());
    if (!s.ok()) return s;
    consecutive_failures = 0;
    {
      MutexLock lock(&mu);
      ++stats.recoveries;
    }
    ICKPT_LOG_WARN("job {}: recovery {} from checkpoint {}: {}", options.job, recovery.sequence,
                   recovery.checkpoint ? StrCat(*recovery.checkpoint) : "none", why);
    return absl::ZeroDuration();
  }

  // Aborts the pending checkpoint unless its commit record exists (then announces it committed
  // and returns false: §5.6, never announce aborted what may be committed).
  absl::StatusOr<bool> Abort(const std::string& why) {
    const uint64_t id = pending->id;
    absl::StatusOr<CommitRecord> commit = repo->ReadCommit(id);
    if (commit.ok()) {
      absl::Status s = Announce(PendingOutcome(coord::Outcome::kCommitted, ""), &*commit);
      if (!s.ok()) return s;
      pending.reset();
      last_outcome = absl::Now();
      return false;
    }
    if (!absl::IsNotFound(commit.status())) return commit.status();
    absl::Status s = Announce(PendingOutcome(coord::Outcome::kAborted, why));
    if (!s.ok()) return s;
    pending.reset();
    last_outcome = absl::Now();
    return true;
  }

  // §5.6, §5.7.
  absl::StatusOr<absl::Duration> Collect(const JobSnapshot& snap, absl::Time now) {
    const Pending& p = *pending;
    if (snap.triggers.count(p.id) == 0) {
      // The trigger is not there: the transaction announcing the outcome (which deletes it) was
      // applied and its reply lost, or the trigger's own write was not applied (§2). Settle it
      // now rather than at the timeout.
      absl::StatusOr<coord::RangeResult> announced =
          store->Get(coord::OutcomeKey(options.job, p.id));
      if (!announced.ok()) return announced.status();
      if (announced->kvs.empty()) {
        return Finish(snap, "its trigger was not written (the coordination store did not answer)",
                      /*failure=*/false);
      }
      const coord::KeyValue& kv = announced->kvs.front();
      absl::StatusOr<coord::OutcomeValue> outcome = coord::DecodeOutcome(kv.key, kv.value);
      if (!outcome.ok()) return outcome.status();  // damage: reported, the timeout settles it
      ICKPT_LOG_INFO("job {}: checkpoint {} {} (announced; the reply was lost)", options.job, p.id,
                     coord::OutcomeName(outcome->outcome));
      Count(*outcome);
      if (outcome->outcome == coord::Outcome::kCommitted) MaybeStartMaintenance(p.id);
      pending.reset();
      last_outcome = absl::Now();
      return absl::ZeroDuration();
    }
    auto acks_it = snap.acks.find(p.id);
    std::vector<std::string> missing;
    std::string refusal;
    bool failure = false;
    for (const auto& [name, incarnation] : p.participants) {
      const coord::Ack* ack = nullptr;
      if (acks_it != snap.acks.end()) {
        auto a = acks_it->second.find(name);
        if (a != acks_it->second.end()) ack = &a->second;
      }
      if (ack == nullptr || ack->incarnation != incarnation ||
          ack->epoch != static_cast<uint64_t>(epoch)) {
        missing.push_back(name);
        continue;
      }
      if (ack->status != coord::AckStatus::kAcknowledged && refusal.empty()) {
        refusal = StrCat("participant ", name, " ", coord::AckStatusName(ack->status), ": ",
                         ack->reason);
        failure = ack->status == coord::AckStatus::kFailed;
      }
    }
    if (!refusal.empty()) return Finish(snap, refusal, failure);
    if (missing.empty()) {
      GroupCommitOptions group;
      for (const auto& [name, incarnation] : p.participants) group.participants.push_back(name);
      group.epoch = static_cast<uint64_t>(epoch);
      group.incarnations = p.participants;
      absl::StatusOr<CommitRecord> commit = repo->CommitGroup(p.id, group);
      if (commit.ok() || absl::IsAlreadyExists(commit.status())) {
        const uint64_t id = p.id;
        absl::Status s = Announce(PendingOutcome(coord::Outcome::kCommitted, ""),
                                  commit.ok() ? &*commit : nullptr);
        if (!s.ok()) return s;
        pending.reset();
        last_outcome = absl::Now();
        consecutive_failures = 0;
        MaybeStartMaintenance(id);
        return absl::ZeroDuration();
      }
      if (absl::IsFailedPrecondition(commit.status()) || absl::IsDataLoss(commit.status())) {
        return Finish(snap, StrCat("group commit refused: ", commit.status().message()), true);
      }
      // Ambiguous (the store did not answer): Abort() reads the commit record back before it
      // announces anything; until the timeout, try again.
      ICKPT_LOG_WARN("job {}: group commit of checkpoint {}: {}", options.job, p.id,
                     commit.status().ToString());
      if (now - p.triggered < options.timeout) return absl::Milliseconds(200);
    }
    if (now - p.triggered >= options.timeout) {
      return Finish(snap,
                    StrCat("timed out ",
                           missing.empty() ? std::string("committing")
                                           : StrCat("waiting for ", absl::StrJoin(missing, ",")),
                           " after ", absl::FormatDuration(options.timeout)),
                    true);
    }
    return options.timeout - (now - p.triggered);
  }

  // Aborts the pending checkpoint; a failure counts towards the tolerable ones (§5.7).
  absl::StatusOr<absl::Duration> Finish(const JobSnapshot& snap, const std::string& why,
                                        bool failure) {
    absl::StatusOr<bool> aborted = Abort(why);
    if (!aborted.ok()) return aborted.status();
    if (*aborted && failure && ++consecutive_failures >= options.tolerable_failures) {
      return StartRecovery(snap,
                           StrCat(consecutive_failures, " consecutive failed checkpoints, the last: ",
                                  why),
                           std::nullopt);
    }
    return absl::ZeroDuration();
  }

  // §5.5.
  absl::StatusOr<absl::Duration> MaybeTrigger(const JobSnapshot& snap, absl::Time now) {
    std::vector<const JobSnapshot::PendingRequest*> requests;
    for (const auto& r : snap.requests) {
      if (!r.request.id.has_value()) requests.push_back(&r);
    }
    const absl::Time interval_due = last_trigger + options.interval;
    const absl::Time pause_due = last_outcome + options.min_pause;
    if (requests.empty() && now < std::max(interval_due, pause_due)) {
      return std::max(interval_due, pause_due) - now;
    }
    if (now < pause_due) return pause_due - now;
    Pending p;
    bool full = false;
    std::optional<uint64_t> step;
    for (const auto* r : requests) {
      full = full || r->request.full;
      if (r->request.step.has_value()) step = std::max(step.value_or(0), *r->request.step);
      p.requests.push_back(r->token);
    }
    for (const std::string& name : snap.recovery->participants) {
      p.participants[name] = recovered_incarnations[name];
    }
    absl::StatusOr<uint64_t> id = repo->ReserveCheckpointId();
    if (!id.ok()) return id.status();
    p.id = *id;
    p.triggered = now;
    coord::Trigger trigger;
    trigger.id = p.id;
    trigger.epoch = static_cast<uint64_t>(epoch);
    trigger.full = full;
    trigger.step = step;
    trigger.participants = p.participants;
    trigger.created_ms = absl::ToUnixMillis(absl::Now());
    p.triggered_ms = trigger.created_ms;
    std::vector<TxnOp> ops = {
        TxnOp::Put(coord::TriggerKey(options.job, p.id), coord::EncodeTrigger(trigger))};
    for (const auto* r : requests) {
      coord::Request answered = r->request;
      answered.id = p.id;
      ops.push_back(TxnOp::Put(coord::RequestKey(options.job, r->token),
                               coord::EncodeRequest(answered)));
    }
    absl::Status s = LeaderWrite(std::move(ops));
    if (absl::IsFailedPrecondition(s)) StepDown(s.ToString());
    if (!s.ok() && !absl::IsUnavailable(s)) return s;
    // Unavailable: the trigger may have been written and its reply lost (§2); participants may
    // capture it. It is pending either way: Collect settles it at once if it was not written,
    // and an id is never triggered twice.
    last_trigger = now;
    pending = std::move(p);
    if (!s.ok()) return s;
    {
      MutexLock lock(&mu);
      ++stats.triggered;
    }
    ICKPT_LOG_INFO("job {}: triggered checkpoint {}{}", options.job, trigger.id,
                   full ? " (full)" : "");
    return absl::ZeroDuration();
  }

  // §5.9: deletes the keys of checkpoints far below the latest outcome.
  void CleanUp(const JobSnapshot& snap) {
    if (newest_outcome == 0) return;
    const uint64_t below =
        newest_outcome > kKeptCheckpointKeys ? newest_outcome - kKeptCheckpointKeys : 0;
    // Taking office settled every trigger it found, so while leading every trigger at or below the
    // newest outcome, other than the pending one, is decided (its outcome may be among those this
    // round did not read).
    auto decided = [&](uint64_t id) {
      return id <= newest_outcome && !(pending.has_value() && pending->id == id);
    };
    std::vector<TxnOp> ops;
    // Announce deletes a checkpoint's trigger and acknowledgements with its outcome; what is left
    // here is an older leader's (protocol 1.1 kept triggers, 1.0 acknowledgements too) and a
    // participant's late acknowledgement, which re-creates its key. Removing them keeps every read
    // of the job at O(participants) keys instead of O(participants x kept ids)
    // (bench/coord_scale_bench measured 8.5 us of leader CPU per key read).
    for (const auto& [id, trigger] : snap.triggers) {
      if (decided(id)) ops.push_back(TxnOp::Delete(coord::TriggerKey(options.job, id)));
    }
    for (const auto& [id, acks] : snap.acks) {
      if (decided(id)) ops.push_back(TxnOp::DeletePrefix(coord::AcksPrefix(options.job, id)));
    }
    for (const auto& [id, outcome] : snap.outcomes) {
      if (id < below) ops.push_back(TxnOp::Delete(coord::OutcomeKey(options.job, id)));
    }
    // Answered requests whose requester did not remove them (it gave up, or died).
    for (const auto& r : snap.requests) {
      if (r.request.id.has_value() && *r.request.id < below) {
        ops.push_back(TxnOp::Delete(coord::RequestKey(options.job, r.token)));
      }
    }
    if (ops.empty()) return;
    if (ops.size() > 96) ops.resize(96);  // bounded transactions; the rest next round
    absl::Status s = LeaderWrite(std::move(ops));
    if (!s.ok()) ICKPT_LOG_INFO("job {}: clean-up: {}", options.job, s.ToString());
  }

  // §5.8.
  void MaybeStartMaintenance(uint64_t committed) {
    if (!options.maintenance) return;
    bool gc_due = false;
    {
      MutexLock lock(&mu);
      if (maintenance_running || stopping) return;
      gc_due = absl::Now() - last_gc >= options.gc_interval;
      maintenance_running = true;
      if (gc_due) last_gc = absl::Now();
    }
    if (maintenance_thread.joinable()) maintenance_thread.join();
    maintenance_thread = std::thread([this, committed, gc_due] {
      Maintain(committed, gc_due);
      MutexLock lock(&mu);
      maintenance_running = false;
    });
  }

  void Maintain(uint64_t committed, bool gc_due) {
    absl::StatusOr<CommitRecord> commit = repo->ReadCommit(committed);
    if (commit.ok()) {
      absl::StatusOr<RestoreWork> work = MeasureRestoreWork(*repo, *commit);
      if (work.ok() && work->max_effective_depth >= options.consolidate_after_links) {
        absl::StatusOr<ConsolidationReport> report =
            Consolidate(*repo, committed, options.consolidate);
        if (report.ok()) {
          ICKPT_LOG_INFO("job {}: consolidated checkpoint {}: {} -> {} links", options.job,
                         committed, report->links_before, report->links_after);
        } else {
          ICKPT_LOG_WARN("job {}: consolidation of checkpoint {}: {}", options.job, committed,
                         report.status().ToString());
        }
      } else if (!work.ok()) {
        ICKPT_LOG_WARN("job {}: measuring checkpoint {}: {}", options.job, committed,
                       work.status().ToString());
      }
    }
    if (!gc_due) return;
    absl::StatusOr<std::optional<RetentionPolicy>> policy = ReadRetentionPolicy(*repo);
    if (!policy.ok() || !policy->has_value()) return;
    absl::StatusOr<GcReport> report = CollectGarbage(*repo, options.gc);
    if (report.ok()) {
      ICKPT_LOG_INFO("job {}: gc deleted {} objects, removed {} checkpoints", options.job,
                     report->deleted_objects, report->removed_checkpoints.size());
    } else {
      ICKPT_LOG_INFO("job {}: gc: {}", options.job, report.status().ToString());
    }
  }
};

namespace {

// ValidateCoordinatorOptions, then the checks that need the repository; fills in the default name.
absl::Status ValidateAgainstRepository(CoordinatorOptions& options, const Repository& repo) {
  if (absl::Status s = ValidateCoordinatorOptions(options); !s.ok()) return s;
  if (options.name.empty()) options.name = StrCat(coord::ThisHostName(), "-", getpid());
  // GC's grace period relies on no checkpoint taking longer than the policy's checkpoint_timeout
  // (format.md §13.4): a coordinator that waited longer could commit objects GC already deleted.
  absl::StatusOr<std::optional<RetentionPolicy>> policy = ReadRetentionPolicy(repo);
  if (!policy.ok()) return policy.status();
  if (policy->has_value() && options.timeout > (*policy)->checkpoint_timeout) {
    return absl::InvalidArgumentError(
        StrCat("the checkpoint timeout ", absl::FormatDuration(options.timeout),
               " exceeds the retention policy's checkpoint_timeout ",
               absl::FormatDuration((*policy)->checkpoint_timeout),
               " (format.md §13.4): GC could delete what a checkpoint still writes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateCoordinatorOptions(const CoordinatorOptions& options) {
  if (absl::Status s = coord::ValidateCoordinationName("job", options.job); !s.ok()) return s;
  if (options.name.size() > 256) {
    return absl::InvalidArgumentError("the coordinator's name is longer than 256 bytes");
  }
  if (options.interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the checkpoint interval must be positive");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the checkpoint timeout must be positive");
  }
  if (options.min_pause < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the minimum pause must not be negative");
  }
  if (options.tolerable_failures < 1) {
    return absl::InvalidArgumentError("tolerable failures must be at least 1");
  }
  return coord::ValidateLeaseTtl(options.lease_ttl);
}

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Coordinator::~Coordinator() = default;

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(
    std::shared_ptr<CoordinationStore> store, Repository* repository, CoordinatorOptions options) {
  absl::StatusOr<std::unique_ptr<Coordinator>> c =
      coord::CoordinatorTestPeer::StartManual(std::move(store), repository, std::move(options));
  if (!c.ok()) return c.status();
  Impl* impl = (*c)->impl_.get();
  impl->thread = std::thread([impl] { impl->Run(); });
  return c;
}

CoordinatorStats Coordinator::stats() const {
  MutexLock lock(&impl_->mu);
  return impl_->stats;
}

namespace coord {

absl::StatusOr<std::unique_ptr<Coordinator>> CoordinatorTestPeer::StartManual(
    std::shared_ptr<CoordinationStore> store, Repository* repository, CoordinatorOptions options) {
  if (store == nullptr || repository == nullptr) {
    return absl::InvalidArgumentError("a coordinator needs a coordination store and a repository");
  }
  if (absl::Status s = ValidateAgainstRepository(options, *repository); !s.ok()) return s;
  return std::unique_ptr<Coordinator>(new Coordinator(
      std::make_unique<Coordinator::Impl>(std::move(store), repository, std::move(options))));
}

absl::Status CoordinatorTestPeer::RunRound(Coordinator& coordinator) {
  int64_t revision = 0;
  return coordinator.impl_->Round(&revision).status();
}

void CoordinatorTestPeer::WaitForMaintenance(Coordinator& coordinator) {
  Coordinator::Impl& impl = *coordinator.impl_;
  {
    MutexLock lock(&impl.mu);
    impl.mu.Await([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl.mu) { return !impl.maintenance_running; });
  }
}

}  // namespace coord
}  // namespace ickpt
