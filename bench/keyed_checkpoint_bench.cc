// The keyed-state checkpoint benchmark of issue 4: a Checkpointer with one keyed state of N entries
// (default 10 M; 16-byte keys, 100-byte incompressible values) on a local repository. It reports,
// measured in one run:
//   1. an incremental checkpoint with 1% of the keys changed vs a full checkpoint of the same
//   state:
//      bytes written (goal: incremental <= 1.1 x the changed entries' raw key + value bytes) and
//      capture pause (goal: <= 20 ms), each as the median over the repetitions, and the ratios;
//   2. restore time of the newest checkpoint of a chain (depth = reps) vs restore of a full
//      checkpoint of the same state: the chain's extra work is its changed entries only;
//   3. restore of the full checkpoint on one thread vs several (goal: >= 1.8x on 2 cores).
// The machine is shared and noisy: full and incremental checkpoints alternate, and ratios are
// taken within one run. Absolute times are only comparable within a run.
//
// Configuration (flag, else environment, else default):
//   --entries=N   ICKPT_BENCH_ENTRIES   entries (default 10000000)
//   --reps=N      ICKPT_BENCH_REPS      repetitions (default 5)
//   --dir=PATH    ICKPT_BENCH_DIR       where the repository goes (default /tmp), removed after
//   --threads=N   ICKPT_BENCH_THREADS   restore threads compared with one (default 2)
// Memory: about N × 160 bytes for the state, N × 140 for a full capture, and the same again for
// the restored copy.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_options.h"
#include "ickpt/checkpointer.h"
#include "ickpt/keyed_state.h"
#include "ickpt/repository.h"

namespace ickpt {
namespace {

constexpr size_t kKeySize = 16;
constexpr size_t kValueSize = 100;
constexpr uint32_t kKeyGroups = 128;
constexpr double kChangedFraction = 0.01;
constexpr double kGoalBytesRatio = 1.1;
constexpr double kGoalPauseMs = 20;

using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

std::string Key(uint64_t i) {
  std::string key(kKeySize, '\0');
  const uint64_t a = SplitMix(i), b = SplitMix(i ^ 0x5555);
  std::memcpy(key.data(), &a, 8);
  std::memcpy(key.data() + 8, &b, 8);
  return key;
}

// Incompressible: compression cannot hide the bytes a checkpoint writes.
void FillValue(uint64_t seed, char* out) {
  for (size_t k = 0; k < kValueSize; k += 8) {
    const uint64_t v = SplitMix(seed * 131 + k);
    std::memcpy(out + k, &v, std::min<size_t>(8, kValueSize - k));
  }
}

using bench::Check;
using bench::Option;
using bench::StringOption;

// Full when asked, else incremental: the benchmark decides which checkpoint it measures.
class SwitchPolicy final : public CheckpointPolicy {
 public:
  CheckpointKind Choose(const PolicyInput&) const override {
    return full_.load() ? CheckpointKind::kFull : CheckpointKind::kIncremental;
  }
  void SetFull(bool full) { full_.store(full); }

