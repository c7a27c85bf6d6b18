#include "src/repo/object_check.h"

#include <optional>

#include "src/repo/commit_record.h"
#include "src/repo/keys.h"
#include "src/repo/manifest.h"
#include "src/repo/pack.h"
#include "src/repo/repository_internal.h"
#include "src/util/hash.h"
#include "src/util/str.h"

namespace ickpt {

absl::StatusOr<std::vector<ObjectInfo>> ListRepositoryObjects(const RepositoryReader& repo) {
  return RepositoryInternal::store(repo)->List("");
}

bool IsCheckedObjectKey(std::string_view key) {
  return key.starts_with(kPacksPrefix) || key.starts_with(kManifestsPrefix) ||
         key.starts_with(kCommitsPrefix) || key.starts_with(kIdsPrefix) ||
         key.starts_with(kAcksPrefix) || key == kConfigKey || key.starts_with(kPolicyPrefix) ||
         key.starts_with(kPinsPrefix) || key.starts_with(kCondemnedPrefix) ||
         key.starts_with(kMaintenanceLockPrefix) || key.starts_with(kConsolidationsPrefix) ||
         key.starts_with(kEpochsPrefix);
}

absl::Status CheckPackIndex(const RepositoryReader& repo, const std::string& key) {
  return ReadPackIndex(RepositoryInternal::store(repo), key).status();
}

absl::Status CheckStoredObject(const RepositoryReader& repo, const std::string& key) {
  ObjectStore* store = RepositoryInternal::store(repo);
  if (key.starts_with(kPacksPrefix)) {
    std::optional<std::string> hash = ParseHashKey(key, kPacksPrefix);
    if (!hash.has_value()) return absl::DataLossError("malformed pack name");
    absl::StatusOr<std::string> bytes = store->Get(key);
    if (!bytes.ok()) return bytes.status();
    return VerifyPack(*bytes, *hash, key).status();
  }
  if (key.starts_with(kManifestsPrefix)) {
    std::optional<std::string> hash = ParseHashKey(key, kManifestsPrefix);
    if (!hash.has_value()) return absl::DataLossError("malformed manifest name");
    absl::StatusOr<std::string> bytes = store->Get(key);
    if (!bytes.ok()) return bytes.status();
    const std::string actual = ToHex(Sha256(*bytes));
    if (actual != *hash) {
      return absl::DataLossError(
          StrCat("manifest ", key, " is damaged: sha256 ", actual, " differs from its name"));
    }
    return DecodeManifest(*bytes, key).status();
  }
  if (key.starts_with(kCommitsPrefix)) {
    absl::StatusOr<std::string> bytes = store->Get(key);
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<CommitRecord> commit = DecodeCommitRecord(*bytes, key);
    if (!commit.ok()) return commit.status();
    std::optional<uint64_t> id = ParseIdKey(key, kCommitsPrefix);
    if (!id.has_value() || *id != commit->id) {
      return absl::DataLossError(
          StrCat("commit record ", key, " holds checkpoint id ", commit->id));
    }
    return absl::OkStatus();
  }
  if (key.starts_with(kIdsPrefix)) {
    absl::StatusOr<uint64_t> size = store->Size(key);
    if (!size.ok()) return size.status();
    if (*size != 0) {
      return absl::DataLossError(
          StrCat("id reservation ", key, " is not empty (", *size, " bytes)"));
    }
    return absl::OkStatus();
  }
  if (key.starts_with(kAcksPrefix)) {
    absl::StatusOr<std::string> bytes = store->Get(key);
    if (!bytes.ok()) return bytes.status();
    return DecodeAck(*bytes, key).status();
  }
  if (key == kConfigKey) {
    absl::StatusOr<std::string> bytes = store->Get(key);
    if (!bytes.ok()) return bytes.status();
    return DecodeConfig(*bytes, key).status();
  }
  // Retention and GC (§13).
  if (key.starts_with(kPolicyPrefix)) {
    const std::optional<uint64_t> generation = ParseIdKey(key, kPolicyPrefix);
    if (!generation.has_value()) return absl::OkStatus();  // not a name this version writes
    absl::StatusOr<std::string> bytes = store->Get(key);
    if (!bytes.ok()) return bytes.status();
    return DecodePolicy(*bytes, key, *generation).status();
  }
  if (key.starts_with(kPinsPrefix)) {
    absl::StatusOr<std::string> bytes = store->Get(key);
    if (!bytes.ok()) return bytes.status();
    return DecodePin(*bytes, key, std::string_view(key).substr(kPinsPrefix.size())).status();
  }
  if (key.starts_with(kCondemnedPrefix)) {
    absl::StatusOr<uint64_t> size = store->Size(key);
    if (!size.ok()) return size.status();
    if (*size != 0) {
      return absl::DataLossError(StrCat("condemnation ", key, " is not empty (", *size, " bytes)"));
    }
    return absl::OkStatus();
  }
  if (key.starts_with(kMaintenanceLockPrefix)) {
    absl::StatusOr<std::string> bytes = store->Get(key);
    // A lock comes and goes while verify runs: one released since the listing is no damage.
    if (absl::IsNotFound(bytes.status())) return absl::OkStatus();
    if (!bytes.ok()) return bytes.status();
    return DecodeMaintenanceLock(*bytes, key).status();
  }
  if (key.starts_with(kConsolidationsPrefix)) {
    const std::optional<std::pair<uint64_t, uint64_t>> parsed = ParseConsolidationKey(key);
    if (!parsed.has_value()) {
      return absl::DataLossError(
          StrCat("consolidation record ", key, " is not named merges/<id:020>/<generation:020>"));
    }
    absl::StatusOr<std::string> bytes = store->Get(key);
    // GC deletes superseded consolidations: one deleted since the listing is no damage.
    if (absl::IsNotFound(bytes.status())) return absl::OkStatus();
    if (!bytes.ok()) return bytes.status();
    return DecodeConsolidationRecord(*bytes, key, parsed->first, parsed->second).status();
  }
  if (key.starts_with(kEpochsPrefix)) {
    const std::optional<uint64_t> epoch = ParseIdKey(key, kEpochsPrefix);
    if (!epoch.has_value()) return absl::OkStatus();  // not a name this version writes (§15.1)
    absl::StatusOr<std::string> bytes = store->Get(key);
    if (!bytes.ok()) return bytes.status();
    return DecodeEpochRecord(*bytes, key, *epoch).status();
  }
  // Reserved prefixes (index/, tmp/), probes and unknown keys: ignored by a 1.x reader.
  return absl::OkStatus();
}

}  // namespace ickpt
