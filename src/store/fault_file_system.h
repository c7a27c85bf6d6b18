// FaultInjectionFileSystem: a FileSystem wrapper for tests that (a) models what a power loss does
// to data and directory entries that were not fsynced, and (b) fails chosen calls.
//
// Power-loss model (SimulatePowerLoss):
//  - File data: for every file created through this wrapper, only the bytes covered by its last
//    successful WritableFile::Sync survive; the rest is truncated away. Files not created through
//    the wrapper (pre-existing) are assumed fully durable.
//  - Directory entries: each entry change (file created, directory created, rename, link, remove)
//    is durable only once SyncDir was called on every directory it touched (both parents for a
//    rename) after the change. Entry changes that are not durable are undone, newest first:
//      created file      -> removed
//      created directory -> removed with everything in it
//      rename from->to   -> renamed back; if it replaced a file, that file's durable content is
//                           written back under `to`
//      link from->to     -> `to` removed
//      remove path       -> the file is recreated with its durable content at removal time (an
//                           empty directory is recreated empty)
//  - Not modeled: reordering of data writes within the synced prefix, partially persisted sectors,
//    metadata of files not created here, modification times (a file the model restores or cuts
//    gets the time of SimulatePowerLoss), and files still open across SimulatePowerLoss (do not
//    use them afterwards). Truncation and restoration are done with the target's own calls.
//  After SimulatePowerLoss everything on disk counts as durable again.
//
// Fault injection: FailNth*(n, status) makes the nth matching call counted from now (1-based) fail
// with `status` without reaching the target; each fault fires once. ShortWriteNth(n) makes the nth
// Append write only the first half of its data to the target and then fail with Unavailable. A
// file whose Append or Sync failed (injected) refuses further Append/Sync with FailedPrecondition,
// like the POSIX file system. FailNthRead(n, status) does the same for the read calls (ReadFile,
// FileSize, ModificationTime, ListDir, IsDirectory), which a restore and a listing make. Counters
// count calls since construction (or ResetCounters).
//
// Thread safety: all methods may be called concurrently; calls are serialized by one mutex, which
// is held while the target is called so that the tracked state matches the target's.
// The wrapper must outlive the files it creates.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "ickpt/store.h"
#include "src/util/mutex.h"

namespace ickpt {

class FaultInjectionFileSystem : public FileSystem {
 public:
  // `target` is not owned and must outlive this wrapper.
  explicit FaultInjectionFileSystem(FileSystem* target);
  ~FaultInjectionFileSystem() override;

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t offset,
                                       uint64_t length) override;
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override;
  absl::StatusOr<absl::Time> ModificationTime(const std::string& path) override;
  absl::Status CreateDir(const std::string& path) override;
  absl::Status SyncDir(const std::string& path) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status Link(const std::string& from, const std::string& to) override;
  absl::Status Remove(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  absl::StatusOr<bool> IsDirectory(const std::string& path) override;

  // Drops what a power loss would drop (see the model above). Returns the first error the target
  // reported while doing so; the tracked state is reset either way.
  absl::Status SimulatePowerLoss();

  // The nth Append / WritableFile::Sync / SyncDir / Rename from now fails with `status`.
  void FailNthWrite(int64_t n, absl::Status status);
  void FailNthSync(int64_t n, absl::Status status);
  void FailNthSyncDir(int64_t n, absl::Status status);
  void FailNthRename(int64_t n, absl::Status status);
  // The nth Append from now writes half its data, then fails with Unavailable.
  void ShortWriteNth(int64_t n);
  // The nth mutating call from now fails with `status`. Mutating calls are NewWritableFile, Append,
  // Sync, Close, CreateDir, SyncDir, Rename, Link and Remove.
  void FailNthOperation(int64_t n, absl::Status status);
  // The nth read call (ReadFile, FileSize, ModificationTime, ListDir, IsDirectory) from now fails
  // with `status`.
  void FailNthRead(int64_t n, absl::Status status);
  // Cancels every pending fault (not the power-loss tracking).
  void ClearFaults();

  // Calls made so far (including those that failed).
  int64_t operation_count() const;  // mutating calls, as counted by FailNthOperation
  int64_t write_count() const;
  int64_t sync_count() const;
  int64_t sync_dir_count() const;
  int64_t rename_count() const;
  int64_t read_count() const;  // read calls, as counted by FailNthRead
  void ResetCounters();

  // Bytes appended but not yet synced, over all tracked files (lets a test assert "nothing
  // pending").
  uint64_t unsynced_bytes() const;
  // Entry changes not yet made durable by SyncDir.
  size_t unsynced_entry_count() const;

 private:
  class File;
  struct FileData {
    uint64_t written = 0;
    uint64_t synced = 0;
  };
  enum class EntryKind { kCreateFile, kCreateDir, kRename, kLink, kRemove };
  struct EntryChange {
    EntryKind kind;
    std::string path = {};  // the created / removed / link or rename target path
    std::string from = {};  // rename / link source
    std::optional<std::string> saved =
        std::nullopt;  // durable content of a replaced or removed file
    bool removed_dir = false;
    std::set<std::string> dirs_to_sync = {};
  };
  struct Fault {
    int64_t at = 0;  // the counter value at which it fires; 0 = none
    absl::Status status;
  };

  // Counts one call of a kind and returns the injected failure if one fires.
  absl::Status CountOperation() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CountRead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static absl::Status Fire(int64_t count, Fault* fault);
  void AddEntry(EntryChange change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The durable content of `path` now: its synced prefix if tracked, all of it otherwise.
  std::optional<std::string> DurableContent(const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteWhole(const std::string& path, const std::string& data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RemoveRecursively(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Called by File.
  absl::Status FileAppend(WritableFile* target, const std::shared_ptr<FileData>& data,
                          std::string_view bytes, bool* failed);
  absl::Status FileSync(WritableFile* target, const std::shared_ptr<FileData>& data, bool* failed);
  absl::Status FileClose(WritableFile* target);

  FileSystem* const target_;
  mutable Mutex mu_;
  // Tracked files by current name; names linked to one file share its FileData.
  std::map<std::string, std::shared_ptr<FileData>> files_ ABSL_GUARDED_BY(mu_);
  std::vector<EntryChange> entries_ ABSL_GUARDED_BY(mu_);

  int64_t operation_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t write_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sync_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sync_dir_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rename_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t read_count_ ABSL_GUARDED_BY(mu_) = 0;
  Fault operation_fault_ ABSL_GUARDED_BY(mu_);
  Fault write_fault_ ABSL_GUARDED_BY(mu_);
  Fault short_write_fault_ ABSL_GUARDED_BY(mu_);
  Fault sync_fault_ ABSL_GUARDED_BY(mu_);
  Fault sync_dir_fault_ ABSL_GUARDED_BY(mu_);
  Fault rename_fault_ ABSL_GUARDED_BY(mu_);
  Fault read_fault_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ickpt
