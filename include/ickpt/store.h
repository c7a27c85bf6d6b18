// Storage layers under a repository: a file-system interface (the local store is built on it) and an
// object-store interface (what a repository is written to). Nothing above ObjectStore assumes
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

namespace ickpt {

// A file opened for writing from scratch. Data is durable only after Sync() returned OK.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual absl::Status Append(std::string_view data) = 0;
  // Makes everything appended so far durable. After a failure the file's content is unknown: the
  // caller must write it again from scratch, never call Sync() again (format.md §8).
  virtual absl::Status Sync() = 0;
  virtual absl::Status Close() = 0;
};

// The file-system effects the local store needs. Paths are absolute or relative to the process's
// working directory. Errors: NotFound for a missing path, AlreadyExists where noted,
// ResourceExhausted for ENOSPC, Unavailable for EIO and other retryable failures; the message names
// the path and the errno text.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  FileSystem() = default;
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  // Creates or truncates `path` with mode 0600.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Reads up to `length` bytes at `offset`; fewer only at end of file.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t offset,
                                               uint64_t length) = 0;
  virtual absl::StatusOr<uint64_t> FileSize(const std::string& path) = 0;
  // Creates one directory with mode 0700; AlreadyExists if it exists.
  virtual absl::Status CreateDir(const std::string& path) = 0;
  // fsyncs a directory so that entries created or renamed in it are durable.
  virtual absl::Status SyncDir(const std::string& path) = 0;
  // Atomically replaces `to` with `from`.
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // Creates `to` as a second name of `from`; AlreadyExists if `to` exists (never replaces).
  virtual absl::Status Link(const std::string& from, const std::string& to) = 0;
  virtual absl::Status Remove(const std::string& path) = 0;
  // Names of the entries of a directory (no "." or ".."), unsorted.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
  virtual absl::StatusOr<bool> IsDirectory(const std::string& path) = 0;
};

// The process's real file system (POSIX calls). Never null; not owned by the caller.
FileSystem* DefaultFileSystem();

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
};

// A flat namespace of keys (format.md §2) mapping to immutable byte strings.
// Errors: NotFound for a missing key, AlreadyExists from Publish, InvalidArgument for a malformed
// key; I/O failures as FileSystem. Messages name the key.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  ObjectStore() = default;
  ObjectStore(const ObjectStore&) = delete;
  ObjectStore& operator=(const ObjectStore&) = delete;

  // Stores `data` under `key`, durably once OK is returned, replacing an existing object (callers
  // only do that for content-named objects, whose bytes are identical).
  virtual absl::Status Put(std::string_view key, std::string_view data) = 0;
  // Like Put but never replaces: AlreadyExists if `key` exists. Used for commit records, id
  // reservations and the config.
  virtual absl::Status Publish(std::string_view key, std::string_view data) = 0;
  virtual absl::StatusOr<std::string> Get(std::string_view key) = 0;
  // Up to `length` bytes at `offset`; fewer only when the object ends first.
  virtual absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                               uint64_t length) = 0;
  // NotFound if missing.
  virtual absl::StatusOr<uint64_t> Size(std::string_view key) = 0;
  // Every object whose key starts with `prefix`, sorted by key.
  virtual absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) = 0;
  // Removes `key`; OK if it did not exist.
  virtual absl::Status Delete(std::string_view key) = 0;
  // A short description for messages, e.g. "local:/path/to/repo".
  virtual std::string Describe() const = 0;
};

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
  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override {
    return target_->List(prefix);
  }
  absl::Status Delete(std::string_view key) override { return target_->Delete(key); }
  std::string Describe() const override { return target_->Describe(); }

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
// it creates are 0700 and fsynced into their parents.
absl::StatusOr<std::unique_ptr<ObjectStore>> OpenLocalStore(const std::string& root,
                                                            const LocalStoreOptions& options = {});

// A store in memory, for tests and for a repository that lives only as long as the process.
std::unique_ptr<ObjectStore> NewMemoryStore();

// Checks a key against format.md §2; InvalidArgument naming the key if it does not match.
absl::Status ValidateObjectKey(std::string_view key);

}  // namespace ickpt
