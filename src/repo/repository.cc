// Repository: config (format.md §3), checkpoint ids (§7), commit records (§6) and coordinator
// epochs (§15) on an object store.
#include "ickpt/repository.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/time/clock.h"
#include "ickpt/maintenance.h"
#include "src/repo/commit_record.h"
#include "src/repo/fencing.h"
#include "src/repo/format.h"
#include "src/repo/keys.h"
#include "src/util/hash.h"
#include "src/util/log.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// ReserveCheckpointId gives up after this many ids found taken in one call: other writers are
// reserving faster than we can, and the caller may retry.
constexpr int kMaxReserveAttempts = 1000;
// After this many consecutive taken ids, list the reservations again and jump past the highest
// rather than walking one id at a time behind a busy writer.
constexpr int kRelistAfterCollisions = 16;

absl::Status ValidateNewConfig(const RepositoryConfig& c) {
  if (c.block_size == 0 || c.block_size % 4096 != 0 || c.block_size > kMaxBlockSize) {
    return absl::InvalidArgumentError(
        StrCat("block_size ", c.block_size, " is not a multiple of 4096 in [4096, 16 MiB]"));
  }
  if (c.compression_level < 1 || c.compression_level > 19) {
    return absl::InvalidArgumentError(
        StrCat("compression_level ", c.compression_level, " is not in 1..19"));
  }
  if (c.pack_target_bytes == 0) return absl::InvalidArgumentError("pack_target_bytes is 0");
  return absl::OkStatus();
}

