// The deterministic workload of the multi-process coordination tests (coord_worker.cc,
// coord_process_test.cc): a participant's state after `steps` steps is a pure function of its
// name, its key-group range and the step count, so any restore can be checked exactly against a
// replay, and a job that survived failures must end bit-identical to one that did not.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>

#include "ickpt/key_group.h"

namespace ickpt::coord::workload {

inline constexpr uint64_t kBlockSize = 4096;
inline constexpr uint64_t kBlocks = 32;
inline constexpr uint64_t kRegionBytes = kBlocks * kBlockSize;
inline constexpr uint32_t kKeyGroups = 16;

struct State {
  std::string region = std::string(kRegionBytes, '\0');
  std::map<std::string, std::string> keyed;
};

inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline uint64_t Seed(std::string_view name, uint64_t step) {
  uint64_t h = 1469598103934665603ULL;
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return Mix(h ^ Mix(step));
}

// Applies step `step` (>= 1): rewrites two blocks of the region, and puts one key of the
// participant's key groups [group_first, group_end) (keyed state is shared by key groups).
template <typename PutFn>
void ApplyStep(std::string_view name, uint64_t step, uint32_t group_first, uint32_t group_end,
               char* region, PutFn put) {
  uint64_t x = Seed(name, step);
  for (int b = 0; b < 2; ++b) {
    x = Mix(x);
    char* block = region + (x % kBlocks) * kBlockSize;
    for (uint64_t i = 0; i < kBlockSize; i += 8) {
      x = Mix(x);
      std::memcpy(block + i, &x, 8);
    }
  }
  // The first of a few candidate keys that falls in the participant's groups.
  for (int attempt = 0; attempt < 256; ++attempt) {
    x = Mix(x);
    const std::string key = std::string(name) + "/" + std::to_string(x % 64);
    const uint32_t g = KeyGroupOf(key, kKeyGroups);
    if (g < group_first || g >= group_end) continue;
    put(key, std::to_string(step) + ":" + std::to_string(Mix(x)));
    return;
  }
}

// The state after `steps` steps.
inline State StateAt(std::string_view name, uint64_t steps, uint32_t group_first,
                     uint32_t group_end) {
  State s;
  for (uint64_t step = 1; step <= steps; ++step) {
    ApplyStep(name, step, group_first, group_end, s.region.data(),
              [&](const std::string& k, const std::string& v) { s.keyed[k] = v; });
  }
  return s;
}

// A digest of a state, for the workers' reports.
inline uint64_t Digest(const State& s) {
  uint64_t h = Mix(s.region.size());
  for (size_t i = 0; i < s.region.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.region.data() + i, 8);
    h = Mix(h ^ w);
  }
  for (const auto& [k, v] : s.keyed) {
    h = Mix(h ^ Seed(k, v.size()));
    h = Mix(h ^ Seed(v, k.size()));
  }
  return h;
}

}  // namespace ickpt::coord::workload
