// The dirty-tracking benchmark of issue 3 (docs/benchmarks.md, "Dirty tracking (issue 3)"). On one
// region per tracker (default 1 GiB, 4 KiB blocks, every page written once first), with 0.1%, 1%
// and 10% of the pages then dirtied at random, for every tracker that works here:
//   1. dirty detection: the time of RegionAccess::Collect, and hash's time / the tracker's time;
//   2. capture pause: handle.pause() of Checkpointer::Checkpoint() into a local repository, against
//      the "copy floor": a memcpy of the same pages into a pre-touched buffer;
//   3. first-write cost: one byte written into each of N distinct pages right after a Collect
//      (protected pages), against the same writes into untracked memory whose pages are present;
//   4. application loop: random 8-byte writes into a hot set of 1% of the pages that moves every
//      second, with a checkpoint every second (persisting in the background), against the same loop
//      on an untracked buffer without checkpoints, second by second alternately.
// The machine is shared and noisy: every case runs several times, interleaved across trackers (the
// order rotates every repetition) so that a slow spell hits all of them alike, and the summary
// gives medians and ratios between cases measured side by side in this run. Absolute times are
// only comparable within one run.
//
// Configuration (flag, else environment, else default):
//   --size=SIZE          ICKPT_BENCH_SIZE          region size per tracker (default 1GiB)
//   --reps=N             ICKPT_BENCH_REPS          repetitions of 1-3 per dirty level (default 5)
//   --loop-seconds=N     ICKPT_BENCH_LOOP_SECONDS  tracked seconds of one run of the loop (default
//                                                  5; as many untracked seconds alternate)
//   --loop-rounds=N      ICKPT_BENCH_LOOP_ROUNDS   runs of the loop per tracker (default 2)
//   --dir=DIR            ICKPT_BENCH_DIR           where the temporary repositories go (/tmp)
//   --trackers=a,b,...   ICKPT_BENCH_TRACKERS      default: every tracker; those that do not work
//                                                  here are skipped with the probe's reason
//   --persist-threads=N  ICKPT_BENCH_PERSIST_THREADS  persistence threads (default 1: the loop's
//                                                  application thread keeps the other core)
// Memory: about (number of trackers + 1) × size resident at once.
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench_options.h"
#include "ickpt/checkpointer.h"
#include "ickpt/region.h"
#include "ickpt/repository.h"
#include "src/state/region_internal.h"
#include "src/util/parse.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

using bench::Rng;

constexpr uint32_t kBlockSize = 4096;
constexpr double kLevels[] = {0.001, 0.01, 0.10};
constexpr double kHotFraction = 0.01;       // the loop's hot set, and the first-write page count
constexpr double kGoalCollectMsPerGiB = 2;  // goal 1
constexpr double kGoalHashSpeedup = 50;     // goal 1
constexpr double kGoalPauseMs = 5;          // goal 2, at 1% dirty
constexpr double kGoalLoopRatio = 0.95;     // goal 4

struct Config {
  uint64_t size = uint64_t{1} << 30;
  int reps = 5;
  int loop_seconds = 5;
  int loop_rounds = 2;
  // Persistence threads of each checkpointer. Default 1: the loop's application thread keeps one
  // of this machine's two cores, persistence gets the other (persist_threads = cores minus the
  // application's threads is the setting we recommend).
  int persist_threads = 1;
  std::string base_dir = "/tmp";
  std::vector<TrackerKind> trackers = {TrackerKind::kUffdAsync, TrackerKind::kSoftDirty,
                                       TrackerKind::kUffdSync,  TrackerKind::kMprotect,
                                       TrackerKind::kHash,      TrackerKind::kExplicit};
};
Config g_config;
std::string g_root;  // this run's temporary directory, removed at exit

