// The garbage collection benchmark (docs/benchmarks.md, "Garbage collection"; format.md §13): on
// one local repository of N objects (the size is 100,000: --objects=100000; the default,
// 20,000, keeps a run to a few minutes on 2 shared cores), in one run,
//   1. GC runs on the full repository: the run that condemns what retention dropped, and a run
//      with nothing to delete (the steady-state cost at this size);
//   2. an application checkpointing in a loop (a region of 64 MiB, 1% of its pages changed between
//      checkpoints) into the same repository while a GC deletes garbage on another thread, vs the
//      same loop without GC: median capture pause and median checkpoint time (Checkpoint() to
//      Wait() done), and their ratios (goal: unchanged within noise);
//   3. the run that deletes the bulk (everything part 2 left), between two measures of a plain
//      listing and unlink of 5,000 files of 4 KiB on the same file system, and a run on the
//      collected repository with nothing to delete.
// The machine is shared and noisy: the two conditions of part 2 alternate round by round, and
// ratios are taken within one run. Absolute times are only comparable within a run.
//
// The repository is filled by a checkpointer with 16 small regions (16 blocks each, 2 blocks of
// each changed per checkpoint): every checkpoint writes an id reservation, a commit record, and a
// manifest and a pack per region, as a process with 16 state objects would. The fill is set-up,
// not measured: it goes through a file system that skips fsync, and the page cache is written back
// (sync(2)) before anything is timed. The retention policy keeps the last 3 checkpoints with a
// checkpoint timeout of 1 s, and GC runs with a grace period of 2 s.
//
// GC deletes only what is older than the grace period by the store's clock (file mtimes). Instead
// of waiting, the benchmark sets file mtimes (std::filesystem::last_write_time): after the fill,
// every file back by one hour, so that the filler's objects are old; after the run that condemns
// the filler's checkpoints, their condemnations forward by one hour, so that no run removes them
// before the benchmark chooses (format.md §13.3: a condemned checkpoint is removed by a later run,
// once its condemnation is older than the grace period); then, for each GC run that is to remove
// some, those condemnations back to one hour in the past. Part 2 removes `--slice` percent of the
// filler's checkpoints per round (consecutive ids, newest first: no checkpoint that stays needs
// them), and part 3 all the rest. The application's own objects age in real time and are collected
// by the same runs, as they would be. GC runs on its own Repository object opened on the same
// directory as the application's.
//
// In part 2, the checkpoints that start before the round's GC ends are its samples; the condition
// without GC takes as many as the previous GC condition did (at least --min).
//
// Configuration (flag, else environment, else default):
//   --objects=N   ICKPT_BENCH_GC_OBJECTS  objects to fill the repository with (default 20000)
//   --size=BYTES  ICKPT_BENCH_GC_SIZE     the application's region (default 67108864: 64 MiB)
//   --rounds=N    ICKPT_BENCH_ROUNDS      rounds of part 2 (default 2: one of each order)
//   --slice=PCT   ICKPT_BENCH_GC_SLICE    percent of the filler's checkpoints a part-2 GC removes
//                                         (default 5)
//   --min=N       ICKPT_BENCH_GC_MIN      fewest checkpoints without GC per round (default 100)
//   --gc-nice=N   ICKPT_BENCH_GC_NICE     nice value of the part-2 GC thread (default 0: as the
//                                         application's)
//   --dir=PATH    ICKPT_BENCH_DIR         where the repository goes (default /tmp), removed after
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "bench_options.h"
#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlockSize = 4096;
constexpr int kFillRegions = 16;
constexpr uint64_t kFillRegionBlocks = 16;
constexpr uint64_t kFillChangedBlocks = 2;
constexpr uint64_t kKeepLast = 3;
constexpr absl::Duration kCheckpointTimeout = absl::Seconds(1);
constexpr absl::Duration kGrace = absl::Seconds(2);
constexpr auto kBackdate = std::chrono::hours(1);

using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

using bench::Check;
using bench::Option;
using bench::Rng;
using bench::StringOption;

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Set-up only: the fill's files are not fsynced (the measured phases use the real file system).
class NoSyncFile final : public WritableFile {
 public:
  explicit NoSyncFile(std::unique_ptr<WritableFile> f) : f_(std::move(f)) {}
  absl::Status Append(std::string_view data) override { return f_->Append(data); }
  absl::Status Sync() override { return absl::OkStatus(); }
  absl::Status Close() override { return f_->Close(); }

