// `ickpt restore ID --region NAME --out FILE`: writes one region of a checkpoint to a file.
//
// The bytes go to FILE.tmp-XXXXXX in the same directory (mode 0600), which is fsynced and renamed
// to FILE only after every block verified (format.md §10: a damaged repository cannot make us
// write a wrong FILE); on failure the temporary file is removed.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/time/clock.h"
#include "src/cli/commands.h"
#include "src/cli/common.h"
#include "src/cli/keyed_entries.h"
#include "src/repo/region_reader.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt::cli {
namespace {

struct RestoreCliOptions {
  std::string repo;
  std::string id;
  std::string region;
  std::string out;
  std::string participant = "p0";
};

absl::Status ErrnoStatus(std::string_view what, const std::string& path) {
  const int e = errno;
  return absl::UnknownError(StrCat(what, " ", path, ": ", std::strerror(e)));
}

// pwrite()s restored blocks into a file that was sized beforehand (so zero blocks stay holes).
// Called from several reader threads at once; pwrite needs no lock.
class FileSink final : public RestoreSink {
 public:
  FileSink(int fd, std::string path, Progress* progress)
      : fd_(fd), path_(std::move(path)), progress_(progress) {}
  absl::Status Write(uint64_t offset, std::string_view data) override {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n =
          pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write to", path_);
      }
      done += static_cast<size_t>(n);
    }
    progress_->Add(data.size());
    return absl::OkStatus();
  }
  absl::Status WriteZeros(uint64_t /*offset*/, uint64_t length) override {
    progress_->Add(length);  // the file was created with its final size: zeros are holes already
    return absl::OkStatus();
  }

 private:
  int fd_;
  std::string path_;
  Progress* progress_;
};

// The temporary file being written, removed if the user interrupts the restore.
char g_temp_path[4096] = {0};

void RemoveTempAndExit(int signal) {
  if (g_temp_path[0] != '\0') unlink(g_temp_path);
  _exit(128 + signal);
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes `object` to `out` through a temporary file. On failure nothing is left behind.
absl::Status WriteRegionFile(const RepositoryReader& repo, const ResolvedObject& object,
                             const PackTable& packs, const std::string& out) {
  std::string temp = out + ".tmp-XXXXXX";
  const int fd = mkstemp(temp.data());  // mode 0600
  if (fd < 0) return ErrnoStatus("create", temp);
  if (temp.size() < sizeof(g_temp_path)) {
    std::memcpy(g_temp_path, temp.c_str(), temp.size() + 1);
    signal(SIGINT, RemoveTempAndExit);
    signal(SIGTERM, RemoveTempAndExit);
  }
  auto cleanup = [&](absl::Status status) {
    close(fd);
    unlink(temp.c_str());
    g_temp_path[0] = '\0';
    return status;
  };
  const uint64_t size = object.block_count * object.block_size;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return cleanup(ErrnoStatus("resize", temp));
  }
  Progress progress("restoring", size);
  FileSink sink(fd, temp, &progress);
  absl::StatusOr<ReadStats> stats = ReadObjectData(repo, object, packs, &sink, /*threads=*/2);
  progress.Finish();
  if (!stats.ok()) return cleanup(stats.status());
  if (fsync(fd) != 0) return cleanup(ErrnoStatus("fsync", temp));
  if (close(fd) != 0) {
    const absl::Status s = ErrnoStatus("close", temp);
    unlink(temp.c_str());
    g_temp_path[0] = '\0';
    return s;
  }
  if (rename(temp.c_str(), out.c_str()) != 0) {
    const absl::Status s = ErrnoStatus("rename to " + out + ":", temp);
    unlink(temp.c_str());
    g_temp_path[0] = '\0';
    return s;
  }
  g_temp_path[0] = '\0';
  const std::string dir = DirectoryOf(out);
  const int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus("open directory", dir);
  const int rc = fsync(dir_fd);
  close(dir_fd);
  if (rc != 0) return ErrnoStatus("fsync directory", dir);
  return absl::OkStatus();
}

