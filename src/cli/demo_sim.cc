#include "src/cli/demo_sim.h"

#include <cmath>
#include <cstring>

#include "src/util/hash.h"

namespace ickpt::cli {
namespace {

constexpr uint64_t kWordsPerRow = kGridRowBytes / sizeof(uint32_t);

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint32_t* Row(char* data, uint64_t row) {
  return reinterpret_cast<uint32_t*>(data + row * kGridRowBytes);
}

}  // namespace

void InitGrid(char* data, uint64_t size, uint64_t seed) {
  const uint64_t rows = size / kGridRowBytes;
  for (uint64_t r = 0; r < rows; ++r) {
    uint64_t state = seed * 0x2545f4914f6cdd1dULL + r;
    uint32_t* row = Row(data, r);
    if (SplitMix64(state) & 1) {
      for (uint64_t w = 0; w < kWordsPerRow; w += 2) {
        const uint64_t v = SplitMix64(state);
        row[w] = static_cast<uint32_t>(v);
        row[w + 1] = static_cast<uint32_t>(v >> 32);
      }
    } else {
      // A smooth field: slowly varying values, long runs of equal cells.
      const uint32_t base = static_cast<uint32_t>((r / 16) * 1000 + (seed & 0xff));
      for (uint64_t w = 0; w < kWordsPerRow; ++w) row[w] = base + static_cast<uint32_t>(w / 64);
    }
  }
}

void StepGrid(char* data, uint64_t size, uint64_t seed, uint64_t step) {
  const uint64_t rows = size / kGridRowBytes;
  if (rows < 3) return;
  uint64_t rng = seed * 0x9e3779b97f4a7c15ULL ^ (step * 0xd1b54a32d192ed03ULL);

  // A 5-point stencil (Gauss-Seidel order, in place) over a band of rows that moves each step.
  const uint64_t band = rows / 64 > 0 ? rows / 64 : 1;
  const uint64_t start = (step * band * 5) % rows;
  for (uint64_t i = 0; i < band; ++i) {
    const uint64_t r = (start + i) % rows;
    const uint32_t* up = Row(data, (r + rows - 1) % rows);
    const uint32_t* down = Row(data, (r + 1) % rows);
    uint32_t* row = Row(data, r);
    for (uint64_t w = 0; w < kWordsPerRow; ++w) {
      const uint32_t left = row[(w + kWordsPerRow - 1) % kWordsPerRow];
      const uint32_t right = row[(w + 1) % kWordsPerRow];
      const uint64_t sum = uint64_t{up[w]} + down[w] + left + right;
      row[w] = static_cast<uint32_t>(sum / 4) + static_cast<uint32_t>(step);
    }
  }

  // Zipf-distributed row updates (exponent ~1): a few rows are hot, most are cold. The rank is
  // scattered over the grid so that hot rows are not adjacent.
  const uint64_t updates = rows / 64 > 0 ? rows / 64 : 1;
  const double log_rows = std::log(static_cast<double>(rows));
  for (uint64_t u = 0; u < updates; ++u) {
    const double x = static_cast<double>(SplitMix64(rng) >> 11) * 0x1.0p-53;
    uint64_t rank = static_cast<uint64_t>(std::exp(x * log_rows)) - 1;
    if (rank >= rows) rank = rows - 1;
    const uint64_t r = (rank * 0x9e3779b97f4a7c15ULL + seed) % rows;
    uint32_t* row = Row(data, r);
    for (int k = 0; k < 8; ++k) {
      const uint64_t v = SplitMix64(rng);
      uint32_t& cell = row[v % kWordsPerRow];
      cell = cell * 1664525u + 1013904223u + static_cast<uint32_t>(v >> 32);
    }
  }
}

void StepIndex(const char* data, uint64_t size, uint64_t seed, uint64_t step,
               absl::FunctionRef<void(std::string_view key, std::string_view value)> put,
               absl::FunctionRef<void(std::string_view key)> erase) {
  const uint64_t rows = size / kGridRowBytes;
  uint64_t state = seed * 0x9e3779b97f4a7c15ULL ^ (step * 0xd1b54a32d192ed03ULL);
  for (uint64_t i = 0; i < kIndexRowsPerStep; ++i) {
    const uint64_t draw = SplitMix64(state);
    const uint64_t row = draw % rows;
    const std::string key = "row/" + std::to_string(row);
    if ((draw >> 40) % 8 == 0) {
      erase(key);
      continue;
    }
    char value[24];
    std::memcpy(value, data + row * kGridRowBytes, 16);
    std::memcpy(value + 16, &step, 8);
    put(key, std::string_view(value, sizeof(value)));
  }
}

std::string StateHash(std::string_view grid, const std::map<std::string, std::string>& index) {
  std::string bytes(grid);
  for (const auto& [key, value] : index) {
    const uint64_t key_size = key.size(), value_size = value.size();
    bytes.append(reinterpret_cast<const char*>(&key_size), 8);
    bytes.append(key);
    bytes.append(reinterpret_cast<const char*>(&value_size), 8);
    bytes.append(value);
  }
  return ToHex(Sha256(bytes));
}

}  // namespace ickpt::cli
