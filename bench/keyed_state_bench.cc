// The keyed-state benchmark of issue 4 (first part: the container and its change tracking). Two
// tables of the same code side by side in one process: KeyedState (tracking on) and
// KeyedTable<false> (the same table built without the tracking bookkeeping), each filled with N
// entries (default 10 M; 16-byte keys, 100-byte values). It reports:
//   1. throughput of Put (load of fresh keys, updates of existing keys, insert+erase churn) and
//      Get, tracked / untracked (goal: tracking costs <= 15%);
//   2. memory of the two tables, as the allocator counts it (slots, entries, dirty list, capture
//      buffers; plus the allocator's own in-use count and RSS growth while loading), tracked /
//      untracked (goal: <= 10% more), right after the load (every key changed) and in the steady
//      state (1% changed);
//   3. capture pause: KeyedStateAccess::CaptureChanges with 1% of the keys changed (goal: <= 20
//   ms), and the key grouping and sort that persistence does after it (KeyedChangeSet::Sort);
//   4. the change set's raw bytes and memory vs the changed entries' raw key + value bytes, and a
//      full capture (CaptureAll) for comparison.
// The machine is shared and noisy: each operation runs in chunks of 250 K operations that alternate
// between the two tables (and which goes first), so both see the same load; a cost is the median of
// the per-chunk time ratios (the ratio of total times is shown too). Absolute times are only
// comparable within one run.
//
// Configuration (flag, else environment, else default):
//   --entries=N   ICKPT_BENCH_ENTRIES   entries per table (default 10000000)
//   --reps=N      ICKPT_BENCH_REPS      repetitions of each measured operation (default 5)
// Memory: about 2 × N × 160 bytes for the tables, plus one full change set (N × 140 bytes).
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ickpt/keyed_state.h"
#include "src/state/keyed_state_internal.h"

namespace ickpt {
namespace {

constexpr size_t kKeySize = 16;
constexpr size_t kValueSize = 100;
constexpr uint32_t kKeyGroups = 128;
constexpr double kGoalThroughputCost = 0.15;
constexpr double kGoalMemoryOverhead = 0.10;
constexpr double kGoalPauseMs = 20;
constexpr double kChangedFraction = 0.01;
constexpr size_t kChunk = 250'000;      // operations per chunk of the side-by-side runs
constexpr size_t kChurnChunk = 20'000;  // keys inserted and erased per chunk

using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

// Keys 0 .. N-1 are in the tables; keys from N on are used for insert+erase churn.
struct Keys {
  explicit Keys(size_t count) : bytes(count * kKeySize) {
    for (size_t i = 0; i < count; ++i) {
      const uint64_t a = SplitMix(2 * i), b = SplitMix(2 * i + 1);
      std::memcpy(&bytes[i * kKeySize], &a, 8);
      std::memcpy(&bytes[i * kKeySize + 8], &b, 8);
    }
  }
  std::string_view operator[](size_t i) const {
    return std::string_view(&bytes[i * kKeySize], kKeySize);
  }
  std::vector<char> bytes;
};

// Values are 100-byte windows of a random buffer, so each Put writes different bytes.
struct Values {
  Values() : bytes(1 << 16) {
    std::mt19937_64 rng(7);
    for (char& c : bytes) c = static_cast<char>(rng());
  }
  std::string_view operator[](uint64_t i) const {
    return std::string_view(&bytes[(i * 61) % (bytes.size() - kValueSize)], kValueSize);
  }
  std::vector<char> bytes;
};

uint64_t AllocatorInUse() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

uint64_t Rss() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "keyed_state_bench: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

// The same operations against either table.
struct Untracked {
  KeyedTable<false>* table;
  absl::Status Put(std::string_view k, std::string_view v) { return table->Put(k, v); }
  std::optional<std::string_view> Get(std::string_view k) const { return table->Get(k); }
  bool Erase(std::string_view k) { return table->Erase(k); }
  void Reset() {}
};
struct Tracked {
  KeyedState* state;
  absl::Status Put(std::string_view k, std::string_view v) { return state->Put(k, v); }
  std::optional<std::string_view> Get(std::string_view k) const { return state->Get(k); }
  bool Erase(std::string_view k) { return state->Erase(k); }
  // Untimed, before each measured round: nothing is changed, so the round pays for marking every
  // key it changes.
  void Reset() { KeyedStateAccess::Rebaseline(*state); }
};

// Times of one operation on both tables, run in small chunks that alternate between the tables (and
// which goes first), so that the machine's load varies alike for both.
struct SideBySide {
  double untracked = 0;
  double tracked = 0;
  std::vector<double> ratios;  // tracked / untracked time, per chunk
  double Cost() const { return Median(ratios) - 1; }
};

// Runs run(table, first, count) on [0, total) in chunks of `chunk`.
template <typename Run>
void Interleave(SideBySide& out, Untracked u, Tracked t, size_t total, size_t chunk, Run run) {
  for (size_t c = 0; c * chunk < total; ++c) {
    const size_t first = c * chunk, count = std::min(chunk, total - first);
    double tu, tt;
    if (c % 2 == 0) {
      tu = run(u, first, count);
      tt = run(t, first, count);
    } else {
      tt = run(t, first, count);
      tu = run(u, first, count);
    }
    out.untracked += tu;
    out.tracked += tt;
    out.ratios.push_back(tt / tu);
  }
}

size_t Flag(int argc, char** argv, const char* name, const char* env, size_t fallback) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      return std::strtoull(argv[i] + prefix.size(), nullptr, 10);
    }
  }
  if (const char* v = std::getenv(env)) return std::strtoull(v, nullptr, 10);
  return fallback;
}

