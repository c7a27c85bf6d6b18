// The local-directory object store (format.md §2) and key validation.
//
// Durability follows format.md §8.1: an object is written to `<final>.tmp-<random>`, fsynced,
// renamed (Put) or linked (Publish) onto its final name, and the directory fsynced. A directory the
// store creates is fsynced into its parent. After any failure the temporary file is removed and the
// object is written again from scratch by the caller's retry; fsync is never retried on a file
// (§8.2). A temporary file left by a crash is debris: RemoveDebris removes it once it is old
// (format.md §12). Listings are paged by key (ListPage) and read each directory on the way once per
// page.
//
// Thread safety: the only mutable state, the directories whose durability is in doubt after a
// failure, is guarded by a mutex; otherwise concurrency is the file system's.
#include <algorithm>
#include <limits>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ickpt/store.h"
#include "src/util/hash.h"
#include "src/util/log.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {

absl::Status ValidateObjectKey(std::string_view key) {
  constexpr size_t kMaxKeyBytes = 256;
  constexpr size_t kMaxComponents = 8;
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("invalid object key \"",
                                             absl::CHexEscape(ToAbsl(key.substr(0, 300))),
                                             "\": ", why, " (format.md §2)"));
  };
  if (key.empty()) return invalid("empty");
  if (key.size() > kMaxKeyBytes) return invalid("longer than 256 bytes");
  size_t components = 0;
  for (size_t start = 0; start <= key.size();) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    const std::string_view component = key.substr(start, end - start);
    start = end + 1;
    if (++components > kMaxComponents) return invalid("more than 8 components");
    if (component.empty()) return invalid("empty component");
    if (component == "." || component == "..") return invalid("'.' or '..' component");
    for (size_t i = 0; i < component.size(); ++i) {
      const char c = component[i];
      const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
      if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
        return invalid("components must match [a-z0-9][a-z0-9._-]*");
      }
    }
  }
  return absl::OkStatus();
}

