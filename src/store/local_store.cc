// The local-directory object store (format.md §2) and key validation.
//
// Durability follows format.md §8.1: an object is written to `<final>.tmp-<random>`, fsynced,
// renamed (Put) or linked (Publish) onto its final name, and the directory fsynced. A directory the
// store creates is fsynced into its parent. After any failure the temporary file is removed and the
// object is written again from scratch by the caller's retry; fsync is never retried on a file
// (§8.2).
//
// Thread safety: the only mutable state, the directories whose durability is in doubt after a
// failure, is guarded by a mutex; otherwise concurrency is the file system's.
#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "src/util/mutex.h"
#include "ickpt/store.h"
#include "src/util/hash.h"
#include "src/util/log.h"
#include "src/util/str.h"

namespace ickpt {

absl::Status ValidateObjectKey(std::string_view key) {
  constexpr size_t kMaxKeyBytes = 256;
  constexpr size_t kMaxComponents = 8;
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("invalid object key \"", absl::CHexEscape(ToAbsl(key.substr(0, 300))), "\": ", why,
                     " (format.md §2)"));
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

  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override {
    if (Contains(prefix, "..")) {
      return absl::InvalidArgumentError(
          StrCat("list ", Describe(), ": prefix \"", prefix, "\" contains \"..\""));
    }
    std::vector<ObjectInfo> out;
    if (absl::Status s = Walk(root_, "", prefix, &out); !s.ok()) return s;
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
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

  std::string Describe() const override { return StrCat("local:", root_); }

 private:
  std::string PathOf(std::string_view key) const { return StrCat(root_, "/", key); }

  absl::Status CheckKey(std::string_view key) const {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    // The store's own temporary files use this infix; an object named like one would be invisible
    // to List.
    if (Contains(key, kTempInfix)) {
      return absl::InvalidArgumentError(StrCat(
          "invalid object key \"", key, "\" for ", Describe(), ": contains \"", kTempInfix, "\""));
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

  // Adds the objects under directory `dir` (key prefix `dir_key`, "" or ending in '/') whose keys
  // start with `prefix`.
  absl::Status Walk(const std::string& dir, const std::string& dir_key, std::string_view prefix,
                    std::vector<ObjectInfo>* out) {
    absl::StatusOr<std::vector<std::string>> names = fs_->ListDir(dir);
    if (!names.ok()) {
      // A directory removed while listing holds no objects.
      if (absl::IsNotFound(names.status()) && !dir_key.empty()) return absl::OkStatus();
      return absl::Status(names.status().code(), StrCat("list ", Describe(), ": ",
                                                              names.status().message()));
    }
    for (const std::string& name : *names) {
      if (Contains(name, kTempInfix)) continue;
      const std::string key = StrCat(dir_key, name);
      // Only names that are valid keys are objects; anything else was put there by someone else.
      if (!ValidateObjectKey(key).ok()) continue;
      const std::string path = StrCat(dir, "/", name);
      absl::StatusOr<bool> is_dir = fs_->IsDirectory(path);
      if (absl::IsNotFound(is_dir.status())) continue;  // deleted meanwhile
      if (!is_dir.ok()) return is_dir.status();
      if (*is_dir) {
        const std::string sub_key = StrCat(key, "/");
        // Descend only where a key could start with `prefix`.
        if (sub_key.starts_with(prefix) || prefix.starts_with(sub_key)) {
          if (absl::Status s = Walk(path, sub_key, prefix, out); !s.ok()) return s;
        }
        continue;
      }
      if (!key.starts_with(prefix)) continue;
      absl::StatusOr<uint64_t> size = fs_->FileSize(path);
      if (absl::IsNotFound(size.status())) continue;
      if (!size.ok()) return size.status();
      out->push_back(ObjectInfo{key, *size});
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
      return absl::NotFoundError(StrCat("local store root ", normalized,
                                              " does not exist (create_if_missing is false)"));
    }
    if (absl::Status s = MakeDirs(fs, normalized); !s.ok()) return s;
  }
  return std::make_unique<LocalStore>(std::move(normalized), fs);
}

}  // namespace ickpt