[[noreturn]] void Die(std::string_view what, const absl::Status& s) {
  std::fprintf(stderr, "tracker_bench: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               s.ToString().c_str());
  if (!g_root.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_root, ec);
  }
  // Checkpointers may still be persisting on other threads: leave without running destructors.
  std::_Exit(1);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t PageCount() { return g_config.size / kBlockSize; }
uint64_t PagesAt(double fraction) {
  return std::max<uint64_t>(1, static_cast<uint64_t>(PageCount() * fraction + 0.5));
}
std::string LevelName(double level) {
  return level < 0.01 ? StrCat(level * 100, "%") : StrCat(static_cast<int>(level * 100), "%");
}

// `count` distinct random pages of [0, PageCount()), in random order: a partial Fisher-Yates
// shuffle of a permutation kept across calls (any permutation shuffled this way stays uniform).
class PagePicker {
 public:
  explicit PagePicker(uint64_t seed) : rng_(seed), perm_(PageCount()) {
    std::iota(perm_.begin(), perm_.end(), 0u);
  }
  std::vector<uint32_t> Pick(uint64_t count) {
    for (uint64_t i = 0; i < count; ++i)
      std::swap(perm_[i], perm_[i + rng_.Below(perm_.size() - i)]);
    return std::vector<uint32_t>(perm_.begin(), perm_.begin() + count);
  }
  std::vector<uint32_t> PickSorted(uint64_t count) {
    std::vector<uint32_t> v = Pick(count);
    std::sort(v.begin(), v.end());
    return v;
  }

 private:
  Rng rng_;
  std::vector<uint32_t> perm_;
};

// Untracked anonymous memory with every page present (written once), no huge pages: the
// reference the trackers are compared with.
class PlainBuffer {
 public:
  explicit PlainBuffer(uint64_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      Die("mmap of the untracked buffer", absl::InternalError(std::strerror(errno)));
    data_ = static_cast<char*>(p);
    (void)madvise(data_, bytes, MADV_NOHUGEPAGE);  // like a region: advice only
    for (uint64_t off = 0; off < bytes; off += kBlockSize) data_[off] = 1;
  }
  ~PlainBuffer() { munmap(data_, bytes_); }
  PlainBuffer(const PlainBuffer&) = delete;
  PlainBuffer& operator=(const PlainBuffer&) = delete;
  char* data() const { return data_; }

 private:
  char* data_;
  uint64_t bytes_;
};

// Samples of one quantity, for medians.
std::map<std::string, std::vector<double>> g_samples;
std::map<std::string, std::string> g_notes;  // per tracker: anomalies seen (wrong dirty counts...)

void Sample(const std::string& key, double v) { g_samples[key].push_back(v); }
void Note(TrackerKind kind, const std::string& note) {
  std::string& n = g_notes[std::string(TrackerName(kind))];
  if (n.find(note) == std::string::npos) n += (n.empty() ? "" : "; ") + note;
}

std::optional<double> Median(const std::string& key) {
  auto it = g_samples.find(key);
  if (it == g_samples.end() || it->second.empty()) return std::nullopt;
  std::vector<double> v = it->second;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
std::optional<double> Min(const std::string& key) {
  auto it = g_samples.find(key);
  if (it == g_samples.end() || it->second.empty()) return std::nullopt;
  return *std::min_element(it->second.begin(), it->second.end());
}
std::optional<double> Max(const std::string& key) {
  auto it = g_samples.find(key);
  if (it == g_samples.end() || it->second.empty()) return std::nullopt;
  return *std::max_element(it->second.begin(), it->second.end());
}
std::optional<double> Div(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *b == 0) return std::nullopt;
  return *a / *b;
}
std::string Num(std::optional<double> v, const char* fmt = "%.3f") {
  if (!v) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, *v);
  return buf;
}
std::string Range(const std::string& key, const char* fmt = "%.3f") {
  return StrCat(Num(Min(key), fmt), "..", Num(Max(key), fmt));
}

// Writes 8 random bytes at a random 8-aligned offset of each page (the hash tracker sees a change
// with probability 1 - 2^-64) and, for "explicit", reports them.
void DirtyPages(Region* region, TrackerKind kind, const std::vector<uint32_t>& pages, Rng& rng) {
  for (uint32_t p : pages) {
    const uint64_t r = rng.Next();
    const uint64_t offset = uint64_t{p} * kBlockSize + (r & (kBlockSize / 8 - 1)) * 8;
    const uint64_t value = rng.Next();
    std::memcpy(region->data() + offset, &value, 8);
    if (kind == TrackerKind::kExplicit) region->MarkDirty(offset, 8);
  }
}

// Every page written once (what the benchmark starts from).
void WriteEveryPage(Region* region, TrackerKind kind, Rng& rng) {
  for (uint64_t p = 0; p < region->block_count(); ++p) {
    const uint64_t value = rng.Next() | 1;
    std::memcpy(region->data() + p * kBlockSize, &value, 8);
  }
  if (kind == TrackerKind::kExplicit) region->MarkDirty(0, region->size());
}

std::vector<TrackerKind> WorkingTrackers() {
  std::printf("Trackers (DescribeTrackers()):\n");
  for (const TrackerReport& r : DescribeTrackers()) {
    std::printf("  %-11s %-5s %s\n", std::string(TrackerName(r.kind)).c_str(),
                r.works ? "works" : "NO", r.reason.c_str());
  }
  std::vector<TrackerKind> out;
  for (TrackerKind kind : g_config.trackers) {
    for (const TrackerReport& r : DescribeTrackers()) {
      if (r.kind != kind) continue;
      if (r.works) {
        out.push_back(kind);
      } else {
        std::printf("SKIPPED %s: does not work here (%s)\n", std::string(TrackerName(kind)).c_str(),
                    r.reason.c_str());
      }
    }
  }
  std::printf("\n");
  return out;
}

// Tracker order of repetition `rep`: rotated, so that no tracker always runs first or last.
template <typename T>
std::vector<T*> Rotated(std::vector<T>& items, int rep) {
  std::vector<T*> out;
  for (size_t i = 0; i < items.size(); ++i) out.push_back(&items[(i + rep) % items.size()]);
  return out;
}

