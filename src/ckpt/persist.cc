// The persist thread (format.md §8: packs and manifests, then the commit record or the
// acknowledgement, written last) and the outcomes of group checkpoints (§11).
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "ickpt/maintenance.h"
#include "src/ckpt/checkpointer_impl.h"
#include "src/repo/chain.h"
#include "src/repo/cost_model.h"
#include "src/repo/region_reader.h"
#include "src/state/region_internal.h"
#include "src/util/log.h"
#include "src/util/str.h"

namespace ickpt {

void Checkpointer::Impl::PersistLoop() {
  for (;;) {
    std::unique_ptr<PersistJob> job;
    bool stale = false;
    {
      MutexLock lock(&mu);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !queue.empty() || stopping; };
      mu.Await(ready);
      if (queue.empty()) return;  // stopping, and everything queued has persisted
      job = std::move(queue.front());
      queue.pop_front();
      stale = job->generation != generation || announced_aborted.contains(job->id);
    }
    // Reserve the next id now, off the application's path, so the next capture needs no I/O.
    // Done before this checkpoint persists so that it is ready when the next capture starts.
    ReserveAhead();
    absl::StatusOr<CommitRecord> result =
        absl::AbortedError(StrCat("checkpoint ", job->id,
                                  " was not persisted: it was aborted, or a checkpoint it "
                                  "builds on failed or was aborted"));
    if (!stale) {
      bool reuses_blocks = false;
      for (const RegionCaptureJob& c : job->regions) {
        reuses_blocks = reuses_blocks || c.kind == CheckpointKind::kFull;
      }
      absl::Status rebased = RebaseIfNeeded(reuses_blocks);
      if (rebased.ok()) {
        result = Persist(*job);
      } else {
        result = absl::Status(rebased.code(), StrCat("checkpoint ", job->id,
                                                     ": re-resolving the location tables "
                                                     "after a consolidation: ",
                                                     rebased.message()));
      }
    }
    for (RegionCaptureJob& c : job->regions) staging->Release(c.name, std::move(c.staging));
    {
      MutexLock lock(&mu);
      if (!result.ok()) FailJob(*job, result.status());
    }
    if (result.ok()) MaybeStartMaintenance();
    // Before the next capture may start: allocate and touch its staging now, so that its pause
    // only copies.
    staging->Prepare();
    {
      // Leave the in-flight count before waking waiters, so that a caller returning from Wait()
      // finds room for its next checkpoint.
      MutexLock lock(&mu);
      --in_flight;
      in_flight_ids.erase(job->id);
    }
    job->handle->Finish(std::move(result));
  }
}

void Checkpointer::Impl::ReserveAhead() {
  if (!completion->reserves_ids()) return;
  {
    MutexLock lock(&mu);
    if (reserved_id.has_value() || stopping) return;
  }
  absl::StatusOr<uint64_t> next = repo->ReserveCheckpointId();
  if (!next.ok()) {
    // Not fatal: the next Checkpoint() reserves its id itself and reports the error if it
    // persists.
    ICKPT_LOG_ONCE("reserve-ahead", LogLevel::kWarn,
                   "reserving the next checkpoint id ahead failed: {}", next.status().ToString());
    return;
  }
  MutexLock lock(&mu);
  if (!reserved_id.has_value() && *next > last_id) reserved_id = *next;
}

namespace {

// The background collection competes with the application and with the persist thread for the
// CPU and the disk: bench/gc_bench measured checkpoints 1.5-2x slower beside a collection at normal
// priority and 1.08-1.27x at nice 19 (docs/benchmarks.md). Linux applies nice and I/O priority per
// thread, so this thread alone goes to nice 19 and the idle I/O class; best effort.
void LowerThisThreadsPriority() {
  const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 19);
  constexpr int kIoprioWhoProcess = 1;  // linux/ioprio.h: IOPRIO_WHO_PROCESS
  constexpr int kIoprioClassIdle = 3;   // IOPRIO_CLASS_IDLE
  constexpr int kIoprioClassShift = 13;
  (void)syscall(SYS_ioprio_set, kIoprioWhoProcess, tid, kIoprioClassIdle << kIoprioClassShift);
}

}  // namespace