// The ids named by keys `<prefix><id:020>` with id >= `from` (every one for `from` <= 1), sorted.
// Keys that are not `<prefix><id:020>` are not ours to interpret and are skipped.
absl::StatusOr<std::vector<uint64_t>> ListIdsFrom(ObjectStore* store, std::string_view prefix,
                                                  uint64_t from) {
  std::vector<uint64_t> ids;
  // Listing starts after `<prefix><from - 1>`, which sorts right below `<prefix><from>`.
  std::string start_after = from > 1 ? IdKey(prefix, from - 1) : std::string();
  while (true) {
    absl::StatusOr<ObjectPage> page = store->ListPage(prefix, start_after, 0);
    if (!page.ok()) return page.status();
    for (const ObjectInfo& info : page->objects) {
      if (std::optional<uint64_t> id = ParseIdKey(info.key, prefix)) ids.push_back(*id);
    }
    if (!page->truncated || page->objects.empty()) break;
    start_after = page->objects.back().key;
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// The id the latest-commit index names (format.md §6.2), or nullopt when there is none or it
// cannot be read: it is only a hint where to start listing, so a failure costs a longer listing,
// never a wrong answer, and is not an error.
std::optional<uint64_t> ReadLatestCommitHint(ObjectStore* store) {
  absl::StatusOr<std::string> bytes = store->Get(kLatestCommitIndexKey);
  if (!bytes.ok()) {
    if (!absl::IsNotFound(bytes.status())) {
      ICKPT_LOG_DEBUG("{}: the latest-commit index is unreadable ({}); listing every commit",
                      store->Describe(), bytes.status().ToString());
    }
    return std::nullopt;
  }
  std::optional<uint64_t> id = ParseLatestCommitIndex(*bytes);
  if (!id.has_value()) {
    ICKPT_LOG_ONCE(StrCat("bad-latest-commit-index:", store->Describe()), LogLevel::kWarn,
                   "{}: ignoring {}: not a commit key; listing every commit", store->Describe(),
                   kLatestCommitIndexKey);
  }
  return id;
}

// §12: a repository is written only where publishing never replaces an object (commit records,
// id reservations and acknowledgements rely on it).
absl::Status CheckWritable(const ObjectStore& store) {
  if (store.publishes_without_overwrite()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      StrCat(store.Describe(),
             " cannot publish an object without overwriting an existing one, "
             "so a repository there could lose commit records: refusing to "
             "write to it (format.md §12)"));
}

// A repository URL (format.md §12.2): a local path (PATH or file://PATH) or an S3 bucket
// (s3://BUCKET[/PREFIX]?endpoint=...).
struct RepositoryLocation {
  std::string path;                  // a local repository, or
  std::optional<S3StoreOptions> s3;  // an S3 one
};

absl::StatusOr<RepositoryLocation> ParseRepositoryUrl(std::string_view url) {
  const size_t colon = url.find("://");
  if (colon == std::string_view::npos) {
    if (url.empty()) return absl::InvalidArgumentError("empty repository path");
    return RepositoryLocation{std::string(url), std::nullopt};
  }
  const std::string_view scheme = url.substr(0, colon);
  const bool scheme_like = !scheme.empty() && std::all_of(scheme.begin(), scheme.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
  // A path that happens to contain "://".
  if (!scheme_like) return RepositoryLocation{std::string(url), std::nullopt};
  if (scheme == "file") {
    std::string_view path = url.substr(colon + 3);
    if (path.starts_with("localhost/")) path.remove_prefix(std::string_view("localhost").size());
    if (path.empty())
      return absl::InvalidArgumentError(StrCat("repository URL '", url, "' names no path"));
    return RepositoryLocation{std::string(path), std::nullopt};
  }
  if (scheme == "s3") {
    absl::StatusOr<S3StoreOptions> s3 = ParseS3Url(url);
    if (!s3.ok()) return s3.status();
    return RepositoryLocation{std::string(), *std::move(s3)};
  }
  return absl::InvalidArgumentError(
      StrCat("repository URL '", url, "': unsupported scheme '", scheme,
             "' (supported: a path, file://PATH, s3://BUCKET/PREFIX?endpoint=URL)"));
}

// The store a repository URL names. A local directory is created if `create`; a bucket never is.
// `for_writing` probes an S3 store's conditional writes (format.md §12.2).
absl::StatusOr<std::unique_ptr<ObjectStore>> OpenStoreAt(std::string_view url, bool create,
                                                         bool for_writing) {
  absl::StatusOr<RepositoryLocation> location = ParseRepositoryUrl(url);
  if (!location.ok()) return location.status();
  if (location->s3.has_value()) {
    S3StoreOptions options = *std::move(location->s3);
    options.probe_publish = for_writing;
    return OpenS3Store(std::move(options));
  }
  LocalStoreOptions store_options;
  store_options.create_if_missing = create;
  return OpenLocalStore(location->path, store_options);
}

// Fills in and publishes a new config; the store's AlreadyExists if a config exists.
absl::StatusOr<RepositoryConfig> PublishNewConfig(ObjectStore* store,
                                                  const RepositoryOptions& options) {
  RepositoryConfig config = options.config;
  if (absl::Status s = ValidateNewConfig(config); !s.ok()) return s;
  // A writer writes the version it implements (§1.1), whatever the caller left in the struct.
  config.major = kFormatMajor;
  config.minor = kFormatMinor;
  config.repository_id = RandomHex128();
  // Stored with nanosecond precision: round now so that config() equals what a reader decodes.
  config.created = absl::FromUnixNanos(absl::ToUnixNanos(absl::Now()));
  // The config's bytes are unique to its writer (a random repository id): after an ambiguous
  // failure, reading back our own bytes is our success (§12).
  if (absl::Status s = PublishUnique(*store, kConfigKey, EncodeConfig(config)); !s.ok()) return s;
  // The first retention policy (format.md §13.1), once the repository is ours. A crash before it
  // leaves a repository without one, which keeps everything: the safe side.
  if (options.retention.has_value()) {
    RetentionPolicy policy = *options.retention;
    policy.generation = 1;
    policy.created = config.created;
    if (absl::Status s = ValidateRetentionPolicy(policy); !s.ok()) return s;
    absl::Status s = PublishUnique(*store, PolicyKey(1), EncodePolicy(policy));
    if (!s.ok() && !absl::IsAlreadyExists(s)) {
      return absl::Status(s.code(), StrCat("storing the first retention policy of ",
                                           store->Describe(), ": ", s.message()));
    }
  }
  return config;
}

// Marks a refusal of §8.6 so that IsParentRemoved recognizes it whatever its message says.
constexpr char kParentRemovedPayload[] = "ickpt/parent-removed";

absl::Status ParentRemoved(std::string message) {
  absl::Status s = absl::FailedPreconditionError(std::move(message));
  s.SetPayload(kParentRemovedPayload, absl::Cord("1"));
  return s;
}

// format.md §8.6: immediately before a commit record with parent `parent` is published, the parent
// must be committed, not condemned (GC's safety argument, §13.4, counts on this check) and not
// fenced (§15.3: a commit built on one would carry a deposed coordinator's changes into the
// history).
absl::Status CheckParentUsable(ObjectStore& store, uint64_t id, uint64_t parent,
                               const Fencing& fencing, CommitEpochReader read_epoch) {
  absl::StatusOr<uint64_t> size = store.Size(CommitKey(parent));
  if (absl::IsNotFound(size.status())) {
    return ParentRemoved(StrCat("checkpoint ", id, " cannot commit: its parent, checkpoint ",
                                parent, ", is not committed (never was, or retention removed it)"));
  }
  if (!size.ok()) return size.status();
  size = store.Size(CondemnedKey(parent));
  if (size.ok()) {
    return ParentRemoved(StrCat("checkpoint ", id, " cannot commit: its parent, checkpoint ",
                                parent, ", is condemned by retention (format.md §13.3)"));
  }
  if (!absl::IsNotFound(size.status())) return size.status();
  if (!fencing.MayFence(parent)) return absl::OkStatus();
  absl::StatusOr<std::optional<uint64_t>> epoch = read_epoch(parent);
  if (absl::IsNotFound(epoch.status())) {
    return ParentRemoved(StrCat("checkpoint ", id, " cannot commit: its parent, checkpoint ",
                                parent, ", is no longer committed (retention removed it)"));
  }
  if (!epoch.ok()) return epoch.status();
  if (!epoch->has_value()) return absl::OkStatus();  // damaged: counts as not fenced (§6.1)
  if (std::optional<uint64_t> by = fencing.FencedBy(parent, **epoch)) {
    return ParentRemoved(StrCat("checkpoint ", id, " cannot commit: its parent, checkpoint ",
                                parent, ", is fenced by epoch ", *by,
                                " and is not part of the history (format.md §15.3)"));
  }
  return absl::OkStatus();
}

// format.md §8.7, §15.4: whether the epoch `record` carries lets it be published now, judged by the
// epoch records listed immediately before.
absl::Status CheckEpochAllows(const Fencing& fencing, const CommitRecord& record) {
  const uint64_t id = record.id;
  const uint64_t epoch = record.epoch;
  if (epoch > 0) {
    if (fencing.Find(epoch) == nullptr) {
      return absl::FailedPreconditionError(
          StrCat("checkpoint ", id, " cannot commit: epoch ", epoch, " was never begun (no ",
                 EpochKey(epoch),
                 "); a coordinator begins its epoch before it commits (format.md §15.2)"));
    }
    const uint64_t highest = *fencing.highest_epoch();
    if (highest > epoch) {
      const EpochRecord& newer = *fencing.Find(highest);
      return absl::FailedPreconditionError(
          StrCat("checkpoint ", id, " cannot commit: epoch ", epoch, " is fenced by epoch ",
                 highest, ", begun by leader '", newer.leader, "': the coordinator of epoch ",
                 epoch, " is deposed (format.md §15.4)"));
    }
  }
  if (std::optional<uint64_t> by = fencing.FencedBy(id, epoch)) {
    const EpochRecord& fencer = *fencing.Find(*by);
    return absl::FailedPreconditionError(
        StrCat("checkpoint ", id, " of epoch ", epoch, " cannot commit: epoch ", *by,
               " fences it (begun by leader '", fencer.leader, "' from ",
               fencer.base.has_value() ? StrCat("checkpoint ", *fencer.base)
                                       : std::string("no checkpoint"),
               "), so it would not be part of the history (format.md §15.3, §15.4)"));
  }
  return absl::OkStatus();
}

absl::Time NowRounded() { return absl::FromUnixNanos(absl::ToUnixNanos(absl::Now())); }

// Commit epochs cached at most (format.md §15.6); beyond, the cache starts over.
constexpr size_t kMaxCachedCommitEpochs = 4096;

}  // namespace

struct Repository::Impl {
  std::unique_ptr<ObjectStore> store;
  RepositoryConfig config;
  Mutex mu;
  // The next id to try to reserve; 0 until the first ReserveCheckpointId lists the store.
  uint64_t next_id_hint ABSL_GUARDED_BY(mu) = 0;
  // Decoded epoch records by epoch, and the epochs of commit records by id (format.md §15.6).
  // Both objects never change once published, and ids are never reused, so nothing cached here
  // can go stale whatever other processes do; listings are never cached.
  Mutex cache_mu;
  std::map<uint64_t, EpochRecord> epoch_records ABSL_GUARDED_BY(cache_mu);
  std::map<uint64_t, uint64_t> commit_epochs ABSL_GUARDED_BY(cache_mu);

  // ReadCommitEpoch through the cache.
  absl::StatusOr<std::optional<uint64_t>> CommitEpoch(const RepositoryReader& repo, uint64_t id) {
    {
      MutexLock lock(&cache_mu);
      if (auto it = commit_epochs.find(id); it != commit_epochs.end()) {
        return std::optional<uint64_t>(it->second);
      }
    }
    absl::StatusOr<std::optional<uint64_t>> epoch = ReadCommitEpoch(repo, id);
    // Damage is not cached: it is reported by whoever reads the record.
    if (epoch.ok() && epoch->has_value()) {
      MutexLock lock(&cache_mu);
      if (commit_epochs.size() >= kMaxCachedCommitEpochs) commit_epochs.clear();
      commit_epochs[id] = **epoch;
    }
    return epoch;
  }
};

Repository::Repository(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Repository::~Repository() = default;

const RepositoryConfig& Repository::config() const { return impl_->config; }
std::string Repository::Describe() const { return impl_->store->Describe(); }
ObjectStore* Repository::store() const { return impl_->store.get(); }

bool IsParentRemoved(const absl::Status& status) {
  return absl::IsFailedPrecondition(status) && status.GetPayload(kParentRemovedPayload).has_value();
}

absl::Status ValidateRepositoryUrl(std::string_view url) {
  return ParseRepositoryUrl(url).status();
}

absl::StatusOr<std::unique_ptr<Repository>> Repository::Create(std::unique_ptr<ObjectStore> store,
                                                               const RepositoryOptions& options) {
  if (absl::Status s = CheckWritable(*store); !s.ok()) return s;
  absl::StatusOr<RepositoryConfig> config = PublishNewConfig(store.get(), options);
  if (!config.ok()) {
    if (absl::IsAlreadyExists(config.status())) {
      return absl::AlreadyExistsError(
          StrCat(store->Describe(), " already holds an ickpt repository (config exists)"));
    }
    return config.status();
  }
  auto impl = std::make_unique<Impl>();
  impl->store = std::move(store);
  impl->config = *std::move(config);
  return std::unique_ptr<Repository>(new Repository(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Repository>> Repository::Open(std::unique_ptr<ObjectStore> store) {
  if (absl::Status s = CheckWritable(*store); !s.ok()) return s;
  return OpenStore(std::move(store));
}

absl::StatusOr<std::unique_ptr<Repository>> Repository::OpenStore(
    std::unique_ptr<ObjectStore> store) {
  absl::StatusOr<std::string> bytes = store->Get(kConfigKey);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(
          StrCat(store->Describe(), " is not an ickpt repository (no config object)"));
    }
    return bytes.status();
  }
  absl::StatusOr<RepositoryConfig> config =
      DecodeConfig(*bytes, StrCat(store->Describe(), " ", kConfigKey));
  if (!config.ok()) return config.status();
  auto impl = std::make_unique<Impl>();
  impl->store = std::move(store);
  impl->config = *std::move(config);
  return std::unique_ptr<Repository>(new Repository(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Repository>> Repository::OpenOrCreate(
    std::unique_ptr<ObjectStore> store, const RepositoryOptions& options) {
  // Open and Create consume the store, so probe for the config first. Another process may create
  // the repository between the probe and our publish: publish never overwrites, so we then get
  // AlreadyExists and open what it created.
  if (absl::Status s = CheckWritable(*store); !s.ok()) return s;
  absl::StatusOr<uint64_t> size = store->Size(kConfigKey);
  if (size.ok()) return Open(std::move(store));
  if (!absl::IsNotFound(size.status())) return size.status();
  absl::StatusOr<RepositoryConfig> config = PublishNewConfig(store.get(), options);
  if (absl::IsAlreadyExists(config.status())) return Open(std::move(store));
  if (!config.ok()) return config.status();
  auto impl = std::make_unique<Impl>();
  impl->store = std::move(store);
  impl->config = *std::move(config);
  return std::unique_ptr<Repository>(new Repository(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Repository>> Repository::OpenLocal(
    const std::string& path, bool create, const RepositoryOptions& options) {
  LocalStoreOptions store_options;
  store_options.create_if_missing = create;
  absl::StatusOr<std::unique_ptr<ObjectStore>> store = OpenLocalStore(path, store_options);
  if (!store.ok()) return store.status();
  if (create) return OpenOrCreate(*std::move(store), options);
  return Open(*std::move(store));
}

absl::StatusOr<std::unique_ptr<Repository>> Repository::OpenUrl(std::string_view url, bool create,
                                                                const RepositoryOptions& options) {
  absl::StatusOr<std::unique_ptr<ObjectStore>> store =
      OpenStoreAt(url, create, /*for_writing=*/true);
  if (!store.ok()) return store.status();
  if (create) return OpenOrCreate(*std::move(store), options);
  return Open(*std::move(store));
}

absl::StatusOr<std::unique_ptr<RepositoryReader>> Repository::OpenReadOnly(std::string_view url) {
  absl::StatusOr<std::unique_ptr<ObjectStore>> store =
      OpenStoreAt(url, /*create=*/false, /*for_writing=*/false);
  if (!store.ok()) return store.status();
  absl::StatusOr<std::unique_ptr<Repository>> repo = OpenStore(*std::move(store));
  if (!repo.ok()) return repo.status();
  return std::unique_ptr<RepositoryReader>(*std::move(repo));
}

absl::StatusOr<std::vector<uint64_t>> Repository::ListCommitIds() const {
  absl::StatusOr<std::vector<ObjectInfo>> objects = impl_->store->List(kCommitsPrefix);
  if (!objects.ok()) return objects.status();
  std::vector<uint64_t> ids;
  ids.reserve(objects->size());
  for (const ObjectInfo& info : *objects) {
    std::optional<uint64_t> id = ParseIdKey(info.key, kCommitsPrefix);
    if (!id.has_value()) {
      // A checkpoint exists iff commits/<id:020> exists (§6); any other key under commits/ names
      // no checkpoint (no writer of this format creates one), so it is not damage to a
      // checkpoint. It is skipped, not an error, so one stray file cannot make every checkpoint
      // unreadable; it is logged because someone put it there.
      ICKPT_LOG_ONCE(StrCat("stray-commit-key:", info.key), LogLevel::kWarn,
                     "{}: ignoring {}: not a commit record name", impl_->store->Describe(),
                     info.key);
      continue;
    }
    ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::StatusOr<std::optional<uint64_t>> Repository::LatestCommitId() const {
  auto read_epoch = [this](uint64_t id) { return impl_->CommitEpoch(*this, id); };
  // §6.2: the commits from the one the latest-commit index names. If one of them is not fenced,
  // the highest such is the latest of all (every commit left out is lower); if none is (the index
  // was stale, too high or damaged, or they are all fenced), every commit is listed, as without
  // an index. Commits are listed before the epoch records in both cases (see below).
  if (std::optional<uint64_t> hint = ReadLatestCommitHint(impl_->store.get())) {
    absl::StatusOr<std::vector<uint64_t>> tail =
        ListIdsFrom(impl_->store.get(), kCommitsPrefix, *hint);
    if (!tail.ok()) return tail.status();
    if (!tail->empty()) {
      absl::StatusOr<Fencing> fencing = ReadFencing(*this);
      if (!fencing.ok()) return fencing.status();
      absl::StatusOr<std::optional<uint64_t>> latest = LatestUnfenced(*fencing, *tail, read_epoch);
      if (!latest.ok() || latest->has_value()) return latest;
    }
  }
  // Commits first: an epoch record published before the second listing fences what the first
  // listing found, so a commit that raced with a new epoch is judged by it (format.md §15.5).
  absl::StatusOr<std::vector<uint64_t>> ids = ListCommitIds();
  if (!ids.ok()) return ids.status();
  if (ids->empty()) return std::optional<uint64_t>();
  absl::StatusOr<Fencing> fencing = ReadFencing(*this);
  if (!fencing.ok()) return fencing.status();
  return LatestUnfenced(*fencing, *ids, read_epoch);
}

absl::StatusOr<std::vector<EpochRecord>> Repository::ListEpochs() const {
  ObjectStore* store = impl_->store.get();
  absl::StatusOr<std::vector<ObjectInfo>> objects = store->List(kEpochsPrefix);
  if (!objects.ok()) {
    return absl::Status(
        objects.status().code(),
        StrCat("listing the epoch records (", kEpochsPrefix, "): ", objects.status().message()));
  }
  std::vector<EpochRecord> records;
  records.reserve(objects->size());
  for (const ObjectInfo& info : *objects) {
    std::optional<uint64_t> epoch = ParseIdKey(info.key, kEpochsPrefix);
    if (!epoch.has_value()) {
      // As under commits/ (ListCommitIds): no writer of this format names an object so, and one
      // stray file must not make the history undecidable. Logged, since someone put it there.
      ICKPT_LOG_ONCE(StrCat("stray-epoch-key:", info.key), LogLevel::kWarn,
                     "{}: ignoring {}: not an epoch record name", store->Describe(), info.key);
      continue;
    }
    {
      MutexLock lock(&impl_->cache_mu);
      if (auto it = impl_->epoch_records.find(*epoch); it != impl_->epoch_records.end()) {
        records.push_back(it->second);
        continue;
      }
    }
    absl::StatusOr<std::string> bytes = store->Get(info.key);
    if (absl::IsNotFound(bytes.status())) {
      return absl::DataLossError(StrCat("epoch record ", info.key,
                                        " was listed but is missing (epoch records are never "
                                        "deleted, format.md §15.1)"));
    }
    if (!bytes.ok()) {
      return absl::Status(bytes.status().code(), StrCat("reading the epoch record ", info.key, ": ",
                                                        bytes.status().message()));
    }
    absl::StatusOr<EpochRecord> record = DecodeEpochRecord(*bytes, info.key, *epoch);
    if (!record.ok()) return record.status();
    {
      MutexLock lock(&impl_->cache_mu);
      impl_->epoch_records.emplace(*epoch, *record);
    }
    records.push_back(*std::move(record));
  }
  std::sort(records.begin(), records.end(),
            [](const EpochRecord& a, const EpochRecord& b) { return a.epoch < b.epoch; });
  return records;
}

absl::StatusOr<EpochRecord> Repository::BeginEpoch(uint64_t epoch, std::string_view leader) {
  ObjectStore* store = impl_->store.get();
  {
    EpochRecord probe;
    probe.epoch = epoch;
    probe.leader = std::string(leader);
    if (absl::Status s = ValidateEpochRecord(probe); !s.ok()) return s;
  }
  // §15.2 step 1: deposed already, or begun already (by this leader or another).
  absl::StatusOr<Fencing> fencing = ReadFencing(*this);
  if (!fencing.ok()) return fencing.status();
  auto deposed = [&](const Fencing& f, bool published) {
    const uint64_t highest = *f.highest_epoch();
    return absl::FailedPreconditionError(StrCat(
        "leader '", leader, "' cannot begin epoch ", epoch, ": epoch ", highest,
        " was begun by leader '", f.Find(highest)->leader, "'",
        published ? StrCat(" meanwhile, so ", EpochKey(epoch), " is superseded and fences nothing")
                  : std::string(""),
        "; this leader is deposed (format.md §15.2)"));
  };
  if (const EpochRecord* own = fencing->Find(epoch)) {
    if (own->leader != leader) {
      return absl::AlreadyExistsError(StrCat("epoch ", epoch, " was begun by leader '", own->leader,
                                             "', not '", leader, "' (", EpochKey(epoch),
                                             " exists; epochs are unique to a leader)"));
    }
  }
  if (fencing->highest_epoch().value_or(0) > epoch) return deposed(*fencing, false);
  if (const EpochRecord* own = fencing->Find(epoch)) return *own;

  // Step 2: the base, judged by exactly the records listed (they are what `previous` names).
  absl::StatusOr<std::vector<uint64_t>> ids = ListCommitIds();
  if (!ids.ok()) return ids.status();
  absl::StatusOr<std::optional<uint64_t>> base =
      LatestUnfenced(*fencing, *ids, [this](uint64_t id) { return impl_->CommitEpoch(*this, id); });
  if (!base.ok()) return base.status();
  EpochRecord record;
  record.epoch = epoch;
  record.base = *base;
  record.previous = fencing->highest_epoch().value_or(0);
  record.created = NowRounded();
  record.leader = std::string(leader);
  if (absl::Status s = ValidateEpochRecord(record); !s.ok()) return s;

  // Step 3. The record's bytes are unique to this call (its creation time to the nanosecond), so
  // PublishUnique resolves an ambiguous failure (§12.1); "exists" is then someone else's record.
  const std::string key = EpochKey(epoch);
  absl::Status s = PublishUnique(*store, key, EncodeEpochRecord(record));
  if (absl::IsAlreadyExists(s)) {
    // Another call for the same epoch won the publish: a concurrent retry of this leader (then
    // its record is ours to use) or another leader.
    absl::StatusOr<std::vector<EpochRecord>> now = ListEpochs();
    if (!now.ok()) return now.status();
    Fencing after(*std::move(now));
    const EpochRecord* stored = after.Find(epoch);
    if (stored == nullptr || stored->leader != leader) {
      return absl::AlreadyExistsError(StrCat("epoch ", epoch, " was begun by leader '",
                                             stored == nullptr ? std::string("?") : stored->leader,
                                             "', not '", leader, "'"));
    }
    record = *stored;
  } else if (!s.ok()) {
    return absl::Status(s.code(), StrCat("publishing epoch record ", key, ": ", s.message()));
  }

  // Step 4: a higher epoch published while this one began supersedes it.
  absl::StatusOr<Fencing> after = ReadFencing(*this);
  if (!after.ok()) return after.status();
  if (after->highest_epoch().value_or(0) > epoch) return deposed(*after, true);
  return record;
}

absl::StatusOr<CommitRecord> Repository::ReadCommit(uint64_t id) const {
  const std::string key = CommitKey(id);
  absl::StatusOr<std::string> bytes = impl_->store->Get(key);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(
          StrCat("checkpoint ", id, " not found (no ", key, " in ", impl_->store->Describe(), ")"));
    }
    return absl::Status(bytes.status().code(),
                        StrCat("reading the commit record ", key, ": ", bytes.status().message()));
  }
  absl::StatusOr<CommitRecord> record = DecodeCommitRecord(*bytes, key);
  if (!record.ok()) return record.status();
  if (record->id != id) {
    return absl::DataLossError(StrCat("commit record ", key, " holds checkpoint id ", record->id));
  }
  return record;
}

absl::StatusOr<uint64_t> Repository::ReserveCheckpointId() {
  ObjectStore* store = impl_->store.get();
  // §7: start after every id reserved or committed by anyone.
  auto start_from_store = [store]() -> absl::StatusOr<uint64_t> {
    // The highest id reserved or committed at or above `from`; 0 if none.
    auto highest_from = [store](uint64_t from) -> absl::StatusOr<uint64_t> {
      uint64_t highest = 0;
      for (std::string_view prefix : {kIdsPrefix, kCommitsPrefix}) {
        absl::StatusOr<std::vector<uint64_t>> ids = ListIdsFrom(store, prefix, from);
        if (!ids.ok()) return ids.status();
        if (!ids->empty()) highest = std::max(highest, ids->back());
      }
      return highest;
    };
    // §6.2: from the id the latest-commit index names, if anything is reserved or committed at or
    // above it (the highest of those is then the highest of all); otherwise from the first.
    absl::StatusOr<uint64_t> highest = 0;
    if (std::optional<uint64_t> hint = ReadLatestCommitHint(store)) highest = highest_from(*hint);
    if (highest.ok() && *highest == 0) highest = highest_from(0);
    if (!highest.ok()) return highest.status();
    if (*highest == UINT64_MAX) {
      return absl::OutOfRangeError(StrCat(store->Describe(), ": checkpoint ids exhausted"));
    }
    return *highest + 1;
  };

  MutexLock lock(&impl_->mu);
  if (impl_->next_id_hint == 0) {
    absl::StatusOr<uint64_t> start = start_from_store();
    if (!start.ok()) return start.status();
    impl_->next_id_hint = *start;
  }
  uint64_t n = impl_->next_id_hint;
  int collisions = 0;
  for (int attempt = 0; attempt < kMaxReserveAttempts; ++attempt) {
    const std::string key = IdReservationKey(n);
    absl::Status s = store->Publish(key, "");
    if (s.ok()) {
      // n + 1 may overflow only for n = 2^64 - 1; 0 then means "list again", which refuses.
      impl_->next_id_hint = n + 1;
      return n;
    }
    if (IsAmbiguousFailure(s)) {
      // §7, §12: the empty reservation may or may not have landed, and an empty object cannot
      // tell whose it is. Count the id as lost (a gap) and reserve the next one.
      ICKPT_LOG_WARN("{}: reserving checkpoint id {} failed ambiguously ({}); it is skipped",
                     store->Describe(), n, s.ToString());
      if (n == UINT64_MAX) break;
      ++n;
      continue;
    }
    if (!absl::IsAlreadyExists(s)) {
      return absl::Status(s.code(),
                          StrCat("reserving checkpoint id ", n, ": ", std::string(s.message())));
    }
    if (++collisions >= kRelistAfterCollisions) {
      absl::StatusOr<uint64_t> start = start_from_store();
      if (!start.ok()) return start.status();
      n = std::max(n + 1, *start);
      collisions = 0;
    } else {
      if (n == UINT64_MAX) break;
      ++n;
    }
  }
  impl_->next_id_hint = 0;  // list again next time
  return absl::AbortedError(StrCat(store->Describe(), ": could not reserve a checkpoint id in ",
                                   kMaxReserveAttempts, " attempts (ids up to ", n,
                                   " taken by other writers); retry"));
}

absl::Status Repository::PublishAck(const CommitRecord& ack) {
  if (ack.participants.size() != 1) {
    return absl::InvalidArgumentError(StrCat("acknowledgement of checkpoint ", ack.id, " holds ",
                                             ack.participants.size(), " participants, not one"));
  }
  const std::string& participant = ack.participants[0].name;
  if (participant.find('/') != std::string::npos || !ValidateObjectKey(participant).ok()) {
    return absl::InvalidArgumentError(StrCat(
        "participant name '", participant,
        "' cannot name an acknowledgement: use lowercase letters, digits, '.', '_' and '-'"));
  }
  if (absl::Status s = ValidateCommitRecord(ack); !s.ok()) return s;
  const std::string key = AckKey(ack.id, participant);
  absl::Status s = PublishUnique(*impl_->store, key, EncodeAck(ack));
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(
        StrCat("participant '", participant, "' already acknowledged checkpoint ", ack.id));
  }
  return s;
}

absl::StatusOr<CommitRecord> Repository::ReadAck(uint64_t id, std::string_view participant) const {
  const std::string key = AckKey(id, participant);
  if (!ValidateObjectKey(key).ok()) {
    return absl::InvalidArgumentError(StrCat("'", participant, "' is not a participant name"));
  }
  absl::StatusOr<std::string> bytes = impl_->store->Get(key);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(
          StrCat("participant '", participant, "' did not acknowledge checkpoint ", id));
    }
    return bytes.status();
  }
  absl::StatusOr<CommitRecord> ack = DecodeAck(*bytes, key);
  if (!ack.ok()) return ack.status();
  if (ack->id != id || ack->participants[0].name != participant) {
    return absl::DataLossError(StrCat("acknowledgement ", key, " is of participant '",
                                      ack->participants[0].name, "' for checkpoint ", ack->id));
  }
  return ack;
}

absl::StatusOr<std::vector<std::string>> Repository::ListAcks(uint64_t id) const {
  const std::string prefix = AckPrefix(id);
  absl::StatusOr<std::vector<ObjectInfo>> objects = impl_->store->List(prefix);
  if (!objects.ok()) return objects.status();
  std::vector<std::string> names;
  for (const ObjectInfo& info : *objects) {
    std::string_view name = std::string_view(info.key).substr(prefix.size());
    if (!name.empty() && name.find('/') == std::string_view::npos) names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<CommitRecord> Repository::CommitGroup(uint64_t id,
                                                     const GroupCommitOptions& options) {
  if (options.participants.empty()) {
    return absl::InvalidArgumentError(
        StrCat("group commit of checkpoint ", id, " names no participant"));
  }
  std::vector<std::string> names = options.participants;
  std::sort(names.begin(), names.end());
  if (std::adjacent_find(names.begin(), names.end()) != names.end()) {
    return absl::InvalidArgumentError(
        StrCat("group commit of checkpoint ", id, " names a participant twice"));
  }
  if (!options.incarnations.empty()) {
    for (const std::string& name : names) {
      if (!options.incarnations.contains(name)) {
        return absl::InvalidArgumentError(StrCat("group commit of checkpoint ", id,
                                                 " names no expected incarnation of participant '",
                                                 name, "'"));
      }
    }
  }
  std::vector<CommitRecord> acks;
  std::vector<std::string> missing;
  for (const std::string& name : names) {
    absl::StatusOr<CommitRecord> ack = ReadAck(id, name);
    if (absl::IsNotFound(ack.status())) {
      missing.push_back(name);
      continue;
    }
    if (!ack.ok()) return ack.status();
    acks.push_back(*std::move(ack));
  }
  auto refuse = [id](std::string_view why) {
    return absl::FailedPreconditionError(
        StrCat("checkpoint ", id, " is not committed (no commit record written): ", why));
  };
  if (!missing.empty()) {
    std::string list;
    for (const std::string& name : missing)
      list += StrCat(list.empty() ? "" : ", ", "'", name, "'");
    return refuse(StrCat("participant(s) ", list, " did not acknowledge it"));
  }
  CommitRecord record;
  record.id = id;
  record.parent = acks[0].parent;
  record.epoch = options.epoch;
  record.created = acks[0].created;
  record.metadata = options.metadata;
  bool all_full = true;
  for (CommitRecord& ack : acks) {
    const std::string& name = ack.participants[0].name;
    if (ack.parent != record.parent) {
      auto show = [](const std::optional<uint64_t>& p) {
        return p.has_value() ? StrCat(*p) : std::string("none");
      };
      return refuse(StrCat("participants disagree on the parent: '", acks[0].participants[0].name,
                           "' builds on ", show(record.parent), ", '", name, "' on ",
                           show(ack.parent)));
    }
    if (auto it = options.incarnations.find(name);
        it != options.incarnations.end() && ack.participants[0].incarnation != it->second) {
      return refuse(StrCat("participant '", name, "' acknowledged as incarnation ",
                           ack.participants[0].incarnation, ", the group expects incarnation ",
                           it->second, " (a replaced process's acknowledgement)"));
    }
    if (ack.epoch != options.epoch) {
      return refuse(StrCat("participant '", name, "' acknowledged epoch ", ack.epoch,
                           ", the group commits epoch ", options.epoch));
    }
    for (const auto& [k, v] : ack.metadata) {
      auto [it, inserted] = record.metadata.emplace(k, v);
      if (!inserted && it->second != v) {
        return refuse(StrCat("participant '", name, "' gives metadata \"", k,
                             "\" a value that differs from another's"));
      }
    }
    record.created = std::min(record.created, ack.created);
    all_full = all_full && ack.kind == CheckpointKind::kFull;
    record.depth = std::max(record.depth, ack.depth);
    record.logical_bytes += ack.logical_bytes;
    record.stored_bytes += ack.stored_bytes;
    record.participants.push_back(std::move(ack.participants[0]));
  }
  record.kind = all_full ? CheckpointKind::kFull : CheckpointKind::kIncremental;
  // §8.4, §8.6: the parent must be committed and not condemned (PublishCommit checks, immediately
  // before it publishes); an acknowledgement that builds on a checkpoint whose own group commit
  // failed can never be committed.
  if (absl::Status s = PublishCommit(record); !s.ok()) return s;
  return record;
}

absl::Status Repository::PublishCommit(const CommitRecord& record) {
  if (absl::Status s = ValidateCommitRecord(record); !s.ok()) return s;
  // §8.6, §8.7: judged by the epoch records as they are immediately before the publish.
  absl::StatusOr<Fencing> fencing = ReadFencing(*this);
  if (!fencing.ok()) return fencing.status();
  if (absl::Status s = CheckEpochAllows(*fencing, record); !s.ok()) return s;
  if (record.parent.has_value()) {
    absl::Status s =
        CheckParentUsable(*impl_->store, record.id, *record.parent, *fencing,
                          [this](uint64_t id) { return impl_->CommitEpoch(*this, id); });
    if (!s.ok()) return s;
  }
  const std::string key = CommitKey(record.id);
  absl::Status s = PublishUnique(*impl_->store, key, EncodeCommitRecord(record));
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(
        StrCat("checkpoint ", record.id, " is already committed (", key, " exists)"));
  }
  if (!s.ok()) return s;
  // §6.2: the latest-commit index, after the commit record (which alone marks success). It is a
  // cache that readers never trust, so failing to write it only costs them a longer listing; and
  // a concurrent writer of a lower id may overwrite it with that id, which costs the same.
  if (absl::Status cached =
          impl_->store->Put(kLatestCommitIndexKey, EncodeLatestCommitIndex(record.id));
      !cached.ok()) {
    ICKPT_LOG_DEBUG("{}: the latest-commit index was not updated to {}: {}",
                    impl_->store->Describe(), record.id, cached.ToString());
  }
  return absl::OkStatus();
}

}  // namespace ickpt