std::string Key(std::string_view what, TrackerKind kind, double level) {
  return StrCat(what, ".", TrackerName(kind), ".", LevelName(level));
}

// ---------------------------------------------------------------------------------------------
// 1 and 3: bare regions, RegionAccess::Collect

struct BareRegion {
  TrackerKind kind;
  std::unique_ptr<Region> region;
};

void RunCollectAndFirstWrite(std::vector<TrackerKind>& trackers, PlainBuffer& plain) {
  std::vector<BareRegion> regions;
  Rng rng(1);
  std::vector<TrackerKind> created;
  for (TrackerKind kind : trackers) {
    RegionOptions o;
    o.size = g_config.size;
    o.block_size = kBlockSize;
    o.tracker = kind;
    absl::StatusOr<std::unique_ptr<Region>> r =
        RegionAccess::Create(StrCat("bench-", TrackerName(kind)), o, kBlockSize);
    if (!r.ok()) {
      std::printf("SKIPPED %s: creating its region failed: %s\n",
                  std::string(TrackerName(kind)).c_str(), r.status().ToString().c_str());
      continue;
    }
    const int64_t t0 = NowNs();
    WriteEveryPage(r->get(), kind, rng);
    const int64_t t1 = NowNs();
    absl::StatusOr<DirtyBitmap> first = RegionAccess::Collect(**r);
    if (!first.ok()) Die(StrCat("first Collect of ", TrackerName(kind)), first.status());
    const int64_t t2 = NowNs();
    std::printf(
        "setup %-11s write every page once %8.1f ms (%5.2f us/page); first Collect %8.2f ms, "
        "%llu blocks\n",
        std::string(TrackerName(kind)).c_str(), (t1 - t0) / 1e6,
        (t1 - t0) / 1e3 / static_cast<double>(PageCount()), (t2 - t1) / 1e6,
        static_cast<unsigned long long>(first->Count()));
    std::fflush(stdout);
    regions.push_back(BareRegion{kind, *std::move(r)});
    created.push_back(kind);
  }
  trackers = created;

  // 1. Dirty detection.
  PagePicker picker(2);
  for (int rep = 0; rep < g_config.reps; ++rep) {
    for (double level : kLevels) {
      const std::vector<uint32_t> pages = picker.PickSorted(PagesAt(level));
      for (BareRegion* b : Rotated(regions, rep)) {
        DirtyPages(b->region.get(), b->kind, pages, rng);
        const int64_t t0 = NowNs();
        absl::StatusOr<DirtyBitmap> dirty = RegionAccess::Collect(*b->region);
        const int64_t t1 = NowNs();
        if (!dirty.ok()) Die(StrCat("Collect of ", TrackerName(b->kind)), dirty.status());
        Sample(Key("collect_ms", b->kind, level), (t1 - t0) / 1e6);
        if (dirty->Count() != pages.size()) {
          Note(b->kind, StrCat("Collect at ", LevelName(level), " reported ", dirty->Count(),
                               " blocks for ", pages.size(), " dirtied"));
        }
      }
    }
  }

  // 3. First-write cost. Written in random page order, one byte at the start of each page.
  const uint64_t n = PagesAt(kHotFraction);
  for (int rep = 0; rep < g_config.reps; ++rep) {
    const std::vector<uint32_t> pages = picker.Pick(n);
    for (BareRegion* b : Rotated(regions, rep)) {
      if (absl::StatusOr<DirtyBitmap> d = RegionAccess::Collect(*b->region); !d.ok()) {
        Die(StrCat("Collect of ", TrackerName(b->kind)), d.status());
      }
      volatile char* base = b->region->data();
      const char v = static_cast<char>(rep + 2);
      const bool report = b->kind == TrackerKind::kExplicit;
      const int64_t t0 = NowNs();
      for (uint32_t p : pages) {
        base[uint64_t{p} * kBlockSize] = v;
        if (report) b->region->MarkDirty(uint64_t{p} * kBlockSize, 1);
      }
      const int64_t t1 = NowNs();
      Sample(StrCat("first_write_ns.", TrackerName(b->kind)), double(t1 - t0) / n);
    }
    // The untracked reference, same pages, same order.
    volatile char* base = plain.data();
    const char v = static_cast<char>(rep + 2);
    const int64_t t0 = NowNs();
    for (uint32_t p : pages) base[uint64_t{p} * kBlockSize] = v;
    const int64_t t1 = NowNs();
    Sample("first_write_ns.untracked", double(t1 - t0) / n);
  }
}

// ---------------------------------------------------------------------------------------------
// 2 and 4: a Checkpointer per tracker, each on its own local repository

struct CheckpointedRegion {
  TrackerKind kind;
  std::string dir;
  std::unique_ptr<Repository> repo;
  std::unique_ptr<Checkpointer> checkpointer;
  Region* region = nullptr;
};

