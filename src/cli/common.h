// Shared pieces of the `ickpt` subcommands: exit codes, error reporting, opening a repository
// read-only, checkpoint ids ("latest"), JSON of commit records and a progress bar.
//
// Thread safety: Progress may be updated from any thread; everything else is called from the main
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ickpt/repository.h"

namespace CLI {
class App;
class Option;
class Validator;
}  // namespace CLI

namespace ickpt::cli {

// Exit codes (documented in `ickpt --help`; scripts depend on them).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // any other failure
inline constexpr int kExitUsage = 2;     // bad command line
inline constexpr int kExitDamaged = 3;   // a corrupt, truncated or missing object (DataLoss)
inline constexpr int kExitNotFound = 4;  // no such checkpoint/state object, or not a repository

// DataLoss → 3, NotFound → 4, everything else → 1 (a library InvalidArgument is not a usage
// error: usage errors are detected by the command line parser and the commands themselves).
int ExitCodeFor(const absl::Status& status);
// The worse of two exit codes: damaged > not found > failure > usage > ok.
int WorseExit(int a, int b);

// Writes "ickpt: error: <message>" to stderr.
void PrintError(const std::string& message);
void PrintError(absl::string_view message);
inline void PrintError(const char* message) { PrintError(std::string(message)); }
void PrintWarning(const std::string& message);
// Prints the status's message and returns its exit code.
int Fail(const absl::Status& status);

// Opens the repository at `dir` (a path or file://PATH) without creating or modifying anything.
absl::StatusOr<std::unique_ptr<RepositoryReader>> OpenRepositoryReadOnly(const std::string& dir);
// Opens the repository at `url` for writing, never creating it: NotFound (exit 4) says it is not
// a repository, as the read commands say.
absl::StatusOr<std::unique_ptr<Repository>> OpenRepositoryForWriting(const std::string& url);
// Adds the required `--repo URL` option to `sub`: a path or file://PATH. Any other scheme is a
// usage error (exit 2) naming it, before anything is opened or created.
CLI::Option* AddRepoOption(CLI::App* sub, std::string* repo);
// The check AddRepoOption makes, for a --repo option that is not required.
CLI::Validator RepoUrlValidator();

// A checkpoint id from the command line: a positive decimal integer or "latest". InvalidArgument
// for anything else (a usage error), NotFound for "latest" in an empty repository.
absl::StatusOr<uint64_t> ResolveCheckpointId(const RepositoryReader& repo, std::string_view text);
// True if `text` is a syntactically valid checkpoint id argument.
bool IsCheckpointIdSyntax(std::string_view text);
// Checks a checkpoint id argument before anything is opened: on a usage error prints it and
// returns false (the caller exits with kExitUsage).
bool CheckCheckpointIdArgument(std::string_view text);
// Resolves a checkpoint id argument ("latest" or an id) and reads that commit record.
absl::StatusOr<CommitRecord> ReadCheckpointArgument(const RepositoryReader& repo,
                                                    std::string_view text);

// Parses duration flag `flag` (ParseDuration: "90s", "30m", "1h", "2d"); with `whole_seconds`,
// also requires a whole number of seconds >= 1 s (what the format stores, §13.1). On a usage error
// prints it and returns nullopt (the caller exits with kExitUsage).
std::optional<absl::Duration> ParseDurationFlag(std::string_view flag, const std::string& text,
                                                bool whole_seconds);

// The fields of `ickpt log --json` for one commit record.
nlohmann::json CommitSummaryJson(const CommitRecord& commit);
// The pause and persist time of a checkpoint: the maxima over its state objects.
int64_t CommitPauseNs(const CommitRecord& commit);
int64_t CommitPersistNs(const CommitRecord& commit);

// "2026-11-26 09:30:00" (UTC, seconds) for tables.
std::string ShortTime(absl::Time t);
// "12.3 ms", "1.20 s".
std::string FormatNanos(int64_t ns);

// A one-line progress bar on stderr, drawn only when stderr is a terminal. Update from any thread;
// a background thread redraws a few times a second. Finish() clears the line.
class Progress {
 public:
  Progress(std::string label, uint64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  void Add(uint64_t n) { done_.fetch_add(n, std::memory_order_relaxed); }
  void Set(uint64_t done) { done_.store(done, std::memory_order_relaxed); }
  void Finish();

 private:
  void Draw();
  std::string label_;
  uint64_t total_;
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> stop_{false};
  bool enabled_;
  std::thread thread_;
};

// Lines printed as things happen, "[  12.3 s] text", from any thread (the demos' live output).
// Disabled: prints nothing (--json).
class LiveLog {
 public:
  explicit LiveLog(bool enabled);
  void Line(const std::string& text);

 private:
  const bool enabled_;
  const absl::Time start_;
  std::mutex mu_;
};

// Prints a line to `log` for each checkpoint committed to the repository at `url` while it runs
// (polling it a few times a second on a thread of its own): kind, participants, sizes, pause and
// persist time.
class CommitWatcher {
 public:
  CommitWatcher(std::string url, LiveLog* log);
  ~CommitWatcher();  // Stop()
  // Prints what committed since the last poll, then stops polling.
  void Stop();

 private:
  void Poll();
  const std::string url_;
  LiveLog* const log_;
  std::unique_ptr<RepositoryReader> repo_;
  uint64_t last_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ickpt::cli
