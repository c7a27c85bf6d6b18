// The consolidation benchmark (docs/benchmarks.md, "Consolidation (issue 12)"; format.md §14,
// docs/policy.md). The contract: after 1,000 incremental checkpoints of a 1 GiB region at
// 1% change, in one run,
//   1. restore time of the latest checkpoint with a cold page cache, and space amplification, with
//      automatic consolidation on vs off (goal with it on: restore <= 1.2x the restore of one full
//      checkpoint, space amplification <= 1.5x);
//   2. the application's pause and slowdown while a consolidation runs (goal: unchanged within
//      noise).
//
// Three repositories side by side, in one run:
//   (a) consolidation off: consolidate_in_background = false and NewFullEveryNPolicy(2^63), so the
//       chain grows to the number of checkpoints; background GC on;
//   (b) consolidation on: the checkpointer's defaults (cost-model policy, consolidation after 8
//       links, min_pack_use 0.5) with background GC on;
//   (c) the reference: one full checkpoint of the final content (one link: depth 0).
// (a) and (b) start from the same random (incompressible) region and apply the same changes (the
// same seed): before each checkpoint, `--change-percent` of the blocks, distinct and at random
// positions, are rewritten with random bytes. Their steps are interleaved one by one, the order
// alternating, so that the machine's noise hits both. Each checkpoint is followed by Wait().
//
// Retention keeps the last 3 checkpoints. GC's grace period must exceed the policy's checkpoint
// timeout (format.md §13.4, A3), and a consolidation must publish within that timeout or it fails
// (§14.3): the timeout is --checkpoint-timeout (default max(2 s, 1 s per 16 MiB of region), so
// that a consolidation that repacks half the region fits: one took 27 s at 1 GiB here), the grace
// period is the timeout + 1 s, and background collection runs once per grace period, so that what
// consolidations replaced is collected during the run (about two grace periods after it was
// replaced: condemned after one, removed after the next).
//
// Restore: each repository's latest checkpoint, through a fresh Repository and Checkpointer
// (RestoreOptions{latest, kCreate}), --rounds times in the order a, b, c, a, b, c, ...; the time is
// that of Checkpointer::Restore(). Before each, the page cache of every file of that repository is
// written back and dropped with posix_fadvise(POSIX_FADV_DONTNEED) (dropping
// /proc/sys/vm/drop_caches needs root and is global; the kernel's inode and directory caches stay
// warm). Every restore is compared byte for byte with the region's final content; a difference
// ends the benchmark with an error.
//
// Space: the bytes of every file under packs/ and manifests/ over the region size, after the
// checkpointers closed and GC ran twice, each time once the grace period had passed since the
// last write (so that a consolidation's replaced chain is first condemned, then removed).
//
// Pause and slowdown: per checkpoint of (b), the capture pause (CheckpointHandle::pause()), the
// application's own work (the mutation: writes to tracked memory) and the step (mutation +
// Checkpoint() + Wait()). The store under (a) and (b) is wrapped to see the maintenance lock
// (format.md §13.5): the windows from the publish of locks/maintenance-N to its delete, with the
// lock's operation ("consolidate" or "gc"). A step of (b) is "during consolidation" if it overlaps
// one of (b)'s consolidation windows; "after" if it is the first step that starts after one ended
// (its persist re-resolves the location tables, docs/policy.md §4; the consolidation's restore
// estimate, MeasureRestoreWork and MeasureReadSpeed, also runs then, after the lock); "GC" if it
// overlaps a collection of (a) or (b); otherwise "quiet". The same windows classify (a)'s steps:
// an application in the same process whose own repository is not being consolidated.
//
// Configuration (flag, as --flag=V or --flag V, else environment, else default):
//   --region-mib=N          ICKPT_BENCH_CONS_REGION_MIB      region size in MiB (default 1024)
//   --checkpoints=N         ICKPT_BENCH_CONS_CHECKPOINTS     incremental checkpoints after the
//                                                            first full one (default 1000)
//   --change-percent=X      ICKPT_BENCH_CONS_CHANGE_PERCENT  blocks rewritten per step (default 1)
//   --rounds=N              ICKPT_BENCH_ROUNDS               restores of each repository (3)
//   --checkpoint-timeout=S  ICKPT_BENCH_CONS_TIMEOUT         retention's checkpoint timeout, whole
//                                                            seconds (default above)
//   --seed=N                ICKPT_BENCH_CONS_SEED            the content's seed (default 1)
//   --min-pack-use=X        ICKPT_BENCH_CONS_MIN_PACK_USE    (b)'s ConsolidateOptions::min_pack_use
//                                                            (default: the library's, 0.5)
//   --dir=PATH              ICKPT_BENCH_DIR                  where the repositories go (default
//                                                            /var/tmp: real local files)
//   --keep                  ICKPT_BENCH_CONS_KEEP=1          keep the repositories (default:
//                                                            removed at the end)
// A smoke test: --region-mib 64 --checkpoints 100 (well under a minute). Not in CTest.
// Exit status: 0; 3 if a checkpoint of (a) or (b) failed (counted, reported, and carried by the
// next checkpoint, so the results are still printed); 1 on any error, wrong restored bytes
// included.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/time/time.h"
#include "bench_options.h"
#include "ickpt/checkpointer.h"
#include "ickpt/maintenance.h"
#include "ickpt/repository.h"
#include "ickpt/store.h"
#include "src/repo/cost_model.h"