 private:
  std::unique_ptr<WritableFile> f_;
};

class NoSyncFileSystem final : public FileSystemWrapper {
 public:
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    absl::StatusOr<std::unique_ptr<WritableFile>> f = target()->NewWritableFile(path);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(std::make_unique<NoSyncFile>(*std::move(f)));
  }
  absl::Status SyncDir(const std::string&) override { return absl::OkStatus(); }
};

// Objects of the repository by top-level prefix (its files, less the store's temporary files).
std::map<std::string, uint64_t> CountObjects(const std::string& dir) {
  std::map<std::string, uint64_t> counts;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    // Path strings, not std::filesystem::relative (which resolves every component).
    const std::string rel = e.path().string().substr(dir.size() + 1);
    if (rel.find(".tmp-") != std::string::npos) continue;
    counts[rel.substr(0, rel.find('/'))]++;
  }
  return counts;
}

uint64_t Total(const std::map<std::string, uint64_t>& counts) {
  uint64_t n = 0;
  for (const auto& [prefix, count] : counts) n += count;
  return n;
}

std::string Describe(const std::map<std::string, uint64_t>& counts) {
  std::string out;
  for (const auto& [prefix, count] : counts) {
    if (!out.empty()) out += ", ";
    out += prefix + " " + std::to_string(count);
  }
  return out;
}

// Sets the modification time of every file under `dir` back by kBackdate.
uint64_t Backdate(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::filesystem::last_write_time(e.path(),
                                     std::filesystem::last_write_time(e.path()) - kBackdate);
    ++n;
  }
  return n;
}

std::string IdKeyPath(const std::string& dir, const char* prefix, uint64_t id) {
  std::string digits = std::to_string(id);
  return dir + "/" + prefix + "/" + std::string(20 - digits.size(), '0') + digits;
}

RepositoryOptions Options() {
  RepositoryOptions o;
  RetentionPolicy p;
  p.keep_last = kKeepLast;
  p.checkpoint_timeout = kCheckpointTimeout;
  o.retention = p;
  return o;
}

GcOptions Gc() {
  GcOptions o;
  o.grace = kGrace;
  return o;
}

struct Filled {
  uint64_t first_id = 0;
  uint64_t last_id = 0;
  uint64_t checkpoints = 0;
  std::map<std::string, uint64_t> objects;
  double seconds = 0;
};

// Creates a repository at `dir` and fills it to about `target` objects (see the file comment).
Filled Fill(const std::string& dir, uint64_t target) {
  const auto start = Clock::now();
  Check(Repository::OpenLocal(dir, /*create=*/true, Options()).status());
  NoSyncFileSystem fs;
  LocalStoreOptions lo;
  lo.file_system = &fs;
  std::unique_ptr<Repository> repo = Check(Repository::Open(Check(OpenLocalStore(dir, lo))));
  std::unique_ptr<Checkpointer> c = Check(Checkpointer::Open(repo.get()));
  std::vector<Region*> regions;
  Rng rng(11);
  for (int r = 0; r < kFillRegions; ++r) {
    RegionOptions ro;
    ro.size = kFillRegionBlocks * kBlockSize;
    ro.block_size = kBlockSize;
    ro.tracker = TrackerKind::kExplicit;  // the filler reports what it changes
    Region* region = Check(c->AddRegion("state-" + std::to_string(r), ro));
    rng.Fill(region->data(), region->size());
    region->MarkDirty(0, region->size());
    regions.push_back(region);
  }
  Filled f;
  auto take = [&]() {
    for (Region* region : regions) {
      for (uint64_t k = 0; k < kFillChangedBlocks; ++k) {
        const uint64_t b = rng.Below(kFillRegionBlocks);
        rng.Fill(region->data() + b * kBlockSize, kBlockSize);
        region->MarkDirty(b * kBlockSize, kBlockSize);
      }
    }
    CommitRecord r = Check(Check(c->Checkpoint()).Wait());
    if (f.first_id == 0) f.first_id = r.id;
    f.last_id = r.id;
    ++f.checkpoints;
  };
  // Measure the objects a checkpoint adds, then take as many as the target needs.
  for (int i = 0; i < 50; ++i) take();
  const double per_checkpoint = double(Total(CountObjects(dir))) / f.checkpoints;
  const uint64_t needed = static_cast<uint64_t>(target / per_checkpoint + 0.5);
  while (f.checkpoints < needed) take();
  c.reset();
  repo.reset();
  ::sync();
  f.objects = CountObjects(dir);
  f.seconds = Seconds(Clock::now() - start);
  std::printf(
      "filled %s: %llu checkpoints (ids %llu..%llu), %llu objects (%s) in %.1f s\n", dir.c_str(),
      static_cast<unsigned long long>(f.checkpoints), static_cast<unsigned long long>(f.first_id),
      static_cast<unsigned long long>(f.last_id), static_cast<unsigned long long>(Total(f.objects)),
      Describe(f.objects).c_str(), f.seconds);
  return f;
}

