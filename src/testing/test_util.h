// Helpers for tests: a temporary directory removed on destruction and reproducible random bytes.
// Status assertions are in status_matchers.h.
//
// Thread safety: TempDir is not shared between threads; RandomBytes is a pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ickpt::testing {

// A fresh directory (mode 0700) under $TMPDIR, or /tmp, created with mkdtemp. The destructor
// removes it and everything in it. Aborts the test process if it cannot be created.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Absolute path, without a trailing '/'.
  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// `n` pseudo-random bytes, the same for the same `seed` on every platform and run.
std::string RandomBytes(size_t n, uint64_t seed);

// Removes a file or a directory tree; errors are ignored (test cleanup).
void RemoveRecursively(const std::string& path);

}  // namespace ickpt::testing