namespace ickpt {
namespace {

constexpr uint32_t kBlockSize = 4096;
constexpr uint64_t kKeepLast = 3;
constexpr const char* kRegionName = "heap";
constexpr double kNoiseTolerance = 1.10;  // "unchanged within noise": a median ratio at most this

using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

using bench::Check;
using bench::Option;
using bench::Rng;
using bench::StringOption;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "consolidation_bench: error: %s\n", what.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------------------------------------
// Statistics

double Median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest rank.
double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p / 100 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// A 95% bootstrap interval of median(x) / median(y).
std::pair<double, double> BootstrapRatio(const std::vector<double>& x,
                                         const std::vector<double>& y) {
  if (x.empty() || y.empty()) return {std::nan(""), std::nan("")};
  Rng rng(12345);
  std::vector<double> ratios, sx(x.size()), sy(y.size());
  for (int i = 0; i < 2000; ++i) {
    for (double& v : sx) v = x[rng.Below(x.size())];
    for (double& v : sy) v = y[rng.Below(y.size())];
    ratios.push_back(Median(sx) / Median(sy));
  }
  return {Percentile(ratios, 2.5), Percentile(ratios, 97.5)};
}

// ---------------------------------------------------------------------------------------------
// The store under (a) and (b): sees the maintenance lock and consolidation records, and counts
// reads (for restores).

struct MaintenanceWindow {
  bool consolidate = false;  // else gc
  Clock::time_point start;
  Clock::time_point end = Clock::time_point::max();  // max: still held
  std::string key;
  bool published = false;       // consolidation: a merges/ record was published in the window
  uint64_t repacked_bytes = 0;  // from that record
};

class WatchStore final : public ObjectStoreWrapper {
 public:
  explicit WatchStore(std::unique_ptr<ObjectStore> target)
      : ObjectStoreWrapper(target.get()), owned_(std::move(target)) {}

  absl::Status Put(std::string_view key, std::string_view data) override {
    absl::Status s = target()->Put(key, data);
    if (s.ok()) bytes_written_ += data.size();
    return s;
  }
  absl::Status Publish(std::string_view key, std::string_view data) override {
    absl::Status s = target()->Publish(key, data);
    if (!s.ok()) return s;
    bytes_written_ += data.size();
    const auto now = Clock::now();
    if (key.starts_with("locks/maintenance-")) {
      std::lock_guard<std::mutex> l(mu_);
      MaintenanceWindow w;
      w.consolidate = data.find("\"consolidate\"") != std::string_view::npos;
      w.start = now;
      w.key = std::string(key);
      windows_.push_back(std::move(w));
    } else if (key.starts_with("merges/")) {
      std::lock_guard<std::mutex> l(mu_);
      for (auto it = windows_.rbegin(); it != windows_.rend(); ++it) {
        if (it->consolidate && it->end == Clock::time_point::max()) {
          it->published = true;
          it->repacked_bytes = NumberAfter(data, "\"repacked_bytes\":");
          break;
        }
      }
    }
    return s;
  }
  absl::Status Delete(std::string_view key) override {
    absl::Status s = target()->Delete(key);
    if (key.starts_with("locks/maintenance-")) {
      std::lock_guard<std::mutex> l(mu_);
      for (MaintenanceWindow& w : windows_) {
        if (w.key == key && w.end == Clock::time_point::max()) w.end = Clock::now();
      }
    }
    return s;
  }
  absl::StatusOr<std::string> Get(std::string_view key) override {
    absl::StatusOr<std::string> r = target()->Get(key);
    reads_++;
    if (r.ok()) bytes_read_ += r->size();
    return r;
  }
  absl::StatusOr<std::string> GetRange(std::string_view key, uint64_t offset,
                                       uint64_t length) override {
    absl::StatusOr<std::string> r = target()->GetRange(key, offset, length);
    reads_++;
    if (r.ok()) bytes_read_ += r->size();
    return r;
  }

  std::vector<MaintenanceWindow> windows() const {
    std::lock_guard<std::mutex> l(mu_);
    return windows_;
  }
  uint64_t reads() const { return reads_; }
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  static uint64_t NumberAfter(std::string_view data, std::string_view label) {
    const size_t at = data.find(label);
    if (at == std::string_view::npos) return 0;
    return std::strtoull(std::string(data.substr(at + label.size(), 24)).c_str(), nullptr, 10);
  }

  std::unique_ptr<ObjectStore> owned_;
  mutable std::mutex mu_;
  std::vector<MaintenanceWindow> windows_;
  std::atomic<uint64_t> reads_{0}, bytes_read_{0}, bytes_written_{0};
};

// ---------------------------------------------------------------------------------------------
// Files

// Bytes of the files under `dir`/`sub` (less the store's temporary files).
uint64_t BytesUnder(const std::string& dir, const char* sub) {
  uint64_t bytes = 0;
  std::error_code ec;
  const std::filesystem::path root = std::filesystem::path(dir) / sub;
  if (!std::filesystem::exists(root)) return 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root, ec)) {
    if (!e.is_regular_file()) continue;
    if (e.path().filename().string().find(".tmp-") != std::string::npos) continue;
    bytes += e.file_size();
  }
  return bytes;
}

uint64_t PacksAndManifests(const std::string& dir) {
  return BytesUnder(dir, "packs") + BytesUnder(dir, "manifests");
}

struct CacheDrop {
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t resident_pages = 0;  // still in the page cache after the drop (mincore)
};

// Writes back and drops the page cache of every file under `dir`, then counts what is still
// resident.
CacheDrop DropPageCache(const std::string& dir) {
  CacheDrop d;
  const long page = ::sysconf(_SC_PAGESIZE);
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string path = e.path().string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // a temporary file that went meanwhile
      Fail("open " + path + ": " + std::strerror(errno));
    }
    const uint64_t size = e.file_size();
    if (::fdatasync(fd) != 0) Fail("fdatasync " + path + ": " + std::strerror(errno));
    if (const int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); err != 0) {
      Fail("posix_fadvise " + path + ": " + std::strerror(err));
    }
    if (size > 0) {
      void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
      if (m != MAP_FAILED) {
        std::vector<unsigned char> vec((size + page - 1) / page);
        if (::mincore(m, size, vec.data()) == 0) {
          for (unsigned char c : vec) d.resident_pages += c & 1;
        }
        ::munmap(m, size);
      }
    }
    ::close(fd);
    ++d.files;
    d.bytes += size;
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// The application: one region in one repository.

RepositoryOptions RepoOptions(absl::Duration timeout) {
  RepositoryOptions o;
  RetentionPolicy p;
  p.keep_last = kKeepLast;
  p.checkpoint_timeout = timeout;
  o.retention = p;
  return o;
}

