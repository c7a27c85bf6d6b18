// A repository: where checkpoints live, on an object store (docs/format.md). Its roles (reading,
// writing, the group protocol) are separate interfaces; Repository implements all three.
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
  std::string repository_id;  // 32 hex characters
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
  // The participant's incarnation (format 1.2, §11): which join of the participant wrote this
  // part. 0 in records of earlier versions and of checkpointers that do not set one.
  uint64_t incarnation = 0;
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

// A coordinator's epoch record (format.md §15.1): its leader began epoch `epoch` when `base` was
// the latest committed checkpoint. A commit record of an older epoch whose id is above `base` is
// fenced: not part of the history (§15.3).
struct EpochRecord {
  uint64_t epoch = 0;            // >= 1
  std::optional<uint64_t> base;  // nullopt: the repository held no committed checkpoint
  // The highest epoch among the records the leader listed when it read `base` (0: none). A record
  // of an epoch in (previous, epoch) was published after that read, by a leader already deposed:
  // it is superseded and fences nothing (§15.3).
  uint64_t previous = 0;
  absl::Time created;
  std::string leader;  // who began the epoch: 1 to 256 bytes of UTF-8
};

// The epoch that fences `record` by the rule of format.md §15.3 (the lowest, if several do), or
// nullopt if the record is part of the history. `epochs` are RepositoryReader::ListEpochs()'s:
// superseded records among them fence nothing. A repository without epoch records fences nothing.
std::optional<uint64_t> FencedBy(const std::vector<EpochRecord>& epochs,
                                 const CommitRecord& record);

// The group commit of a checkpoint of several participants (format.md §11).
struct GroupCommitOptions {
  // Every participant of the group: the commit needs each one's acknowledgement.
  std::vector<std::string> participants;
  // Added to the participants' metadata (a key they also give must have the same value).
  std::map<std::string, std::string> metadata;
  // The coordinator's epoch: every acknowledgement must carry it. An epoch > 0 must have been begun
  // (GroupProtocol::BeginEpoch) and not fenced by a newer one (format.md §15.4).
  uint64_t epoch = 0;
  // Each participant's expected incarnation: an acknowledgement of another incarnation (a
  // replaced process's) is refused with FailedPrecondition. Empty: incarnations are not checked;
  // otherwise it must name every participant (InvalidArgument if not).
  std::map<std::string, uint64_t> incarnations;
};

// A retention policy (format.md §13.1): which committed checkpoints GC keeps. A checkpoint is kept
// if either rule keeps it, if a pin names it, or if it is the latest committed one.
struct RetentionPolicy {
  uint64_t generation = 0;  // assigned when stored (SetRetentionPolicy in maintenance.h)
  absl::Time created;       // likewise
  // Keep this many committed checkpoints of highest id (>= 1), or no such rule.
  std::optional<uint64_t> keep_last;
  // Keep checkpoints created at most this long ago (>= 1 s, whole seconds), or no such rule.
  std::optional<absl::Duration> keep_within;
  // The longest a checkpoint may take to commit (format.md §13.4, A2): GC's grace period must be
  // longer. Whole seconds, >= 1 s.
  absl::Duration checkpoint_timeout = absl::Minutes(10);
};

// Generation 1 of a new repository: keep the last 3 checkpoints.
RetentionPolicy DefaultRetentionPolicy();

struct RepositoryOptions {
  // Used only when the repository is created. Default block size 4096, zstd level 3, 4 MiB packs.
  RepositoryConfig config;
  // Also only on creation: the first retention policy (format.md §13.1), or none (nullopt), which
  // keeps every committed checkpoint.
  std::optional<RetentionPolicy> retention = DefaultRetentionPolicy();
};

// A repository's location (format.md §12.2): a local path, file://PATH, or an S3 bucket
// s3://BUCKET[/PREFIX]?endpoint=URL[&region=R][&addressing=path|virtual] (ParseS3Url in store.h).
// Any other scheme, or a malformed s3:// URL, is refused with InvalidArgument naming it.
absl::Status ValidateRepositoryUrl(std::string_view url);

// The repository's roles, split as RocksDB splits its backup engine (BackupEngineReadOnly,
// BackupEngineAppendOnly): a component takes the narrowest role it needs. Reading:
class RepositoryReader {
 public:
  virtual ~RepositoryReader() = default;

