#include "src/cli/common.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "src/repo/commit_record.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {

int ExitCodeFor(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (absl::IsDataLoss(status)) return kExitDamaged;
  if (absl::IsNotFound(status)) return kExitNotFound;
  return kExitFailure;
}

int WorseExit(int a, int b) {
  auto rank = [](int code) {
    switch (code) {
      case kExitDamaged:
        return 4;
      case kExitNotFound:
        return 3;
      case kExitFailure:
        return 2;
      case kExitUsage:
        return 1;
      default:
        return 0;
    }
  };
  return rank(a) >= rank(b) ? a : b;
}

void PrintError(const std::string& message) {
  std::cout.flush();
  std::cerr << "ickpt: error: " << message << std::endl;
}

void PrintError(absl::string_view message) { PrintError(std::string(message)); }

void PrintWarning(const std::string& message) {
  std::cout.flush();
  std::cerr << "ickpt: warning: " << message << std::endl;
}

int Fail(const absl::Status& status) {
  PrintError(status.message());
  return ExitCodeFor(status);
}

absl::StatusOr<std::unique_ptr<RepositoryReader>> OpenRepositoryReadOnly(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = Repository::OpenReadOnly(dir);
  if (!repo.ok() && absl::IsNotFound(repo.status())) {
    return absl::NotFoundError(
        StrCat(dir, " is not an ickpt repository: ", repo.status().message()));
  }
  return repo;
}

absl::StatusOr<std::unique_ptr<Repository>> OpenRepositoryForWriting(const std::string& url) {
  absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenUrl(url, /*create=*/false);
  if (!repo.ok() && absl::IsNotFound(repo.status())) {
    return absl::NotFoundError(
        StrCat(url, " is not an ickpt repository: ", repo.status().message()));
  }
  return repo;
}

CLI::Validator RepoUrlValidator() {
  return CLI::Validator(
      [](std::string& url) -> std::string {
        absl::Status s = ValidateRepositoryUrl(url);
        return s.ok() ? std::string() : std::string(s.message());
      },
      "URL", "repository URL");
}

CLI::Option* AddRepoOption(CLI::App* sub, std::string* repo) {
  return sub
      ->add_option(
          "--repo", *repo,
          "Repository: a directory, file://PATH, or s3://BUCKET[/PREFIX]?endpoint=URL (docs/s3.md)")
      ->required()
      ->check(RepoUrlValidator());
}

bool IsCheckpointIdSyntax(std::string_view text) {
  if (text == "latest") return true;
  if (text.empty() || text.size() > 20) return false;
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

namespace {
std::string InvalidIdMessage(std::string_view text) {
  return StrCat("invalid checkpoint id '", text, "': expected a positive integer or 'latest'");
}
}  // namespace

absl::StatusOr<uint64_t> ResolveCheckpointId(const RepositoryReader& repo, std::string_view text) {
  if (text == "latest") {
    absl::StatusOr<std::optional<uint64_t>> latest = repo.LatestCommitId();
    if (!latest.ok()) return latest.status();
    if (!latest->has_value()) {
      return absl::NotFoundError(
          StrCat("repository ", repo.Describe(), " has no checkpoints ('latest')"));
    }
    return **latest;
  }
  if (!IsCheckpointIdSyntax(text)) return absl::InvalidArgumentError(InvalidIdMessage(text));
  uint64_t id = 0;
  for (char c : text) {
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (id > (UINT64_MAX - digit) / 10) {
      return absl::InvalidArgumentError(StrCat("invalid checkpoint id '", text, "': too large"));
    }
    id = id * 10 + digit;
  }
  return id;
}

bool CheckCheckpointIdArgument(std::string_view text) {
  if (IsCheckpointIdSyntax(text)) return true;
  PrintError(InvalidIdMessage(text));
  return false;
}

absl::StatusOr<CommitRecord> ReadCheckpointArgument(const RepositoryReader& repo,
                                                    std::string_view text) {
  absl::StatusOr<uint64_t> id = ResolveCheckpointId(repo, text);
  if (!id.ok()) return id.status();
  return repo.ReadCommit(*id);
}

std::optional<absl::Duration> ParseDurationFlag(std::string_view flag, const std::string& text,
                                                bool whole_seconds) {
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok()) {
    PrintError(StrCat(flag, ": ", d.status().message()));
    return std::nullopt;
  }
  if (whole_seconds && (*d < absl::Seconds(1) || *d != absl::Seconds(absl::ToInt64Seconds(*d)))) {
    PrintError(StrCat(flag, " ", text, ": expected a whole number of seconds, at least 1s"));
    return std::nullopt;
  }
  return *d;
}