 private:
  std::atomic<bool> full_{true};
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Measured {
  double pause_ms = 0;
  uint64_t stored = 0;
  uint64_t raw = 0;
  uint64_t changed = 0;
  double persist_s = 0;
};

Measured Take(Checkpointer* ckpt) {
  CheckpointHandle h = Check(ckpt->Checkpoint());
  CommitRecord c = Check(h.Wait());
  Measured m;
  m.pause_ms = absl::ToDoubleMilliseconds(h.pause());
  for (const StateObjectRecord& o : c.participants[0].state_objects) {
    m.stored += o.stored_bytes;
    m.raw += o.raw_bytes;
    m.changed += o.changed_entries;
    m.persist_s += o.persist_ns / 1e9;
  }
  return m;
}

// The process's user + system CPU seconds so far (every thread).
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Restores checkpoint `id` into a fresh checkpointer on `threads` restore threads (0: the default).
// `cpu_seconds`, if given, receives the CPU time the restore took (over every thread).
double RestoreSeconds(Repository* repo, uint64_t id, size_t expected_entries, int threads = 0,
                      double* cpu_seconds = nullptr) {
  CheckpointerOptions co;
  co.restore_threads = threads;
  std::unique_ptr<Checkpointer> c = Check(Checkpointer::Open(repo, co));
  KeyedStateOptions ko;
  ko.key_groups = kKeyGroups;
  KeyedState* state = Check(c->AddKeyedState("kv", ko));
  RestoreOptions ro;
  ro.id = id;
  const double cpu_start = CpuSeconds();
  const auto start = Clock::now();
  Check(c->Restore(ro).status());
  const double s = Seconds(Clock::now() - start);
  if (cpu_seconds != nullptr) *cpu_seconds = CpuSeconds() - cpu_start;
  if (state->size() != expected_entries) {
    std::fprintf(stderr, "error: restored %zu entries, expected %zu\n", state->size(),
                 expected_entries);
    std::exit(1);
  }
  return s;
}

int Main(int argc, char** argv) {
  const size_t n = Option(argc, argv, "entries", "ICKPT_BENCH_ENTRIES", 10'000'000);
  const int reps =
      static_cast<int>(std::max<uint64_t>(1, Option(argc, argv, "reps", "ICKPT_BENCH_REPS", 5)));
  const std::string base = StringOption(argc, argv, "dir", "ICKPT_BENCH_DIR", "/tmp");
  const std::string dir = base + "/ickpt-keyed-bench-" + std::to_string(getpid());
  const size_t changed = static_cast<size_t>(n * kChangedFraction);
  std::printf(
      "keyed checkpoint benchmark: %zu entries (%zu-byte keys, %zu-byte incompressible "
      "values), %u key groups, %zu changed per incremental (1%%), %d reps, repository %s\n",
      n, kKeySize, kValueSize, kKeyGroups, changed, reps, dir.c_str());

  std::unique_ptr<Repository> repo = Check(Repository::OpenLocal(dir, /*create=*/true));
  auto policy = std::make_shared<SwitchPolicy>();
  CheckpointerOptions co;
  co.policy = policy;
  std::unique_ptr<Checkpointer> ckpt = Check(Checkpointer::Open(repo.get(), co));
  KeyedStateOptions ko;
  ko.key_groups = kKeyGroups;
  ko.expected_entries = n;
  KeyedState* state = Check(ckpt->AddKeyedState("kv", ko));

  const auto load_start = Clock::now();
  char value[kValueSize];
  for (size_t i = 0; i < n; ++i) {
    FillValue(i, value);
    Check(state->Put(Key(i), std::string_view(value, kValueSize)));
  }
  std::printf("loaded in %.1f s\n", Seconds(Clock::now() - load_start));

  // The first checkpoint is full (there is no base); not measured, it builds the chain's base.
  policy->SetFull(true);
  const Measured first = Take(ckpt.get());
  std::printf("first (full) checkpoint: pause %.1f ms, %.1f MiB written, persist %.1f s\n",
              first.pause_ms, first.stored / 1048576.0, first.persist_s);

  std::mt19937_64 rng(7);
  std::vector<double> inc_pause, full_pause, inc_ratio, full_over_inc_bytes, full_over_inc_pause;
  Measured inc_last, full_last;
  uint64_t version = 1;
  auto change_one_percent = [&]() {
    ++version;
    for (size_t i = 0; i < changed; ++i) {
      const uint64_t k = rng() % n;
      FillValue(k * 1000003 + version, value);
      Check(state->Put(Key(k), std::string_view(value, kValueSize)));
    }
  };
  uint64_t last_full_id = 0;
  for (int r = 0; r < reps; ++r) {
    // Alternate which kind goes first, so both see the same machine.
    Measured inc, full;
    for (int k = 0; k < 2; ++k) {
      const bool do_full = (k == 0) == (r % 2 == 1);
      change_one_percent();
      policy->SetFull(do_full);
      Measured m = Take(ckpt.get());
      if (do_full) {
        full = m;
        last_full_id = *Check(repo->LatestCommitId());
      } else {
        inc = m;
      }
    }
    inc_pause.push_back(inc.pause_ms);
    full_pause.push_back(full.pause_ms);
    // Keys are drawn with replacement: a key changed twice is one changed entry, so the goal is
    // against the entries the change set held (its raw key + value bytes).
    inc_ratio.push_back(double(inc.stored) / inc.raw);
    full_over_inc_bytes.push_back(double(full.stored) / inc.stored);
    full_over_inc_pause.push_back(full.pause_ms / inc.pause_ms);
    inc_last = inc;
    full_last = full;
  }
  // A chain of `reps` incrementals on the last full one, for the restore comparison.
  policy->SetFull(false);
  for (int r = 0; r < reps; ++r) {
    change_one_percent();
    Take(ckpt.get());
  }
  const uint64_t chain_id = *Check(repo->LatestCommitId());
  const size_t entries = state->size();
  ckpt.reset();

  std::vector<double> restore_ratio;
  double restore_full_s = 0, restore_chain_s = 0;
  for (int r = 0; r < std::min(reps, 3); ++r) {
    // The full checkpoint's state has the same size (updates only: the size never changes).
    const bool chain_first = r % 2 == 0;
    const double a = chain_first ? RestoreSeconds(repo.get(), chain_id, entries) : 0;
    restore_full_s = RestoreSeconds(repo.get(), last_full_id, entries);
    restore_chain_s = chain_first ? a : RestoreSeconds(repo.get(), chain_id, entries);
    restore_ratio.push_back(restore_chain_s / restore_full_s);
  }
  // The full checkpoint restored on one thread and on `threads` (key groups split among them),
  // alternating which goes first.
  const int threads = static_cast<int>(Option(argc, argv, "threads", "ICKPT_BENCH_THREADS", 2));
  std::vector<double> parallel_speedup;
  double one_s = 0, many_s = 0, one_cpu = 0, many_cpu = 0;
  for (int r = 0; r < std::min(reps, 3); ++r) {
    if (r % 2 == 0) {
      one_s = RestoreSeconds(repo.get(), last_full_id, entries, 1, &one_cpu);
      many_s = RestoreSeconds(repo.get(), last_full_id, entries, threads, &many_cpu);
    } else {
      many_s = RestoreSeconds(repo.get(), last_full_id, entries, threads, &many_cpu);
      one_s = RestoreSeconds(repo.get(), last_full_id, entries, 1, &one_cpu);
    }
    parallel_speedup.push_back(one_s / many_s);
  }

  std::printf("\n1. incremental (1%% changed) vs full checkpoint, median of %d\n", reps);
  std::printf("  incremental: pause %.2f ms, %zu changed entries, %.2f MiB raw, %.2f MiB written\n",
              Median(inc_pause), static_cast<size_t>(inc_last.changed), inc_last.raw / 1048576.0,
              inc_last.stored / 1048576.0);
  std::printf("  full:        pause %.2f ms, %.1f MiB written\n", Median(full_pause),
              full_last.stored / 1048576.0);
  std::printf("  bytes written / changed raw bytes (incremental): %.3f  (goal <= %.1f: %s)\n",
              Median(inc_ratio), kGoalBytesRatio,
              Median(inc_ratio) <= kGoalBytesRatio ? "met" : "MISSED");
  std::printf("  incremental pause: %.2f ms  (goal <= %.0f ms: %s)\n", Median(inc_pause),
              kGoalPauseMs, Median(inc_pause) <= kGoalPauseMs ? "met" : "MISSED");
  std::printf("  full / incremental: bytes x%.1f, pause x%.1f\n", Median(full_over_inc_bytes),
              Median(full_over_inc_pause));
  std::printf("\n2. restore, newest of a chain of depth %d vs a full checkpoint of the same size\n",
              reps);
  std::printf("  chain %.2f s, full %.2f s (last pair); ratio chain/full median %.2f\n",
              restore_chain_s, restore_full_s, Median(restore_ratio));
  std::printf("\n3. restore of the full checkpoint on 1 thread vs %d (ranges of key groups)\n",
              threads);
  std::printf(
      "  1 thread %.2f s (%.2f CPU s), %d threads %.2f s (%.2f CPU s) (last pair); speedup median "
      "%.2f (goal >= 1.8 on 2 cores: %s)\n",
      one_s, one_cpu, threads, many_s, many_cpu, Median(parallel_speedup),
      Median(parallel_speedup) >= 1.8 ? "met" : "MISSED");

  repo.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) { return ickpt::Main(argc, argv); }