int RunRestore(const RestoreCliOptions& options) {
  if (!CheckCheckpointIdArgument(options.id)) return kExitUsage;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<RepositoryReader>> repo = OpenRepositoryReadOnly(options.repo);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<CommitRecord> commit = ReadCheckpointArgument(**repo, options.id);
  if (!commit.ok()) return Fail(commit.status());
  // A fenced commit (format.md §15) was written by a deposed coordinator: not part of the history,
  // never restored, as Checkpointer::Restore refuses it.
  absl::StatusOr<std::vector<EpochRecord>> epochs = (*repo)->ListEpochs();
  if (!epochs.ok()) return Fail(epochs.status());
  if (std::optional<uint64_t> fenced = FencedBy(*epochs, *commit)) {
    return Fail(absl::FailedPreconditionError(
        StrCat("checkpoint ", commit->id, " is fenced by epoch ", *fenced,
               " (format.md §15): a deposed coordinator's commit, not part of the history")));
  }
  // A keyed state is not a byte range: say where its entries can be read instead of handing it to
  // the region restore. It is one if this participant's object of that name is one, or if this
  // participant has none and another holds a keyed state of that name (a keyed state's key groups
  // may all lie with other participants).
  const StateObjectRecord* own = nullptr;
  for (const ParticipantRecord& p : commit->participants) {
    if (p.name != options.participant) continue;
    for (const StateObjectRecord& so : p.state_objects) {
      if (so.name == options.region) own = &so;
    }
  }
  if (own != nullptr ? own->type == StateObjectType::kKeyed
                     : FindKeyedRecord(*commit, options.region) != nullptr) {
    PrintError(StrCat("state object '", options.region, "' of checkpoint ", commit->id,
                      " is a keyed state, not a region: read its entries with 'ickpt dump ",
                      commit->id, " --state ", options.region, "' (or one key with 'ickpt get')"));
    return kExitFailure;
  }
  PackTable packs;
  absl::StatusOr<ResolvedObject> object =
      ResolveObject(**repo, *commit, options.participant, options.region, &packs);
  if (!object.ok()) return Fail(object.status());
  if (absl::Status s = WriteRegionFile(**repo, *object, packs, options.out); !s.ok()) {
    return Fail(s);
  }
  const absl::Duration elapsed = absl::Now() - start;
  const uint64_t bytes = object->block_count * object->block_size;
  const double seconds = std::max(absl::ToDoubleSeconds(elapsed), 1e-9);
  std::cout << fmt::format(
      "restored {} ({} bytes) of region '{}' (participant {}) of checkpoint {} to {} in {} "
      "({:.1f} MiB/s, chain depth {})\n",
      FormatBytes(bytes), bytes, options.region, options.participant, commit->id, options.out,
      FormatNanos(absl::ToInt64Nanoseconds(elapsed)), bytes / seconds / (1 << 20), object->depth);
  return kExitOk;
}

}  // namespace

Command RegisterRestore(CLI::App& app) {
  auto options = std::make_shared<RestoreCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "restore",
      "Write one region of a checkpoint to a file. The file is written through a temporary file "
      "in the same directory and appears only once every block verified. A keyed state is not a "
      "region: naming one is an error (exit 1); read it with 'ickpt dump' or 'ickpt get'.");
  sub->add_option("ID", options->id, "Checkpoint id, or 'latest'")->required();
  AddRepoOption(sub, &options->repo);
  sub->add_option("--region", options->region, "Region name")->required();
  sub->add_option("--out", options->out, "Output file (replaced if it exists)")->required();
  sub->add_option("--participant", options->participant, "Participant name")->capture_default_str();
  return Command{sub, [options] { return RunRestore(*options); }};
}

}  // namespace ickpt::cli