nlohmann::json CommitSummaryJson(const CommitRecord& commit) {
  nlohmann::json j;
  j["id"] = commit.id;
  j["parent"] = commit.parent.has_value() ? nlohmann::json(*commit.parent) : nlohmann::json();
  j["kind"] = std::string(CheckpointKindName(commit.kind));
  j["depth"] = commit.depth;
  j["logical_bytes"] = commit.logical_bytes;
  j["stored_bytes"] = commit.stored_bytes;
  j["created"] = ickpt::FormatTime(commit.created);
  j["participants"] = commit.participants.size();
  return j;
}

int64_t CommitPauseNs(const CommitRecord& commit) {
  int64_t out = 0;
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& so : p.state_objects) out = std::max(out, so.pause_ns);
  }
  return out;
}

int64_t CommitPersistNs(const CommitRecord& commit) {
  int64_t out = 0;
  for (const ParticipantRecord& p : commit.participants) {
    for (const StateObjectRecord& so : p.state_objects) out = std::max(out, so.persist_ns);
  }
  return out;
}

std::string ShortTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", t, absl::UTCTimeZone());
}

std::string FormatNanos(int64_t ns) {
  if (ns < 1'000'000) return fmt::format("{:.1f} us", ns / 1e3);
  if (ns < 1'000'000'000) return fmt::format("{:.1f} ms", ns / 1e6);
  return fmt::format("{:.2f} s", ns / 1e9);
}

Progress::Progress(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total), enabled_(isatty(STDERR_FILENO) == 1) {
  if (!enabled_) return;
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      Draw();
      for (int i = 0; i < 20 && !stop_.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  });
}

Progress::~Progress() { Finish(); }

void Progress::Draw() {
  constexpr int kWidth = 30;
  const uint64_t done = std::min(done_.load(std::memory_order_relaxed), total_);
  const double fraction = total_ == 0 ? 1.0 : static_cast<double>(done) / total_;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r%s [%s] %3d%% %s / %s\x1b[K", label_.c_str(), bar.c_str(),
               static_cast<int>(fraction * 100), FormatBytes(done).c_str(),
               FormatBytes(total_).c_str());
  std::fflush(stderr);
}

void Progress::Finish() {
  if (!enabled_ || stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  std::fprintf(stderr, "\r\x1b[K");
  std::fflush(stderr);
}

LiveLog::LiveLog(bool enabled) : enabled_(enabled), start_(absl::Now()) {}

void LiveLog::Line(const std::string& text) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::cout << fmt::format("[{:6.1f} s] {}\n", absl::ToDoubleSeconds(absl::Now() - start_), text)
            << std::flush;
}

CommitWatcher::CommitWatcher(std::string url, LiveLog* log) : url_(std::move(url)), log_(log) {
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      Poll();
      for (int i = 0; i < 25 && !stop_.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  });
}

CommitWatcher::~CommitWatcher() { Stop(); }

void CommitWatcher::Stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  Poll();
}

void CommitWatcher::Poll() {
  // Best effort: this only shows progress; the demo's own checks read the repository again.
  if (repo_ == nullptr) {
    absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(url_);
    if (!repo.ok()) return;
    repo_ = *std::move(repo);
  }
  absl::StatusOr<std::vector<uint64_t>> ids = repo_->ListCommitIds();
  if (!ids.ok()) return;
  for (uint64_t id : *ids) {
    if (id <= last_) continue;
    absl::StatusOr<CommitRecord> c = repo_->ReadCommit(id);
    if (!c.ok()) return;
    last_ = id;
    log_->Line(fmt::format("checkpoint {} committed: {}, {} participant(s), {} logical, {} "
                           "written, pause {}, persist {}",
                           id, CheckpointKindName(c->kind), c->participants.size(),
                           FormatBytes(c->logical_bytes), FormatBytes(c->stored_bytes),
                           FormatNanos(CommitPauseNs(*c)), FormatNanos(CommitPersistNs(*c))));
  }
}

}  // namespace ickpt::cli
