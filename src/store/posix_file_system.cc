// DefaultFileSystem(): the FileSystem interface on POSIX calls. Files are created 0600 and
// directories 0700 (format.md §10); every descriptor is O_CLOEXEC so a fork+exec in the application
// does not inherit them. Calls interrupted by a signal (EINTR) are retried.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ickpt/store.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

// Maps errno to the few codes store.h promises. `what` names the operation and the path.
absl::Status ErrnoStatus(int err, std::string_view what) {
  const std::string message = StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      // A retry does not help; the caller has to change permissions or the path.
      return absl::PermissionDeniedError(message);
    case EISDIR:
    case ENOTEMPTY:
      return absl::FailedPreconditionError(message);
    case EBADF:
    case EFAULT:
    case EINVAL:
      // These mean this code passed a bad descriptor or argument, not that storage failed.
      return absl::InternalError(message);
    default:
      // EIO and the rest: the device or a network file system failed; a retry (of the whole
      // object, never of fsync on the same file, format.md §8) may help.
      return absl::UnavailableError(message);
  }
}

template <typename F>
auto RetryOnEintr(F f) {
  decltype(f()) result;
  do {
    result = f();
  } while (result == -1 && errno == EINTR);
  return result;
}

// Direct I/O (docs/persist.md): an append of at least kDirectMinBytes goes to the device without
// the page cache, from an aligned bounce buffer, kDirectChunkBytes at a time. Copying a pack into
// the page cache cost more CPU than compressing it on these machines (fio: buffered 41-75% of a
// core for 0.6-1.5 GB/s, direct 12-16% for 1.3-1.8 GB/s), and the persist thread competes with the
// application for the CPU. Alignment: 4096, a multiple of every logical block size in use.
constexpr size_t kDirectAlign = 4096;
constexpr size_t kDirectMinBytes = 256 * 1024;
constexpr size_t kDirectChunkBytes = 1024 * 1024;

// This thread's aligned bounce buffer of kDirectChunkBytes (allocated once, freed at thread exit).
char* DirectBounceBuffer() {
  struct Buffer {
    ~Buffer() { std::free(data); }
    char* data = nullptr;
  };
  thread_local Buffer buffer;
  if (buffer.data == nullptr) {
    buffer.data = static_cast<char*>(std::aligned_alloc(kDirectAlign, kDirectChunkBytes));
  }
  return buffer.data;
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    // The caller dropped the file without Close (usually after an error): release the descriptor;
    // nothing is promised about the content.
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Append(std::string_view data) override {
    if (absl::Status s = CheckUsable("append to"); !s.ok()) return s;
    if (data.size() >= kDirectMinBytes && direct_possible_ && offset_ % kDirectAlign == 0) {
      absl::StatusOr<size_t> direct =
          AppendDirect(data.substr(0, data.size() / kDirectAlign * kDirectAlign));
      if (!direct.ok()) return Fail(direct.status());
      data.remove_prefix(*direct);
      offset_ += *direct;
    }
    while (!data.empty()) {
      const ssize_t n = RetryOnEintr([&] { return ::write(fd_, data.data(), data.size()); });
      if (n < 0) return Fail(ErrnoStatus(errno, StrCat("write ", path_)));
      data.remove_prefix(static_cast<size_t>(n));  // a short write: loop for the rest
      offset_ += static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (absl::Status s = CheckUsable("sync"); !s.ok()) return s;
    if (RetryOnEintr([&] { return ::fsync(fd_); }) != 0) {
      // After a failed fsync the kernel may have dropped the dirty pages and cleared the error, so
      // a second fsync could report success for lost data (format.md §8): refuse further use.
      return Fail(ErrnoStatus(errno, StrCat("fsync ", path_)));
    }
    return absl::OkStatus();
  }

  absl::Status Close() override {
    if (fd_ < 0) {
      return absl::FailedPreconditionError(StrCat("close ", path_, ": already closed"));
    }
    const int fd = fd_;
    fd_ = -1;
    // Never retry close on EINTR: Linux releases the descriptor anyway and a retry could close a
    // descriptor another thread just opened.
    if (::close(fd) != 0 && errno != EINTR) {
      return ErrnoStatus(errno, StrCat("close ", path_));
    }
    // An earlier write or sync error was already reported by the call that hit it.
    return absl::OkStatus();
  }

 private:
  absl::Status CheckUsable(std::string_view op) const {
    if (fd_ < 0) return absl::FailedPreconditionError(StrCat(op, " ", path_, ": closed"));
    if (failed_) {
      return absl::FailedPreconditionError(
          StrCat(op, " ", path_, ": an earlier write or sync failed; rewrite the file"));
    }
    return absl::OkStatus();
  }
  absl::Status Fail(absl::Status status) {
    failed_ = true;
    return status;
  }

  // Writes `data` (a multiple of kDirectAlign, at an aligned offset) with O_DIRECT; returns the
  // bytes written, which are fewer (a multiple of kDirectAlign, possibly 0) if the file system
  // refuses direct I/O (tmpfs, some FUSE file systems) or a write came back short: the caller
  // writes the rest through the page cache. The descriptor is back to buffered afterwards. The
  // data is durable only after Sync(), as for buffered writes (fsync also flushes the device's
  // cache).
  absl::StatusOr<size_t> AppendDirect(std::string_view data) {
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_DIRECT) != 0) {
      direct_possible_ = false;
      return 0;
    }
    char* bounce = DirectBounceBuffer();
    size_t done = 0;
    absl::Status error;
    while (bounce != nullptr && done < data.size()) {
      const size_t chunk = std::min(kDirectChunkBytes, data.size() - done);
      std::memcpy(bounce, data.data() + done, chunk);
      const ssize_t n = RetryOnEintr([&] { return ::write(fd_, bounce, chunk); });
      if (n < 0 && errno == EINVAL && done == 0) {
        direct_possible_ = false;  // refused before anything was written: buffered from now
        break;
      }
      if (n < 0) {
        error = ErrnoStatus(errno, StrCat("write ", path_));
        break;
      }
      done += static_cast<size_t>(n);
      if (static_cast<size_t>(n) != chunk) break;  // short: the rest goes buffered
    }
    if (bounce == nullptr) direct_possible_ = false;
    const size_t aligned = done / kDirectAlign * kDirectAlign;
    if (aligned != done) {
      // A short direct write that ended off alignment: step back so the buffered write continues
      // at an aligned place (it rewrites those bytes).
      if (::lseek(fd_, static_cast<off_t>(offset_ + aligned), SEEK_SET) < 0 && error.ok()) {
        error = ErrnoStatus(errno, StrCat("seek ", path_));
      }
    }
    if (::fcntl(fd_, F_SETFL, flags) != 0 && error.ok()) {
      error = ErrnoStatus(errno, StrCat("fcntl ", path_));
    }
    if (!error.ok()) return error;
    return aligned;
  }

  const std::string path_;
  int fd_;
  bool failed_ = false;
  uint64_t offset_ = 0;  // bytes appended so far
  bool direct_possible_ = true;
};

