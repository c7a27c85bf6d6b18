// The deterministic content of testdata/repo-v1.0 (format.md §1.1: a repository saved by every
// released version must restore with every later release). Shared by make_testdata, which wrote the
// repository, and compat_test, which restores it. NEVER change these functions: the saved
// repository holds what they produced when it was written.
//
// Region "grid", block size 4096, three checkpoints:
//   1: full, 16 blocks (64 KiB): block b is a mix of text and pseudo-random bytes.
//   2: incremental: blocks 3 and 7 rewritten.
//   3: incremental: block 5 zeroed, region grown to 24 blocks (96 KiB), block 20 written.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace ickpt::testdata {

inline constexpr uint32_t kGridBlock = 4096;
inline constexpr uint64_t kGridBlocksV1 = 16;
inline constexpr uint64_t kGridBlocksV3 = 24;

// Fills one block from (tag, block): half compressible text, half pseudo-random (xorshift64).
inline void FillGridBlock(char* p, uint64_t tag, uint64_t block) {
  uint64_t x = 0x9e3779b97f4a7c15ULL ^ (tag << 32) ^ (block + 1);
  for (uint32_t i = 0; i < kGridBlock / 2; ++i) {
    p[i] = static_cast<char>("ickpt grid "[i % 11] + (block % 7));
  }
  for (uint32_t i = kGridBlock / 2; i < kGridBlock; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
}

// The region as captured by checkpoint `n` (1, 2 or 3) of the saved repository.
inline std::string GridAtCheckpoint(int n) {
  std::string g((n >= 3 ? kGridBlocksV3 : kGridBlocksV1) * kGridBlock, '\0');
  for (uint64_t b = 0; b < kGridBlocksV1; ++b) FillGridBlock(g.data() + b * kGridBlock, 1, b);
  if (n >= 2) {
    FillGridBlock(g.data() + 3 * kGridBlock, 2, 3);
    FillGridBlock(g.data() + 7 * kGridBlock, 2, 7);
  }
  if (n >= 3) {
    std::memset(g.data() + 5 * kGridBlock, 0, kGridBlock);
    FillGridBlock(g.data() + 20 * kGridBlock, 3, 20);
  }
  return g;
}

}  // namespace ickpt::testdata
