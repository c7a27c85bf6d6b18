// The chain walk, format.md §9.
#include "src/repo/chain.h"

#include <string>
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
  if (!absl::IsDataLoss(status) || !status.GetPayload(kMissingObjectPayload).has_value()) {
    return status;
  }
  // Commit records are removed before the objects they reference, newest first (§13.3): if ours
  // is gone, what we missed was removed with it.
  absl::StatusOr<CommitRecord> again = repo.ReadCommit(id);
  if (!absl::IsNotFound(again.status())) return status;
  return absl::NotFoundError(StrCat("checkpoint ", id,
                                    " was removed by garbage collection while it was read (",
                                    status.message(), ")"));
}

absl::Status MissingAsDataLoss(const absl::Status& status, std::string_view what) {
  if (absl::IsNotFound(status)) {
    absl::Status missing = absl::DataLossError(StrCat(what, " is missing: ", status.message()));
    missing.SetPayload(kMissingObjectPayload, absl::Cord("1"));
    return missing;
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
                       absl::FunctionRef<absl::Status(ChainLink& link)> visit) {
  const std::string_view type_name = StateObjectTypeName(type);
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