namespace {

constexpr std::string_view kTempInfix = ".tmp-";

// "a/b/c" -> "a/b"; "c" -> "."; "/c" -> "/".
std::string ParentDir(std::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

// Creates `dir` and its missing parents, each 0700 and fsynced into its parent.
absl::Status MakeDirs(FileSystem* fs, const std::string& dir) {
  absl::StatusOr<bool> is_dir = fs->IsDirectory(dir);
  if (is_dir.ok()) {
    if (*is_dir) return absl::OkStatus();
    return absl::FailedPreconditionError(StrCat(dir, " exists and is not a directory"));
  }
  if (!absl::IsNotFound(is_dir.status())) return is_dir.status();
  const std::string parent = ParentDir(dir);
  if (parent != dir) {
    if (absl::Status s = MakeDirs(fs, parent); !s.ok()) return s;
  }
  absl::Status created = fs->CreateDir(dir);
  // A concurrent writer may have created it; it may not have fsynced the parent yet, so this
  // writer fsyncs it too rather than trust an entry that could vanish in a crash.
  if (!created.ok() && !absl::IsAlreadyExists(created)) return created;
  return fs->SyncDir(parent);
}

class LocalStore final : public ObjectStore {
 public:
  LocalStore(std::string root, FileSystem* fs) : root_(std::move(root)), fs_(fs) {}

  absl::Status Put(std::string_view key, std::string_view data) override {
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    const std::string final_path = PathOf(key);
    absl::StatusOr<std::string> temp = WriteTemp(key, final_path, data);
    if (!temp.ok()) return temp.status();
    if (absl::Status s = fs_->Rename(*temp, final_path); !s.ok()) {
      RemoveTemp(*temp);
      return Annotate(s, "put", key);
    }
    // No rollback when this fails: the rename may have replaced an identical, committed object
    // (content-named objects are put again), which must not be deleted. The caller's retry
    // writes it again.
    if (absl::Status s = fs_->SyncDir(ParentDir(final_path)); !s.ok()) {
      return Annotate(s, "put", key);
    }
    return absl::OkStatus();
  }

  absl::Status Publish(std::string_view key, std::string_view data) override {
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    const std::string final_path = PathOf(key);
    absl::StatusOr<std::string> temp = WriteTemp(key, final_path, data);
    if (!temp.ok()) return temp.status();
    if (absl::Status s = fs_->Link(*temp, final_path); !s.ok()) {
      RemoveTemp(*temp);
      if (absl::IsAlreadyExists(s)) {
        return absl::AlreadyExistsError(
            StrCat("publish ", key, " in ", Describe(), ": object already exists"));
      }
      return Annotate(s, "publish", key);
    }
    RemoveTemp(*temp);
    if (absl::Status s = fs_->SyncDir(ParentDir(final_path)); !s.ok()) {
      // The object is visible but not known to be durable. Publish creates commit records, and a
      // checkpoint exists iff its record exists (format.md §6): withdraw it so that this failure
      // leaves no visible record. The link created it, so no earlier object is lost.
      fs_->Remove(final_path).IgnoreError();  // best effort; the error below is what matters
      return Annotate(s, "publish", key);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Get(std::string_view key) override {
    return GetRange(key, 0, ~uint64_t{0});
  }

  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    absl::StatusOr<std::string> data = fs_->ReadFile(PathOf(key), offset, length);
    if (!data.ok()) return MissingOr(data.status(), "get", key);
    return data;
  }

  absl::StatusOr<uint64_t> Size(std::string_view key) override {
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    absl::StatusOr<uint64_t> size = fs_->FileSize(PathOf(key));
    if (!size.ok()) return MissingOr(size.status(), "size", key);
    return size;
  }

  absl::StatusOr<ObjectPage> ListPage(std::string_view prefix, std::string_view start_after,
                                      size_t max_keys) override {
    if (Contains(prefix, "..")) {
      return absl::InvalidArgumentError(
          StrCat("list ", Describe(), ": prefix \"", prefix, "\" contains \"..\""));
    }
    if (max_keys == 0) max_keys = kDefaultListPage;
    // One object more than the page tells whether more follow.
    const size_t limit = max_keys == std::numeric_limits<size_t>::max() ? max_keys : max_keys + 1;
    const PageBounds bounds{prefix, start_after, limit};
    ObjectPage page;
    if (absl::Status s = WalkPage(root_, "", bounds, &page.objects); !s.ok()) return s;
    if (page.objects.size() > max_keys) {
      page.objects.resize(max_keys);
      page.truncated = true;
    }
    return page;
  }

  absl::Status Delete(std::string_view key) override {
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    const std::string path = PathOf(key);
    // A directory at the key's path is not an object; removing it (if empty) could race with a
    // Put creating an object under it.
    absl::StatusOr<bool> is_dir = fs_->IsDirectory(path);
    if (!is_dir.ok()) {
      return absl::IsNotFound(is_dir.status()) ? absl::OkStatus()
                                               : Annotate(is_dir.status(), "delete", key);
    }
    if (*is_dir) return absl::OkStatus();
    absl::Status s = fs_->Remove(path);
    // The directory is not fsynced: only GC deletes, and a deletion lost in a crash is redone by
    // the next GC.
    if (s.ok() || absl::IsNotFound(s)) return absl::OkStatus();
    return Annotate(s, "delete", key);
  }

  absl::StatusOr<uint64_t> RemoveDebris(absl::Duration older_than) override {
    if (older_than < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(StrCat("remove debris in ", Describe(), ": negative age ",
                                               absl::FormatDuration(older_than)));
    }
    DebrisSweep sweep{absl::Now() - older_than};
    absl::Status s = SweepDebris(root_, "", &sweep);
    if (!s.ok()) {
      return absl::Status(s.code(), StrCat("remove debris in ", Describe(), " (", sweep.removed,
                                           " removed before the error): ", s.message()));
    }
    return sweep.removed;
  }

  // link(2) never replaces its target.
  bool publishes_without_overwrite() const override { return true; }

  std::string Describe() const override { return StrCat("local:", root_); }

 private:
  std::string PathOf(std::string_view key) const { return StrCat(root_, "/", key); }

  absl::Status CheckKey(std::string_view key) const {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    // The store's own temporary files use this infix; an object named like one would be invisible
    // to List.
    if (Contains(key, kTempInfix)) {
      return absl::InvalidArgumentError(StrCat("invalid object key \"", key, "\" for ", Describe(),
                                               ": contains \"", kTempInfix, "\""));
    }
    return absl::OkStatus();
  }

  absl::Status Annotate(const absl::Status& status, std::string_view op,
                        std::string_view key) const {
    return absl::Status(status.code(),
                        StrCat(op, " ", key, " in ", Describe(), ": ", status.message()));
  }

  // A path that is a directory or runs through a file is no object: NotFound for the key.
  absl::Status MissingOr(const absl::Status& status, std::string_view op,
                         std::string_view key) const {
    if (absl::IsNotFound(status) || absl::IsFailedPrecondition(status)) {
      return absl::NotFoundError(StrCat(op, " ", key, " in ", Describe(), ": no such object"));
    }
    return Annotate(status, op, key);
  }

  // Creates the directories of `key` below the root, each fsynced into its parent. A directory
  // that already exists is fsynced into its parent again: it may be one whose creator failed (or
  // crashed) between mkdir and the parent's fsync, and an object put under it would vanish with
  // it in a power loss. This runs only when a Put found a directory missing, so the extra fsyncs
  // are paid once per directory, not per object.
  absl::Status MakeKeyDirs(std::string_view key) {
    absl::Status status = MakeKeyDirsOnce(key);
    MutexLock lock(&mu_);
    for (size_t slash = key.find('/'); slash != std::string_view::npos;
         slash = key.find('/', slash + 1)) {
      // After a failure a directory may exist without being durable, and the next Put would find
      // it and skip MakeKeyDirs: remember to redo the fsyncs.
      if (status.ok()) {
        dirs_in_doubt_.erase(std::string(key.substr(0, slash)));
      } else {
        dirs_in_doubt_.insert(std::string(key.substr(0, slash)));
      }
    }
    return status;
  }

  // True if a directory of `key` may exist without being durable (see MakeKeyDirs).
  bool DirsInDoubt(std::string_view key) {
    MutexLock lock(&mu_);
    if (dirs_in_doubt_.empty()) return false;
    for (size_t slash = key.find('/'); slash != std::string_view::npos;
         slash = key.find('/', slash + 1)) {
      if (dirs_in_doubt_.contains(std::string(key.substr(0, slash)))) return true;
    }
    return false;
  }

  absl::Status MakeKeyDirsOnce(std::string_view key) {
    std::string dir = root_;
    for (size_t slash = key.find('/'); slash != std::string_view::npos;
         slash = key.find('/', slash + 1)) {
      const std::string parent = dir;
      dir = PathOf(key.substr(0, slash));
      absl::Status created = fs_->CreateDir(dir);
      if (!created.ok() && !absl::IsAlreadyExists(created)) return created;
      if (absl::Status s = fs_->SyncDir(parent); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  void RemoveTemp(const std::string& temp) {
    // Best effort: a leftover temporary file holds no committed data and is listed by nothing
    // (format.md §2); the error that made us clean up is the one the caller needs.
    absl::Status s = fs_->Remove(temp);
    if (!s.ok() && !absl::IsNotFound(s)) {
      ICKPT_LOG_ONCE("local_store.remove_temp", LogLevel::kWarn,
                     "could not remove temporary file {}: {} (logged once)", temp, s.ToString());
    }
  }

  // Writes `data` to a new temporary file next to `final_path` and fsyncs it. Returns its path;
  // on failure the file is removed.
  absl::StatusOr<std::string> WriteTemp(std::string_view key, const std::string& final_path,
                                        std::string_view data) {
    const std::string temp = StrCat(final_path, kTempInfix, RandomHex128());
    if (DirsInDoubt(key)) {
      if (absl::Status s = MakeKeyDirs(key); !s.ok()) return Annotate(s, "put", key);
    }
    absl::StatusOr<std::unique_ptr<WritableFile>> file = fs_->NewWritableFile(temp);
    if (absl::IsNotFound(file.status()) && key.find('/') != std::string_view::npos) {
      // The fast path assumes the directories exist; create them only when they do not.
      if (absl::Status s = MakeKeyDirs(key); !s.ok()) return Annotate(s, "put", key);
      file = fs_->NewWritableFile(temp);
    }
    if (!file.ok()) return Annotate(file.status(), "put", key);
    absl::Status s = (*file)->Append(data);
    if (s.ok()) s = (*file)->Sync();
    if (s.ok()) {
      s = (*file)->Close();
    } else {
      // Closing only releases the descriptor; its status adds nothing to the error above.
      (*file)->Close().IgnoreError();
    }
    file->reset();
    if (!s.ok()) {
      RemoveTemp(temp);
      return Annotate(s, "put", key);
    }
    return temp;
  }

  struct PageBounds {
    std::string_view prefix;
    std::string_view start_after;
    size_t limit = 0;  // stop once this many objects are collected
  };

  // Whether `key` is an object of the page if it names a file.
  static bool FileInPage(std::string_view key, const PageBounds& bounds) {
    return key.starts_with(bounds.prefix) && key > bounds.start_after;
  }
  // Whether a directory whose objects' keys start with `sub_key` (ending in '/') may hold objects
  // of the page.
  static bool DirMayHoldPage(std::string_view sub_key, const PageBounds& bounds) {
    return (sub_key.starts_with(bounds.prefix) || bounds.prefix.starts_with(sub_key)) &&
           (sub_key > bounds.start_after || bounds.start_after.starts_with(sub_key));
  }

  // Appends to `out`, in key order, the objects under directory `dir` (key prefix `dir_key`, "" or
  // ending in '/') within `bounds`, until `out` holds bounds.limit objects.
  //
  // Key order is not name order: a directory "a" holds keys "a/...", which sort after a file
  // "a-b" or "a.b" ('-' and '.' sort before '/'). Each entry therefore sorts by its key as a file
  // until it is stat()ed, and then by its real one ("a/" for a directory), which is never smaller;
  // an entry is taken only when it is the smallest and its real key is known. So only the entries
  // up to the end of the page are stat()ed, however many the directory holds (it is read whole:
  // one directory listing per page).
  absl::Status WalkPage(const std::string& dir, const std::string& dir_key,
                        const PageBounds& bounds, std::vector<ObjectInfo>* out) {
    absl::StatusOr<std::vector<std::string>> names = fs_->ListDir(dir);
    if (!names.ok()) {
      // A directory removed while listing holds no objects.
      if (absl::IsNotFound(names.status()) && !dir_key.empty()) return absl::OkStatus();
      return absl::Status(names.status().code(),
                          StrCat("list ", Describe(), ": ", names.status().message()));
    }
    struct Entry {
      std::string sort_key;  // the key as a file, or the real key once `known`
      std::string name;
      bool known = false;
      bool is_dir = false;
    };
    auto later = [](const Entry& a, const Entry& b) { return a.sort_key > b.sort_key; };
    std::priority_queue<Entry, std::vector<Entry>, decltype(later)> entries(later);
    for (std::string& name : *names) {
      if (Contains(name, kTempInfix)) continue;
      std::string key = StrCat(dir_key, name);
      // Only names that are valid keys are objects; anything else was put there by someone else.
      // Entries that cannot hold an object of the page are decided from the name alone, never
      // stat()ed.
      if (!ValidateObjectKey(key).ok() ||
          !(FileInPage(key, bounds) || DirMayHoldPage(StrCat(key, "/"), bounds))) {
        continue;
      }
      entries.push(Entry{std::move(key), std::move(name)});
    }
    while (!entries.empty() && out->size() < bounds.limit) {
      Entry entry = entries.top();
      entries.pop();
      const std::string path = StrCat(dir, "/", entry.name);
      if (!entry.known) {
        absl::StatusOr<bool> is_dir = fs_->IsDirectory(path);
        if (absl::IsNotFound(is_dir.status())) continue;  // deleted meanwhile
        if (!is_dir.ok()) return is_dir.status();
        entry.known = true;
        entry.is_dir = *is_dir;
        if (entry.is_dir) entry.sort_key += '/';
        entries.push(std::move(entry));
        continue;
      }
      if (entry.is_dir) {
        if (!DirMayHoldPage(entry.sort_key, bounds)) continue;
        if (absl::Status s = WalkPage(path, entry.sort_key, bounds, out); !s.ok()) return s;
        continue;
      }
      const std::string& key = entry.sort_key;
      if (!FileInPage(key, bounds)) continue;
      absl::StatusOr<uint64_t> size = fs_->FileSize(path);
      if (absl::IsNotFound(size.status())) continue;
      if (!size.ok()) return size.status();
      absl::StatusOr<absl::Time> modified = fs_->ModificationTime(path);
      if (absl::IsNotFound(modified.status())) continue;
      if (!modified.ok()) return modified.status();
      out->push_back(ObjectInfo{key, *size, *modified});
    }
    return absl::OkStatus();
  }

  struct DebrisSweep {
    absl::Time cutoff;  // debris last modified before this is removed
    uint64_t removed = 0;
  };

  // True for the name of a temporary file this store writes: `<component>.tmp-<hex>`.
  static bool IsTempName(std::string_view name) {
    const size_t infix = name.find(kTempInfix);
    if (infix == std::string_view::npos || infix == 0) return false;
    const std::string_view final_name = name.substr(0, infix);
    const std::string_view random = name.substr(infix + kTempInfix.size());
    if (random.empty() || !ValidateObjectKey(final_name).ok()) return false;
    return std::all_of(random.begin(), random.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  }

  // Removes the old temporary files in `dir` (key prefix `dir_key`) and in the key directories
  // below it. Foreign names are left alone, and not descended into.
  absl::Status SweepDebris(const std::string& dir, const std::string& dir_key, DebrisSweep* sweep) {
    absl::StatusOr<std::vector<std::string>> names = fs_->ListDir(dir);
    if (!names.ok()) {
      if (absl::IsNotFound(names.status()) && !dir_key.empty()) return absl::OkStatus();
      return names.status();
    }
    for (const std::string& name : *names) {
      const std::string path = StrCat(dir, "/", name);
      if (IsTempName(name)) {
        absl::StatusOr<absl::Time> modified = fs_->ModificationTime(path);
        if (absl::IsNotFound(modified.status())) continue;  // its writer finished meanwhile
        if (!modified.ok()) return modified.status();
        if (*modified >= sweep->cutoff) continue;  // a writer may still be using it
        absl::StatusOr<bool> is_dir = fs_->IsDirectory(path);
        if (absl::IsNotFound(is_dir.status())) continue;
        if (!is_dir.ok()) return is_dir.status();
        if (*is_dir) continue;  // not a file this store wrote
        // Removes a name, never data an object holds: a temporary file that a publish linked
        // before its writer crashed is a second name of the object.
        absl::Status s = fs_->Remove(path);
        if (absl::IsNotFound(s)) continue;
        if (!s.ok()) return s;
        // The directory is not fsynced: a removal lost in a crash leaves debris for the next
        // sweep, nothing worse.
        ++sweep->removed;
        continue;
      }
      const std::string key = StrCat(dir_key, name);
      if (Contains(name, kTempInfix) || !ValidateObjectKey(key).ok()) continue;
      absl::StatusOr<bool> is_dir = fs_->IsDirectory(path);
      if (absl::IsNotFound(is_dir.status())) continue;
      if (!is_dir.ok()) return is_dir.status();
      if (*is_dir) {
        if (absl::Status s = SweepDebris(path, StrCat(key, "/"), sweep); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  const std::string root_;
  FileSystem* const fs_;
  Mutex mu_;
  // Key directories (relative to the root) a failed MakeKeyDirs may have left not durable.
  std::set<std::string> dirs_in_doubt_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<ObjectStore>> OpenLocalStore(const std::string& root,
                                                            const LocalStoreOptions& options) {
  if (root.empty()) return absl::InvalidArgumentError("local store: empty root path");
  FileSystem* fs = options.file_system != nullptr ? options.file_system : DefaultFileSystem();
  std::string normalized = root;
  while (normalized.size() > 1 && normalized.back() == '/') normalized.pop_back();
  absl::StatusOr<bool> is_dir = fs->IsDirectory(normalized);
  if (is_dir.ok() && !*is_dir) {
    return absl::FailedPreconditionError(
        StrCat("local store root ", normalized, " is not a directory"));
  }
  if (!is_dir.ok()) {
    if (!absl::IsNotFound(is_dir.status())) return is_dir.status();
    if (!options.create_if_missing) {
      return absl::NotFoundError(
          StrCat("local store root ", normalized, " does not exist (create_if_missing is false)"));
    }
    if (absl::Status s = MakeDirs(fs, normalized); !s.ok()) return s;
  }
  return std::make_unique<LocalStore>(std::move(normalized), fs);
}

}  // namespace ickpt
