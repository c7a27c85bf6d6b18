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
#include <cstdio>
#include <cstring>
#include <map>
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

// Format 1.1 on (testdata/repo-v1.1): keyed state "index", 16 key groups, checkpointed beside the
// grid by checkpoints 1 to 3:
//   1: "row-000" .. "row-099" -> "v1-<i>"
//   2: rows 10..19 rewritten ("v2-<i>"), rows 90..99 erased, the binary key "\0\xff" -> "bin"
//   3: rows 20..29 rewritten ("v3-<i>"), row 95 back ("v3-95"), the empty key -> the empty value
inline constexpr uint32_t kIndexKeyGroups = 16;
inline std::string IndexRow(int i) {
  char key[16];
  std::snprintf(key, sizeof(key), "row-%03d", i);
  return key;
}
inline std::map<std::string, std::string> IndexAtCheckpoint(int n) {
  std::map<std::string, std::string> m;
  for (int i = 0; i < 100; ++i) m[IndexRow(i)] = "v1-" + std::to_string(i);
  if (n >= 2) {
    for (int i = 10; i < 20; ++i) m[IndexRow(i)] = "v2-" + std::to_string(i);
    for (int i = 90; i < 100; ++i) m.erase(IndexRow(i));
    m[std::string("\0\xff", 2)] = "bin";
  }
  if (n >= 3) {
    for (int i = 20; i < 30; ++i) m[IndexRow(i)] = "v3-" + std::to_string(i);
    m[IndexRow(95)] = "v3-95";
    m[""] = "";
  }
  return m;
}

// Format 1.1 on: checkpoint 4 is a group checkpoint (format.md §11) of participants "left" and
// "right" (index 0 and 1 of 2), each holding its own key groups of keyed state "shared" (16 key
// groups): "s-<i>" -> "g4-<i>" for i < 64. Its acknowledgements stay in the repository. From
// format 1.2 on (testdata/repo-v1.2) the group commits epoch 2, and "left" acknowledges as
// incarnation 7, "right" as incarnation 3.
inline constexpr uint32_t kSharedKeyGroups = 16;
inline std::map<std::string, std::string> SharedAtGroupCheckpoint() {
  std::map<std::string, std::string> m;
  for (int i = 0; i < 64; ++i) m["s-" + std::to_string(i)] = "g4-" + std::to_string(i);
  return m;
}

// Format 1.5 on (testdata/repo-v1.5, format.md §15): the coordinator of the group checkpoint
// begins epoch 2 first (epochs/2, base: checkpoint 3). Then a new coordinator begins epoch 3 while
// the old one commits a second group checkpoint of epoch 2 between the new one's read of the
// latest checkpoint and its publish (the race of §15.5): epochs/3 names the group checkpoint as
// its base, and that second group checkpoint, the highest id, is fenced. Its "shared" holds
// "s-<i>" -> "fenced-<i>" for i < 64, which no restore of the latest may return.
inline std::map<std::string, std::string> SharedAtFencedCheckpoint() {
  std::map<std::string, std::string> m;
  for (int i = 0; i < 64; ++i) m["s-" + std::to_string(i)] = "fenced-" + std::to_string(i);
  return m;
}

}  // namespace ickpt::testdata
