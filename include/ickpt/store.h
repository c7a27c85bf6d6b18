// Storage layers under a repository: a file-system interface (the local store is built on it) and
// an object-store interface (what a repository is written to). Nothing above ObjectStore assumes
// POSIX: an S3 store implements the same interface.
//
// Thread safety: every implementation shipped here is safe for concurrent use by several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ickpt {

// A file opened for writing from scratch. Data is durable only after Sync() returned OK.
// Errors as FileSystem; after any failed Append or Sync the file refuses further use with
// FailedPrecondition.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends `data`. Errors: ResourceExhausted (ENOSPC), Unavailable (EIO), FailedPrecondition
  // (closed, or an earlier call failed).
  virtual absl::Status Append(std::string_view data) = 0;
  // Makes everything appended so far durable. After a failure the file's content is unknown: the
  // caller must write it again from scratch, never call Sync() again (format.md §8).
  // Errors: as Append.
  virtual absl::Status Sync() = 0;
  // Releases the file. Errors: FailedPrecondition if already closed, Unavailable.
  virtual absl::Status Close() = 0;
};

// The file-system effects the local store needs. Paths are absolute or relative to the process's
// working directory. Errors: NotFound for a missing path, AlreadyExists where noted,
// ResourceExhausted for ENOSPC, PermissionDenied for EACCES/EPERM/EROFS, FailedPrecondition where
// noted, Unavailable for EIO and other retryable failures; the message names the path and the
// errno text.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  FileSystem() = default;
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  // Creates or truncates `path` with mode 0600. NotFound if its directory is missing.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) = 0;
  // Reads up to `length` bytes at `offset`; fewer only at end of file. NotFound if missing;
  // FailedPrecondition for a directory.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t offset,
                                               uint64_t length) = 0;
  // NotFound if missing; FailedPrecondition for a directory.
  virtual absl::StatusOr<uint64_t> FileSize(const std::string& path) = 0;
  // The last modification time (mtime, nanosecond precision where the file system keeps it) of the
  // file or directory at `path`. NotFound if missing.
  virtual absl::StatusOr<absl::Time> ModificationTime(const std::string& path) = 0;
  // Creates one directory with mode 0700; AlreadyExists if it exists, NotFound if its parent is
  // missing.
  virtual absl::Status CreateDir(const std::string& path) = 0;
  // fsyncs a directory so that entries created or renamed in it are durable. NotFound if missing.
  virtual absl::Status SyncDir(const std::string& path) = 0;
  // Atomically replaces `to` with `from`. NotFound if `from` is missing.
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // Creates `to` as a second name of `from`; AlreadyExists if `to` exists (never replaces),
  // NotFound if `from` is missing.
  virtual absl::Status Link(const std::string& from, const std::string& to) = 0;
  // Removes a file or an empty directory. NotFound if missing; FailedPrecondition for a directory
  // that is not empty.
  virtual absl::Status Remove(const std::string& path) = 0;
  // Names of the entries of a directory (no "." or ".."), unsorted. NotFound if missing.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // NotFound if missing.
  virtual absl::StatusOr<bool> IsDirectory(const std::string& path) = 0;
};

// The process's real file system (POSIX calls). Never null; not owned by the caller.
FileSystem* DefaultFileSystem();

// Forwards every call to `target` (by default the real file system), so a test can override one
// method, as ObjectStoreWrapper does for stores.
class FileSystemWrapper : public FileSystem {
 public:
  explicit FileSystemWrapper(FileSystem* target = DefaultFileSystem()) : target_(target) {}
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return target_->NewWritableFile(path);
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t offset,
                                       uint64_t length) override {
    return target_->ReadFile(path, offset, length);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    return target_->FileSize(path);
  }
  absl::StatusOr<absl::Time> ModificationTime(const std::string& path) override {
    return target_->ModificationTime(path);
  }
  absl::Status CreateDir(const std::string& path) override { return target_->CreateDir(path); }
  absl::Status SyncDir(const std::string& path) override { return target_->SyncDir(path); }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    return target_->Rename(from, to);
  }
  absl::Status Link(const std::string& from, const std::string& to) override {
    return target_->Link(from, to);
  }
  absl::Status Remove(const std::string& path) override { return target_->Remove(path); }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    return target_->ListDir(path);
  }
  absl::StatusOr<bool> IsDirectory(const std::string& path) override {
    return target_->IsDirectory(path);
  }

 protected:
  FileSystem* target() const { return target_; }

 private:
  FileSystem* target_;
};