const char* Verdict(bool met) { return met ? "met" : "MISSED"; }

int Main(int argc, char** argv) {
  const size_t n = Flag(argc, argv, "entries", "ICKPT_BENCH_ENTRIES", 10'000'000);
  const int reps = static_cast<int>(Flag(argc, argv, "reps", "ICKPT_BENCH_REPS", 5));
  const size_t gets = std::min<size_t>(n, 4'000'000);
  const size_t updates = std::min<size_t>(n, 2'000'000);
  const size_t churn = std::max<size_t>(1, n / 50);
  const size_t changed = std::max<size_t>(1, static_cast<size_t>(n * kChangedFraction));
  std::printf(
      "keyed_state_bench: %zu entries (%zu-byte keys, %zu-byte "
      "values), %u key groups, "
      "%d reps; load average %s\n",
      n, kKeySize, kValueSize, kKeyGroups, reps, LoadAverage().c_str());

  const Keys keys(n + churn);
  const Values values;
  std::mt19937_64 rng(1);
  std::vector<uint32_t> random_keys(n);
  std::iota(random_keys.begin(), random_keys.end(), 0);
  std::shuffle(random_keys.begin(), random_keys.end(), rng);

  // ---- Load, and memory right after it (every key of the tracked table changed) ----
  KeyedTable<false> plain(kKeyGroups);
  KeyedStateOptions options;
  options.key_groups = kKeyGroups;
  std::unique_ptr<KeyedState> state = *KeyedStateAccess::Create("bench", options);
  Untracked u{&plain};
  Tracked t{state.get()};
  // The allocator's in-use count and RSS growth, chunk by chunk, credited to the table loaded.
  uint64_t in_use[2] = {0, 0}, rss[2] = {0, 0};
  SideBySide load;
  Interleave(load, u, t, n, kChunk, [&](auto table, size_t first, size_t count) {
    const int which = std::is_same_v<decltype(table), Tracked> ? 1 : 0;
    const uint64_t in_use_before = AllocatorInUse(), rss_before = Rss();
    const auto start = Clock::now();
    for (size_t i = first; i < first + count; ++i) Check(table.Put(keys[i], values[i]));
    const double seconds = Seconds(Clock::now() - start);
    in_use[which] += AllocatorInUse() - in_use_before;
    rss[which] += Rss() - rss_before;
    return seconds;
  });
  const uint64_t mem_plain = plain.MemoryBytes();
  const uint64_t mem_loaded = KeyedStateAccess::MemoryBytes(*state);
  std::printf(
      "\nmemory after load      untracked        tracked   (every key "
      "changed)\n");
  std::printf("  table count      %10.1f MiB %10.1f MiB  x%.3f\n", mem_plain / 1048576.0,
              mem_loaded / 1048576.0, double(mem_loaded) / mem_plain);
  std::printf("  allocator in-use %10.1f MiB %10.1f MiB  x%.3f\n", in_use[0] / 1048576.0,
              in_use[1] / 1048576.0, double(in_use[1]) / in_use[0]);
  std::printf("  RSS growth       %10.1f MiB %10.1f MiB  x%.3f\n", rss[0] / 1048576.0,
              rss[1] / 1048576.0, double(rss[1]) / rss[0]);
  std::printf("  (raw key+value bytes: %.1f MiB)\n", state->byte_size() / 1048576.0);

  // ---- The first checkpoint of a loaded state would be full: CaptureAll, for comparison ----
  double full_capture_s;
  uint64_t full_raw, full_memory;
  {
    const auto start = Clock::now();
    KeyedChangeSet all = KeyedStateAccess::CaptureAll(*state);
    full_capture_s = Seconds(Clock::now() - start);
    full_raw = all.raw_bytes();
    full_memory = all.memory_bytes();
  }

  // ---- Throughput ----
  SideBySide get, update, churn_ops;
  std::vector<uint32_t> order(random_keys.begin(), random_keys.begin() + std::max(gets, updates));
  for (int r = 0; r < reps; ++r) {
    std::shuffle(order.begin(), order.end(), rng);
    uint64_t sum = 0;
    Interleave(get, u, t, gets, kChunk, [&](auto table, size_t first, size_t count) {
      const auto start = Clock::now();
      for (size_t i = first; i < first + count; ++i) {
        std::optional<std::string_view> v = table.Get(keys[order[i]]);
        sum += v.has_value() ? static_cast<uint8_t>((*v)[0]) : 1000;
      }
      return Seconds(Clock::now() - start);
    });
    if (sum == 42) std::puts("");  // keeps the loop
    // Updates of distinct keys, from nothing changed: every Put marks a key.
    t.Reset();
    Interleave(update, u, t, updates, kChunk, [&](auto table, size_t first, size_t count) {
      const auto start = Clock::now();
      for (size_t i = first; i < first + count; ++i) {
        Check(table.Put(keys[order[i]], values[order[i] + r + 1]));
      }
      return Seconds(Clock::now() - start);
    });
    t.Reset();
    // Short-lived keys: inserted, then erased before any capture.
    Interleave(churn_ops, u, t, churn, kChurnChunk, [&](auto table, size_t first, size_t count) {
      const auto start = Clock::now();
      for (size_t i = n + first; i < n + first + count; ++i) Check(table.Put(keys[i], values[i]));
      for (size_t i = n + first; i < n + first + count; ++i) {
        if (!table.Erase(keys[i])) std::abort();
      }
      return Seconds(Clock::now() - start);
    });
  }

  // ---- Capture pause with 1% of the keys changed ----
  std::vector<double> pauses_ms, sorts_ms;
  uint64_t cs_raw = 0, cs_memory = 0, cs_entries = 0, changed_raw = 0;
  uint64_t mem_steady = 0, mem_plain_steady = 0;
  for (int r = 0; r < reps; ++r) {
    KeyedStateAccess::Rebaseline(*state);
    const size_t offset = (r * changed * 7) % (n - changed + 1);
    changed_raw = 0;
    for (size_t i = 0; i < changed; ++i) {
      const uint32_t k = random_keys[(offset + i) % n];
      Check(state->Put(keys[k], values[k + 1000 + r]));
      Check(plain.Put(keys[k], values[k + 1000 + r]));
      changed_raw += kKeySize + kValueSize;
    }
    if (r == reps - 1) {  // steady state: a capture interval with 1% of the keys changed
      mem_steady = KeyedStateAccess::MemoryBytes(*state);
      mem_plain_steady = plain.MemoryBytes();
    }
    const auto start = Clock::now();
    KeyedChangeSet set = KeyedStateAccess::CaptureChanges(*state);
    pauses_ms.push_back(Seconds(Clock::now() - start) * 1e3);
    // Key groups and the sort run on the persist thread, after the pause.
    const auto sort_start = Clock::now();
    set.Sort();
    sorts_ms.push_back(Seconds(Clock::now() - sort_start) * 1e3);
    cs_raw = set.raw_bytes();
    cs_memory = set.memory_bytes();
    cs_entries = set.size();
  }

  // ---- Summary ----
  auto mops = [](size_t ops, double seconds) { return ops / seconds / 1e6; };
  std::printf("\n1. throughput (chunks of %zu ops alternating between the tables)\n", kChunk);
  std::printf(
      "                               untracked     tracked  tracking "
      "cost (median of "
      "chunk ratios; of totals)\n");
  auto row = [&](const char* what, size_t ops, const SideBySide& m) {
    std::printf("  %-26s %6.2f Mop/s %6.2f Mop/s  %+6.1f%%  %+6.1f%%\n", what,
                mops(ops, m.untracked), mops(ops, m.tracked), 100 * m.Cost(),
                100 * (m.tracked / m.untracked - 1));
  };
  row("Put, load of fresh keys", n, load);
  row("Get, random existing keys", gets * reps, get);
  row("Put, update existing keys", updates * reps, update);
  row("Put+Erase of short-lived", 2 * churn * reps, churn_ops);
  const double worst_cost = std::max({load.Cost(), get.Cost(), update.Cost(), churn_ops.Cost()});
  std::printf("  goal: tracking costs <= %.0f%%: %s (worst %+.1f%%)\n", 100 * kGoalThroughputCost,
              Verdict(worst_cost <= kGoalThroughputCost), 100 * worst_cost);

  const double over_loaded = double(mem_loaded) / mem_plain - 1;
  const double over_steady = double(mem_steady) / mem_plain_steady - 1;
  std::printf("\n2. memory (table count)      untracked      tracked    overhead\n");
  std::printf("  after load (all changed)  %8.1f MiB  %8.1f MiB  %+6.1f%%\n", mem_plain / 1048576.0,
              mem_loaded / 1048576.0, 100 * over_loaded);
  std::printf("  steady state (1%% changed) %8.1f MiB  %8.1f MiB  %+6.1f%%\n",
              mem_plain_steady / 1048576.0, mem_steady / 1048576.0, 100 * over_steady);
  std::printf(
      "  goal: <= %.0f%% more: %s in the steady state, %s right after "
      "the load\n",
      100 * kGoalMemoryOverhead, Verdict(over_steady <= kGoalMemoryOverhead),
      Verdict(over_loaded <= kGoalMemoryOverhead));

  std::printf(
      "\n3. capture pause, %zu keys changed (%.0f%%): median %.2f ms, "
      "max %.2f ms "
      "(runs:",
      changed, 100 * kChangedFraction, Median(pauses_ms),
      *std::max_element(pauses_ms.begin(), pauses_ms.end()));
  for (double p : pauses_ms) std::printf(" %.2f", p);
  std::printf(")\n  goal: <= %.0f ms: %s\n", kGoalPauseMs,
              Verdict(Median(pauses_ms) <= kGoalPauseMs));
  std::printf("  after the pause, on the persist thread: key groups and sort, median %.2f ms\n",
              Median(sorts_ms));
  std::printf("  full capture (CaptureAll) of %zu entries: %.0f ms\n", n, full_capture_s * 1e3);

  std::printf(
      "\n4. change set, %llu entries: raw %llu bytes = x%.3f the "
      "changed entries' raw "
      "key+value bytes (%llu); held in memory %llu bytes = x%.3f\n",
      static_cast<unsigned long long>(cs_entries), static_cast<unsigned long long>(cs_raw),
      double(cs_raw) / changed_raw, static_cast<unsigned long long>(changed_raw),
      static_cast<unsigned long long>(cs_memory), double(cs_memory) / changed_raw);
  std::printf(
      "  full change set: raw %.1f MiB, held %.1f MiB; incremental / "
      "full raw bytes = %.4f\n",
      full_raw / 1048576.0, full_memory / 1048576.0, double(cs_raw) / full_raw);
  return 0;
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) { return ickpt::Main(argc, argv); }