struct Step {
  uint64_t index = 0;  // 0: the first (full) checkpoint
  Clock::time_point start, end;
  double mutate_ms = 0;      // the application's writes
  double pause_ms = 0;       // CheckpointHandle::pause()
  double checkpoint_ms = 0;  // Checkpoint() to Wait() done
  double wall_ms = 0;        // all of the step
  bool full = false;
  bool failed = false;
};

class App {
 public:
  App(std::string label, const std::string& dir, absl::Duration timeout,
      CheckpointerOptions options, uint64_t size, uint64_t seed, double change_percent)
      : label_(std::move(label)), dir_(dir), rng_(seed) {
    LocalStoreOptions lo;
    lo.create_if_missing = true;
    auto store = std::make_unique<WatchStore>(Check(OpenLocalStore(dir, lo)));
    store_ = store.get();
    repo_ = Check(Repository::Create(std::move(store), RepoOptions(timeout)));
    ckpt_ = Check(Checkpointer::Open(repo_.get(), std::move(options)));
    RegionOptions ro;
    ro.size = size;
    ro.block_size = kBlockSize;
    region_ = Check(ckpt_->AddRegion(kRegionName, ro));
    rng_.Fill(region_->data(), region_->size());
    const double n = std::round(static_cast<double>(region_->block_count()) * change_percent / 100);
    changed_ = std::clamp<uint64_t>(static_cast<uint64_t>(n), 1, region_->block_count());
    stamp_.assign(region_->block_count(), 0);
  }

  // The first checkpoint (full), of the initial content.
  Step First() {
    Step s = Take(/*mutate=*/false);
    written_by_first_ = store_->bytes_written();
    return s;
  }
  // Changes `changed()` distinct random blocks, then checkpoints.
  Step Next() { return Take(/*mutate=*/true); }

  // Closes the checkpointer (waiting for its background work) and the repository; keeps the
  // maintenance windows.
  void Close() {
    ckpt_.reset();
    region_ = nullptr;
    windows_ = store_->windows();
    bytes_written_ = store_->bytes_written();
    store_ = nullptr;
    repo_.reset();
  }

  const std::string& label() const { return label_; }
  const std::string& dir() const { return dir_; }
  const Region& region() const { return *region_; }
  uint64_t changed() const { return changed_; }
  uint64_t failed() const { return failed_; }
  const std::string& first_error() const { return first_error_; }
  const std::vector<Step>& steps() const { return steps_; }
  std::vector<MaintenanceWindow> windows() const {
    return store_ != nullptr ? store_->windows() : windows_;
  }
  // Every byte put or published in the repository (packs, manifests, records, locks) after the
  // first checkpoint.
  uint64_t bytes_written() const {
    return (store_ != nullptr ? store_->bytes_written() : bytes_written_) - written_by_first_;
  }
  uint64_t changed_bytes() const { return (steps_.size() - 1) * changed_ * kBlockSize; }

 private:
  Step Take(bool mutate) {
    Step s;
    s.index = steps_.size();
    s.start = Clock::now();
    if (mutate) {
      ++step_;
      const uint64_t blocks = region_->block_count();
      for (uint64_t k = 0; k < changed_; ++k) {
        uint64_t b = rng_.Below(blocks);
        while (stamp_[b] == step_) b = rng_.Below(blocks);
        stamp_[b] = step_;
        rng_.Fill(region_->data() + b * kBlockSize, kBlockSize);
      }
    }
    const auto taken = Clock::now();
    s.mutate_ms = Ms(taken - s.start);
    CheckpointHandle h = Check(ckpt_->Checkpoint());
    s.pause_ms = absl::ToDoubleMilliseconds(h.pause());
    absl::StatusOr<CommitRecord> r = h.Wait();
    s.end = Clock::now();
    s.checkpoint_ms = Ms(s.end - taken);
    s.wall_ms = Ms(s.end - s.start);
    if (r.ok()) {
      s.full = r->kind == CheckpointKind::kFull;
      consecutive_failures_ = 0;
    } else {
      // The changes go into the next checkpoint (the checkpointer's contract), so the content
      // stays comparable; failures are counted and reported.
      s.failed = true;
      if (failed_++ == 0) first_error_ = r.status().ToString();
      std::fprintf(stderr, "(%s) checkpoint %llu failed: %s\n", label_.c_str(),
                   static_cast<unsigned long long>(h.id()), r.status().ToString().c_str());
      if (++consecutive_failures_ > 20) Fail("(" + label_ + ") 20 checkpoints failed in a row");
    }
    steps_.push_back(s);
    return s;
  }

  std::string label_;
  std::string dir_;
  Rng rng_;
  WatchStore* store_ = nullptr;  // owned by repo_
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Checkpointer> ckpt_;  // destroyed before repo_
  Region* region_ = nullptr;
  uint64_t changed_ = 0;
  std::vector<uint64_t> stamp_;  // the step that last changed each block
  uint64_t step_ = 0;
  uint64_t failed_ = 0;
  uint64_t consecutive_failures_ = 0;
  std::string first_error_;
  std::vector<Step> steps_;
  std::vector<MaintenanceWindow> windows_;  // after Close()
  uint64_t bytes_written_ = 0;              // after Close()
  uint64_t written_by_first_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Classifying steps by the maintenance windows

enum Bucket { kDuring = 0, kAfter = 1, kGc = 2, kQuiet = 3, kBuckets = 4 };
constexpr const char* kBucketNames[kBuckets] = {"during consolidation", "first after one",
                                                "during GC only", "quiet"};

bool Overlaps(const Step& s, const MaintenanceWindow& w) {
  return w.start < s.end && w.end > s.start;
}

// `consolidations`: the windows that count as consolidations for these steps; `gcs`: every GC
// window of the process. A step counts as "first after" when it is the first to start after a
// consolidation window ended.
std::vector<Bucket> Classify(const std::vector<Step>& steps,
                             const std::vector<MaintenanceWindow>& consolidations,
                             const std::vector<MaintenanceWindow>& gcs) {
  std::vector<Bucket> out(steps.size(), kQuiet);
  std::vector<bool> after(steps.size(), false);
  for (const MaintenanceWindow& w : consolidations) {
    if (w.end == Clock::time_point::max()) continue;
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i].start >= w.end) {
        after[i] = true;
        break;
      }
    }
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    bool during = false, gc = false;
    for (const MaintenanceWindow& w : consolidations) during = during || Overlaps(s, w);
    for (const MaintenanceWindow& w : gcs) gc = gc || Overlaps(s, w);
    out[i] = during ? kDuring : after[i] ? kAfter : gc ? kGc : kQuiet;
  }
  return out;
}