absl::Status Checkpointer::Impl::RebaseIfNeeded(bool about_to_reuse_blocks) {
  std::optional<uint64_t> head;
  bool needed = false;
  {
    MutexLock lock(&mu);
    // The tables may hold pending checkpoints' blocks, which a resolution from the repository
    // would lose: docs/policy.md §4 waits until nothing is pending (or for a restore).
    if (!lineage.pending().empty()) return absl::OkStatus();
    if (!rebase_needed && !about_to_reuse_blocks) return absl::OkStatus();
    needed = rebase_needed;
    head = lineage.committed_id();
  }
  absl::StatusOr<Consolidations> consolidations = Consolidations::List(*repo);
  if (!consolidations.ok()) return consolidations.status();
  if (!needed) {
    MutexLock lock(&mu);
    if (!UnknownConsolidation(consolidations->in_force()).has_value()) return absl::OkStatus();
  }
  std::map<std::string, std::vector<BlockLocation>, std::less<>> tables;
  if (head.has_value()) {
    absl::StatusOr<CommitRecord> commit = repo->ReadCommit(*head);
    if (!commit.ok()) return commit.status();
    absl::StatusOr<const ParticipantRecord*> p = FindParticipant(*commit, options.participant);
    if (p.ok()) {
      for (const StateObjectRecord& so : (*p)->state_objects) {
        if (so.type != StateObjectType::kRegion) continue;
        absl::StatusOr<ResolvedObject> r =
            ResolveObject(*repo, *commit, options.participant, so.name, &packs, &*consolidations);
        if (!r.ok()) return r.status();
        tables[so.name] = std::move(r->locations);
      }
    }
  }
  MutexLock lock(&mu);
  for (auto& [name, locations] : tables) {
    lineage.ReplaceCommittedLocations(name, std::move(locations));
  }
  known_consolidations = consolidations->in_force();
  if (consolidating.has_value()) {
    uint64_t& known = known_consolidations[consolidating->first];
    known = std::max(known, consolidating->second);
  }
  rebase_needed = false;
  ICKPT_LOG_DEBUG("location tables re-resolved at checkpoint {} after a consolidation",
                  head.value_or(0));
  return absl::OkStatus();
}

absl::Status Checkpointer::Impl::CheckNoUnknownConsolidation() {
  absl::StatusOr<Consolidations> consolidations = Consolidations::List(*repo);
  if (!consolidations.ok()) return consolidations.status();
  MutexLock lock(&mu);
  const std::optional<std::pair<uint64_t, uint64_t>> unknown =
      UnknownConsolidation(consolidations->in_force());
  if (!unknown.has_value()) return absl::OkStatus();
  // docs/policy.md §4: blocks were reused from tables that predate this consolidation, whose
  // packs may become collectable; the next checkpoint re-resolves the tables first.
  rebase_needed = true;
  return absl::FailedPreconditionError(
      StrCat("checkpoint ", unknown->first, " was consolidated (generation ", unknown->second,
             ") by another process; blocks reused from before it are not committed, the next "
             "checkpoint captures them again"));
}

std::optional<std::pair<uint64_t, uint64_t>> Checkpointer::Impl::UnknownConsolidation(
    const std::map<uint64_t, uint64_t>& in_force) const {
  const uint64_t head = lineage.committed_id().value_or(0);
  for (const auto& [id, generation] : in_force) {
    if (id > head) continue;
    auto known = known_consolidations.find(id);
    if (known != known_consolidations.end() && known->second == generation) continue;
    return std::make_pair(id, generation);
  }
  return std::nullopt;
}

