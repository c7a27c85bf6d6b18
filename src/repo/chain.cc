// The chain walk, format.md §9.
#include "src/repo/chain.h"

#include <algorithm>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/cord.h"
#include "src/repo/format.h"
#include "src/repo/keys.h"
#include "src/repo/repository_internal.h"
#include "src/util/hash.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// A name taken from an object, cut short for an error message: it may be megabytes long.
std::string Quoted(std::string_view name) {
  constexpr size_t kMaxShown = 80;
  if (name.size() <= kMaxShown) return StrCat("\"", name, "\"");
  return StrCat("\"", name.substr(0, kMaxShown), "\"... (", name.size(), " bytes)");
}

}  // namespace

// Marks the DataLoss of MissingAsDataLoss.
constexpr char kMissingObjectPayload[] = "ickpt/missing-object";

absl::Status WithMessage(const absl::Status& status, std::string_view message) {
  absl::Status out(status.code(), std::string(message));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

absl::Status RemovedOrDamaged(const RepositoryReader& repo, uint64_t id, absl::Status status) {
  if (!IsMissingObject(status)) return status;
  // Commit records are removed before the objects they reference, newest first (§13.3): if ours
  // is gone, what we missed was removed with it.
  absl::StatusOr<CommitRecord> again = repo.ReadCommit(id);
  if (!absl::IsNotFound(again.status())) return status;
  return absl::NotFoundError(StrCat("checkpoint ", id,
                                    " was removed by garbage collection while it was read (",
                                    status.message(), ")"));
}

bool IsMissingObject(const absl::Status& status) {
  return absl::IsDataLoss(status) && status.GetPayload(kMissingObjectPayload).has_value();
}

absl::StatusOr<Consolidations> Consolidations::List(const RepositoryReader& repo) {
  absl::StatusOr<std::vector<ObjectInfo>> objects =
      RepositoryInternal::store(repo)->List(kConsolidationsPrefix);
  if (!objects.ok()) {
    return WithMessage(objects.status(),
                       StrCat("listing the consolidation records (", kConsolidationsPrefix,
                              "): ", objects.status().message()));
  }
  return FromListing(*objects);
}

Consolidations Consolidations::FromListing(const std::vector<ObjectInfo>& objects) {
  Consolidations out;
  for (const ObjectInfo& info : objects) {
    std::optional<std::pair<uint64_t, uint64_t>> parsed = ParseConsolidationKey(info.key);
    if (!parsed.has_value()) continue;  // not a consolidation record: ignored (§2)
    uint64_t& in_force = out.in_force_[parsed->first];
    if (parsed->second > in_force) {
      in_force = parsed->second;
      out.modified_[parsed->first] = info.modified;
    }
  }
  return out;
}

void Consolidations::KeepChainsOfThoseModifiedAfter(absl::Time cutoff) {
  keep_chain_after_ = cutoff;
}

bool Consolidations::keeps_chain(uint64_t id) const {
  if (!keep_chain_after_.has_value()) return false;
  auto it = modified_.find(id);
  return it != modified_.end() && it->second > *keep_chain_after_;
}

std::optional<uint64_t> Consolidations::generation(uint64_t id) const {
  auto it = in_force_.find(id);
  if (it == in_force_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<const ConsolidationRecord*> Consolidations::Record(const RepositoryReader& repo,
                                                                  uint64_t id) {
  auto it = in_force_.find(id);
  if (it == in_force_.end()) return nullptr;
  if (auto r = records_.find(id); r != records_.end()) return r->second.get();
  const std::string key = ConsolidationKey(id, it->second);
  absl::StatusOr<std::string> bytes = RepositoryInternal::store(repo)->Get(key);
  if (!bytes.ok()) {
    return MissingAsDataLoss(bytes.status(),
                             StrCat("consolidation record ", key, " of checkpoint ", id));
  }
  absl::StatusOr<ConsolidationRecord> consolidation =
      DecodeConsolidationRecord(*bytes, key, id, it->second);
  if (!consolidation.ok()) return consolidation.status();
  return (records_[id] = std::make_unique<ConsolidationRecord>(*std::move(consolidation))).get();
}

namespace {

// §14.1: a consolidation names exactly the participants and state objects (names and types) of
// its checkpoint. A description of the first difference, or empty.
std::string StateObjectsDiffer(const CommitRecord& commit, const CommitRecord& merged) {
  auto names = [](const CommitRecord& r) {
    std::set<std::tuple<std::string, std::string, StateObjectType>> out;
    for (const ParticipantRecord& p : r.participants) {
      for (const StateObjectRecord& o : p.state_objects) out.emplace(p.name, o.name, o.type);
    }
    return out;
  };
  if (names(commit) == names(merged)) return "";
  return "it does not name exactly the checkpoint's participants and state objects";
}

}  // namespace

absl::Status MissingAsDataLoss(const absl::Status& status, std::string_view what) {
  if (absl::IsNotFound(status)) {
    absl::Status missing = absl::DataLossError(StrCat(what, " is missing: ", status.message()));
    missing.SetPayload(kMissingObjectPayload, absl::Cord("1"));
    return missing;
  }
  // A failed read (I/O, permissions, a store that is down) names the object it was reading,
  // whatever the store's message says; damage found by a decoder names it already.
  if (!status.ok() && !absl::IsDataLoss(status)) {
    return WithMessage(status, StrCat("reading ", what, ": ", status.message()));
  }
  return status;
}

absl::StatusOr<const ParticipantRecord*> FindParticipant(const CommitRecord& commit,
                                                         std::string_view name) {
  for (const ParticipantRecord& p : commit.participants) {
    if (p.name == name) return &p;
  }
  return absl::NotFoundError(StrCat("checkpoint ", commit.id, " has no participant '", name, "'"));
}

const StateObjectRecord* FindStateObject(const ParticipantRecord& participant,
                                         std::string_view name) {
  for (const StateObjectRecord& o : participant.state_objects) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

absl::StatusOr<Manifest> ReadManifest(const RepositoryReader& repo, uint64_t checkpoint_id,
                                      const StateObjectRecord& record) {
  // format.md §2, §10: a key taken from an object is validated before it reaches the store, even if
  // the record did not come from DecodeCommitRecord (which checks the same): a key such as
  // "../../etc/passwd" or "/abs" never becomes a path.
  if (!ValidateObjectKey(record.manifest).ok() ||
      ParseHashKey(record.manifest, kManifestsPrefix) != record.manifest_sha256) {
    return absl::DataLossError(StrCat("checkpoint ", checkpoint_id, " names manifest ",
                                      Quoted(record.manifest), " for state object '", record.name,
                                      "': not the manifest key of sha256 ",
                                      Quoted(record.manifest_sha256), " (format.md §2)"));
  }
  absl::StatusOr<std::string> bytes = RepositoryInternal::store(repo)->Get(record.manifest);
  if (!bytes.ok()) {
    return MissingAsDataLoss(bytes.status(),
                             StrCat("manifest ", record.manifest, " of checkpoint ", checkpoint_id,
                                    " (state object '", record.name, "')"));
  }
  const std::string actual = ToHex(Sha256(*bytes));
  if (actual != record.manifest_sha256) {
    return absl::DataLossError(StrCat(
        "manifest ", record.manifest, " of checkpoint ", checkpoint_id, " is damaged: sha256 ",
        actual, " differs from the commit record's ", record.manifest_sha256));
  }
  absl::StatusOr<Manifest> manifest = DecodeManifest(*bytes, record.manifest);
  if (!manifest.ok()) return manifest.status();
  if (manifest->checkpoint_id != checkpoint_id || manifest->object_name != record.name) {
    return absl::DataLossError(StrCat("manifest ", record.manifest, " describes '",
                                      manifest->object_name, "' of checkpoint ",
                                      manifest->checkpoint_id, ", but checkpoint ", checkpoint_id,
                                      " names it for '", record.name, "'"));
  }
  return manifest;
}

absl::Status WalkChain(const RepositoryReader& repo, const CommitRecord& commit,
                       std::string_view participant, std::string_view object, StateObjectType type,
                       absl::FunctionRef<absl::Status(ChainLink& link)> visit,
                       Consolidations* consolidations) {
  const std::string_view type_name = StateObjectTypeName(type);
  Consolidations own_consolidations;
  CommitRecord current = commit;
  uint64_t expected_depth = 0;
  for (size_t step = 0;; ++step) {
    if (step >= kMaxChainLength) {
      return absl::DataLossError(StrCat("the chain of ", type_name, " '", object,
                                        "' from checkpoint ", commit.id,
                                        " does not end (a loop?)"));
    }
    absl::StatusOr<const ParticipantRecord*> p = FindParticipant(current, participant);
    const StateObjectRecord* record = p.ok() ? FindStateObject(**p, object) : nullptr;
    if (record == nullptr) {
      if (step == 0) {
        if (!p.ok()) return p.status();
        return absl::NotFoundError(StrCat("checkpoint ", commit.id, " has no state object '",
                                          object, "' of participant '", participant, "'"));
      }
      return absl::DataLossError(StrCat("checkpoint ", commit.id, " depends on checkpoint ",
                                        current.id, ", which lacks ", type_name, " '", object,
                                        "' of participant '", participant, "'"));
    }
    if (step == 0 && record->type != type) {
      return absl::FailedPreconditionError(
          StrCat("state object '", object, "' of participant '", participant, "' in checkpoint ",
                 commit.id, " is a ", StateObjectTypeName(record->type), ", not a ", type_name));
    }
    ChainLink link;
    link.step = step;
    link.checkpoint_id = current.id;
    link.record = record;
    // §14.2: a consolidation in force replaces the rest of the chain.
    if (consolidations == nullptr) {
      absl::StatusOr<Consolidations> listed = Consolidations::List(repo);
      if (!listed.ok()) return listed.status();
      own_consolidations = *std::move(listed);
      consolidations = &own_consolidations;
    }
    absl::StatusOr<const ConsolidationRecord*> consolidation =
        consolidations->Record(repo, current.id);
    if (!consolidation.ok()) return consolidation.status();
    if (*consolidation != nullptr) {
      const std::string record_key = ConsolidationKey(current.id, (*consolidation)->generation);
      auto damaged = [&](std::string_view why) {
        return absl::DataLossError(StrCat("consolidation record ", record_key, " of checkpoint ",
                                          current.id, ", on which checkpoint ", commit.id,
                                          " depends: ", why));
      };
      if (std::string differ = StateObjectsDiffer(current, (*consolidation)->record);
          !differ.empty()) {
        return damaged(differ);
      }
      absl::StatusOr<const ParticipantRecord*> mp =
          FindParticipant((*consolidation)->record, participant);
      if (!mp.ok()) return damaged(std::string(mp.status().message()));
      const StateObjectRecord* merged = FindStateObject(**mp, object);
      if (merged == nullptr) return damaged(StrCat("it lacks '", object, "'"));
      absl::StatusOr<Manifest> manifest = ReadManifest(repo, current.id, *merged);
      if (!manifest.ok()) return manifest.status();
      if (manifest->kind != CheckpointKind::kFull || manifest->depth != 0 ||
          manifest->object_type != type || manifest->participant != participant) {
        return damaged(StrCat("manifest ", merged->manifest, " is not a full manifest of ",
                              type_name, " '", object, "' of participant '", participant, "'"));
      }
      link.record = merged;
      link.manifest = *std::move(manifest);
      link.consolidation = (*consolidation)->generation;
      if (absl::Status s = visit(link); !s.ok()) return s;
      if (!consolidations->keeps_chain(current.id)) return absl::OkStatus();
      // GC only (§14.4): the chain the consolidation replaces is still needed; walk it too.
      link = ChainLink{step, current.id, record, Manifest(), 0};
    }
    absl::StatusOr<Manifest> manifest = ReadManifest(repo, current.id, *record);
    if (!manifest.ok()) return manifest.status();
    link.manifest = *std::move(manifest);
    const Manifest& m = link.manifest;
    auto unfit = [&](std::string_view why) {
      return absl::DataLossError(StrCat("manifest ", record->manifest, " of checkpoint ",
                                        current.id, " does not fit the chain of ", type_name, " '",
                                        object, "' of participant '", participant,
                                        "' from checkpoint ", commit.id, ": ", why));
    };
    // A commit record that calls a keyed manifest a region (or the reverse) is damaged, and
    // nothing may read it as the other (a keyed manifest has block size 0).
    if (m.object_type != type) {
      return unfit(StrCat("it describes a ", StateObjectTypeName(m.object_type), ", not the ",
                          type_name, " '", object, "' its commit record names"));
    }
    if (m.participant != participant) {
      return unfit(StrCat("it belongs to participant '", m.participant, "'"));
    }
    if (step == 0) {
      expected_depth = m.depth;
    } else if (m.depth != expected_depth) {
      return unfit(StrCat("depth ", m.depth, ", the chain expects ", expected_depth));
    }
    const bool full = m.kind == CheckpointKind::kFull;
    const uint64_t base = m.base_id.value_or(0);
    if (!full && (base >= current.id || expected_depth == 0)) {
      return unfit(StrCat("it names base ", base, ", which cannot precede it"));
    }
    if (absl::Status s = visit(link); !s.ok()) return s;
    if (full) return absl::OkStatus();
    --expected_depth;
    absl::StatusOr<CommitRecord> next = repo.ReadCommit(base);
    if (!next.ok()) {
      return MissingAsDataLoss(next.status(), StrCat("checkpoint ", base, ", on which checkpoint ",
                                                     commit.id, " depends,"));
    }
    current = *std::move(next);
  }
}

}  // namespace ickpt
