#include "src/cli/cluster_model.h"

#include <sys/mman.h>

#include <array>
#include <bit>
#include <cstring>

#include "ickpt/key_group.h"
#include "src/cli/demo_sim.h"
#include "src/util/str.h"

namespace ickpt::cli::cluster_model {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::string PositionKey(uint32_t split) { return StrCat("split/", split); }

const std::string& CounterKey(uint32_t split, uint32_t counter) {
  // Built once: for each (split, counter) the first salt that lands the key in the split's key
  // group (about kKeyGroups tries each), so that whoever owns a split owns its counters.
  static const std::vector<std::string>* const keys = [] {
    auto* out = new std::vector<std::string>();
    out->reserve(size_t{kSplits} * kCounters);
    for (uint32_t s = 0; s < kSplits; ++s) {
      const uint32_t group = KeyGroupOf(PositionKey(s), kKeyGroups);
      for (uint32_t c = 0; c < kCounters; ++c) {
        for (uint32_t salt = 0;; ++salt) {
          std::string key = StrCat("count/", s, "/", c, "/", salt);
          if (KeyGroupOf(key, kKeyGroups) == group) {
            out->push_back(std::move(key));
            break;
          }
        }
      }
    }
    return out;
  }();
  return (*keys)[size_t{split} * kCounters + counter];
}

std::vector<uint32_t> OwnedSplits(uint32_t group_first, uint32_t group_end) {
  std::vector<uint32_t> splits;
  for (uint32_t s = 0; s < kSplits; ++s) {
    const uint32_t g = KeyGroupOf(PositionKey(s), kKeyGroups);
    if (g >= group_first && g < group_end) splits.push_back(s);
  }
  return splits;
}

void InitTable(char* table, uint64_t size, uint64_t seed, uint32_t index) {
  uint64_t x = Mix(seed ^ Mix(index + 1));
  for (uint64_t i = 0; i + 8 <= size; i += 8) {
    x = Mix(x);
    // Small initial weights: the top bytes are zero, as in a freshly initialised model.
    const uint64_t w = x & 0x00ff00ff00ff00ffULL;
    std::memcpy(table + i, &w, 8);
  }
}

void Step(char* table, uint64_t size, uint64_t seed, uint64_t step,
          const std::vector<uint32_t>& splits, absl::FunctionRef<void(const std::string&)> count,
          absl::FunctionRef<void(const std::string&, uint64_t)> position) {
  const uint64_t rows = size / kRowBytes;
  for (uint32_t s : splits) {
    const uint64_t first = (step - 1) * kRecordsPerStep;
    for (uint64_t r = first; r < first + kRecordsPerStep; ++r) {
      const uint64_t x = Mix(Mix(seed ^ (uint64_t{s} << 48)) ^ r);
      // Zipf-like: the row range halves with probability 1/2 per level (up to 16 levels), so
      // low rows are hot and most rows are rarely touched.
      const int level = std::min(16, std::countr_zero((x >> 40) | (uint64_t{1} << 16)));
      const uint64_t range = std::max<uint64_t>(1, rows >> level);
      const uint64_t row = Mix(x) % range;
      std::array<uint32_t, kRowBytes / 4> lanes;
      char* at = table + row * kRowBytes;
      std::memcpy(lanes.data(), at, kRowBytes);
      for (size_t i = 0; i < lanes.size(); ++i) {
        lanes[i] = lanes[i] * 2654435761u + static_cast<uint32_t>(x >> (i % 32)) +
                   static_cast<uint32_t>(i);
      }
      std::memcpy(at, lanes.data(), kRowBytes);
      count(CounterKey(s, static_cast<uint32_t>(x % kCounters)));
    }
    position(PositionKey(s), first + kRecordsPerStep);
  }
}

std::string WorkerStateHash(std::string_view table,
                            const std::map<std::string, std::string>& positions,
                            const std::map<std::string, std::string>& counters) {
  std::map<std::string, std::string> all;
  for (const auto& [k, v] : positions) all.emplace(StrCat(kPositionsName, ":", k), v);
  for (const auto& [k, v] : counters) all.emplace(StrCat(kCountersName, ":", k), v);
  return StateHash(table, all);
}

std::string ReferenceHash(uint64_t size, uint64_t seed, uint32_t index, uint32_t count,
                          uint64_t steps) {
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return "";
  char* table = static_cast<char*>(mem);
  InitTable(table, size, seed, index);
  const auto [first, end] = OwnedKeyGroups(kKeyGroups, index, count);
  const std::vector<uint32_t> splits = OwnedSplits(first, end);
  std::map<std::string, std::string> positions, counters;
  std::map<std::string, uint64_t> counts;
  for (uint64_t step = 1; step <= steps; ++step) {
    Step(
        table, size, seed, step, splits, [&](const std::string& key) { ++counts[key]; },
        [&](const std::string& key, uint64_t records) { positions[key] = StrCat(records); });
  }
  for (const auto& [k, n] : counts) counters[k] = StrCat(n);
  std::string hash = WorkerStateHash(std::string_view(table, size), positions, counters);
  munmap(mem, size);
  return hash;
}

}  // namespace ickpt::cli::cluster_model