void Checkpointer::Impl::ConsolidateInBackground(
    uint64_t id, const std::map<std::string, ObjectLineage, std::less<>>& at_id) {
  const absl::Time start = absl::Now();
  // Marked known before the publish (docs/policy.md §4): a persist that checks after the publish
  // but started before the end of this run commits within the checkpoint timeout, which GC's
  // grace covers; every persist that starts after it re-resolves its tables first.
  uint64_t expected_generation = 0;
  {
    absl::StatusOr<std::map<uint64_t, uint64_t>> in_force = ListConsolidations(*repo);
    if (!in_force.ok()) {
      ICKPT_LOG_WARN("background consolidation of checkpoint {}: {}", id,
                     in_force.status().ToString());
      return;
    }
    auto it = in_force->find(id);
    expected_generation = (it == in_force->end() ? 0 : it->second) + 1;
    MutexLock lock(&mu);
    known_consolidations[id] = expected_generation;
    consolidating = std::make_pair(id, expected_generation);
  }
  absl::StatusOr<ConsolidationReport> report = Consolidate(*repo, id, options.consolidate);
  {
    // The next persist re-resolves the tables: they may name packs this consolidation replaced.
    MutexLock lock(&mu);
    consolidating.reset();
    rebase_needed = true;
    if (!report.ok() || report->generation == 0) {
      if (auto it = known_consolidations.find(id);
          it != known_consolidations.end() && it->second == expected_generation) {
        known_consolidations.erase(it);  // the rebase lists what is in force
      }
    }
  }
  if (!report.ok()) {
    if (absl::IsAborted(report.status()) || absl::IsNotFound(report.status()) ||
        absl::IsFailedPrecondition(report.status())) {
      ICKPT_LOG_INFO("background consolidation of checkpoint {} skipped: {}", id,
                     report.status().ToString());
    } else {
      ICKPT_LOG_WARN("background consolidation of checkpoint {}: {}", id,
                     report.status().ToString());
    }
    return;
  }
  {
    MutexLock lock(&mu);
    // The walks of every object through `id` end there now (docs/policy.md §1).
    lineage.Consolidated(id, at_id);
    for (auto& [name, object] : capture_lineage) {
      if (auto it = at_id.find(name); it != at_id.end()) object.Consolidated(id, it->second);
    }
  }
  // The estimate the policy weighs against the recovery time objective (docs/policy.md §2).
  absl::StatusOr<CommitRecord> commit = repo->ReadCommit(id);
  if (commit.ok()) {
    absl::StatusOr<RestoreWork> work = MeasureRestoreWork(*repo, *commit);
    absl::StatusOr<ReadSpeed> speed = MeasureReadSpeed(*repo, *commit, 16 << 20, 8);
    if (work.ok() && speed.ok()) {
      MutexLock lock(&mu);
      estimated_restore_seconds = EstimatedRestoreSeconds(*work, *speed);
    }
  }
  ICKPT_LOG_INFO(
      "background consolidation of checkpoint {} in {}: generation {}, {} -> {} links, {} -> {} "
      "packs, {} bytes repacked",
      id, absl::FormatDuration(absl::Now() - start), report->generation, report->links_before,
      report->links_after, report->packs_before, report->packs_after, report->repacked_bytes);
}

void Checkpointer::Impl::MaybeStartMaintenance() {
  // Group members' commits are the coordinator's, and so are their collection and consolidation.
  if (completion->outcomes_announced()) return;
  const bool may_gc = options.gc_after_commit;
  const bool may_consolidate = options.consolidate_in_background;
  if (!may_gc && !may_consolidate) return;
  bool gc_due = false;
  std::optional<uint64_t> consolidate;
  std::map<std::string, ObjectLineage, std::less<>> at_id;
  {
    MutexLock lock(&mu);
    if (gc_running || stopping) return;
    gc_due = may_gc && absl::Now() - last_gc >= options.gc_interval;
    if (may_consolidate && lineage.committed_id().has_value() && lineage.pending().empty()) {
      at_id = lineage.HeadLineage();
      uint64_t links = 0;
      for (const auto& [name, object] : at_id) links = std::max(links, object.effective_depth());
      const double rto = absl::ToDoubleSeconds(options.recovery_time_objective);
      if (links >= options.consolidate_after_links ||
          (rto > 0 && estimated_restore_seconds > rto && links > 0)) {
        consolidate = lineage.committed_id();
      }
    }
    if (!gc_due && !consolidate.has_value()) return;
    gc_running = true;
    if (gc_due) last_gc = absl::Now();
  }
  // The previous run has finished (gc_running was false): joining it does not wait.
  if (gc_thread.joinable()) gc_thread.join();
  gc_thread = std::thread([this, gc_due, consolidate, at_id = std::move(at_id)] {
    LowerThisThreadsPriority();
    if (consolidate.has_value()) ConsolidateInBackground(*consolidate, at_id);
    if (gc_due) CollectInBackground();
    MutexLock lock(&mu);
    gc_running = false;
  });
}

