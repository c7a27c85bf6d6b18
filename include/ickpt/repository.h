// A repository: where checkpoints live, on an object store (docs/format.md).
//
// Thread safety: a Repository is safe for concurrent use. Several processes may write to one
// repository: ids are reserved and commit records published without overwrite.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ickpt/store.h"

namespace ickpt {

// The repository config object (format.md §3).
struct RepositoryConfig {
  uint16_t major = 1;
  uint16_t minor = 1;
  std::string repository_id;   // 32 hex characters
  absl::Time created;
  uint32_t block_size = 4096;  // default block size of new regions
  std::string checksum = "xxh3-64";
  std::string compression = "zstd";
  int compression_level = 3;
  std::string object_name_hash = "sha256";
  std::string key_group_hash = "xxh3-64-seed0";
  uint64_t pack_target_bytes = 4 << 20;
};

enum class CheckpointKind { kFull, kIncremental };
std::string_view CheckpointKindName(CheckpointKind kind);  // "full" / "incremental"

enum class StateObjectType { kRegion = 0, kKeyed = 1 };
std::string_view StateObjectTypeName(StateObjectType type);  // "region" / "keyed"

// One state object of one participant in a commit record (format.md §6).
struct StateObjectRecord {
  std::string name;
  StateObjectType type = StateObjectType::kRegion;
  std::string manifest;         // object key
  std::string manifest_sha256;  // hex
  uint64_t manifest_bytes = 0;
  CheckpointKind kind = CheckpointKind::kFull;
  uint64_t depth = 0;
  std::string tracker;
  uint64_t logical_bytes = 0;
  uint64_t changed_blocks = 0;
  uint64_t raw_bytes = 0;
  uint64_t stored_bytes = 0;
  int64_t pause_ns = 0;
  int64_t persist_ns = 0;
  // Keyed state only (format.md §6): key groups, live entries at capture, records in the manifest
  // and how many of them are tombstones.
  uint32_t key_groups = 0;
  uint64_t entries = 0;
  uint64_t changed_entries = 0;
  uint64_t tombstones = 0;
};

struct ParticipantRecord {
  std::string name;
  std::vector<StateObjectRecord> state_objects;
};

// The commit record of a checkpoint (format.md §6): a checkpoint exists iff its commit record does.
struct CommitRecord {
  uint64_t id = 0;
  std::optional<uint64_t> parent;
  CheckpointKind kind = CheckpointKind::kFull;
  uint64_t depth = 0;
  absl::Time created;
  uint64_t epoch = 0;
  uint64_t logical_bytes = 0;
  uint64_t stored_bytes = 0;
  std::vector<ParticipantRecord> participants;
  std::map<std::string, std::string> metadata;
};

// The group commit of a checkpoint of several participants (format.md §11).
struct GroupCommitOptions {
  // Every participant of the group: the commit needs each one's acknowledgement.
  std::vector<std::string> participants;
  // Added to the participants' metadata (a key they also give must have the same value).
  std::map<std::string, std::string> metadata;
  uint64_t epoch = 0;
};

struct RepositoryOptions {
  // Used only when the repository is created. Default block size 4096, zstd level 3, 4 MiB packs.
  RepositoryConfig config;
};

class Repository {
 public:
  // Creates a repository in `store`: AlreadyExists if it already holds a config.
  static absl::StatusOr<std::unique_ptr<Repository>> Create(std::unique_ptr<ObjectStore> store,
                                                            const RepositoryOptions& options = {});
  // Opens an existing repository: NotFound ("not an ickpt repository") if `store` has no config,
  // DataLoss if the config is damaged, FailedPrecondition if its major version is newer.
  static absl::StatusOr<std::unique_ptr<Repository>> Open(std::unique_ptr<ObjectStore> store);
  // Opens, or creates when the store holds no config yet.
  static absl::StatusOr<std::unique_ptr<Repository>> OpenOrCreate(
      std::unique_ptr<ObjectStore> store, const RepositoryOptions& options = {});
  // Convenience: a repository in a local directory. With `create`, creates directory and repository
  // if missing; without, NotFound if the directory is not a repository.
  static absl::StatusOr<std::unique_ptr<Repository>> OpenLocal(const std::string& path, bool create,
                                                               const RepositoryOptions& options = {});

  ~Repository();
  Repository(const Repository&) = delete;
  Repository& operator=(const Repository&) = delete;

  const RepositoryConfig& config() const;
  ObjectStore* store() const;

  // Ids of every commit record present, ascending (whether or not they verify).
  absl::StatusOr<std::vector<uint64_t>> ListCommitIds() const;
  // The highest committed id, or nullopt for an empty repository.
  absl::StatusOr<std::optional<uint64_t>> LatestCommitId() const;
  // Reads and verifies commit `id`: NotFound if absent, DataLoss naming the object if damaged.
  absl::StatusOr<CommitRecord> ReadCommit(uint64_t id) const;
  // Reserves the next checkpoint id durably (format.md §7); never returns an id twice, across
  // processes and crashes.
  absl::StatusOr<uint64_t> ReserveCheckpointId();
  // Publishes a commit record (the last step of a checkpoint): AlreadyExists if that id has one.
  absl::Status PublishCommit(const CommitRecord& record);

  // Group checkpoints (format.md §11): every participant publishes its acknowledgement once its
  // manifests are durable, and the group commit publishes one commit record covering them all.
  //
  // Publishes `ack`, a record with exactly one participant, whose name must be a valid key
  // component: InvalidArgument otherwise, AlreadyExists if that participant acknowledged already.
  absl::Status PublishAck(const CommitRecord& ack);
  // NotFound if `participant` did not acknowledge checkpoint `id`; DataLoss if damaged.
  absl::StatusOr<CommitRecord> ReadAck(uint64_t id, std::string_view participant) const;
  // The participants that acknowledged checkpoint `id`, sorted.
  absl::StatusOr<std::vector<std::string>> ListAcks(uint64_t id) const;
  // Publishes commit record `id` covering the acknowledgements of every participant in
  // `options.participants`, or nothing: FailedPrecondition naming the participants that did not
  // acknowledge, or what they disagree on (parent, epoch, metadata), or a parent that is not
  // committed; DataLoss if an acknowledgement is damaged; AlreadyExists if `id` is committed.
  absl::StatusOr<CommitRecord> CommitGroup(uint64_t id, const GroupCommitOptions& options);

 private:
  struct Impl;
  explicit Repository(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ickpt