  virtual const RepositoryConfig& config() const = 0;
  // A short description for messages, e.g. "local:/var/ckpt/job1".
  virtual std::string Describe() const = 0;
  // Ids of every commit record present, ascending (whether or not they verify).
  virtual absl::StatusOr<std::vector<uint64_t>> ListCommitIds() const = 0;
  // The latest committed checkpoint (format.md §6.1): the highest id with a commit record that is
  // not fenced (§15.3; a damaged record counts as not fenced), or nullopt if there is none. Reads
  // the epoch records and, only where one could fence it, a commit record or a few (§15.6).
  // DataLoss naming a damaged epoch record: which commits it fences is unknown.
  virtual absl::StatusOr<std::optional<uint64_t>> LatestCommitId() const = 0;
  // Reads and verifies commit `id`: NotFound if absent, DataLoss naming the object if damaged.
  virtual absl::StatusOr<CommitRecord> ReadCommit(uint64_t id) const = 0;
  // NotFound if `participant` did not acknowledge checkpoint `id`; DataLoss if damaged.
  virtual absl::StatusOr<CommitRecord> ReadAck(uint64_t id, std::string_view participant) const = 0;
  // The participants that acknowledged checkpoint `id`, sorted.
  virtual absl::StatusOr<std::vector<std::string>> ListAcks(uint64_t id) const = 0;
  // Every epoch record (format.md §15.1), ascending by epoch, superseded ones included (FencedBy
  // judges them). DataLoss naming `epochs/<epoch:020>` if one is damaged or went missing (they are
  // never deleted).
  virtual absl::StatusOr<std::vector<EpochRecord>> ListEpochs() const = 0;

 private:
  // Objects are read through the repository layer only (src/repo/repository_internal.h).
  friend class RepositoryInternal;
  virtual ObjectStore* store() const = 0;
};

// Writing a checkpoint of one process: ids and the commit record.
class RepositoryWriter {
 public:
  virtual ~RepositoryWriter() = default;
  // Reserves the next checkpoint id durably (format.md §7); never returns an id twice, across
  // processes and crashes. An id whose reservation failed ambiguously (format.md §12) is lost and
  // the next one is reserved.
  virtual absl::StatusOr<uint64_t> ReserveCheckpointId() = 0;
  // Publishes a commit record (the last step of a checkpoint): AlreadyExists if that id has one.
  // Its parent, if any, must be committed, not condemned by retention and not fenced (format.md
  // §8.6): FailedPrecondition otherwise, marked so that IsParentRemoved() recognizes it. The
  // record's epoch must allow it (§8.7, §15.4): an epoch > 0 begun and not fenced by a newer one,
  // epoch 0 only where no epoch record would fence it; FailedPrecondition otherwise.
  virtual absl::Status PublishCommit(const CommitRecord& record) = 0;
};

// The group protocol (format.md §11): every participant publishes its acknowledgement once its
// manifests are durable, and the group commit publishes one commit record covering them all. A
// coordinator begins its epoch (§15.2) before it triggers or commits anything.
class GroupProtocol {
 public:
  virtual ~GroupProtocol() = default;
  // Begins coordinator epoch `epoch` (>= 1) for `leader` (1 to 256 bytes of UTF-8; InvalidArgument
  // otherwise): reads the latest committed checkpoint and publishes epochs/<epoch:020> naming it as
  // the base (format.md §15.2); returns the record. If the record exists and names `leader`,
  // returns it as stored (a retry after an ambiguous failure, or a restart of the same leader); if
  // it names another leader, AlreadyExists. FailedPrecondition if a record of a higher epoch
  // exists, before or (then this epoch's record is published but superseded) after the publish:
  // this leader is deposed. DataLoss naming a damaged epoch record.
  virtual absl::StatusOr<EpochRecord> BeginEpoch(uint64_t epoch, std::string_view leader) = 0;
  // Publishes `ack`, a record with exactly one participant, whose name must be a valid key
  // component: InvalidArgument otherwise, AlreadyExists if that participant acknowledged already.
  virtual absl::Status PublishAck(const CommitRecord& ack) = 0;
  // Publishes commit record `id` covering the acknowledgements of every participant in
  // `options.participants`, or nothing: FailedPrecondition naming the participants that did not
  // acknowledge, an acknowledgement of another incarnation than `options.incarnations` expects,
  // or what they disagree on (parent, epoch, metadata), or a parent that is not committed or is
  // fenced, or an epoch that was not begun or is fenced by a newer one (the message names it,
  // format.md §15.4); DataLoss if an acknowledgement or an epoch record is damaged; AlreadyExists
  // if `id` is committed.
  virtual absl::StatusOr<CommitRecord> CommitGroup(uint64_t id,
                                                   const GroupCommitOptions& options) = 0;
};