// One object as listed.
struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  // When the store last wrote the object: a local file's mtime, the time of the memory store's
  // Put or Publish, an S3 object's LastModified. Only as accurate as the store's clock.
  absl::Time modified = absl::UnixEpoch();
};

// One page of a listing (ObjectStore::ListPage).
struct ObjectPage {
  // Sorted by key, every key greater than the request's `start_after`.
  std::vector<ObjectInfo> objects;
  // More objects follow: ask again with `start_after` = the last key of this page.
  bool truncated = false;
};

// The end of an object (ObjectStore::GetTail).
struct ObjectTail {
  uint64_t object_size = 0;  // the whole object's size
  std::string bytes;         // its last min(length asked, object_size) bytes
};

// The page size ListPage uses when asked for max_keys 0, as S3's ListObjectsV2 does.
inline constexpr size_t kDefaultListPage = 1000;

// A flat namespace of keys (format.md §2) mapping to immutable byte strings; the contract every
// store keeps is format.md §12.
//
// Errors (every call; the message names the key, or the prefix for a listing, and the store):
//   InvalidArgument   a malformed key (format.md §2) or argument; never retried.
//   NotFound          a missing key (Get, GetRange, Size).
//   AlreadyExists     Publish of an existing key.
//   ResourceExhausted the store is full (ENOSPC, a quota).
//   PermissionDenied  the store refuses access; a retry does not help.
//   Unavailable, DeadlineExceeded
//                     a transient failure; a retry may help. From Put and Publish these are
//                     *ambiguous*: the object may or may not have been written (the write may
//                     have landed and only the reply been lost). See IsAmbiguousFailure and
//                     PublishUnique.
//   Internal          a bug in the store or in how it was called (a bad descriptor, say).
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  ObjectStore() = default;
  ObjectStore(const ObjectStore&) = delete;
  ObjectStore& operator=(const ObjectStore&) = delete;

  // Stores `data` under `key`, durably once OK is returned, replacing an existing object (callers
  // only do that for content-named objects, whose bytes are identical). A concurrent reader sees
  // the old object or the new one, never a mix. On failure no partial object is visible, but an
  // ambiguous failure (see above) may have stored the whole object.
  virtual absl::Status Put(std::string_view key, std::string_view data) = 0;
  // Like Put but never replaces: AlreadyExists if `key` exists, and of several concurrent
  // publishers of one key exactly one succeeds. Atomic: readers see no object or all of it. Used
  // for the config, id reservations, commit records and acknowledgements. After an ambiguous
  // failure a retry may fail with AlreadyExists because the first attempt landed: writers of
  // unique bytes resolve that with PublishUnique.
  virtual absl::Status Publish(std::string_view key, std::string_view data) = 0;
  // The whole object. NotFound if missing.
  virtual absl::StatusOr<std::string> Get(std::string_view key) = 0;
  // Up to `length` bytes at `offset`; fewer only when the object ends first (none at or past its
  // end). NotFound if missing.
  virtual absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                               uint64_t length) = 0;
  // The object's size in bytes. NotFound if missing.
  virtual absl::StatusOr<uint64_t> Size(std::string_view key) = 0;
  // The object's size and its last min(`length`, size) bytes, in one request where the store can:
  // an S3 store sends one suffix-range GET. A pack's reader gets its footer and index this way,
  // one round trip instead of three (format.md §4, §12). The default calls Size, then GetRange: a
  // wrapper that overrides those sees both (ObjectStoreWrapper does not forward GetTail, so fault
  // injection keeps working). NotFound if missing.
  virtual absl::StatusOr<ObjectTail> GetTail(std::string_view key, uint64_t length);
  // One page of the objects whose key starts with `prefix` and is strictly greater than
  // `start_after` ("" = from the first), sorted by key: at most `max_keys` of them (0 =
  // kDefaultListPage), with `truncated` set when more follow. A page may hold fewer than
  // `max_keys` objects and still be truncated (S3 caps a page at 1000): follow `truncated`, never
  // the page's length. `start_after` need not exist or start with `prefix`. Pages are not a
  // snapshot: an object put or deleted while paging may or may not appear; one present throughout
  // appears exactly once. InvalidArgument if `prefix` contains "..".
  virtual absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                              size_t max_keys) = 0;
  // Every object whose key starts with `prefix`, sorted by key: ListPage followed page by page.
  // Errors: those of ListPage; Internal if the store returns pages that do not advance.
  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix);
  // Removes `key`; OK if it did not exist.
  virtual absl::Status Delete(std::string_view key) = 0;
  // Removes every key of `keys` (OK for missing ones), in as few requests as the store can: an S3
  // store sends up to 1,000 keys per multi-object delete. The default calls Delete for each key in
  // order, so a wrapper that overrides Delete sees every deletion (ObjectStoreWrapper does not
  // forward DeleteMany for that reason). Order among the keys is not kept by stores that batch:
  // callers pass only keys whose relative order does not matter. Errors: the first failure, naming
  // its key; any key may or may not have been removed then.
  virtual absl::Status DeleteMany(const std::vector<std::string>& keys);
  // Removes the store's own leftovers whose last modification is more than `older_than` ago and
  // returns how many it removed: the local store's temporary files (`<final>.tmp-<random>`) left by
  // writers that crashed or failed; an S3 store's incomplete multipart uploads. Never removes an
  // object, and leaves younger leftovers alone: a writer may still be using them, so `older_than`
  // must exceed the longest a writer takes between writes to one temporary object. Errors:
  // InvalidArgument for a negative `older_than`; I/O errors (after removing what it could).
  virtual absl::StatusOr<uint64_t> RemoveDebris(absl::Duration older_than) = 0;
  // True if Publish is atomic and never replaces an object, even under concurrent publishers
  // (local store: link(2); memory store: a map insert; an S3 store: a conditional write). Without
  // it Publish cannot arbitrate between concurrent writers (id reservations, commit records), and
  // only a single writer may use the store. Not a call: it cannot fail.
  virtual bool publishes_without_overwrite() const = 0;
  // A short description for messages, e.g. "local:/path/to/repo".
  virtual std::string Describe() const = 0;
  // How many packs a restore reads at once from this store when its caller did not say
  // (CheckpointerOptions::restore_threads 0): 0 means one per core, at least 2 (local and memory
  // stores, whose reads cost CPU). An S3 store answers 16: its reads wait on the network and the
  // server, and restores from RGW were 1.2-1.5x faster with 16 than with 2 (docs/benchmarks.md,
  // "Repositories on S3"). Not a call: it cannot fail.
  virtual int default_read_concurrency() const { return 0; }
};