struct TimedGc {
  GcReport report;
  double seconds = 0;
};

TimedGc RunGc(Repository& repo, const GcOptions& options = Gc()) {
  const auto start = Clock::now();
  TimedGc t;
  t.report = Check(CollectGarbage(repo, options));
  t.seconds = Seconds(Clock::now() - start);
  return t;
}

// For the runs timed alone: what earlier phases left in the page cache is written back first, so
// that its writeback does not land in the run.
TimedGc SyncThenRunGc(Repository& repo) {
  ::sync();
  return RunGc(repo);
}

void PrintGc(const char* what, const TimedGc& t) {
  const GcReport& r = t.report;
  std::printf(
      "  %-34s %8.2f s  deleted %7llu objects (%.1f MiB: %llu commits, %llu manifests, %llu "
      "packs, %llu reservations, %llu condemnations), condemned %zu, removed %zu checkpoints\n",
      what, t.seconds, static_cast<unsigned long long>(r.deleted_objects),
      r.deleted_bytes / 1048576.0, static_cast<unsigned long long>(r.deleted_commits),
      static_cast<unsigned long long>(r.deleted_manifests),
      static_cast<unsigned long long>(r.deleted_packs),
      static_cast<unsigned long long>(r.deleted_reservations),
      static_cast<unsigned long long>(r.deleted_condemnations), r.condemned_checkpoints.size(),
      r.removed_checkpoints.size());
}

// The application of part 2: one region, `changed` random pages rewritten between checkpoints.
class App {
 public:
  App(Repository* repo, uint64_t size) : rng_(5) {
    ckpt_ = Check(Checkpointer::Open(repo));
    RegionOptions ro;
    ro.size = size;
    ro.block_size = kBlockSize;
    region_ = Check(ckpt_->AddRegion("heap", ro));
    rng_.Fill(region_->data(), region_->size());
    changed_ = std::max<uint64_t>(1, region_->block_count() / 100);
  }

  struct Sample {
    double pause_ms = 0;
    double checkpoint_ms = 0;  // Checkpoint() to Wait() done
    Clock::time_point started;
  };

  // One checkpoint after changing 1% of the pages. A checkpoint whose parent was removed
  // (IsParentRemoved) is counted and its sample dropped: it must not happen here (the parent is
  // always the latest committed checkpoint, which retention keeps).
  std::optional<Sample> Take() {
    for (uint64_t k = 0; k < changed_; ++k) {
      rng_.Fill(region_->data() + rng_.Below(region_->block_count()) * kBlockSize, kBlockSize);
    }
    Sample s;
    s.started = Clock::now();
    CheckpointHandle h = Check(ckpt_->Checkpoint());
    absl::StatusOr<CommitRecord> r = h.Wait();
    s.checkpoint_ms = Ms(Clock::now() - s.started);
    if (!r.ok() && IsParentRemoved(r.status())) {
      ++parent_removed_;
      return std::nullopt;
    }
    Check(r.status());
    s.pause_ms = absl::ToDoubleMilliseconds(h.pause());
    return s;
  }

  const Region& region() const { return *region_; }
  uint64_t changed() const { return changed_; }
  uint64_t parent_removed() const { return parent_removed_; }

 private:
  std::unique_ptr<Checkpointer> ckpt_;
  Region* region_ = nullptr;
  Rng rng_;
  uint64_t changed_ = 0;
  uint64_t parent_removed_ = 0;
};