std::vector<CheckpointedRegion> OpenCheckpointed(std::vector<TrackerKind>& trackers, Rng& rng) {
  std::vector<CheckpointedRegion> out;
  for (TrackerKind kind : trackers) {
    CheckpointedRegion c;
    c.kind = kind;
    c.dir = StrCat(g_root, "/", TrackerName(kind));
    absl::StatusOr<std::unique_ptr<Repository>> repo = Repository::OpenLocal(c.dir, true);
    if (!repo.ok()) Die(StrCat("repository in ", c.dir), repo.status());
    c.repo = *std::move(repo);
    CheckpointerOptions co;
    co.policy =
        NewFullEveryNPolicy(uint64_t{1} << 40);  // every checkpoint after the first is incremental
    co.persist_threads = g_config.persist_threads;
    absl::StatusOr<std::unique_ptr<Checkpointer>> ck =
        Checkpointer::Open(c.repo.get(), std::move(co));
    if (!ck.ok()) Die("Checkpointer::Open", ck.status());
    c.checkpointer = *std::move(ck);
    RegionOptions o;
    o.size = g_config.size;
    o.block_size = kBlockSize;
    o.tracker = kind;
    absl::StatusOr<Region*> region = c.checkpointer->AddRegion("data", o);
    if (!region.ok()) {
      std::printf("SKIPPED %s: AddRegion failed: %s\n", std::string(TrackerName(kind)).c_str(),
                  region.status().ToString().c_str());
      continue;
    }
    c.region = *region;
    WriteEveryPage(c.region, kind, rng);
    const int64_t t0 = NowNs();
    absl::StatusOr<CheckpointHandle> h = c.checkpointer->Checkpoint();
    if (!h.ok()) Die("full checkpoint", h.status());
    absl::StatusOr<CommitRecord> rec = h->Wait();
    if (!rec.ok()) Die("full checkpoint", rec.status());
    std::printf("setup %-11s full checkpoint: pause %8.1f ms, wall %8.1f ms\n",
                std::string(TrackerName(kind)).c_str(), absl::ToDoubleMilliseconds(h->pause()),
                (NowNs() - t0) / 1e6);
    std::fflush(stdout);
    out.push_back(std::move(c));
  }
  std::vector<TrackerKind> kept;
  for (const CheckpointedRegion& c : out) kept.push_back(c.kind);
  trackers = kept;
  return out;
}

void RunCapturePause(std::vector<CheckpointedRegion>& cks, PlainBuffer& plain, Rng& rng) {
  // The copy floor's destination: allocated and touched before any timing.
  std::vector<char> staging(PagesAt(kLevels[std::size(kLevels) - 1]) * kBlockSize, 1);
  PagePicker picker(3);
  for (int rep = 0; rep < g_config.reps; ++rep) {
    for (double level : kLevels) {
      const std::vector<uint32_t> pages = picker.PickSorted(PagesAt(level));
      for (CheckpointedRegion* c : Rotated(cks, rep)) {
        DirtyPages(c->region, c->kind, pages, rng);
        absl::StatusOr<CheckpointHandle> h = c->checkpointer->Checkpoint();
        if (!h.ok()) Die(StrCat("Checkpoint with ", TrackerName(c->kind)), h.status());
        absl::StatusOr<CommitRecord> rec = h->Wait();
        if (!rec.ok()) Die(StrCat("Checkpoint with ", TrackerName(c->kind)), rec.status());
        Sample(Key("pause_ms", c->kind, level), absl::ToDoubleMilliseconds(h->pause()));
        const StateObjectRecord& so = rec->participants.at(0).state_objects.at(0);
        if (rec->kind != CheckpointKind::kIncremental || so.changed_blocks != pages.size()) {
          Note(c->kind,
               StrCat("checkpoint at ", LevelName(level), ": ", CheckpointKindName(rec->kind),
                      " of ", so.changed_blocks, " blocks for ", pages.size(), " dirtied"));
        }
      }
      // The copy floor: the same pages, from present untracked memory into the pre-touched buffer.
      const int64_t t0 = NowNs();
      char* out = staging.data();
      for (uint32_t p : pages) {
        std::memcpy(out, plain.data() + uint64_t{p} * kBlockSize, kBlockSize);
        out += kBlockSize;
      }
      const int64_t t1 = NowNs();
      Sample(StrCat("copy_ms.", LevelName(level)), (t1 - t0) / 1e6);
      // Keep the copy observable.
      if (staging[rng.Below(staging.size())] == 42) std::printf(" ");
    }
  }
}

