#include "src/repo/reachability.h"

#include <utility>

#include "src/repo/chain.h"
#include "src/repo/keys.h"
#include "src/util/hash.h"
#include "src/util/str.h"

namespace ickpt {

absl::StatusOr<Reachable> ComputeReachable(const RepositoryReader& repo,
                                           const std::vector<uint64_t>& ids,
                                           Consolidations* consolidations) {
  Reachable out;
  Consolidations own_consolidations;
  if (consolidations == nullptr) {
    absl::StatusOr<Consolidations> listed = Consolidations::List(repo);
    if (!listed.ok()) return listed.status();
    own_consolidations = *std::move(listed);
    consolidations = &own_consolidations;
  }
  for (uint64_t id : ids) {
    const std::string commit_key = CommitKey(id);
    out.commits.insert(commit_key);
    absl::StatusOr<CommitRecord> commit = repo.ReadCommit(id);
    if (absl::IsNotFound(commit.status())) {
      // Listed by the caller, removed by GC since (format.md §13.4): not damage.
      out.commits.erase(commit_key);
      out.removed.push_back(id);
      continue;
    }
    if (!commit.ok()) {
      out.problems.push_back(ReachProblem{commit_key, commit.status()});
      continue;
    }
    absl::StatusOr<std::vector<std::string>> acked = repo.ListAcks(id);
    if (!acked.ok()) return acked.status();
    for (const std::string& name : *acked) out.acks.insert(AckKey(id, name));
    for (const ParticipantRecord& p : commit->participants) {
      for (const StateObjectRecord& so : p.state_objects) {
        // A checkpoint's own manifest is needed unless a consolidation replaces it (§14.4): then
        // the walk's first link is the consolidation's manifest.
        if (!consolidations->generation(id).has_value()) out.manifests.insert(so.manifest);
        absl::Status walked = WalkChain(
            repo, *commit, p.name, so.name, so.type,
            [&](ChainLink& link) -> absl::Status {
              // The chain's commit records are needed too: restore reads them (§9).
              out.commits.insert(CommitKey(link.checkpoint_id));
              if (link.consolidation != 0) {
                out.consolidations.insert(ConsolidationKey(link.checkpoint_id, link.consolidation));
              }
              for (const Sha256Digest& digest : link.manifest.packs) {
                out.packs.insert(PackKey(ToHex(digest)));
              }
              // Below the newest link, a manifest reached before means the rest of the chain
              // was walked before (by an earlier commit of the same chain): stop there.
              const bool seen = !out.manifests.insert(link.record->manifest).second;
              if (link.step > 0 && seen) return absl::CancelledError();
              return absl::OkStatus();
            },
            consolidations);
        if (!walked.ok() && !absl::IsCancelled(walked)) {
          walked = RemovedOrDamaged(repo, id, walked);
          if (absl::IsNotFound(walked)) {
            out.removed.push_back(id);
          } else {
            out.problems.push_back(ReachProblem{so.manifest, walked});
          }
        }
      }
    }
    out.records.push_back(*std::move(commit));
  }
  return out;
}

}  // namespace ickpt