// Sets the modification time of the condemnations of `ids` to now + `offset`.
void SetCondemnationTimes(const std::string& dir, const std::vector<uint64_t>& ids,
                          std::filesystem::file_time_type::duration offset) {
  const auto when = std::filesystem::file_time_type::clock::now() + offset;
  for (uint64_t id : ids) std::filesystem::last_write_time(IdKeyPath(dir, "condemned", id), when);
}

// What the file system takes to delete files without GC: `count` files of `size` bytes in
// 256 directories (written without fsync, then sync(2)), listed with their sizes and mtimes, then
// unlinked one by one. Returns the seconds of the listing and unlinking.
double PlainUnlinkSeconds(const std::string& dir, uint64_t count, uint64_t size) {
  const std::string data(size, 'x');
  for (uint64_t i = 0; i < count; ++i) {
    const std::string sub = dir + "/" + std::to_string(i % 256);
    if (i < 256) std::filesystem::create_directories(sub);
    std::FILE* f = std::fopen((sub + "/" + std::to_string(i)).c_str(), "wb");
    if (f == nullptr || std::fwrite(data.data(), 1, data.size(), f) != data.size() ||
        std::fclose(f) != 0) {
      std::fprintf(stderr, "error: writing %s/%llu\n", sub.c_str(),
                   static_cast<unsigned long long>(i));
      std::exit(1);
    }
  }
  ::sync();
  const auto start = Clock::now();
  std::vector<std::filesystem::path> files;
  uint64_t bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    bytes += e.file_size();
    (void)e.last_write_time();
    files.push_back(e.path());
  }
  for (const std::filesystem::path& p : files) std::filesystem::remove(p);
  const double s = Seconds(Clock::now() - start);
  if (files.size() != count || bytes != count * size) {
    std::fprintf(stderr, "error: listed %zu files of %llu bytes in %s, wrote %llu of %llu\n",
                 files.size(), static_cast<unsigned long long>(bytes), dir.c_str(),
                 static_cast<unsigned long long>(count),
                 static_cast<unsigned long long>(count * size));
    std::exit(1);
  }
  std::filesystem::remove_all(dir);
  return s;
}

std::string LoadAverage() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return "unknown";
  double a = 0, b = 0, c = 0;
  const int n = std::fscanf(f, "%lf %lf %lf", &a, &b, &c);
  std::fclose(f);
  if (n != 3) return "unknown";
  char out[64];
  std::snprintf(out, sizeof(out), "%.2f %.2f %.2f", a, b, c);
  return out;
}