// True for the failures after which a Put or Publish may or may not have written the object:
// Unavailable and DeadlineExceeded.
bool IsAmbiguousFailure(const absl::Status& status);

// Publishes `data` under `key` for an object whose bytes are unique to this writer (config, commit
// records, acknowledgements: they hold a random id, a writer's name or a time), resolving
// ambiguous failures (format.md §12.1): Publish; after an ambiguous failure, Publish again, up to
// `attempts` Publish calls in all; on AlreadyExists after an ambiguous failure, Get the object
// back: this writer's own bytes mean its earlier attempt landed (OK), other bytes that another
// writer won (AlreadyExists). AlreadyExists on the first attempt is final: the object was there
// before this writer tried. Errors: AlreadyExists (another writer's object); when no attempt was
// decisive, the last error (Unavailable or DeadlineExceeded; Aborted if the object was deleted
// between Publish and Get); any other error of Publish or Get, at once; InvalidArgument if
// `attempts` < 1. Not for id reservations, whose bytes are not unique (they are empty): a writer
// counts a reservation that failed ambiguously as lost and reserves the next id (format.md §7,
// §12.1).
absl::Status PublishUnique(ObjectStore& store, std::string_view key, std::string_view data,
                           int attempts = 3);

// Forwards every call to `target`, so a test can override one method.
class ObjectStoreWrapper : public ObjectStore {
 public:
  explicit ObjectStoreWrapper(ObjectStore* target) : target_(target) {}
  absl::Status Put(std::string_view key, std::string_view data) override {
    return target_->Put(key, data);
  }
  absl::Status Publish(std::string_view key, std::string_view data) override {
    return target_->Publish(key, data);
  }
  absl::StatusOr<std::string> Get(std::string_view key) override { return target_->Get(key); }
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    return target_->GetRange(key, offset, length);
  }
  absl::StatusOr<uint64_t> Size(std::string_view key) override { return target_->Size(key); }
  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override {
    return target_->ListPage(prefix, start_after, max_keys);
  }
  absl::Status Delete(std::string_view key) override { return target_->Delete(key); }
  absl::StatusOr<uint64_t> RemoveDebris(absl::Duration older_than) override {
    return target_->RemoveDebris(older_than);
  }
  bool publishes_without_overwrite() const override {
    return target_->publishes_without_overwrite();
  }
  std::string Describe() const override { return target_->Describe(); }
  int default_read_concurrency() const override { return target_->default_read_concurrency(); }

 protected:
  ObjectStore* target() const { return target_; }

 private:
  ObjectStore* target_;
};