struct BucketStats {
  std::vector<double> pause, mutate, wall;
};

std::vector<BucketStats> Split(const std::vector<Step>& steps, const std::vector<Bucket>& b) {
  std::vector<BucketStats> out(kBuckets);
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].index == 0 || steps[i].failed) continue;  // the first (full) checkpoint
    out[b[i]].pause.push_back(steps[i].pause_ms);
    out[b[i]].mutate.push_back(steps[i].mutate_ms);
    out[b[i]].wall.push_back(steps[i].wall_ms);
  }
  return out;
}

void PrintBuckets(const char* title, const std::vector<BucketStats>& b) {
  std::printf("  %s\n", title);
  std::printf("    %-22s %6s %10s %10s %12s %12s %10s %10s\n", "steps", "n", "pause med", "p99",
              "step med ms", "p99", "mutate med", "p99");
  for (int k = 0; k < kBuckets; ++k) {
    std::printf("    %-22s %6zu %10.2f %10.2f %12.1f %12.1f %10.2f %10.2f\n", kBucketNames[k],
                b[k].pause.size(), Median(b[k].pause), Percentile(b[k].pause, 99),
                Median(b[k].wall), Percentile(b[k].wall, 99), Median(b[k].mutate),
                Percentile(b[k].mutate, 99));
  }
}

struct Ratio {
  double median = 0, p99 = 0, lo = 0, hi = 0;
};
Ratio RatioOf(const std::vector<double>& during, const std::vector<double>& quiet) {
  Ratio r;
  r.median = Median(during) / Median(quiet);
  r.p99 = Percentile(during, 99) / Percentile(quiet, 99);
  std::tie(r.lo, r.hi) = BootstrapRatio(during, quiet);
  return r;
}

// Time-local ratios. The machine's load drifts during a run (other jobs start and stop) and
// consolidations are rare at first and then run most of the time, so pooled medians of "during"
// and "quiet" compare different periods. Here the steps are cut into chunks of `chunk`
// consecutive steps, and each chunk with at least kMinChunkSamples steps in both buckets gives
// median(during) / median(quiet).
constexpr size_t kMinChunkSamples = 5;

std::vector<double> ChunkRatios(const std::vector<Step>& steps, const std::vector<Bucket>& b,
                                size_t chunk, double Step::*field) {
  std::vector<double> out;
  for (size_t first = 1; first < steps.size(); first += chunk) {
    std::vector<double> during, quiet;
    for (size_t i = first; i < std::min(steps.size(), first + chunk); ++i) {
      if (steps[i].failed) continue;
      if (b[i] == kDuring) during.push_back(steps[i].*field);
      if (b[i] == kQuiet) quiet.push_back(steps[i].*field);
    }
    if (during.size() >= kMinChunkSamples && quiet.size() >= kMinChunkSamples) {
      out.push_back(Median(during) / Median(quiet));
    }
  }
  return out;
}

std::string Join(const std::vector<double>& v) {
  std::string out;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof(buf), "%s%.2f", out.empty() ? "" : " ", x);
    out += buf;
  }
  return out;
}