void Checkpointer::Impl::CollectInBackground() {
  // §13.1: a repository without a policy keeps everything and is never collected in the
  // background (an explicit `ickpt gc` still removes what no checkpoint reaches).
  absl::StatusOr<std::optional<RetentionPolicy>> policy = ReadRetentionPolicy(*repo);
  if (!policy.ok()) {
    ICKPT_LOG_WARN("background gc: {}", policy.status().ToString());
    return;
  }
  if (!policy->has_value()) return;
  const absl::Time start = absl::Now();
  absl::StatusOr<GcReport> report = CollectGarbage(*repo, options.gc);
  if (report.ok()) {
    ICKPT_LOG_INFO("background gc in {}: deleted {} objects ({} bytes), condemned {}, removed {}",
                   absl::FormatDuration(absl::Now() - start), report->deleted_objects,
                   report->deleted_bytes, report->condemned_checkpoints.size(),
                   report->removed_checkpoints.size());
  } else if (absl::IsAborted(report.status())) {
    ICKPT_LOG_INFO("background gc skipped: {}", report.status().ToString());
  } else {
    ICKPT_LOG_WARN("background gc: {}", report.status().ToString());
  }
}

void Checkpointer::Impl::FallBackToHead() {
  ++generation;
  capture_parent = lineage.head();
  capture_lineage = lineage.HeadLineage();
}

void Checkpointer::Impl::FailJob(PersistJob& job, const absl::Status& status) {
  ICKPT_LOG_WARN("checkpoint {} failed, its changes go into the next checkpoint: {}", job.id,
                 status.ToString());
  // Everything this checkpoint captured goes back into the dirty sets, so the next checkpoint
  // carries it (nothing is lost), and the lineage falls back to the newest surviving checkpoint.
  for (RegionCaptureJob& c : job.regions) RegionAccess::MergeBack(*c.region, c.dirty);
  for (KeyedCaptureJob& k : job.keyed) keyed_merge_back.emplace_back(k.state, std::move(k.changes));
  failed_ids.insert(job.id);
  announced_aborted.erase(job.id);
  if (IsParentRemoved(status) && lineage.pending().empty()) {
    // §8.6: the checkpoint we build on is condemned or gone (another writer's retention), or
    // fenced by a coordinator epoch (§15.3), so the lineage starts over: the next checkpoint is
    // full, with no parent.
    ICKPT_LOG_WARN(
        "checkpoint {}: its parent was removed by retention or fenced; the next checkpoint is full",
        job.id);
    lineage.Reset(std::nullopt, {});
  }
  if (announced_committed.erase(job.id) > 0) {
    ICKPT_LOG_ERROR("checkpoint {} was announced committed but failed here: {}", job.id,
                    status.ToString());
  }
  FallBackToHead();
}

void Checkpointer::Impl::AbortPendingFrom(uint64_t id) {
  std::vector<PendingCheckpoint> aborted = lineage.AbortFrom(id);
  // AbortFrom hands them newest first; their change sets go back in capture order, oldest first.
  std::reverse(aborted.begin(), aborted.end());
  for (PendingCheckpoint& p : aborted) {
    ICKPT_LOG_INFO("checkpoint {} aborted by the group; its changes go into the next checkpoint",
                   p.id);
    for (PendingCheckpoint::RegionPart& r : p.regions) RegionAccess::MergeBack(*r.region, r.dirty);
    for (PendingCheckpoint::KeyedPart& k : p.keyed) {
      keyed_merge_back.emplace_back(k.state, std::move(k.changes));
    }
    failed_ids.insert(p.id);
  }
  FallBackToHead();
}