class PosixFileSystem final : public FileSystem {
 public:
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    const int fd = RetryOnEintr(
        [&] { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); });
    if (fd < 0) return ErrnoStatus(errno, StrCat("create ", path));
    return std::make_unique<PosixWritableFile>(path, fd);
  }

  absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t offset,
                                       uint64_t length) override {
    const int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
    if (fd < 0) return ErrnoStatus(errno, StrCat("open ", path));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, StrCat("stat ", path));
    }
    // Size the buffer by what the file holds, not by `length`, which may be "everything" (~0).
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    const uint64_t want = offset >= size ? 0 : std::min<uint64_t>(length, size - offset);
    std::string out(want, '\0');
    uint64_t done = 0;
    while (done < want) {
      const ssize_t n = RetryOnEintr([&] {
        return ::pread(fd, out.data() + done, want - done, static_cast<off_t>(offset + done));
      });
      if (n < 0) {
        const int err = errno;
        ::close(fd);
        return ErrnoStatus(err, StrCat("read ", path, " at offset ", offset + done));
      }
      if (n == 0) break;  // the file shrank since fstat: return what is there
      done += static_cast<uint64_t>(n);
    }
    ::close(fd);
    out.resize(done);
    return out;
  }

  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, StrCat("stat ", path));
    if (S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(StrCat("stat ", path, ": is a directory"));
    }
    return static_cast<uint64_t>(st.st_size);
  }

  absl::StatusOr<absl::Time> ModificationTime(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, StrCat("stat ", path));
    return absl::TimeFromTimespec(st.st_mtim);
  }

  absl::Status CreateDir(const std::string& path) override {
    if (RetryOnEintr([&] { return ::mkdir(path.c_str(), 0700); }) != 0) {
      return ErrnoStatus(errno, StrCat("mkdir ", path));
    }
    return absl::OkStatus();
  }

  absl::Status SyncDir(const std::string& path) override {
    const int fd =
        RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    if (fd < 0) return ErrnoStatus(errno, StrCat("open directory ", path));
    absl::Status status;
    if (RetryOnEintr([&] { return ::fsync(fd); }) != 0) {
      status = ErrnoStatus(errno, StrCat("fsync directory ", path));
    }
    ::close(fd);
    return status;
  }

  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (RetryOnEintr([&] { return ::rename(from.c_str(), to.c_str()); }) != 0) {
      return ErrnoStatus(errno, StrCat("rename ", from, " to ", to));
    }
    return absl::OkStatus();
  }

  absl::Status Link(const std::string& from, const std::string& to) override {
    if (RetryOnEintr([&] { return ::link(from.c_str(), to.c_str()); }) != 0) {
      return ErrnoStatus(errno, StrCat("link ", from, " to ", to));
    }
    return absl::OkStatus();
  }

  // Removes a file, or an empty directory (the fault-injecting file system undoes directory
  // creation with it).
  absl::Status Remove(const std::string& path) override {
    if (RetryOnEintr([&] { return ::unlink(path.c_str()); }) == 0) return absl::OkStatus();
    // Linux reports EISDIR, POSIX allows EPERM, for unlink of a directory: remove it as an empty
    // directory instead.
    if (errno == EISDIR || errno == EPERM) {
      if (RetryOnEintr([&] { return ::rmdir(path.c_str()); }) == 0) return absl::OkStatus();
    }
    return ErrnoStatus(errno, StrCat("remove ", path));
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return ErrnoStatus(errno, StrCat("opendir ", path));
    std::vector<std::string> names;
    while (true) {
      errno = 0;
      const struct dirent* entry = ::readdir(dir);
      if (entry == nullptr) {
        const int err = errno;
        ::closedir(dir);
        if (err != 0) return ErrnoStatus(err, StrCat("readdir ", path));
        return names;
      }
      const std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
  }

  absl::StatusOr<bool> IsDirectory(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, StrCat("stat ", path));
    return S_ISDIR(st.st_mode);
  }
};

}  // namespace

FileSystem* DefaultFileSystem() {
  // Stateless and never destroyed, so it stays usable from static destructors.
  static PosixFileSystem* const file_system = new PosixFileSystem();
  return file_system;
}

}  // namespace ickpt
