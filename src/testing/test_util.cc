#include "src/testing/test_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "src/util/str.h"

namespace ickpt::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = (base != nullptr && base[0] != '\0') ? base : "/tmp";
  while (pattern.size() > 1 && pattern.back() == '/') pattern.pop_back();
  pattern += "/ickpt-test-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    std::perror(("mkdtemp " + pattern).c_str());
    std::abort();  // nothing a test can do without its directory
  }
  path_ = buf.data();
}

TempDir::~TempDir() { RemoveRecursively(path_); }

void RemoveRecursively(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    // A test may have made it unreadable (permission tests): make it ours again first.
    ::chmod(path.c_str(), 0700);
    if (DIR* dir = ::opendir(path.c_str()); dir != nullptr) {
      std::vector<std::string> names;
      while (const struct dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") names.push_back(name);
      }
      ::closedir(dir);
      for (const std::string& name : names) RemoveRecursively(path + "/" + name);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

std::string RandomBytes(size_t n, uint64_t seed) {
  // splitmix64: tiny, well mixed, and identical everywhere (unlike std:: distributions).
  std::string out(n, '\0');
  uint64_t state = seed;
  for (size_t i = 0; i < n; i += 8) {
    state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<char>(z >> (8 * j));
  }
  return out;
}

}  // namespace ickpt::testing