absl::Status Checkpointer::Impl::Outcome(uint64_t id, CheckpointOutcome outcome) {
  if (!completion->outcomes_announced()) {
    return absl::FailedPreconditionError(
        "this checkpointer commits its own checkpoints: outcomes are for group members");
  }
  MutexLock lock(&mu);
  const std::optional<uint64_t> committed = lineage.committed_id();
  const bool at_or_below_committed = committed.has_value() && id <= *committed;
  if (outcome == CheckpointOutcome::kCommitted) {
    if (failed_ids.contains(id)) {
      return absl::FailedPreconditionError(
          StrCat("checkpoint ", id, " failed or was aborted here, so it cannot be committed"));
    }
    if (at_or_below_committed) return absl::OkStatus();  // settled already
    if (lineage.IsPending(id)) {
      lineage.CommitThrough(id);
      std::erase_if(failed_ids, [id](uint64_t f) { return f <= id; });
      return absl::OkStatus();
    }
    if (in_flight_ids.contains(id)) {
      announced_committed.insert(id);
      return absl::OkStatus();
    }
    return absl::NotFoundError(StrCat("checkpoint ", id, " is not one this participant took"));
  }
  if (failed_ids.contains(id)) return absl::OkStatus();  // failed or aborted already
  if (at_or_below_committed) {
    return absl::FailedPreconditionError(StrCat("checkpoint ", id,
                                                " cannot be aborted: checkpoint ", *committed,
                                                " is committed here and builds on it"));
  }
  if (lineage.IsPending(id)) {
    AbortPendingFrom(id);
    return absl::OkStatus();
  }
  if (in_flight_ids.contains(id)) {
    announced_aborted.insert(id);
    return absl::OkStatus();
  }
  return absl::NotFoundError(StrCat("checkpoint ", id, " is not one this participant took"));
}