struct LocalStoreOptions {
  // The file system the store writes through. Default: DefaultFileSystem().
  FileSystem* file_system = nullptr;
  // Create the root directory (and missing parents) if it does not exist. Default: false.
  bool create_if_missing = false;
};

// A store in a local directory: key "a/b" is the file ROOT/a/b. Writes go to a temporary file that
// is fsynced, renamed (Put) or linked (Publish) into place, and the directory fsynced; directories
// it creates are 0700 and fsynced into their parents. A temporary file a crash leaves behind is
// debris (RemoveDebris). Errors of OpenLocalStore: InvalidArgument for an empty root, NotFound if
// the root is missing and `create_if_missing` is false, FailedPrecondition if it is not a
// directory; I/O errors as FileSystem.
absl::StatusOr<std::unique_ptr<ObjectStore>> OpenLocalStore(const std::string& root,
                                                            const LocalStoreOptions& options = {});

// A store in memory, for tests and for a repository that lives only as long as the process.
std::unique_ptr<ObjectStore> NewMemoryStore();

// Where an S3 store finds its credentials when S3StoreOptions leaves them empty: the standard AWS
// environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else the
// shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials) under the
// profile AWS_PROFILE (default "default"). Credentials are never logged and never put in a URL.
struct S3Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only; empty otherwise
};

// An S3 (or S3-compatible: Ceph RGW, MinIO) bucket as an object store (docs/s3.md). Keys are stored
// as PREFIX/key. Requests are signed with AWS Signature Version 4 (libcurl's); every PUT carries
// the SHA-256 of its body, so the server refuses a body damaged in transit.
struct S3StoreOptions {
  // "http://host:port" or "https://host[:port]". Required.
  std::string endpoint;
  // The bucket, which must exist: the store never creates one. Required.
  std::string bucket;
  // Key components (format.md §2) joined by '/', without leading or trailing '/'; "" for the
  // bucket's root. Default "".
  std::string prefix;
  // The region requests are signed for. Default "": AWS_REGION, else AWS_DEFAULT_REGION, else
  // "us-east-1".
  std::string region;
  // Virtual-hosted addressing (http://BUCKET.host/key) instead of path-style
  // (http://host/BUCKET/key). Default false.
  bool virtual_hosted = false;
  // Default: empty, read as S3Credentials says.
  S3Credentials credentials;
  // A CA bundle (PEM) that signs an https endpoint's certificate. Default "": the system's.
  std::string ca_file;
  // Check when opening that a conditional PUT (If-None-Match: *) refuses to replace an object, by
  // publishing a probe object under tmp/ twice (and deleting it): without that guarantee
  // publishes_without_overwrite() is false and a repository refuses to write there. Writers set
  // it; Repository::OpenUrl does. Default false.
  bool probe_publish = false;

  // ---- Deadlines and retries (per call: there is no store-wide retry budget). ----
  // One attempt fails if the connection is not established within this. Default 10 s.
  absl::Duration connect_timeout = absl::Seconds(10);
  // One attempt fails if no byte moved in either direction for this long: a server that stops
  // answering cannot hang a checkpoint. Default 30 s.
  absl::Duration stall_timeout = absl::Seconds(30);
  // A call (all its attempts and the waits between them) gives up after this. Default 5 min.
  absl::Duration call_deadline = absl::Minutes(5);
  // Attempts of one call, retrying 5xx, 429, timeouts, resets and truncated replies (never another
  // 4xx), with exponential backoff and full jitter from initial_backoff up to max_backoff.
  // Defaults 8, 100 ms, 10 s.
  int max_attempts = 8;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
};

// Parses a repository URL `s3://BUCKET[/PREFIX][?endpoint=URL&region=R&addressing=path|virtual]`
// (format.md §12.2). The endpoint may be percent-encoded. InvalidArgument naming the URL and what
// is wrong (no bucket, a bad prefix, an unknown parameter, no endpoint).
absl::StatusOr<S3StoreOptions> ParseS3Url(std::string_view url);

// Opens the bucket. Errors: InvalidArgument for bad options; FailedPrecondition without
// credentials; NotFound naming the bucket if it does not exist; PermissionDenied if the
// credentials are refused; Unavailable or DeadlineExceeded if the endpoint does not answer.
absl::StatusOr<std::unique_ptr<ObjectStore>> OpenS3Store(S3StoreOptions options);

// Checks a key against format.md §2; InvalidArgument naming the key if it does not match.
absl::Status ValidateObjectKey(std::string_view key);

}  // namespace ickpt
