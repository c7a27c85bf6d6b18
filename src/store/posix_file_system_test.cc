// The POSIX file system's writes: large appends go to the device with O_DIRECT (docs/persist.md)
// and small ones, unaligned tails and file systems that refuse direct I/O through the page cache.
// Whatever path a byte takes, the file must hold exactly what was appended.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ickpt/store.h"
#include "src/testing/status_matchers.h"
#include "src/testing/test_util.h"

namespace ickpt {
namespace {

using ::ickpt::testing::RandomBytes;
using ::ickpt::testing::TempDir;

// Appends `pieces` to a new file at `path`, syncs and closes it, and returns what reads back.
std::string WriteAndReadBack(const std::string& path, const std::vector<std::string>& pieces) {
  FileSystem* fs = DefaultFileSystem();
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs->NewWritableFile(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return "";
  for (const std::string& piece : pieces) {
    absl::Status s = (*file)->Append(piece);
    EXPECT_TRUE(s.ok()) << s;
  }
  EXPECT_TRUE((*file)->Sync().ok());
  EXPECT_TRUE((*file)->Close().ok());
  absl::StatusOr<std::string> data = fs->ReadFile(path, 0, ~uint64_t{0});
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *data : "";
}

// Sizes around the direct-write threshold (256 KiB), its chunk (1 MiB) and the alignment (4 KiB).
const std::vector<size_t> kSizes = {1,
                                    4095,
                                    4096,
                                    256 * 1024 - 1,
                                    256 * 1024,
                                    256 * 1024 + 1,
                                    1 << 20,
                                    (1 << 20) + 4095,
                                    (3 << 20) + 17,
                                    4 << 20};

void ExpectExactFiles(const std::string& dir) {
  uint64_t seed = 1;
  for (size_t size : kSizes) {
    SCOPED_TRACE(size);
    const std::string data = RandomBytes(size, seed++);
    EXPECT_EQ(WriteAndReadBack(dir + "/one-" + std::to_string(size), {data}), data);
  }
  // Several appends: a small one first leaves the offset unaligned for the large one that follows
  // (which then goes through the page cache), an aligned one first lets the next go direct.
  for (size_t first : {size_t{100}, size_t{4096}, size_t{1} << 20}) {
    SCOPED_TRACE(first);
    const std::vector<std::string> pieces = {
        RandomBytes(first, seed++), RandomBytes((2 << 20) + 5, seed++),
        RandomBytes(300 * 1024, seed++), RandomBytes(7, seed++)};
    std::string all;
    for (const std::string& p : pieces) all += p;
    EXPECT_EQ(WriteAndReadBack(dir + "/pieces-" + std::to_string(first), pieces), all);
  }
}

TEST(PosixFileSystemTest, LargeAndSmallAppendsReadBackExactly) {
  TempDir dir;
  ExpectExactFiles(dir.path());
}

// Whether the file system under `dir` accepts O_DIRECT.
bool DirectIoWorks(const std::string& dir) {
  const std::string probe = dir + "/direct-probe";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  ::close(fd);
  ::unlink(probe.c_str());
  return true;
}

// Pages of `path` in the page cache.
size_t CachedPages(const std::string& path, size_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SIZE_MAX;
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return SIZE_MAX;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  size_t cached = SIZE_MAX;
  if (::mincore(map, size, resident.data()) == 0) {
    cached = 0;
    for (unsigned char r : resident) cached += r & 1;
  }
  ::munmap(map, size);
  return cached;
}

TEST(PosixFileSystemTest, ALargeAppendBypassesThePageCache) {
  TempDir dir;
  if (!DirectIoWorks(dir.path())) GTEST_SKIP() << dir.path() << " does not take O_DIRECT";
  const size_t size = (4 << 20) + 100;
  const std::string path = dir.Join("pack");
  FileSystem* fs = DefaultFileSystem();
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs->NewWritableFile(path);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append(RandomBytes(size, 7)).ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Close().ok());
  // Only the unaligned tail went through the cache (1024 pages were written).
  EXPECT_LE(CachedPages(path, size), 1u);
}

TEST(PosixFileSystemTest, AFileSystemWithoutDirectIoGetsTheSameBytes) {
  // tmpfs refuses O_DIRECT: the writes fall back to the page cache.
  struct stat st;
  if (::stat("/dev/shm", &st) != 0 || !S_ISDIR(st.st_mode)) GTEST_SKIP() << "no /dev/shm";
  char templ[] = "/dev/shm/ickpt-posix-test-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  const std::string dir = templ;
  ExpectExactFiles(dir);
  FileSystem* fs = DefaultFileSystem();
  absl::StatusOr<std::vector<std::string>> names = fs->ListDir(dir);
  ASSERT_TRUE(names.ok());
  for (const std::string& name : *names) EXPECT_TRUE(fs->Remove(dir + "/" + name).ok());
  EXPECT_TRUE(fs->Remove(dir).ok());
}

}  // namespace
}  // namespace ickpt