// Random 8-byte writes into `hot` pages of `base` until `deadline_ns`; returns how many.
uint64_t WriteUntil(char* base, const std::vector<uint32_t>& hot, Rng& rng, int64_t deadline_ns) {
  uint64_t writes = 0;
  const uint64_t n = hot.size();
  for (;;) {
    for (int i = 0; i < 1024; ++i) {
      const uint64_t r = rng.Next();
      const uint64_t page = hot[((r >> 32) * n) >> 32];
      std::memcpy(base + page * kBlockSize + (r & (kBlockSize / 8 - 1)) * 8, &r, 8);
    }
    writes += 1024;
    if (NowNs() >= deadline_ns) return writes;
  }
}

struct LoopSecond {
  double writes = 0;
  double seconds = 0;
};

// One second of the loop into `base` with a new random hot set. With `c`, it starts with a
// checkpoint and is charged, besides its wall time (pause included), the time its checkpoint still
// persists after it: a continuous loop's next Checkpoint() would wait that long (max_in_flight 1).
// Waiting here also keeps the next untracked second free of the background persist.
LoopSecond RunLoopSecond(char* base, CheckpointedRegion* c, PagePicker& picker, Rng& rng) {
  const int64_t start = NowNs();
  if (c != nullptr) {
    absl::StatusOr<CheckpointHandle> h = c->checkpointer->Checkpoint();
    if (!h.ok()) Die(StrCat("Checkpoint in the loop with ", TrackerName(c->kind)), h.status());
    Sample(StrCat("loop_pause_ms.", TrackerName(c->kind)), absl::ToDoubleMilliseconds(h->pause()));
    // The whole call blocks the application, not only the pause (e.g. reserving the id).
    Sample(StrCat("loop_call_ms.", TrackerName(c->kind)), (NowNs() - start) / 1e6);
  }
  const std::vector<uint32_t> hot = picker.Pick(PagesAt(kHotFraction));
  LoopSecond out;
  out.writes = static_cast<double>(WriteUntil(base, hot, rng, start + int64_t{1'000'000'000}));
  int64_t end = NowNs();
  if (c != nullptr) {
    c->checkpointer->WaitIdle();
    const int64_t tail = NowNs() - end;
    Sample(StrCat("loop_tail_ms.", TrackerName(c->kind)), tail / 1e6);
    end += tail;
  }
  out.seconds = (end - start) / 1e9;
  return out;
}

// Per tracker, `loop_seconds` pairs of one untracked second (a plain buffer, no checkpoints) and
// one tracked second, alternating, so that the shared machine's slow spells hit both alike. The
// ratio is Σ tracked writes / Σ tracked time over Σ untracked writes / Σ untracked time, pooled
// over all rounds; the per-pair ratios show the spread.
void RunApplicationLoop(std::vector<CheckpointedRegion>& cks, PlainBuffer& plain, Rng& rng) {
  PagePicker picker(4);
  std::vector<CheckpointedRegion*> loopers;
  for (CheckpointedRegion& c : cks) {
    if (c.kind != TrackerKind::kExplicit) loopers.push_back(&c);
  }
  std::map<TrackerKind, LoopSecond> tracked_sum, untracked_sum;
  for (int round = 0; round < g_config.loop_rounds; ++round) {
    for (size_t i = 0; i < loopers.size(); ++i) {
      CheckpointedRegion* c = loopers[(i + round) % loopers.size()];
      // Start from the steady state: the previous second's hot set is dirty, nothing persisting.
      c->checkpointer->WaitIdle();
      DirtyPages(c->region, c->kind, picker.Pick(PagesAt(kHotFraction)), rng);
      LoopSecond t_run, u_run;
      for (int s = 0; s < g_config.loop_seconds; ++s) {
        const LoopSecond u = RunLoopSecond(plain.data(), nullptr, picker, rng);
        const LoopSecond t = RunLoopSecond(c->region->data(), c, picker, rng);
        Sample(StrCat("loop_pair_ratio.", TrackerName(c->kind)),
               (t.writes / t.seconds) / (u.writes / u.seconds));
        Sample("loop_wps.untracked", u.writes / u.seconds);
        for (auto [sum, one] : {std::pair{&t_run, t}, std::pair{&u_run, u}}) {
          sum->writes += one.writes;
          sum->seconds += one.seconds;
        }
      }
      for (auto [sum, one] :
           {std::pair{&tracked_sum[c->kind], t_run}, std::pair{&untracked_sum[c->kind], u_run}}) {
        sum->writes += one.writes;
        sum->seconds += one.seconds;
      }
      Sample(StrCat("loop_wps.", TrackerName(c->kind)), t_run.writes / t_run.seconds);
      std::printf("  loop round %d %-11s %7.1f M writes/s tracked, %7.1f M/s untracked: %.3f\n",
                  round, std::string(TrackerName(c->kind)).c_str(),
                  t_run.writes / t_run.seconds / 1e6, u_run.writes / u_run.seconds / 1e6,
                  (t_run.writes / t_run.seconds) / (u_run.writes / u_run.seconds));
      std::fflush(stdout);
    }
  }
  for (const auto& [kind, t] : tracked_sum) {
    const LoopSecond& u = untracked_sum[kind];
    Sample(StrCat("loop_ratio.", TrackerName(kind)),
           (t.writes / t.seconds) / (u.writes / u.seconds));
  }
}

// ---------------------------------------------------------------------------------------------
// Summary

bool IsKernelTracker(TrackerKind k) {
  return k != TrackerKind::kHash && k != TrackerKind::kExplicit;
}

// The kernel tracker with the lowest median of `key_of(kind)`.
template <typename KeyFn>
std::optional<TrackerKind> Best(const std::vector<TrackerKind>& trackers, KeyFn key_of, bool low) {
  std::optional<TrackerKind> best;
  std::optional<double> best_v;
  for (TrackerKind k : trackers) {
    if (!IsKernelTracker(k)) continue;
    std::optional<double> v = Median(key_of(k));
    if (!v) continue;
    if (!best_v || (low ? *v < *best_v : *v > *best_v)) {
      best = k;
      best_v = v;
    }
  }
  return best;
}

std::string Verdict(bool met) { return met ? "MET" : "MISSED"; }

void PrintSummary(const std::vector<TrackerKind>& bare, const std::vector<TrackerKind>& ckd) {
  const double gib = g_config.size / double(uint64_t{1} << 30);
  std::printf("\n=== Summary: region %s, %llu pages of 4 KiB; medians of %d reps (min..max)\n",
              FormatBytes(g_config.size).c_str(), static_cast<unsigned long long>(PageCount()),
              g_config.reps);

  std::printf("\n1. Dirty detection: RegionAccess::Collect\n");
  std::printf("%-11s %6s %8s %10s %18s %9s %12s\n", "tracker", "dirty", "blocks", "ms", "min..max",
              "ms/GiB", "hash/tracker");
  for (double level : kLevels) {
    const std::optional<double> hash = Median(Key("collect_ms", TrackerKind::kHash, level));
    for (TrackerKind k : bare) {
      const std::string key = Key("collect_ms", k, level);
      const std::optional<double> ms = Median(key);
      std::printf("%-11s %6s %8llu %10s %18s %9s %12s\n", std::string(TrackerName(k)).c_str(),
                  LevelName(level).c_str(), static_cast<unsigned long long>(PagesAt(level)),
                  Num(ms).c_str(), Range(key).c_str(),
                  Num(ms ? std::optional<double>(*ms / gib) : std::nullopt).c_str(),
                  Num(Div(hash, ms), "%.1f").c_str());
    }
  }

  std::printf(
      "\n2. Capture pause: handle.pause() of Checkpoint() (incremental, local repository)\n");
  std::printf("%-11s %6s %10s %18s %12s\n", "tracker", "dirty", "pause ms", "min..max",
              "pause/copy");
  for (double level : kLevels) {
    const std::string copy_key = StrCat("copy_ms.", LevelName(level));
    for (TrackerKind k : ckd) {
      const std::string key = Key("pause_ms", k, level);
      std::printf("%-11s %6s %10s %18s %12s\n", std::string(TrackerName(k)).c_str(),
                  LevelName(level).c_str(), Num(Median(key)).c_str(), Range(key).c_str(),
                  Num(Div(Median(key), Median(copy_key)), "%.1f").c_str());
    }
    std::printf("%-11s %6s %10s %18s %12s\n", "copy floor", LevelName(level).c_str(),
                Num(Median(copy_key)).c_str(), Range(copy_key).c_str(), "1.0");
  }

  std::printf("\n3. First write to a page after a Collect, %llu distinct random pages (ns/write)\n",
              static_cast<unsigned long long>(PagesAt(kHotFraction)));
  std::printf("%-11s %10s %18s %18s\n", "tracker", "ns/write", "min..max", "tracked/untracked");
  const std::optional<double> untracked_ns = Median("first_write_ns.untracked");
  for (TrackerKind k : bare) {
    const std::string key = StrCat("first_write_ns.", TrackerName(k));
    std::printf("%-11s %10s %18s %18s\n", std::string(TrackerName(k)).c_str(),
                Num(Median(key), "%.0f").c_str(), Range(key, "%.0f").c_str(),
                Num(Div(Median(key), untracked_ns), "%.1f").c_str());
  }
  std::printf("%-11s %10s %18s %18s\n", "untracked", Num(untracked_ns, "%.0f").c_str(),
              Range("first_write_ns.untracked", "%.0f").c_str(), "1.0");

  std::printf(
      "\n4. Application loop: hot set %llu pages moving every second, a checkpoint every "
      "second; %d round(s) x %d pairs of an untracked and a tracked second per tracker\n",
      static_cast<unsigned long long>(PagesAt(kHotFraction)), g_config.loop_rounds,
      g_config.loop_seconds);
  std::printf("%-11s %12s %14s %20s %10s %10s %13s\n", "tracker", "M writes/s", "ratio (pooled)",
              "per-pair med (range)", "pause ms", "call ms", "persist wait");
  for (TrackerKind k : ckd) {
    if (k == TrackerKind::kExplicit) continue;
    const std::string n(TrackerName(k));
    std::optional<double> wps = Median("loop_wps." + n);
    std::printf("%-11s %12s %14s %20s %10s %10s %13s\n", n.c_str(),
                Num(wps ? std::optional<double>(*wps / 1e6) : std::nullopt, "%.1f").c_str(),
                Num(Median("loop_ratio." + n)).c_str(),
                StrCat(Num(Median("loop_pair_ratio." + n), "%.2f"), " (",
                       Range("loop_pair_ratio." + n, "%.2f"), ")")
                    .c_str(),
                Num(Median("loop_pause_ms." + n), "%.2f").c_str(),
                Num(Median("loop_call_ms." + n), "%.2f").c_str(),
                Num(Median("loop_tail_ms." + n), "%.1f").c_str());
  }
  std::optional<double> untracked_wps = Median("loop_wps.untracked");
  std::printf(
      "%-11s %12s (median of its seconds)\n", "untracked",
      Num(untracked_wps ? std::optional<double>(*untracked_wps / 1e6) : std::nullopt, "%.1f")
          .c_str());
  std::printf(
      "(explicit is not run in the loop: its cost depends on how the application reports "
      "writes)\n");

  if (!g_notes.empty()) {
    std::printf("\nAnomalies:\n");
    for (const auto& [name, note] : g_notes) std::printf("  %s: %s\n", name.c_str(), note.c_str());
  }

  std::printf(
      "\n=== Goals (best kernel tracker per goal; ratios measured side by side in this run)\n");
  const double one_pct = 0.01;
  if (std::optional<TrackerKind> b = Best(
          bare, [&](TrackerKind k) { return Key("collect_ms", k, one_pct); }, true)) {
    for (double level : kLevels) {
      const std::optional<double> ms = Median(Key("collect_ms", *b, level));
      const std::optional<double> speedup =
          Div(Median(Key("collect_ms", TrackerKind::kHash, level)), ms);
      const double per_gib = ms ? *ms / gib : 1e9;
      std::printf(
          "1. detection, %-11s at %4s dirty: %s ms/GiB (goal <= %.0f: %s), %sx faster than "
          "hash (goal >= %.0fx: %s)\n",
          std::string(TrackerName(*b)).c_str(), LevelName(level).c_str(),
          Num(ms ? std::optional<double>(per_gib) : std::nullopt).c_str(), kGoalCollectMsPerGiB,
          Verdict(per_gib <= kGoalCollectMsPerGiB).c_str(), Num(speedup, "%.0f").c_str(),
          kGoalHashSpeedup, Verdict(speedup && *speedup >= kGoalHashSpeedup).c_str());
    }
  } else {
    std::printf("1. detection: no kernel tracker measured: MISSED\n");
  }
  if (std::optional<TrackerKind> b = Best(
          ckd, [&](TrackerKind k) { return Key("pause_ms", k, one_pct); }, true)) {
    const std::optional<double> ms = Median(Key("pause_ms", *b, one_pct));
    std::printf(
        "2. capture pause, %-11s at 1%% dirty: %s ms (goal <= %.0f ms: %s); copy floor %s ms\n",
        std::string(TrackerName(*b)).c_str(), Num(ms).c_str(), kGoalPauseMs,
        Verdict(ms && *ms <= kGoalPauseMs).c_str(),
        Num(Median(StrCat("copy_ms.", LevelName(one_pct)))).c_str());
  } else {
    std::printf("2. capture pause: no kernel tracker measured: MISSED\n");
  }
  if (std::optional<TrackerKind> b = Best(
          bare, [&](TrackerKind k) { return StrCat("first_write_ns.", TrackerName(k)); }, true)) {
    const std::optional<double> ns = Median(StrCat("first_write_ns.", TrackerName(*b)));
    std::printf("3. first write, %-11s: %s ns vs %s ns untracked (%sx; no numeric goal)\n",
                std::string(TrackerName(*b)).c_str(), Num(ns, "%.0f").c_str(),
                Num(untracked_ns, "%.0f").c_str(), Num(Div(ns, untracked_ns), "%.1f").c_str());
  }
  if (std::optional<TrackerKind> b = Best(
          ckd, [&](TrackerKind k) { return StrCat("loop_ratio.", TrackerName(k)); }, false)) {
    const std::optional<double> r = Median(StrCat("loop_ratio.", TrackerName(*b)));
    std::printf("4. application loop, %-11s: %s of the untracked write rate (goal >= %.2f: %s)\n",
                std::string(TrackerName(*b)).c_str(), Num(r).c_str(), kGoalLoopRatio,
                Verdict(r && *r >= kGoalLoopRatio).c_str());
  } else {
    std::printf("4. application loop: no kernel tracker measured: MISSED\n");
  }
  for (TrackerKind k : g_config.trackers) {
    if (std::find(ckd.begin(), ckd.end(), k) == ckd.end() &&
        std::find(bare.begin(), bare.end(), k) == bare.end()) {
      std::printf("not measured: %s (see SKIPPED above)\n", std::string(TrackerName(k)).c_str());
    }
  }
  std::fflush(stdout);
}

absl::Status ParseConfig(int argc, char** argv) {
  auto env = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  std::optional<std::string> size = env("ICKPT_BENCH_SIZE"), reps = env("ICKPT_BENCH_REPS"),
                             loop_seconds = env("ICKPT_BENCH_LOOP_SECONDS"),
                             loop_rounds = env("ICKPT_BENCH_LOOP_ROUNDS"),
                             dir = env("ICKPT_BENCH_DIR"), trackers = env("ICKPT_BENCH_TRACKERS"),
                             persist_threads = env("ICKPT_BENCH_PERSIST_THREADS");
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto take = [&](std::string_view flag, std::optional<std::string>* v) {
      if (a.substr(0, flag.size()) != flag) return false;
      *v = std::string(a.substr(flag.size()));
      return true;
    };
    if (take("--size=", &size) || take("--reps=", &reps) ||
        take("--loop-seconds=", &loop_seconds) || take("--loop-rounds=", &loop_rounds) ||
        take("--dir=", &dir) || take("--trackers=", &trackers) ||
        take("--persist-threads=", &persist_threads)) {
      continue;
    }
    return absl::InvalidArgumentError(StrCat("unknown argument '", a, "'"));
  }
  if (size) {
    absl::StatusOr<uint64_t> s = ParseSize(*size);
    if (!s.ok()) return s.status();
    if (*s < 1000 * kBlockSize) return absl::InvalidArgumentError("size must be >= 1000 pages");
    g_config.size = (*s + kBlockSize - 1) / kBlockSize * kBlockSize;
  }
  if (reps) g_config.reps = std::max(1, std::atoi(reps->c_str()));
  if (loop_seconds) g_config.loop_seconds = std::max(1, std::atoi(loop_seconds->c_str()));
  if (loop_rounds) g_config.loop_rounds = std::max(0, std::atoi(loop_rounds->c_str()));
  if (dir) g_config.base_dir = *dir;
  if (persist_threads) g_config.persist_threads = std::max(1, std::atoi(persist_threads->c_str()));
  if (trackers) {
    g_config.trackers.clear();
    std::string_view rest = *trackers;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      absl::StatusOr<TrackerKind> k = ParseTrackerName(rest.substr(0, comma));
      if (!k.ok()) return k.status();
      if (*k == TrackerKind::kAuto) return absl::InvalidArgumentError("name trackers, not 'auto'");
      g_config.trackers.push_back(*k);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    // hash is every ratio's reference.
    if (std::find(g_config.trackers.begin(), g_config.trackers.end(), TrackerKind::kHash) ==
        g_config.trackers.end()) {
      g_config.trackers.push_back(TrackerKind::kHash);
    }
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) {
  using namespace ickpt;
  if (absl::Status s = ParseConfig(argc, argv); !s.ok()) {
    std::fprintf(stderr, "tracker_bench: %s\n", s.ToString().c_str());
    return 2;
  }
  std::string tmpl = g_config.base_dir + "/ickpt-tracker-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "tracker_bench: mkdtemp %s: %s\n", tmpl.c_str(), std::strerror(errno));
    return 2;
  }
  g_root = tmpl;
  std::printf(
      "tracker_bench: region %s per tracker, block 4 KiB, %d reps, loop %d s x %d "
      "round(s), %d persist thread(s), repositories in %s\n\n",
      FormatBytes(g_config.size).c_str(), g_config.reps, g_config.loop_seconds,
      g_config.loop_rounds, g_config.persist_threads, g_root.c_str());
  std::vector<TrackerKind> trackers = WorkingTrackers();
  PlainBuffer plain(g_config.size);

  std::printf("Phase 1+3: bare regions (RegionAccess)\n");
  std::fflush(stdout);
  std::vector<TrackerKind> bare = trackers;
  RunCollectAndFirstWrite(bare, plain);

  std::printf("\nPhase 2+4: checkpointers on local repositories\n");
  std::fflush(stdout);
  std::vector<TrackerKind> ckd = trackers;
  Rng rng(5);
  {
    std::vector<CheckpointedRegion> cks = OpenCheckpointed(ckd, rng);
    RunCapturePause(cks, plain, rng);
    RunApplicationLoop(cks, plain, rng);
    for (CheckpointedRegion& c : cks) {
      c.checkpointer.reset();  // waits for persisting checkpoints
      c.repo.reset();
    }
  }
  PrintSummary(bare, ckd);
  std::error_code ec;
  std::filesystem::remove_all(g_root, ec);
  return 0;
}
