// Helpers for tests: a temporary directory removed on destruction and reproducible random bytes.
// Status assertions are in status_matchers.h.
//
// Thread safety: TempDir is not shared between threads; RandomBytes is a pure function.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

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

// What a program run by RunProgram did: its exit code (128 + the signal if it died of one), and
// everything it wrote to stdout and stderr.
struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};
// Runs `argv` (argv[0] a path) in directory `cwd` (empty: this one) with the test's environment,
// waits for it, and returns what it did; its output goes through files in `io_dir`.
RunResult RunProgram(const std::vector<std::string>& argv, const std::string& io_dir,
                     const std::string& cwd = "");
// The whole content of a file, or "" if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// A child process of a test: started by Spawn with its stdout and stderr appended to a log file,
// stopped by PID.
struct Process {
  pid_t pid = -1;
  std::string log;

  bool Alive() const;
  void Signal(int sig) const;
  // SIGCONT, SIGTERM, then SIGKILL after `grace`; reaps it.
  void Stop(absl::Duration grace = absl::Seconds(10));
  // SIGKILL now; reaps it.
  void Kill();
};
// Starts `args` (args[0] a path) with posix_spawn and the test's environment, output appended to
// `log`. A failure to start is reported on stderr and gives a Process with pid -1.
Process Spawn(const std::vector<std::string>& args, const std::string& log);

}  // namespace ickpt::testing
