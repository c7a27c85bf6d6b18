// Codecs of the JSON-in-envelope objects (format.md §3.1): the repository config (§3), commit
// records (§6), acknowledgements (§11), retention policies, pins and the maintenance lock (§13),
// consolidation records (§14), epoch records (§15).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"

namespace ickpt {

// Encodes; the caller guarantees ValidateCommitRecord(record) is OK.
std::string EncodeCommitRecord(const CommitRecord& record);
// The rules DecodeCommitRecord enforces, on a record about to be written: InvalidArgument naming
// the checkpoint id and the first violation.
absl::Status ValidateCommitRecord(const CommitRecord& record);
// DataLoss naming `key` if damaged; FailedPrecondition if the major version is newer.
absl::StatusOr<CommitRecord> DecodeCommitRecord(std::string_view bytes, std::string_view key);

// A participant's acknowledgement of a group checkpoint (format.md §11): a commit record with one
// participant, in an envelope of its own magic. The caller guarantees it validates.
std::string EncodeAck(const CommitRecord& ack);
// DataLoss naming `key` if damaged or if it does not hold exactly one participant.
absl::StatusOr<CommitRecord> DecodeAck(std::string_view bytes, std::string_view key);

// Writes config.major/minor as given (a writer leaves them at 1.0; tests set others).
std::string EncodeConfig(const RepositoryConfig& config);
// DataLoss naming `key` if damaged; FailedPrecondition if the major version is newer or the config
// names an algorithm this reader does not know (§3).
absl::StatusOr<RepositoryConfig> DecodeConfig(std::string_view bytes, std::string_view key);

// A retention policy (§13.1). The caller guarantees ValidateRetentionPolicy(policy) is OK and
// generation >= 1.
std::string EncodePolicy(const RetentionPolicy& policy);
// The rules of §13.1 on a policy about to be stored: InvalidArgument naming the violation.
absl::Status ValidateRetentionPolicy(const RetentionPolicy& policy);
// DataLoss naming `key` if damaged or if its generation is not `generation`.
absl::StatusOr<RetentionPolicy> DecodePolicy(std::string_view bytes, std::string_view key,
                                             uint64_t generation);

// A pin (§13.2); DecodePin checks that its name is `name`.
std::string EncodePin(const Pin& pin);
absl::StatusOr<Pin> DecodePin(std::string_view bytes, std::string_view key, std::string_view name);

// The maintenance lock (§13.5).
struct MaintenanceLock {
  std::string holder;  // 32 hex characters, random per holder
  std::string host;
  int64_t pid = 0;
  std::string operation = "gc";
  absl::Duration ttl = absl::Minutes(5);  // whole seconds, >= 1 s
  absl::Time created;
  uint64_t renewals = 0;
};
std::string EncodeMaintenanceLock(const MaintenanceLock& lock);
absl::StatusOr<MaintenanceLock> DecodeMaintenanceLock(std::string_view bytes, std::string_view key);

// A consolidation record (format.md §14.1): checkpoint `record.id`'s complete manifest set.
struct ConsolidationRecord {
  uint64_t generation = 0;      // >= 1
  uint64_t repacked_bytes = 0;  // raw bytes copied into new packs
  CommitRecord record;          // the commit record's schema; kind full, every manifest full
};
// The caller guarantees ValidateConsolidationRecord(consolidation) is OK.
std::string EncodeConsolidationRecord(const ConsolidationRecord& consolidation);
// The rules of §14.1 on a record about to be published: InvalidArgument naming the violation.
absl::Status ValidateConsolidationRecord(const ConsolidationRecord& consolidation);
// DataLoss naming `key` if damaged, or if its id or generation are not `id` and `generation`;
// FailedPrecondition for a newer major version.
absl::StatusOr<ConsolidationRecord> DecodeConsolidationRecord(std::string_view bytes,
                                                              std::string_view key, uint64_t id,
                                                              uint64_t generation);

// An epoch record (format.md §15.1). The caller guarantees ValidateEpochRecord(record) is OK.
std::string EncodeEpochRecord(const EpochRecord& record);
// The rules of §15.1 on a record about to be published: InvalidArgument naming the violation.
absl::Status ValidateEpochRecord(const EpochRecord& record);
// DataLoss naming `key` if damaged or if its epoch is not `epoch`; FailedPrecondition for a newer
// major version.
absl::StatusOr<EpochRecord> DecodeEpochRecord(std::string_view bytes, std::string_view key,
                                              uint64_t epoch);

// RFC 3339 UTC with nanoseconds, e.g. "2026-11-26T09:30:00.123456789Z".
// Call it as ickpt::FormatTime: argument-dependent lookup also finds absl::FormatTime(absl::Time).
std::string FormatTime(absl::Time t);

}  // namespace ickpt
