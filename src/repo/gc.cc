// Garbage collection (format.md §13.4): mark from the kept checkpoints, pins and acknowledgements
// that may still commit; condemn what retention dropped; sweep what has been unreferenced, or
// condemned, for longer than the grace period by the store's clock.
#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "src/repo/chain.h"
#include "src/repo/commit_record.h"
#include "src/repo/fencing.h"
#include "src/repo/keys.h"
#include "src/repo/listing.h"
#include "src/repo/maintenance_lock.h"
#include "src/repo/reachability.h"
#include "src/repo/repository_internal.h"
#include "src/util/hash.h"
#include "src/util/log.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// Deletions between two checks of the lock's renewal.
constexpr int kDeletionsPerRenewalCheck = 256;

// Objects under `prefix` whose key parses as an id, by id.
absl::StatusOr<std::map<uint64_t, ObjectInfo>> ListById(ObjectStore& store,
                                                        std::string_view prefix) {
  absl::StatusOr<std::vector<ObjectInfo>> objects = store.List(prefix);
  if (!objects.ok()) return objects.status();
  std::map<uint64_t, ObjectInfo> out;
  for (ObjectInfo& info : *objects) {
    if (std::optional<uint64_t> id = ParseIdKey(info.key, prefix)) out[*id] = std::move(info);
  }
  return out;
}

absl::Status Refuse(std::string_view what, const absl::Status& cause) {
  return absl::Status(cause.code(), StrCat("gc deletes nothing: ", what, ": ", cause.message(),
                                           " (ickpt verify says what is damaged)"));
}

// The first problem of a reachability walk as a refusal, or OK.
absl::Status RefuseOnProblems(const Reachable& reach) {
  if (reach.problems.empty()) return absl::OkStatus();
  const ReachProblem& p = reach.problems.front();
  return Refuse(StrCat(reach.problems.size(), " damaged or missing object(s), first under ", p.key),
                p.status);
}

std::set<uint64_t> CommitIds(const Reachable& reach) {
  std::set<uint64_t> ids;
  for (const std::string& key : reach.commits) {
    if (std::optional<uint64_t> id = ParseIdKey(key, kCommitsPrefix)) ids.insert(*id);
  }
  return ids;
}

// Deletes (or, dry, counts) objects and renews the lock now and then.
class Sweeper {
 public:
  Sweeper(ObjectStore& store, MaintenanceLockHolder& lock, GcReport& report)
      : store_(store), lock_(lock), report_(report) {}

  absl::Status Delete(const ObjectInfo& info, uint64_t* kind_count) {
    if (++since_check_ >= kDeletionsPerRenewalCheck) {
      since_check_ = 0;
      if (absl::Status s = lock_.RenewIfDue(); !s.ok()) return s;
    }
    if (!report_.dry_run) {
      if (absl::Status s = store_.Delete(info.key); !s.ok()) {
        return absl::Status(s.code(), StrCat("gc: deleting ", info.key, ": ", s.message()));
      }
    }
    ++report_.deleted_objects;
    report_.deleted_bytes += info.size;
    ++*kind_count;
    return absl::OkStatus();
  }

  // Like Delete for each of `objects`, in batches of kDeletionsPerRenewalCheck through DeleteMany
  // (one request per batch on S3), renewing the lock between batches. For kinds whose order of
  // deletion does not matter (manifests, packs: nothing references them once their commits are
  // gone, §13.4).
  absl::Status DeleteUnordered(const std::vector<ObjectInfo>& objects, uint64_t* kind_count) {
    for (size_t begin = 0; begin < objects.size(); begin += kDeletionsPerRenewalCheck) {
      const size_t end = std::min(objects.size(), begin + kDeletionsPerRenewalCheck);
      if (absl::Status s = lock_.RenewIfDue(); !s.ok()) return s;
      if (!report_.dry_run) {
        std::vector<std::string> keys;
        for (size_t i = begin; i < end; ++i) keys.push_back(objects[i].key);
        if (absl::Status s = store_.DeleteMany(keys); !s.ok()) {
          return absl::Status(s.code(), StrCat("gc: deleting ", keys.size(), " objects from ",
                                               keys.front(), ": ", s.message()));
        }
      }
      for (size_t i = begin; i < end; ++i) {
        ++report_.deleted_objects;
        report_.deleted_bytes += objects[i].size;
        ++*kind_count;
      }
    }
    return absl::OkStatus();
  }

