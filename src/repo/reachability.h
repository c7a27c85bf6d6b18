// Reachability (format.md §9, §11): from a set of commit records to every manifest, pack and
// acknowledgement they need. `ickpt verify` uses it to find what a restore needs and what is
// orphaned; the garbage collector keeps exactly what it reaches from the kept checkpoints.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/repository.h"
#include "src/repo/chain.h"

namespace ickpt {

// A damaged or missing object met on the way (DataLoss or NotFound), or an error reading it.
struct ReachProblem {
  std::string key;  // the object to blame: the commit record or the manifest whose chain broke
  absl::Status status;
};

struct Reachable {
  std::vector<CommitRecord> records;     // the commit records read intact, in the order of `ids`
  std::set<std::string> commits;         // commit record keys read: `ids` and their chains' bases
  std::set<std::string> manifests;       // every manifest of every chain
  std::set<std::string> packs;           // every pack those manifests reference
  std::set<std::string> acks;            // the acknowledgements of the commits (acks/<id>/<name>)
  std::set<std::string> consolidations;  // consolidation records in force that the walks used (§14)
  std::vector<ReachProblem> problems;
  // Ids whose commit record GC removed while the walk ran (format.md §13.4): their objects may be
  // gone, which is not damage. May repeat an id.
  std::vector<uint64_t> removed;
};

// Walks every state object of every participant of each commit record `ids` down its chain
// (chain.h), newest first, sharing the walk of chains the commits have in common. A chain ends at
// a consolidation in force (format.md §14.4); `consolidations` are the consolidations to use
// (nullptr: listed once here). A commit record that is gone, or whose chain broke because it went
// (RemovedOrDamaged), is listed in `removed`, not as a problem. A damaged object does not stop the
// walk: it is recorded in `problems` under the object whose chain it broke, and what was reached
// before it stays reached. Errors: only a failure to list acknowledgements or commit records that
// is not damage (I/O).
absl::StatusOr<Reachable> ComputeReachable(const RepositoryReader& repo,
                                           const std::vector<uint64_t>& ids,
                                           Consolidations* consolidations = nullptr);

}  // namespace ickpt
