#include "src/store/fault_file_system.h"

#include <algorithm>
#include <utility>

#include "src/util/str.h"

namespace ickpt {
namespace {

std::string Normalize(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string ParentDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

// Forwards to the target's file and reports each call to the wrapper for counting and tracking.
class FaultInjectionFileSystem::File final : public WritableFile {
 public:
  File(FaultInjectionFileSystem* fs, std::unique_ptr<WritableFile> target,
       std::shared_ptr<FileData> data)
      : fs_(fs), target_(std::move(target)), data_(std::move(data)) {}

  absl::Status Append(std::string_view bytes) override {
    return fs_->FileAppend(target_.get(), data_, bytes, &failed_);
  }
  absl::Status Sync() override { return fs_->FileSync(target_.get(), data_, &failed_); }
  absl::Status Close() override { return fs_->FileClose(target_.get()); }

 private:
  FaultInjectionFileSystem* const fs_;
  const std::unique_ptr<WritableFile> target_;
  const std::shared_ptr<FileData> data_;
  bool failed_ = false;
};

FaultInjectionFileSystem::FaultInjectionFileSystem(FileSystem* target) : target_(target) {}
FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

absl::Status FaultInjectionFileSystem::Fire(int64_t count, Fault* fault) {
  if (fault->at == 0 || count != fault->at) return absl::OkStatus();
  absl::Status status = std::move(fault->status);
  *fault = Fault{};
  return status;
}

absl::Status FaultInjectionFileSystem::CountOperation() {
  ++operation_count_;
  return Fire(operation_count_, &operation_fault_);
}

absl::Status FaultInjectionFileSystem::CountRead() {
  ++read_count_;
  return Fire(read_count_, &read_fault_);
}

void FaultInjectionFileSystem::AddEntry(EntryChange change) {
  entries_.push_back(std::move(change));
}

std::optional<std::string> FaultInjectionFileSystem::DurableContent(const std::string& path) {
  absl::StatusOr<bool> is_dir = target_->IsDirectory(path);
  if (!is_dir.ok() || *is_dir) return std::nullopt;
  uint64_t length = ~uint64_t{0};
  if (auto it = files_.find(path); it != files_.end()) length = it->second->synced;
  absl::StatusOr<std::string> data = target_->ReadFile(path, 0, length);
  if (!data.ok()) return std::nullopt;
  return *std::move(data);
}

absl::Status FaultInjectionFileSystem::WriteWhole(const std::string& path,
                                                  const std::string& data) {
  absl::StatusOr<std::unique_ptr<WritableFile>> file = target_->NewWritableFile(path);
  if (!file.ok()) return file.status();
  absl::Status s = (*file)->Append(data);
  if (s.ok()) s = (*file)->Sync();
  absl::Status closed = (*file)->Close();
  return s.ok() ? closed : s;
}

absl::Status FaultInjectionFileSystem::RemoveRecursively(const std::string& path) {
  absl::StatusOr<bool> is_dir = target_->IsDirectory(path);
  if (absl::IsNotFound(is_dir.status())) return absl::OkStatus();
  if (!is_dir.ok()) return is_dir.status();
  if (*is_dir) {
    absl::StatusOr<std::vector<std::string>> names = target_->ListDir(path);
    if (!names.ok()) return names.status();
    for (const std::string& name : *names) {
      if (absl::Status s = RemoveRecursively(StrCat(path, "/", name)); !s.ok()) return s;
    }
  }
  files_.erase(path);
  absl::Status s = target_->Remove(path);
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::NewWritableFile(
    const std::string& raw_path) {
  const std::string path = Normalize(raw_path);
  MutexLock lock(&mu_);
  if (absl::Status s = CountOperation(); !s.ok()) return s;
  const bool existed = target_->FileSize(path).ok();
  absl::StatusOr<std::unique_ptr<WritableFile>> file = target_->NewWritableFile(path);
  if (!file.ok()) return file.status();
  // Opening truncates: a replaced file's durable content is now empty, like a new file's.
  auto data = std::make_shared<FileData>();
  files_[path] = data;
  if (!existed) {
    AddEntry(EntryChange{
        .kind = EntryKind::kCreateFile, .path = path, .dirs_to_sync = {ParentDir(path)}});
  }
  return std::make_unique<File>(this, *std::move(file), std::move(data));
}

absl::Status FaultInjectionFileSystem::FileAppend(WritableFile* target,
                                                  const std::shared_ptr<FileData>& data,
                                                  std::string_view bytes, bool* failed) {
  MutexLock lock(&mu_);
  absl::Status injected = CountOperation();
  ++write_count_;
  if (injected.ok()) injected = Fire(write_count_, &write_fault_);
  if (!injected.ok()) {
    *failed = true;
    return injected;
  }
  if (*failed) {
    return absl::FailedPreconditionError("append after a failed write or sync (fault injection)");
  }
  if (short_write_fault_.at != 0 && write_count_ == short_write_fault_.at) {
    short_write_fault_ = Fault{};
    const std::string_view half = bytes.substr(0, bytes.size() / 2);
    absl::Status s = target->Append(half);
    if (s.ok()) data->written += half.size();
    *failed = true;
    return absl::UnavailableError(StrCat("short write: wrote ", half.size(), " of ", bytes.size(),
                                         " bytes (fault injection)"));
  }
  absl::Status s = target->Append(bytes);
  if (!s.ok()) {
    *failed = true;
    return s;
  }
  data->written += bytes.size();
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::FileSync(WritableFile* target,
                                                const std::shared_ptr<FileData>& data,
                                                bool* failed) {
  MutexLock lock(&mu_);
  absl::Status injected = CountOperation();
  ++sync_count_;
  if (injected.ok()) injected = Fire(sync_count_, &sync_fault_);
  if (!injected.ok()) {
    // As after a real fsync failure, the unsynced data is as good as lost and the file unusable.
    *failed = true;
    return injected;
  }
  if (*failed) {
    return absl::FailedPreconditionError("sync after a failed write or sync (fault injection)");
  }
  absl::Status s = target->Sync();
  if (!s.ok()) {
    *failed = true;
    return s;
  }
  data->synced = data->written;
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::FileClose(WritableFile* target) {
  MutexLock lock(&mu_);
  if (absl::Status s = CountOperation(); !s.ok()) return s;
  return target->Close();
}

absl::StatusOr<std::string> FaultInjectionFileSystem::ReadFile(const std::string& path,
                                                               uint64_t offset, uint64_t length) {
  MutexLock lock(&mu_);
  if (absl::Status s = CountRead(); !s.ok()) return s;
  return target_->ReadFile(path, offset, length);
}

absl::StatusOr<uint64_t> FaultInjectionFileSystem::FileSize(const std::string& path) {
  MutexLock lock(&mu_);
  if (absl::Status s = CountRead(); !s.ok()) return s;
  return target_->FileSize(path);
}

absl::StatusOr<absl::Time> FaultInjectionFileSystem::ModificationTime(const std::string& path) {
  MutexLock lock(&mu_);
  if (absl::Status s = CountRead(); !s.ok()) return s;
  return target_->ModificationTime(path);
}

absl::Status FaultInjectionFileSystem::CreateDir(const std::string& raw_path) {
  const std::string path = Normalize(raw_path);
  MutexLock lock(&mu_);
  if (absl::Status s = CountOperation(); !s.ok()) return s;
  if (absl::Status s = target_->CreateDir(path); !s.ok()) return s;
  AddEntry(
      EntryChange{.kind = EntryKind::kCreateDir, .path = path, .dirs_to_sync = {ParentDir(path)}});
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::SyncDir(const std::string& raw_path) {
  const std::string path = Normalize(raw_path);
  MutexLock lock(&mu_);
  absl::Status injected = CountOperation();
  ++sync_dir_count_;
  if (injected.ok()) injected = Fire(sync_dir_count_, &sync_dir_fault_);
  if (!injected.ok()) return injected;
  if (absl::Status s = target_->SyncDir(path); !s.ok()) return s;
  for (EntryChange& change : entries_) change.dirs_to_sync.erase(path);
  std::erase_if(entries_, [](const EntryChange& c) { return c.dirs_to_sync.empty(); });
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::Rename(const std::string& raw_from,
                                              const std::string& raw_to) {
  const std::string from = Normalize(raw_from);
  const std::string to = Normalize(raw_to);
  MutexLock lock(&mu_);
  absl::Status injected = CountOperation();
  ++rename_count_;
  if (injected.ok()) injected = Fire(rename_count_, &rename_fault_);
  if (!injected.ok()) return injected;
  std::optional<std::string> replaced = DurableContent(to);
  if (absl::Status s = target_->Rename(from, to); !s.ok()) return s;
  files_.erase(to);
  if (auto node = files_.extract(from); !node.empty()) {
    node.key() = to;
    files_.insert(std::move(node));
  }
  AddEntry(EntryChange{.kind = EntryKind::kRename,
                       .path = to,
                       .from = from,
                       .saved = std::move(replaced),
                       .dirs_to_sync = {ParentDir(from), ParentDir(to)}});
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::Link(const std::string& raw_from,
                                            const std::string& raw_to) {
  const std::string from = Normalize(raw_from);
  const std::string to = Normalize(raw_to);
  MutexLock lock(&mu_);
  if (absl::Status s = CountOperation(); !s.ok()) return s;
  if (absl::Status s = target_->Link(from, to); !s.ok()) return s;
  if (auto it = files_.find(from); it != files_.end()) files_[to] = it->second;
  AddEntry(EntryChange{
      .kind = EntryKind::kLink, .path = to, .from = from, .dirs_to_sync = {ParentDir(to)}});
  return absl::OkStatus();
}

absl::Status FaultInjectionFileSystem::Remove(const std::string& raw_path) {
  const std::string path = Normalize(raw_path);
  MutexLock lock(&mu_);
  if (absl::Status s = CountOperation(); !s.ok()) return s;
  absl::StatusOr<bool> is_dir = target_->IsDirectory(path);
  std::optional<std::string> saved = DurableContent(path);
  if (absl::Status s = target_->Remove(path); !s.ok()) return s;
  files_.erase(path);
  AddEntry(EntryChange{.kind = EntryKind::kRemove,
                       .path = path,
                       .saved = std::move(saved),
                       .removed_dir = is_dir.ok() && *is_dir,
                       .dirs_to_sync = {ParentDir(path)}});
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> FaultInjectionFileSystem::ListDir(
    const std::string& path) {
  MutexLock lock(&mu_);
  if (absl::Status s = CountRead(); !s.ok()) return s;
  return target_->ListDir(path);
}

absl::StatusOr<bool> FaultInjectionFileSystem::IsDirectory(const std::string& path) {
  MutexLock lock(&mu_);
  if (absl::Status s = CountRead(); !s.ok()) return s;
  return target_->IsDirectory(path);
}

absl::Status FaultInjectionFileSystem::SimulatePowerLoss() {
  MutexLock lock(&mu_);
  absl::Status first_error;
  auto note = [&](absl::Status s) {
    if (!s.ok() && !absl::IsNotFound(s) && first_error.ok()) first_error = std::move(s);
  };
  // 1. Data: cut every tracked file back to its synced prefix. Linked names share one FileData and
  // one inode, so each file is rewritten once.
  std::set<const FileData*> done;
  for (const auto& [path, data] : files_) {
    if (data->synced == data->written || !done.insert(data.get()).second) continue;
    absl::StatusOr<std::string> prefix = target_->ReadFile(path, 0, data->synced);
    if (!prefix.ok()) {
      note(prefix.status());
      continue;
    }
    // Reopening with truncation keeps the inode, so other names of the file see the cut too.
    note(WriteWhole(path, *prefix));
  }
  // 2. Directory entries: undo the changes no SyncDir made durable, newest first.
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    const EntryChange& change = *it;
    switch (change.kind) {
      case EntryKind::kCreateFile:
      case EntryKind::kLink:
        note(target_->Remove(change.path));
        break;
      case EntryKind::kCreateDir:
        note(RemoveRecursively(change.path));
        break;
      case EntryKind::kRename:
        note(target_->Rename(change.path, change.from));
        if (change.saved.has_value()) note(WriteWhole(change.path, *change.saved));
        break;
      case EntryKind::kRemove:
        if (change.removed_dir) {
          note(target_->CreateDir(change.path));
        } else if (change.saved.has_value()) {
          note(WriteWhole(change.path, *change.saved));
        }
        break;
    }
  }
  files_.clear();
  entries_.clear();
  return first_error;
}

void FaultInjectionFileSystem::FailNthWrite(int64_t n, absl::Status status) {
  MutexLock lock(&mu_);
  write_fault_ = Fault{write_count_ + n, std::move(status)};
}
void FaultInjectionFileSystem::FailNthSync(int64_t n, absl::Status status) {
  MutexLock lock(&mu_);
  sync_fault_ = Fault{sync_count_ + n, std::move(status)};
}
void FaultInjectionFileSystem::FailNthSyncDir(int64_t n, absl::Status status) {
  MutexLock lock(&mu_);
  sync_dir_fault_ = Fault{sync_dir_count_ + n, std::move(status)};
}
void FaultInjectionFileSystem::FailNthRename(int64_t n, absl::Status status) {
  MutexLock lock(&mu_);
  rename_fault_ = Fault{rename_count_ + n, std::move(status)};
}
void FaultInjectionFileSystem::ShortWriteNth(int64_t n) {
  MutexLock lock(&mu_);
  short_write_fault_ = Fault{write_count_ + n, absl::OkStatus()};
}
void FaultInjectionFileSystem::FailNthOperation(int64_t n, absl::Status status) {
  MutexLock lock(&mu_);
  operation_fault_ = Fault{operation_count_ + n, std::move(status)};
}
void FaultInjectionFileSystem::FailNthRead(int64_t n, absl::Status status) {
  MutexLock lock(&mu_);
  read_fault_ = Fault{read_count_ + n, std::move(status)};
}
void FaultInjectionFileSystem::ClearFaults() {
  MutexLock lock(&mu_);
  operation_fault_ = write_fault_ = short_write_fault_ = sync_fault_ = sync_dir_fault_ =
      rename_fault_ = read_fault_ = Fault{};
}

int64_t FaultInjectionFileSystem::operation_count() const {
  MutexLock lock(&mu_);
  return operation_count_;
}
int64_t FaultInjectionFileSystem::write_count() const {
  MutexLock lock(&mu_);
  return write_count_;
}
int64_t FaultInjectionFileSystem::sync_count() const {
  MutexLock lock(&mu_);
  return sync_count_;
}
int64_t FaultInjectionFileSystem::sync_dir_count() const {
  MutexLock lock(&mu_);
  return sync_dir_count_;
}
int64_t FaultInjectionFileSystem::rename_count() const {
  MutexLock lock(&mu_);
  return rename_count_;
}
int64_t FaultInjectionFileSystem::read_count() const {
  MutexLock lock(&mu_);
  return read_count_;
}
void FaultInjectionFileSystem::ResetCounters() {
  MutexLock lock(&mu_);
  // Pending faults are relative to the counters, so they go too.
  operation_count_ = write_count_ = sync_count_ = sync_dir_count_ = rename_count_ = read_count_ = 0;
  operation_fault_ = write_fault_ = short_write_fault_ = sync_fault_ = sync_dir_fault_ =
      rename_fault_ = read_fault_ = Fault{};
}

uint64_t FaultInjectionFileSystem::unsynced_bytes() const {
  MutexLock lock(&mu_);
  uint64_t total = 0;
  std::set<const FileData*> seen;
  for (const auto& [path, data] : files_) {
    if (seen.insert(data.get()).second) total += data->written - data->synced;
  }
  return total;
}

size_t FaultInjectionFileSystem::unsynced_entry_count() const {
  MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace ickpt