int Main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows as it happens, also into a file
  const uint64_t objects = Option(argc, argv, "objects", "ICKPT_BENCH_GC_OBJECTS", 20000);
  const uint64_t size = Option(argc, argv, "size", "ICKPT_BENCH_GC_SIZE", uint64_t{64} << 20);
  const int rounds = static_cast<int>(
      std::max<uint64_t>(1, Option(argc, argv, "rounds", "ICKPT_BENCH_ROUNDS", 2)));
  const uint64_t slice_percent =
      std::clamp<uint64_t>(Option(argc, argv, "slice", "ICKPT_BENCH_GC_SLICE", 5), 1, 100);
  const int gc_nice = static_cast<int>(
      std::min<uint64_t>(19, Option(argc, argv, "gc-nice", "ICKPT_BENCH_GC_NICE", 0)));
  const size_t min_samples =
      std::max<uint64_t>(3, Option(argc, argv, "min", "ICKPT_BENCH_GC_MIN", 100));
  const std::string base = StringOption(argc, argv, "dir", "ICKPT_BENCH_DIR", "/tmp");
  std::string root = base + "/ickpt-gc-bench-XXXXXX";
  if (::mkdtemp(root.data()) == nullptr) {
    std::fprintf(stderr, "gc_bench: mkdtemp %s: %s\n", root.c_str(), std::strerror(errno));
    return 2;
  }
  std::printf(
      "gc benchmark: a repository of ~%llu objects (%d regions x %llu blocks, %llu changed per "
      "checkpoint), keep-last %llu, checkpoint timeout %s, grace %s; application region %.0f MiB, "
      "1%% of pages changed per checkpoint; %d rounds of %llu%% of the garbage; under %s\n",
      static_cast<unsigned long long>(objects), kFillRegions,
      static_cast<unsigned long long>(kFillRegionBlocks),
      static_cast<unsigned long long>(kFillChangedBlocks),
      static_cast<unsigned long long>(kKeepLast), absl::FormatDuration(kCheckpointTimeout).c_str(),
      absl::FormatDuration(kGrace).c_str(), size / 1048576.0, rounds,
      static_cast<unsigned long long>(slice_percent), root.c_str());
  std::printf("load average at start: %s\n", LoadAverage().c_str());
  const auto run_start = Clock::now();
  const std::string dir = root + "/repo";
  const Filled f = Fill(dir, objects);
  std::printf("back-dated %llu files by 1 h\n", static_cast<unsigned long long>(Backdate(dir)));
  std::unique_ptr<Repository> repo = Check(Repository::OpenLocal(dir, /*create=*/false));
  std::unique_ptr<Repository> gc_repo = Check(Repository::OpenLocal(dir, /*create=*/false));
  auto app_owner = std::make_unique<App>(repo.get(), size);
  App& app = *app_owner;
  // The application's first checkpoint is full; then enough incrementals that retention keeps
  // none of the filler's checkpoints.
  const auto warm_start = Clock::now();
  for (uint64_t i = 0; i <= kKeepLast; ++i) app.Take();
  std::printf(
      "application: region %.0f MiB (tracker %s), %llu pages changed per checkpoint; first "
      "checkpoint (full) + %llu incremental in %.1f s\n",
      app.region().size() / 1048576.0, std::string(app.region().tracker_name()).c_str(),
      static_cast<unsigned long long>(app.changed()), static_cast<unsigned long long>(kKeepLast),
      Seconds(Clock::now() - warm_start));

  // 1. GC on the full repository.
  std::printf("\n1. GC runs on the full repository: %llu objects\n",
              static_cast<unsigned long long>(Total(CountObjects(dir))));
  const TimedGc condemn = SyncThenRunGc(*gc_repo);
  PrintGc("condemn (first run)", condemn);
  std::vector<uint64_t> filler;  // the filler's condemned checkpoints, newest first
  for (uint64_t id : condemn.report.condemned_checkpoints) {
    if (id >= f.first_id && id <= f.last_id) filler.push_back(id);
  }
  std::sort(filler.rbegin(), filler.rend());
  SetCondemnationTimes(dir, filler, std::chrono::hours(1));
  PrintGc("nothing to delete (steady state)", SyncThenRunGc(*gc_repo));

  // 2. The application with and without a GC running.
  const size_t slice = std::max<size_t>(1, filler.size() * slice_percent / 100);
  std::printf(
      "\n2. application checkpointing while GC (nice %d) removes %zu of the filler's checkpoints "
      "per "
      "round vs without GC\n",
      gc_nice, slice);
  std::printf("  %-6s %-6s %8s %12s %14s %10s %9s\n", "round", "gc", "samples", "pause ms",
              "checkpoint ms", "gc s", "deleted");
  std::vector<double> pause[2], ckpt[2], pause_ratio, ckpt_ratio;
  size_t next = 0;  // the first filler checkpoint not yet removed
  size_t last_gc_samples = 0;
  for (int r = 0; r < rounds && next < filler.size(); ++r) {
    std::vector<double> round_pause[2], round_ckpt[2];
    // Alternate which condition goes first, so both see the same machine.
    for (int k = 0; k < 2; ++k) {
      const bool with_gc = (k == 0) == (r % 2 == 1);
      const int c = with_gc ? 1 : 0;
      TimedGc gc;
      if (with_gc) {
        const size_t end = std::min(filler.size(), next + slice);
        SetCondemnationTimes(dir,
                             std::vector<uint64_t>(filler.begin() + next, filler.begin() + end),
                             -std::chrono::hours(1));
        next = end;
        std::atomic<bool> done{false};
        Clock::time_point gc_end;
        std::thread t([&]() {
          // Linux: a nice value is per thread.
          if (gc_nice != 0 &&
              ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), gc_nice) != 0) {
            std::perror("setpriority");
          }
          gc = RunGc(*gc_repo);
          gc_end = Clock::now();
          done.store(true);
        });
        // Every checkpoint that starts while GC runs is a sample.
        for (;;) {
          std::optional<App::Sample> s = app.Take();
          if (!s.has_value()) continue;
          if (done.load() && s->started >= gc_end) break;
          round_pause[c].push_back(s->pause_ms);
          round_ckpt[c].push_back(s->checkpoint_ms);
        }
        t.join();
        last_gc_samples = round_pause[c].size();
      } else {
        const size_t want = std::max(last_gc_samples, min_samples);
        while (round_pause[c].size() < want) {
          std::optional<App::Sample> s = app.Take();
          if (!s.has_value()) continue;
          round_pause[c].push_back(s->pause_ms);
          round_ckpt[c].push_back(s->checkpoint_ms);
        }
      }
      std::printf("  %-6d %-6s %8zu %12.2f %14.2f", r, with_gc ? "yes" : "no",
                  round_pause[c].size(), Median(round_pause[c]), Median(round_ckpt[c]));
      if (with_gc) {
        std::printf(" %10.2f %9llu\n", gc.seconds,
                    static_cast<unsigned long long>(gc.report.deleted_objects));
      } else {
        std::printf(" %10s %9s\n", "-", "-");
      }
    }
    pause_ratio.push_back(Median(round_pause[1]) / Median(round_pause[0]));
    ckpt_ratio.push_back(Median(round_ckpt[1]) / Median(round_ckpt[0]));
    for (int c = 0; c < 2; ++c) {
      pause[c].insert(pause[c].end(), round_pause[c].begin(), round_pause[c].end());
      ckpt[c].insert(ckpt[c].end(), round_ckpt[c].begin(), round_ckpt[c].end());
    }
  }
  std::printf(
      "  all rounds: without GC pause %.2f ms, checkpoint %.2f ms (%zu samples); with GC pause "
      "%.2f ms, checkpoint %.2f ms (%zu samples)\n",
      Median(pause[0]), Median(ckpt[0]), pause[0].size(), Median(pause[1]), Median(ckpt[1]),
      pause[1].size());
  std::printf(
      "  ratio with GC / without GC, median of the rounds' ratios: pause %.3f, checkpoint %.3f "
      "(goal: unchanged within noise)\n",
      Median(pause_ratio), Median(ckpt_ratio));
  std::printf("  per round: pause");
  for (double x : pause_ratio) std::printf(" %.3f", x);
  std::printf("; checkpoint");
  for (double x : ckpt_ratio) std::printf(" %.3f", x);
  std::printf("\n");
  if (app.parent_removed() > 0) {
    std::printf("  WARNING: %llu checkpoints failed because their parent was removed\n",
                static_cast<unsigned long long>(app.parent_removed()));
  }
  app_owner.reset();  // the checkpointer before its repository

  // 3. The bulk: every filler checkpoint part 2 left, between two measures of the file system's
  // own rate (a plain listing and unlink of 5,000 files of 4 KiB), since it varies with the load.
  const std::vector<uint64_t> rest(filler.begin() + next, filler.end());
  std::printf("\n3. the bulk delete: %zu filler checkpoints left, %llu objects\n", rest.size(),
              static_cast<unsigned long long>(Total(CountObjects(dir))));
  constexpr uint64_t kPlainFiles = 5000;
  const double plain_before = kPlainFiles / PlainUnlinkSeconds(root + "/plain", kPlainFiles, 4096);
  SetCondemnationTimes(dir, rest, -std::chrono::hours(1));
  const TimedGc bulk = SyncThenRunGc(*gc_repo);
  PrintGc("bulk delete", bulk);
  const double plain_after = kPlainFiles / PlainUnlinkSeconds(root + "/plain", kPlainFiles, 4096);
  const double gc_rate = bulk.report.deleted_objects / std::max(bulk.seconds, 1e-9);
  std::printf(
      "  bulk delete %.0f objects/s; a plain listing + unlink of %llu files of 4 KiB here: %.0f "
      "files/s before, %.0f after; rate GC / plain %.2f before, %.2f after\n",
      gc_rate, static_cast<unsigned long long>(kPlainFiles), plain_before, plain_after,
      gc_rate / plain_before, gc_rate / plain_after);
  // The application's checkpoints that the bulk run condemned are due two seconds later.
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  PrintGc("the application's condemned ones", SyncThenRunGc(*gc_repo));
  std::printf("  objects left: %llu\n", static_cast<unsigned long long>(Total(CountObjects(dir))));
  PrintGc("nothing to delete (steady state)", SyncThenRunGc(*gc_repo));
  std::printf("\ntotal %.0f s; load average at end: %s\n", Seconds(Clock::now() - run_start),
              LoadAverage().c_str());

  gc_repo.reset();
  repo.reset();
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  return 0;
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) { return ickpt::Main(argc, argv); }