absl::StatusOr<CommitRecord> Checkpointer::Impl::Persist(PersistJob& job) {
  CommitRecord record;
  record.id = job.id;
  record.parent = job.parent;
  record.created = job.created;
  record.epoch = job.epoch;
  record.metadata = job.metadata;
  ParticipantRecord participant;
  participant.name = options.participant;
  participant.incarnation = options.incarnation;
  const CheckpointIds ids{job.id, job.parent};
  bool all_full = true;
  auto add = [&](StateObjectRecord object) {
    all_full = all_full && object.kind == CheckpointKind::kFull;
    record.depth = std::max(record.depth, object.depth);
    record.logical_bytes += object.logical_bytes;
    record.stored_bytes += object.stored_bytes;
    participant.state_objects.push_back(std::move(object));
  };

  PendingCheckpoint done;
  done.id = job.id;
  done.parent = job.parent;
  bool reused_blocks = false;  // a complete manifest took blocks from the location tables
  for (RegionCaptureJob& c : job.regions) {
    // A full manifest reuses the blocks not captured from where they lie as of the parent, which
    // is the lineage's head: checkpoints persist in order, and one whose parent failed or was
    // aborted is never persisted.
    std::vector<BlockLocation> base;
    if (c.kind == CheckpointKind::kFull) {
      MutexLock lock(&mu);
      base = lineage.HeadLocations(c.name);
      reused_blocks = reused_blocks || !base.empty();
    }
    const char* data = c.staging.data();
    const DirtyBitmap& dirty = c.dirty;
    // Named: a FunctionRef must not outlive what it refers to.
    auto for_each_run = [&dirty](absl::FunctionRef<void(uint64_t, uint64_t)> fn) {
      dirty.ForEachRun(fn);
    };
    RegionCapture capture{
        .name = c.name,
        .tracker = c.tracker,
        .block_size = c.block_size,
        .block_count = c.block_count,
        .kind = c.kind,
        .depth = c.depth,
        .data = data,
        .for_each_run = for_each_run,
        .changed_blocks = dirty.Count(),
        .pause_ns = c.pause_ns,
    };
    absl::StatusOr<RegionWritten> written = writer->WriteRegion(ids, capture, &base, &packs);
    if (!written.ok()) return written.status();
    // Durable: the staging memory may serve the next capture.
    staging->Release(c.name, std::move(c.staging));
    add(std::move(written->record));
    done.regions.push_back(PendingCheckpoint::RegionPart{c.name, c.region, c.lineage, c.block_count,
                                                         std::move(written->fresh), DirtyBitmap()});
  }
  std::optional<CommitRecord> base_record;
  for (KeyedCaptureJob& k : job.keyed) {
    // Grouping and sorting were left out of the pause.
    k.changes.Sort();
    if (k.kind == CheckpointKind::kFull && !k.changes.full() && !base_record.has_value()) {
      if (!job.parent.has_value())
        return absl::InternalError("a merged full checkpoint without base");
      absl::StatusOr<CommitRecord> parent = completion->ReadBase(*job.parent);
      if (!parent.ok()) {
        return absl::Status(parent.status().code(),
                            StrCat("checkpoint ", job.id, ": reading its base, checkpoint ",
                                   *job.parent, ": ", parent.status().message()));
      }
      base_record = *std::move(parent);
    }
    KeyedCapture capture{
        .name = k.name,
        .kind = k.kind,
        .depth = k.depth,
        .entries = k.entries,
        .entry_bytes = k.entry_bytes,
        .group_first = k.group_first,
        .group_end = k.group_end,
        .changes = &k.changes,
        .pause_ns = k.pause_ns,
    };
    absl::StatusOr<StateObjectRecord> written =
        writer->WriteKeyed(ids, capture, base_record.has_value() ? &*base_record : nullptr);
    if (!written.ok()) return written.status();
    add(*std::move(written));
  }
  record.kind = all_full ? CheckpointKind::kFull : CheckpointKind::kIncremental;
  record.participants.push_back(std::move(participant));
  if (reused_blocks) {
    if (absl::Status s = CheckNoUnknownConsolidation(); !s.ok()) {
      return absl::Status(s.code(), StrCat("checkpoint ", job.id, ": ", s.message()));
    }
  }

  // Durable packs and manifests, then the record that makes them part of the history.
  absl::StatusOr<bool> committed = completion->Publish(record);
  if (!committed.ok()) return committed.status();
  ICKPT_LOG_DEBUG("checkpoint {} {}: {} {} bytes stored", job.id,
                  *committed ? "committed" : "acknowledged", CheckpointKindName(record.kind),
                  record.stored_bytes);

  MutexLock lock(&mu);
  if (job.generation != generation || announced_aborted.contains(job.id)) {
    // Aborted while it persisted, or built on a checkpoint aborted meanwhile: its
    // acknowledgement stays behind, never committed (the caller gives its changes back).
    return absl::AbortedError(StrCat("checkpoint ", job.id, " was aborted while it persisted"));
  }
  // Until its outcome is known, the checkpoint keeps what it captured (given back if aborted).
  for (size_t i = 0; i < job.regions.size(); ++i) {
    done.regions[i].dirty = std::move(job.regions[i].dirty);
  }
  for (KeyedCaptureJob& k : job.keyed) {
    done.keyed.push_back(
        PendingCheckpoint::KeyedPart{k.name, k.state, k.lineage, std::move(k.changes)});
  }
  lineage.AddPending(std::move(done));
  // Committed now (a local commit), or announced committed while it persisted: n committed
  // settles every checkpoint n builds on, this one among them.
  const bool announced = !announced_committed.empty() && *announced_committed.rbegin() >= job.id;
  if (*committed || announced) {
    lineage.CommitThrough(job.id);
    std::erase_if(announced_committed, [&job](uint64_t c) { return c <= job.id; });
    std::erase_if(failed_ids, [&job](uint64_t f) { return f <= job.id; });
  }
  return record;
}

}  // namespace ickpt