// Paired with (a): step i of (b) over step i of (a), run back to back. Whatever slows both alike
// (the machine, the consolidation thread's CPU and disk use) cancels; what is left is what
// consolidation costs (b)'s own checkpoints (the re-resolution of its location tables, the check
// for unknown consolidations, reads of a repository being rewritten).
struct Paired {
  std::vector<double> during, quiet;
};
Paired PairedRatios(const std::vector<Step>& sb, const std::vector<Step>& sa,
                    const std::vector<Bucket>& b, double Step::*field) {
  Paired p;
  for (size_t i = 1; i < std::min(sb.size(), sa.size()); ++i) {
    if (sb[i].failed || sa[i].failed || sa[i].*field <= 0) continue;
    if (b[i] == kDuring) p.during.push_back(sb[i].*field / sa[i].*field);
    if (b[i] == kQuiet) p.quiet.push_back(sb[i].*field / sa[i].*field);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Restore

struct Restored {
  double ms = 0;
  uint64_t bytes_read = 0;
  uint64_t reads = 0;
  uint64_t id = 0;
  CacheDrop drop;
};

// Restores the latest checkpoint of `dir` into a fresh checkpointer with a cold page cache and
// compares it with `expected`.
Restored RestoreCold(const std::string& label, const std::string& dir, const char* expected,
                     uint64_t size) {
  Restored out;
  auto store = std::make_unique<WatchStore>(Check(OpenLocalStore(dir)));
  WatchStore* watch = store.get();
  std::unique_ptr<Repository> repo = Check(Repository::Open(std::move(store)));
  CheckpointerOptions co;
  co.gc_after_commit = false;
  co.consolidate_in_background = false;
  std::unique_ptr<Checkpointer> c = Check(Checkpointer::Open(repo.get(), co));
  out.drop = DropPageCache(dir);
  const uint64_t reads0 = watch->reads(), bytes0 = watch->bytes_read();
  RestoreOptions ro;
  ro.on_unregistered = OnUnregistered::kCreate;
  const auto start = Clock::now();
  CommitRecord r = Check(c->Restore(ro));
  out.ms = Ms(Clock::now() - start);
  out.reads = watch->reads() - reads0;
  out.bytes_read = watch->bytes_read() - bytes0;
  out.id = r.id;
  Region* region = c->FindRegion(kRegionName);
  if (region == nullptr) Fail("(" + label + ") the restore has no region " + kRegionName);
  if (region->size() != size) {
    Fail("(" + label + ") restored region of " + std::to_string(region->size()) +
         " bytes, expected " + std::to_string(size));
  }
  if (std::memcmp(region->data(), expected, size) != 0) {
    uint64_t at = 0;
    while (at < size && region->data()[at] == expected[at]) ++at;
    Fail("(" + label + ") restore of checkpoint " + std::to_string(r.id) +
         " returned WRONG BYTES: first difference at offset " + std::to_string(at) + " (block " +
         std::to_string(at / kBlockSize) + ")");
  }
  return out;
}

struct Work {
  RestoreWork work;
  uint64_t latest = 0;
  size_t commits = 0;
  size_t consolidations = 0;
};

Work MeasureWork(const std::string& dir) {
  std::unique_ptr<Repository> repo = Check(Repository::OpenLocal(dir, /*create=*/false));
  Work w;
  std::optional<uint64_t> latest = Check(repo->LatestCommitId());
  if (!latest.has_value()) Fail(dir + ": no checkpoint");
  w.latest = *latest;
  w.work = Check(MeasureRestoreWork(*repo, Check(repo->ReadCommit(*latest))));
  w.commits = Check(repo->ListCommitIds()).size();
  w.consolidations = Check(ListConsolidations(*repo)).size();
  return w;
}

void PrintGc(const char* label, const GcReport& r, double seconds) {
  std::printf(
      "  (%s) GC in %.2f s: deleted %llu objects (%.1f MiB: %llu commits, %llu manifests, %llu "
      "packs, %llu consolidation records), condemned %zu, removed %zu checkpoints\n",
      label, seconds, static_cast<unsigned long long>(r.deleted_objects),
      r.deleted_bytes / 1048576.0, static_cast<unsigned long long>(r.deleted_commits),
      static_cast<unsigned long long>(r.deleted_manifests),
      static_cast<unsigned long long>(r.deleted_packs),
      static_cast<unsigned long long>(r.deleted_consolidations), r.condemned_checkpoints.size(),
      r.removed_checkpoints.size());
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

const char* Met(bool ok) { return ok ? "met" : "NOT met"; }

// ---------------------------------------------------------------------------------------------
// Flags: `--flag value` is read as `--flag=value`, `--keep` as `--keep=1`; unknown flags are
// refused (a misspelt flag silently ignored would measure the wrong thing).

const std::vector<std::string_view> kFlags = {
    "region-mib", "checkpoints", "change-percent", "rounds",      "checkpoint-timeout",
    "seed",       "dir",         "keep",           "min-pack-use"};

int Main(int raw_argc, char** raw_argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows as it happens, also into a file
  std::vector<std::string> args =
      bench::NormalizeFlags(raw_argc, raw_argv, kFlags, {"keep"}, "consolidation_bench");
  std::vector<char*> argv_storage;
  for (std::string& a : args) argv_storage.push_back(a.data());
  const int argc = static_cast<int>(argv_storage.size());
  char** argv = argv_storage.data();

  const uint64_t region_mib =
      std::max<uint64_t>(1, Option(argc, argv, "region-mib", "ICKPT_BENCH_CONS_REGION_MIB", 1024));
  const uint64_t checkpoints = std::max<uint64_t>(
      1, Option(argc, argv, "checkpoints", "ICKPT_BENCH_CONS_CHECKPOINTS", 1000));
  const double change_percent = std::strtod(
      StringOption(argc, argv, "change-percent", "ICKPT_BENCH_CONS_CHANGE_PERCENT", "1").c_str(),
      nullptr);
  if (!(change_percent > 0 && change_percent <= 100)) Fail("--change-percent must be in (0, 100]");
  const int rounds = static_cast<int>(
      std::max<uint64_t>(1, Option(argc, argv, "rounds", "ICKPT_BENCH_ROUNDS", 3)));
  const uint64_t timeout_s =
      std::max<uint64_t>(1, Option(argc, argv, "checkpoint-timeout", "ICKPT_BENCH_CONS_TIMEOUT",
                                   std::max<uint64_t>(2, (region_mib + 15) / 16)));
  const uint64_t seed = Option(argc, argv, "seed", "ICKPT_BENCH_CONS_SEED", 1);
  const double min_pack_use = std::strtod(
      StringOption(argc, argv, "min-pack-use", "ICKPT_BENCH_CONS_MIN_PACK_USE", "-1").c_str(),
      nullptr);
  const bool keep = Option(argc, argv, "keep", "ICKPT_BENCH_CONS_KEEP", 0) != 0;
  const std::string base = StringOption(argc, argv, "dir", "ICKPT_BENCH_DIR", "/var/tmp");
  const uint64_t size = region_mib << 20;
  const absl::Duration timeout = absl::Seconds(timeout_s);
  const absl::Duration grace = timeout + absl::Seconds(1);
  const absl::Duration gc_interval = grace;

  std::string root = base + "/ickpt-consolidation-bench-XXXXXX";
  if (::mkdtemp(root.data()) == nullptr) Fail("mkdtemp " + root + ": " + std::strerror(errno));
  std::printf(
      "consolidation benchmark: region %llu MiB (%llu blocks of 4 KiB), 1 full + %llu incremental "
      "checkpoints, %.3g%% of the blocks rewritten per step (seed %llu); retention keep-last %llu, "
      "checkpoint timeout %s, GC grace %s, background GC every %s; repositories under %s\n",
      static_cast<unsigned long long>(region_mib),
      static_cast<unsigned long long>(size / kBlockSize),
      static_cast<unsigned long long>(checkpoints), change_percent,
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(kKeepLast),
      absl::FormatDuration(timeout).c_str(), absl::FormatDuration(grace).c_str(),
      absl::FormatDuration(gc_interval).c_str(), root.c_str());
  std::printf("load average at start: %s; nproc %u\n", LoadAverage().c_str(),
              std::thread::hardware_concurrency());
  const auto run_start = Clock::now();

  // (a) off and (b) on.
  CheckpointerOptions off;
  off.policy = NewFullEveryNPolicy(uint64_t{1} << 63);
  off.consolidate_in_background = false;
  off.gc_after_commit = true;
  off.gc_interval = gc_interval;
  off.gc.grace = grace;
  CheckpointerOptions on;  // the defaults: cost-model policy, consolidation after 8 links
  if (min_pack_use >= 0) on.consolidate.min_pack_use = std::min(1.0, min_pack_use);
  on.gc_after_commit = true;
  on.gc_interval = gc_interval;
  on.gc.grace = grace;
  const auto setup_start = Clock::now();
  App a("a", root + "/a-off", timeout, off, size, seed, change_percent);
  App b("b", root + "/b-on", timeout, on, size, seed, change_percent);
  std::printf(
      "(a) consolidation off (NewFullEveryNPolicy(2^63)), (b) consolidation on (defaults: "
      "consolidate_after_links %llu, min_pack_use %.2f); tracker %s; %llu blocks changed per "
      "step; filled in %.1f s\n",
      static_cast<unsigned long long>(on.consolidate_after_links), on.consolidate.min_pack_use,
      std::string(b.region().tracker_name()).c_str(), static_cast<unsigned long long>(b.changed()),
      Seconds(Clock::now() - setup_start));
  {
    const Step fa = a.First();
    const Step fb = b.First();
    std::printf("first (full) checkpoints: (a) %.0f ms, (b) %.0f ms\n", fa.wall_ms, fb.wall_ms);
  }

  // 1. The steps, interleaved one by one, the order alternating.
  std::printf("\n1. %llu steps, (a) and (b) interleaved\n",
              static_cast<unsigned long long>(checkpoints));
  const uint64_t report_every = std::max<uint64_t>(1, checkpoints / 10);
  const uint64_t sample_every = std::max<uint64_t>(1, checkpoints / 100);  // (b)'s space
  const auto loop_start = Clock::now();
  double peak_space_b = 0;
  uint64_t peak_space_b_step = 0;
  for (uint64_t i = 1; i <= checkpoints; ++i) {
    if (i % 2 == 1) {
      a.Next();
      b.Next();
    } else {
      b.Next();
      a.Next();
    }
    if (i % sample_every == 0 || i == checkpoints) {
      const double space_b = double(PacksAndManifests(b.dir())) / size;
      if (space_b > peak_space_b) {
        peak_space_b = space_b;
        peak_space_b_step = i;
      }
    }
    if (i % report_every == 0 || i == checkpoints) {
      auto recent = [&](const App& app) {
        std::vector<double> v;
        const auto& s = app.steps();
        for (size_t k = s.size() - std::min<size_t>(s.size(), report_every); k < s.size(); ++k) {
          v.push_back(s[k].wall_ms);
        }
        return Median(v);
      };
      uint64_t published = 0;
      for (const MaintenanceWindow& w : b.windows()) published += w.consolidate && w.published;
      const double space_a = double(PacksAndManifests(a.dir())) / size;
      const double space_b = double(PacksAndManifests(b.dir())) / size;
      std::printf(
          "  step %5llu  %6.0f s  step median ms (last %llu): (a) %.1f (b) %.1f;  (b) "
          "consolidations published %llu;  packs+manifests / region: (a) %.2f (b) %.2f;  load %s\n",
          static_cast<unsigned long long>(i), Seconds(Clock::now() - loop_start),
          static_cast<unsigned long long>(report_every), recent(a), recent(b),
          static_cast<unsigned long long>(published), space_a, space_b, LoadAverage().c_str());
    }
  }
  const double loop_seconds = Seconds(Clock::now() - loop_start);

  // The final content: (a) and (b) must hold the same bytes.
  char* expected = static_cast<char*>(
      ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (expected == MAP_FAILED) Fail(std::string("mmap: ") + std::strerror(errno));
  std::memcpy(expected, a.region().data(), size);
  if (std::memcmp(expected, b.region().data(), size) != 0) {
    Fail("(a) and (b) hold different bytes after the same changes: the benchmark is broken");
  }
  const auto close_start = Clock::now();
  a.Close();
  b.Close();
  std::printf("  loop %.0f s; checkpointers closed in %.1f s (waiting for background work)\n",
              loop_seconds, Seconds(Clock::now() - close_start));

  // What maintenance ran.
  auto describe_windows = [](const App& app) {
    uint64_t cons = 0, published = 0, repacked = 0, gcs = 0;
    double cons_s = 0, gc_s = 0, longest = 0;
    uint64_t fulls = 0;
    for (const Step& st : app.steps()) fulls += st.index > 0 && st.full;
    for (const MaintenanceWindow& w : app.windows()) {
      if (w.end == Clock::time_point::max()) continue;
      const double s = Seconds(w.end - w.start);
      if (w.consolidate) {
        ++cons;
        cons_s += s;
        longest = std::max(longest, s);
        published += w.published;
        repacked += w.repacked_bytes;
      } else {
        ++gcs;
        gc_s += s;
      }
    }
    std::printf(
        "  (%s) consolidations %llu (published %llu, %llu without a publish: failed or nothing to "
        "do), %.1f s in all, longest %.2f s, %.1f MiB repacked; GC runs %llu, %.1f s in all; "
        "full checkpoints after the first %llu; checkpoints failed %llu%s%s\n",
        app.label().c_str(), static_cast<unsigned long long>(cons),
        static_cast<unsigned long long>(published),
        static_cast<unsigned long long>(cons - published), cons_s, longest, repacked / 1048576.0,
        static_cast<unsigned long long>(gcs), gc_s, static_cast<unsigned long long>(fulls),
        static_cast<unsigned long long>(app.failed()), app.failed() > 0 ? ", first: " : "",
        app.first_error().c_str());
  };
  describe_windows(a);
  describe_windows(b);

  // (c): one full checkpoint of the same content.
  const std::string dir_c = root + "/c-full";
  {
    CheckpointerOptions co;
    co.gc_after_commit = false;
    std::unique_ptr<Repository> repo =
        Check(Repository::OpenLocal(dir_c, /*create=*/true, RepoOptions(timeout)));
    std::unique_ptr<Checkpointer> c = Check(Checkpointer::Open(repo.get(), co));
    RegionOptions ro;
    ro.size = size;
    ro.block_size = kBlockSize;
    Region* region = Check(c->AddRegion(kRegionName, ro));
    std::memcpy(region->data(), expected, size);
    const auto start = Clock::now();
    CommitRecord r = Check(Check(c->Checkpoint()).Wait());
    std::printf("(c) one full checkpoint (id %llu, %s) in %.0f ms\n",
                static_cast<unsigned long long>(r.id),
                std::string(CheckpointKindName(r.kind)).c_str(), Ms(Clock::now() - start));
  }

  // 2. Final GC: once the grace period has passed, the replaced chains are condemned; once it has
  // passed again, removed.
  std::printf("\n2. final GC of (a) and (b), each run after sleeping past the grace period\n");
  for (int run = 0; run < 2; ++run) {
    std::this_thread::sleep_for(std::chrono::milliseconds(absl::ToInt64Milliseconds(grace)) +
                                std::chrono::seconds(1));
    for (const App* app : {&a, &b}) {
      std::unique_ptr<Repository> repo = Check(Repository::OpenLocal(app->dir(), false));
      GcOptions g;
      g.grace = grace;
      const auto start = Clock::now();
      const GcReport r = Check(CollectGarbage(*repo, g));
      PrintGc(app->label().c_str(), r, Seconds(Clock::now() - start));
    }
  }

  // 3. Space and restore work.
  const std::string dirs[3] = {a.dir(), b.dir(), dir_c};
  const char* labels[3] = {"a", "b", "c"};
  double space[3];
  Work work[3];
  std::printf("\n3. space (packs/ + manifests/) and restore work of the latest checkpoint\n");
  for (int k = 0; k < 3; ++k) {
    const uint64_t packs = BytesUnder(dirs[k], "packs"),
                   manifests = BytesUnder(dirs[k], "manifests");
    space[k] = double(packs + manifests) / size;
    work[k] = MeasureWork(dirs[k]);
    const RestoreWork& w = work[k].work;
    std::printf(
        "  (%s) packs %.1f MiB + manifests %.2f MiB = %.3f x region; %zu commit records, %zu "
        "consolidations in force; latest %llu: %llu links (max effective depth %llu), %llu packs, "
        "%.1f MiB to read, %llu requests\n",
        labels[k], packs / 1048576.0, manifests / 1048576.0, space[k], work[k].commits,
        work[k].consolidations, static_cast<unsigned long long>(work[k].latest),
        static_cast<unsigned long long>(w.links),
        static_cast<unsigned long long>(w.max_effective_depth),
        static_cast<unsigned long long>(w.packs), w.bytes / 1048576.0,
        static_cast<unsigned long long>(w.objects));
  }

  // 4. Cold restores, a, b, c, a, b, c, ...
  std::printf(
      "\n4. cold restores of the latest checkpoint (page cache of the repository's files dropped "
      "with posix_fadvise(DONTNEED) before each; inode and directory caches stay warm), "
      "checked byte for byte\n");
  std::vector<double> restore_ms[3];
  Restored last[3];
  for (int r = 0; r < rounds; ++r) {
    for (int k = 0; k < 3; ++k) {
      last[k] = RestoreCold(labels[k], dirs[k], expected, size);
      restore_ms[k].push_back(last[k].ms);
      std::printf(
          "  round %d (%s) checkpoint %llu: %.0f ms, %.1f MiB in %llu reads; dropped %llu files "
          "(%.1f MiB), %llu pages still resident; bytes identical\n",
          r, labels[k], static_cast<unsigned long long>(last[k].id), last[k].ms,
          last[k].bytes_read / 1048576.0, static_cast<unsigned long long>(last[k].reads),
          static_cast<unsigned long long>(last[k].drop.files), last[k].drop.bytes / 1048576.0,
          static_cast<unsigned long long>(last[k].drop.resident_pages));
    }
  }
  ::munmap(expected, size);

  // 5. Pause and slowdown.
  std::vector<MaintenanceWindow> b_cons, gcs;
  for (const App* app : {&a, &b}) {
    for (const MaintenanceWindow& w : app->windows()) {
      if (!w.consolidate) {
        gcs.push_back(w);
      } else if (app == &b) {
        b_cons.push_back(w);
      }
    }
  }
  const std::vector<Bucket> bucket_b = Classify(b.steps(), b_cons, gcs);
  const std::vector<BucketStats> sb = Split(b.steps(), bucket_b);
  const std::vector<BucketStats> sa = Split(a.steps(), Classify(a.steps(), b_cons, gcs));
  std::printf("\n5. pause and step time by what ran in the background (ms)\n");
  PrintBuckets("(b) consolidation on: (b)'s own consolidations", sb);
  PrintBuckets("(a) consolidation off, same windows of (b) (same process, other repository)", sa);
  const Ratio pause_b = RatioOf(sb[kDuring].pause, sb[kQuiet].pause);
  const Ratio wall_b = RatioOf(sb[kDuring].wall, sb[kQuiet].wall);
  const Ratio mutate_b = RatioOf(sb[kDuring].mutate, sb[kQuiet].mutate);
  const Ratio after_b = RatioOf(sb[kAfter].wall, sb[kQuiet].wall);
  auto print_ratio = [](const char* what, const Ratio& r) {
    std::printf("  %-52s median %.3f [95%% %.3f..%.3f], p99 %.3f\n", what, r.median, r.lo, r.hi,
                r.p99);
  };
  std::printf("  pooled over the run, during / quiet:\n");
  print_ratio("(b) pause", pause_b);
  print_ratio("(b) step", wall_b);
  print_ratio("(b) mutation (the application's writes)", mutate_b);
  print_ratio("(b) step, first after / quiet", after_b);
  const size_t chunk = std::max<size_t>(20, checkpoints / 10);
  const std::vector<double> chunk_pause = ChunkRatios(b.steps(), bucket_b, chunk, &Step::pause_ms);
  const std::vector<double> chunk_wall = ChunkRatios(b.steps(), bucket_b, chunk, &Step::wall_ms);
  const std::vector<double> chunk_mutate =
      ChunkRatios(b.steps(), bucket_b, chunk, &Step::mutate_ms);
  std::printf(
      "  time-local, during / quiet within chunks of %zu steps (chunks with >= %zu of each):\n",
      chunk, kMinChunkSamples);
  std::printf("  %-52s median %.3f over %zu chunks: %s\n", "(b) pause", Median(chunk_pause),
              chunk_pause.size(), Join(chunk_pause).c_str());
  std::printf("  %-52s median %.3f over %zu chunks: %s\n", "(b) step", Median(chunk_wall),
              chunk_wall.size(), Join(chunk_wall).c_str());
  std::printf("  %-52s median %.3f over %zu chunks: %s\n", "(b) mutation", Median(chunk_mutate),
              chunk_mutate.size(), Join(chunk_mutate).c_str());
  const Paired paired_wall = PairedRatios(b.steps(), a.steps(), bucket_b, &Step::wall_ms);
  const Paired paired_pause = PairedRatios(b.steps(), a.steps(), bucket_b, &Step::pause_ms);
  std::printf(
      "  paired with (a) (step i of (b) / step i of (a), back to back), by (b)'s bucket:\n"
      "  %-52s during %.3f, quiet %.3f: during / quiet %.3f\n"
      "  %-52s during %.3f, quiet %.3f: during / quiet %.3f\n",
      "(b) / (a) step, median", Median(paired_wall.during), Median(paired_wall.quiet),
      Median(paired_wall.during) / Median(paired_wall.quiet), "(b) / (a) pause, median",
      Median(paired_pause.during), Median(paired_pause.quiet),
      Median(paired_pause.during) / Median(paired_pause.quiet));
  // The goal's verdict: the time-local ratio when there are chunks to take it from, else pooled.
  const bool local = !chunk_pause.empty();
  const double pause_verdict = local ? Median(chunk_pause) : pause_b.median;
  const double wall_verdict = local ? Median(chunk_wall) : wall_b.median;

  // The table.
  const double med[3] = {Median(restore_ms[0]), Median(restore_ms[1]), Median(restore_ms[2])};
  std::printf("\nSUMMARY (%llu MiB, 1 full + %llu incremental checkpoints, %.3g%% per step)\n",
              static_cast<unsigned long long>(region_mib),
              static_cast<unsigned long long>(checkpoints), change_percent);
  std::printf("| measure | (a) consolidation off | (b) consolidation on | (c) one full | goal |\n");
  std::printf("| --- | --- | --- | --- | --- |\n");
  std::printf("| cold restore, median of %d (ms) | %.0f | %.0f | %.0f | |\n", rounds, med[0],
              med[1], med[2]);
  std::printf("| restore / (c) | %.2f | **%.2f** | 1.00 | (b) <= 1.2: **%s** |\n", med[0] / med[2],
              med[1] / med[2], Met(med[1] / med[2] <= 1.2));
  std::printf("| links read (effective depth) | %llu (%llu) | %llu (%llu) | %llu (%llu) | |\n",
              static_cast<unsigned long long>(work[0].work.links),
              static_cast<unsigned long long>(work[0].work.max_effective_depth),
              static_cast<unsigned long long>(work[1].work.links),
              static_cast<unsigned long long>(work[1].work.max_effective_depth),
              static_cast<unsigned long long>(work[2].work.links),
              static_cast<unsigned long long>(work[2].work.max_effective_depth));
  std::printf("| MiB read by a restore (reads) | %.1f (%llu) | %.1f (%llu) | %.1f (%llu) | |\n",
              last[0].bytes_read / 1048576.0, static_cast<unsigned long long>(last[0].reads),
              last[1].bytes_read / 1048576.0, static_cast<unsigned long long>(last[1].reads),
              last[2].bytes_read / 1048576.0, static_cast<unsigned long long>(last[2].reads));
  std::printf(
      "| space amplification (packs + manifests / region) | %.2f | **%.2f** | %.2f | "
      "(b) <= 1.5: **%s** |\n",
      space[0], space[1], space[2], Met(space[1] <= 1.5));
  std::printf("| (b) in-run peak space (sampled every %llu steps) | | %.2f (step %llu) | | |\n",
              static_cast<unsigned long long>(sample_every), peak_space_b,
              static_cast<unsigned long long>(peak_space_b_step));
  std::printf("| (b) steps during consolidation / quiet (n) | | %zu / %zu | | |\n",
              sb[kDuring].pause.size(), sb[kQuiet].pause.size());
  std::printf("| (b) pause median ms, during / quiet, pooled | | %.2f / %.2f = %.2f | | |\n",
              Median(sb[kDuring].pause), Median(sb[kQuiet].pause), pause_b.median);
  std::printf("| (b) pause, during / quiet, %s | | **%.3f** | | <= %.2f: **%s** |\n",
              local ? "median of the chunks' ratios" : "pooled (no chunk had enough of both)",
              pause_verdict, kNoiseTolerance, Met(pause_verdict <= kNoiseTolerance));
  std::printf("| (b) pause p99 ms, during / quiet | | %.2f / %.2f = %.2f | | |\n",
              Percentile(sb[kDuring].pause, 99), Percentile(sb[kQuiet].pause, 99), pause_b.p99);
  std::printf("| (b) step median ms, during / quiet, pooled | | %.1f / %.1f = %.2f | | |\n",
              Median(sb[kDuring].wall), Median(sb[kQuiet].wall), wall_b.median);
  std::printf("| (b) step, during / quiet, %s | | **%.3f** | | <= %.2f: **%s** |\n",
              local ? "median of the chunks' ratios" : "pooled (no chunk had enough of both)",
              wall_verdict, kNoiseTolerance, Met(wall_verdict <= kNoiseTolerance));
  std::printf("| (b) step p99 ms, during / quiet | | %.1f / %.1f = %.2f | | |\n",
              Percentile(sb[kDuring].wall, 99), Percentile(sb[kQuiet].wall, 99), wall_b.p99);
  std::printf("| (b) / (a) paired step ratio, during / quiet | | %.2f | | |\n",
              Median(paired_wall.during) / Median(paired_wall.quiet));
  std::printf("| bytes written after the first checkpoint / bytes changed | %.2f | %.2f | | |\n",
              double(a.bytes_written()) / a.changed_bytes(),
              double(b.bytes_written()) / b.changed_bytes());
  std::printf("\ntotal %.0f s; load average at end: %s\n", Seconds(Clock::now() - run_start),
              LoadAverage().c_str());

  if (keep) {
    std::printf("repositories kept under %s\n", root.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
  return a.failed() + b.failed() > 0 ? 3 : 0;
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) { return ickpt::Main(argc, argv); }