 private:
  ObjectStore& store_;
  MaintenanceLockHolder& lock_;
  GcReport& report_;
  int since_check_ = 0;
};

}  // namespace

absl::StatusOr<GcReport> CollectGarbage(Repository& repo, const GcOptions& options) {
  ObjectStore& store = *RepositoryInternal::store(repo);
  GcReport report;
  report.dry_run = options.dry_run;

  if (options.lock_ttl < absl::Seconds(1) ||
      options.lock_ttl != absl::Seconds(absl::ToInt64Seconds(options.lock_ttl))) {
    return absl::InvalidArgumentError(StrCat("lock ttl ", absl::FormatDuration(options.lock_ttl),
                                             " is not a whole number of seconds >= 1 s"));
  }
  absl::StatusOr<std::optional<RetentionPolicy>> policy = ReadRetentionPolicy(repo);
  if (!policy.ok()) return Refuse("reading the retention policy", policy.status());
  const absl::Duration checkpoint_timeout =
      policy->has_value() ? (*policy)->checkpoint_timeout : RetentionPolicy().checkpoint_timeout;
  if (options.grace <= checkpoint_timeout) {
    return absl::InvalidArgumentError(StrCat(
        "grace period ", absl::FormatDuration(options.grace),
        " is not above the checkpoint timeout ", absl::FormatDuration(checkpoint_timeout),
        policy->has_value() ? StrCat(" of retention policy generation ", (*policy)->generation)
                            : std::string(" (the default; the repository has no policy)"),
        ": a checkpoint still in flight could lose its objects (format.md §13.4)"));
  }
  if (policy->has_value()) report.policy_generation = (*policy)->generation;

  absl::StatusOr<std::unique_ptr<MaintenanceLockHolder>> lock =
      MaintenanceLockHolder::Acquire(store, "gc", options.lock_ttl);
  if (!lock.ok()) return lock.status();
  // §13.4: `now` is the store's clock, read before anything is listed.
  const absl::Time now = (*lock)->store_now();
  auto older_than_grace = [&](const ObjectInfo& info) {
    return now - info.modified > options.grace;
  };

  // Consolidations first (§14.4): one published after this listing is not deleted by this run, and
  // one whose commit record the listing of commits below misses belongs to a removed checkpoint.
  absl::StatusOr<std::vector<ObjectInfo>> consolidation_objects = store.List(kConsolidationsPrefix);
  if (!consolidation_objects.ok()) return consolidation_objects.status();
  Consolidations consolidations = Consolidations::FromListing(*consolidation_objects);
  // §14.4: for the grace period after a consolidation is published, the chain it replaces stays
  // needed too (a writer whose location tables predate it may still reuse that chain's blocks).
  consolidations.KeepChainsOfThoseModifiedAfter(now - options.grace);
  // Roots: commit records, pins, condemnations.
  absl::StatusOr<std::map<uint64_t, ObjectInfo>> commits = ListById(store, kCommitsPrefix);
  if (!commits.ok()) return commits.status();
  absl::StatusOr<std::map<uint64_t, ObjectInfo>> condemned = ListById(store, kCondemnedPrefix);
  if (!condemned.ok()) return condemned.status();
  absl::StatusOr<std::vector<Pin>> pins = ListPins(repo);
  if (!pins.ok()) return Refuse("reading the pins", pins.status());
  // Epoch records after the commit records (as LatestCommitId): a commit that raced with a new
  // epoch is judged by it. A fenced commit is not part of the history (§15.3): never kept.
  absl::StatusOr<Fencing> fencing = ReadFencing(repo);
  if (!fencing.ok()) return Refuse("reading the epoch records", fencing.status());

  std::vector<uint64_t> all_ids;
  for (const auto& [id, info] : *commits) all_ids.push_back(id);
  absl::StatusOr<std::map<uint64_t, uint64_t>> fenced = FindFencedCommits(repo, *fencing, all_ids);
  if (!fenced.ok()) return fenced.status();
  for (const auto& [id, epoch] : *fenced) report.fenced_checkpoints.push_back(id);
  // The history (§13.1): the committed checkpoints that are not fenced, a damaged record
  // included (§6.1). Its highest is the latest committed checkpoint.
  std::vector<uint64_t> history;
  for (uint64_t id : all_ids) {
    if (!fenced->contains(id)) history.push_back(id);
  }

  // Kept: the policy's rules, the pins and the latest (§13.1), all within the history.
  std::set<uint64_t> kept;
  if (!history.empty()) kept.insert(history.back());
  if (!policy->has_value()) {
    kept.insert(history.begin(), history.end());
  } else {
    const RetentionPolicy& p = **policy;
    if (p.keep_last.has_value()) {
      const size_t n = std::min<size_t>(*p.keep_last, history.size());
      kept.insert(history.end() - static_cast<ptrdiff_t>(n), history.end());
    }
    if (p.keep_within.has_value()) {
      for (uint64_t id : history) {
        if (kept.contains(id)) continue;
        absl::StatusOr<CommitRecord> record = repo.ReadCommit(id);
        if (absl::IsNotFound(record.status())) continue;  // another GC removed it meanwhile
        if (!record.ok()) return Refuse(StrCat("reading checkpoint ", id), record.status());
        if (record->created >= now - *p.keep_within) kept.insert(id);
      }
    }
  }
  for (const Pin& pin : *pins) {
    // A pin of a fenced checkpoint keeps nothing (§13.1): that checkpoint is not part of the
    // history, as if it did not exist.
    if (commits->contains(pin.id) && !fenced->contains(pin.id)) {
      kept.insert(pin.id);
    } else {
      report.dangling_pins.push_back(pin.name);
    }
  }
  report.kept_checkpoints.assign(kept.begin(), kept.end());

  // Needed: what the kept checkpoints' chains reach. It decides condemnation and pardon.
  absl::StatusOr<Reachable> needed_reach =
      ComputeReachable(repo, report.kept_checkpoints, &consolidations);
  if (!needed_reach.ok()) return needed_reach.status();
  if (absl::Status s = RefuseOnProblems(*needed_reach); !s.ok()) return s;
  if (absl::Status s = (*lock)->RenewIfDue(); !s.ok()) return s;
  const std::set<uint64_t> needed = CommitIds(*needed_reach);
  for (uint64_t id : needed) {
    if (!kept.contains(id)) report.needed_checkpoints.push_back(id);
  }

  std::vector<uint64_t> to_condemn, candidates;
  for (uint64_t id : all_ids) {
    if (needed.contains(id)) continue;
    auto c = condemned->find(id);
    if (c == condemned->end()) {
      to_condemn.push_back(id);
    } else if (older_than_grace(c->second)) {
      candidates.push_back(id);
    }
  }
  for (const auto& [id, info] : *condemned) {
    if (needed.contains(id)) report.pardoned_checkpoints.push_back(id);
  }

  // A candidate stays while a commit record that remains needs it (§13.3: a commit record present
  // implies its chain's are). One walk over the others suffices: it walks through the candidates
  // they need.
  std::vector<uint64_t> non_candidates;
  std::set_difference(all_ids.begin(), all_ids.end(), candidates.begin(), candidates.end(),
                      std::back_inserter(non_candidates));
  absl::StatusOr<Reachable> reach = ComputeReachable(repo, non_candidates, &consolidations);
  if (!reach.ok()) return reach.status();
  if (absl::Status s = RefuseOnProblems(*reach); !s.ok()) return s;
  if (absl::Status s = (*lock)->RenewIfDue(); !s.ok()) return s;
  {
    const std::set<uint64_t> still_needed = CommitIds(*reach);
    for (uint64_t id : candidates) {
      if (!still_needed.contains(id)) report.removed_checkpoints.push_back(id);
    }
  }
  if (report.removed_checkpoints.size() != candidates.size()) {
    // Some candidates stay: walk every remaining commit record, so that all their objects (not
    // only those of the chains that needed them) stay reached.
    std::vector<uint64_t> remaining;
    std::set_difference(all_ids.begin(), all_ids.end(), report.removed_checkpoints.begin(),
                        report.removed_checkpoints.end(), std::back_inserter(remaining));
    reach = ComputeReachable(repo, remaining, &consolidations);
    if (!reach.ok()) return reach.status();
    if (absl::Status s = RefuseOnProblems(*reach); !s.ok()) return s;
    if (absl::Status s = (*lock)->RenewIfDue(); !s.ok()) return s;
  }

  // Acknowledgements younger than the grace period whose checkpoint is not committed may still
  // commit: their manifests and the packs those reference are roots too.
  absl::StatusOr<std::vector<ObjectInfo>> acks = store.List(kAcksPrefix);
  if (!acks.ok()) return acks.status();
  std::set<std::string> ack_roots;
  for (const ObjectInfo& info : *acks) {
    if (older_than_grace(info)) continue;
    // acks/<id:020>/<participant>
    const size_t slash = info.key.find('/', kAcksPrefix.size());
    if (slash == std::string::npos) continue;
    std::optional<uint64_t> id = ParseIdKey(info.key.substr(0, slash), kAcksPrefix);
    if (!id.has_value() || commits->contains(*id)) continue;
    absl::StatusOr<CommitRecord> ack = repo.ReadAck(*id, info.key.substr(slash + 1));
    if (absl::IsNotFound(ack.status())) continue;
    if (!ack.ok()) return Refuse(StrCat("reading acknowledgement ", info.key), ack.status());
    for (const ParticipantRecord& p : ack->participants) {
      for (const StateObjectRecord& so : p.state_objects) {
        ack_roots.insert(so.manifest);
        absl::StatusOr<Manifest> m = ReadManifest(repo, *id, so);
        if (!m.ok()) continue;  // that checkpoint cannot commit; nothing else needs it
        for (const Sha256Digest& digest : m->packs) ack_roots.insert(PackKey(ToHex(digest)));
      }
    }
  }

  // Decisions are made; now delete, in the order of §13.4.
  Sweeper sweep(store, **lock, report);
  if (!options.dry_run) {
    for (uint64_t id : to_condemn) {
      absl::Status s = store.Publish(CondemnedKey(id), "");
      // "exists": another GC condemned it, which is the same decision. An ambiguous failure
      // either landed or did not; the next run finds out.
      if (!s.ok() && !absl::IsAlreadyExists(s) && !IsAmbiguousFailure(s)) {
        return absl::Status(s.code(), StrCat("gc: condemning checkpoint ", id, ": ", s.message()));
      }
    }
  }
  report.condemned_checkpoints = to_condemn;
  for (uint64_t id : report.pardoned_checkpoints) {
    if (absl::Status s = sweep.Delete(condemned->at(id), &report.deleted_condemnations); !s.ok()) {
      return s;
    }
  }
  // 1. Commit records, newest first, then their condemnations; condemnations of nothing.
  for (auto it = report.removed_checkpoints.rbegin(); it != report.removed_checkpoints.rend();
       ++it) {
    if (absl::Status s = sweep.Delete(commits->at(*it), &report.deleted_commits); !s.ok()) return s;
  }
  for (uint64_t id : report.removed_checkpoints) {
    if (absl::Status s = sweep.Delete(condemned->at(id), &report.deleted_condemnations); !s.ok()) {
      return s;
    }
  }
  for (const auto& [id, info] : *condemned) {
    if (!commits->contains(id)) {
      if (absl::Status s = sweep.Delete(info, &report.deleted_condemnations); !s.ok()) return s;
    }
  }
  // Consolidation records not in force, or whose checkpoint has no commit record (§14.4).
  {
    const std::set<uint64_t> removed(report.removed_checkpoints.begin(),
                                     report.removed_checkpoints.end());
    for (const ObjectInfo& info : *consolidation_objects) {
      std::optional<std::pair<uint64_t, uint64_t>> parsed = ParseConsolidationKey(info.key);
      if (!parsed.has_value()) continue;  // not ours to judge
      const auto [id, generation] = *parsed;
      const bool superseded = consolidations.generation(id).value_or(0) > generation;
      if (!superseded && commits->contains(id) && !removed.contains(id)) continue;
      if (absl::Status s = sweep.Delete(info, &report.deleted_consolidations); !s.ok()) return s;
    }
  }
  // 2. Manifests, then packs: unreached and older than the grace period.
  for (const auto& [prefix, reached, count] :
       {std::tuple(kManifestsPrefix, &reach->manifests, &report.deleted_manifests),
        std::tuple(kPacksPrefix, &reach->packs, &report.deleted_packs)}) {
    // The 256 hashed prefixes at once (format.md §2): on S3 each page is a round trip.
    absl::StatusOr<std::vector<ObjectInfo>> objects = ListHashedPrefixes(store, prefix);
    if (!objects.ok()) return objects.status();
    std::vector<ObjectInfo> garbage;
    for (const ObjectInfo& info : *objects) {
      if (!ParseHashKey(info.key, prefix).has_value()) continue;  // not ours to judge
      if (reached->contains(info.key) || ack_roots.contains(info.key)) continue;
      if (!older_than_grace(info)) continue;
      garbage.push_back(info);
    }
    if (absl::Status s = sweep.DeleteUnordered(garbage, count); !s.ok()) return s;
  }
  // 3. Acknowledgements older than the grace period.
  for (const ObjectInfo& info : *acks) {
    if (!older_than_grace(info)) continue;
    if (absl::Status s = sweep.Delete(info, &report.deleted_acks); !s.ok()) return s;
  }
  // 4. Id reservations older than the grace period, except the highest (§7).
  absl::StatusOr<std::map<uint64_t, ObjectInfo>> reservations = ListById(store, kIdsPrefix);
  if (!reservations.ok()) return reservations.status();
  if (!reservations->empty()) {
    const uint64_t highest = reservations->rbegin()->first;
    for (const auto& [id, info] : *reservations) {
      if (id == highest || !older_than_grace(info)) continue;
      if (absl::Status s = sweep.Delete(info, &report.deleted_reservations); !s.ok()) return s;
    }
  }
  // Probes of GC runs that crashed before deleting theirs.
  absl::StatusOr<std::vector<ObjectInfo>> probes = store.List(kProbePrefix);
  if (!probes.ok()) return probes.status();
  for (const ObjectInfo& info : *probes) {
    if (!older_than_grace(info)) continue;
    if (absl::Status s = sweep.Delete(info, &report.deleted_probes); !s.ok()) return s;
  }
  // 5. The store's own debris.
  if (!options.dry_run) {
    absl::StatusOr<uint64_t> debris = store.RemoveDebris(options.grace);
    if (!debris.ok()) return debris.status();
    report.removed_debris = *debris;
  }
  if (absl::Status s = (*lock)->Release(); !s.ok()) return s;
  return report;
}

}  // namespace ickpt