// Whether `status` says a checkpoint could not commit because its parent is absent, condemned by
// retention or fenced (format.md §8.6, §15.3): the writer's next checkpoint must then be full.
bool IsParentRemoved(const absl::Status& status);

// A repository opened for reading and writing: every role.
//
// Thread safety: a Repository is safe for concurrent use. Several processes may write to one
// repository: ids are reserved and commit records published without overwrite.
class Repository final : public RepositoryReader, public RepositoryWriter, public GroupProtocol {
 public:
  // Creates a repository in `store`: AlreadyExists if it already holds a config;
  // FailedPrecondition if the store cannot publish without overwrite (format.md §12).
  static absl::StatusOr<std::unique_ptr<Repository>> Create(std::unique_ptr<ObjectStore> store,
                                                            const RepositoryOptions& options = {});
  // Opens an existing repository: NotFound ("not an ickpt repository") if `store` has no config,
  // DataLoss if the config is damaged, FailedPrecondition if its major version is newer or the
  // store cannot publish without overwrite.
  static absl::StatusOr<std::unique_ptr<Repository>> Open(std::unique_ptr<ObjectStore> store);
  // Opens, or creates when the store holds no config yet.
  static absl::StatusOr<std::unique_ptr<Repository>> OpenOrCreate(
      std::unique_ptr<ObjectStore> store, const RepositoryOptions& options = {});
  // Convenience: a repository in a local directory. With `create`, creates directory and repository
  // if missing; without, NotFound if the directory is not a repository.
  static absl::StatusOr<std::unique_ptr<Repository>> OpenLocal(
      const std::string& path, bool create, const RepositoryOptions& options = {});
  // A repository at `url` (ValidateRepositoryUrl): InvalidArgument naming an unsupported scheme,
  // before anything is created; otherwise as OpenLocal. An S3 bucket is never created (NotFound
  // naming it if missing; with `create`, only the repository in it is), and its conditional
  // writes are probed (S3StoreOptions::probe_publish).
  static absl::StatusOr<std::unique_ptr<Repository>> OpenUrl(std::string_view url, bool create,
                                                             const RepositoryOptions& options = {});
  // Reading only: never creates, reserves or publishes anything, and works on a store that cannot
  // publish without overwrite.
  static absl::StatusOr<std::unique_ptr<RepositoryReader>> OpenReadOnly(std::string_view url);

  ~Repository() override;
  Repository(const Repository&) = delete;
  Repository& operator=(const Repository&) = delete;

  const RepositoryConfig& config() const override;
  std::string Describe() const override;
  absl::StatusOr<std::vector<uint64_t>> ListCommitIds() const override;
  absl::StatusOr<std::optional<uint64_t>> LatestCommitId() const override;
  absl::StatusOr<CommitRecord> ReadCommit(uint64_t id) const override;
  absl::StatusOr<CommitRecord> ReadAck(uint64_t id, std::string_view participant) const override;
  absl::StatusOr<std::vector<std::string>> ListAcks(uint64_t id) const override;
  absl::StatusOr<std::vector<EpochRecord>> ListEpochs() const override;

  absl::StatusOr<uint64_t> ReserveCheckpointId() override;
  absl::Status PublishCommit(const CommitRecord& record) override;

  absl::StatusOr<EpochRecord> BeginEpoch(uint64_t epoch, std::string_view leader) override;
  absl::Status PublishAck(const CommitRecord& ack) override;
  absl::StatusOr<CommitRecord> CommitGroup(uint64_t id, const GroupCommitOptions& options) override;

 private:
  struct Impl;
  explicit Repository(std::unique_ptr<Impl> impl);
  // Open without the writability check (OpenReadOnly).
  static absl::StatusOr<std::unique_ptr<Repository>> OpenStore(std::unique_ptr<ObjectStore> store);
  ObjectStore* store() const override;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ickpt
