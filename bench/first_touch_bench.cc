// What writing fresh memory costs on this machine, the floor under a restore into a new region
// (docs/benchmarks.md, "Repositories on S3"): 1 GiB of fresh anonymous memory (MADV_NOHUGEPAGE, as
// regions are by default) filled with memcpy from a 4 MiB buffer, in four ways side by side, every
// round in rotation:
//   fault       the copies fault every page in (what a restore did before it populated);
//   populate    one madvise(MADV_POPULATE_WRITE) of the whole range, then the copies;
//   per-4MiB    madvise(MADV_POPULATE_WRITE) of each 4 MiB just before its copy (what a restore
//               does now, per run of blocks of a pack);
//   rewrite     the copies into memory this process already wrote (the floor: no page is new).
// Prints the median of each and its ratio to "fault". Plain main, not in CTest.
//
//   first_touch_bench [--size=BYTES (1 GiB)] [--rounds=N (3)]
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunk = size_t{4} << 20;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

char* Map(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  madvise(p, size, MADV_NOHUGEPAGE);
  return static_cast<char*>(p);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  size_t size = size_t{1} << 30;
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--size=")) {
      size = std::strtoull(argv[i] + 7, nullptr, 10) / kChunk * kChunk;
    } else if (arg.starts_with("--rounds=")) {
      rounds = std::atoi(argv[i] + 9);
    } else {
      std::fprintf(stderr, "usage: first_touch_bench [--size=BYTES] [--rounds=N]\n");
      return 2;
    }
  }
  if (size == 0 || rounds < 1) {
    std::fprintf(stderr, "first_touch_bench: --size must be at least 4 MiB, --rounds at least 1\n");
    return 2;
  }
  std::vector<char> source(kChunk);
  for (size_t i = 0; i < source.size(); ++i) source[i] = static_cast<char>(i * 131 + i / 4099);
  auto copy_all = [&](char* p, bool populate_each) {
    for (size_t off = 0; off < size; off += kChunk) {
      if (populate_each) madvise(p + off, kChunk, MADV_POPULATE_WRITE);
      std::memcpy(p + off, source.data(), kChunk);
    }
  };
  const char* names[] = {"fault", "populate", "per-4MiB", "rewrite"};
  std::vector<double> ms[4], populate_ms;
  char* reused = Map(size);
  copy_all(reused, false);
  bool populate_works = true;
  for (int r = 0; r < rounds; ++r) {
    for (int step = 0; step < 4; ++step) {
      const int kind = (step + r) % 4;
      char* p = kind == 3 ? reused : Map(size);
      const auto t0 = Clock::now();
      if (kind == 1) {
        populate_works &= madvise(p, size, MADV_POPULATE_WRITE) == 0;
        populate_ms.push_back(Ms(t0, Clock::now()));
      }
      copy_all(p, kind == 2);
      ms[kind].push_back(Ms(t0, Clock::now()));
      if (kind != 3) munmap(p, size);
    }
  }
  std::printf("first_touch_bench: %zu MiB, %d round(s)%s\n", size >> 20, rounds,
              populate_works ? "" : " (MADV_POPULATE_WRITE refused: populate = fault)");
  const double fault = Median(ms[0]);
  for (int k = 0; k < 4; ++k) {
    std::printf("  %-9s %8.0f ms  x fault %.2f  (%.2f us per 4 KiB page)\n", names[k],
                Median(ms[k]), Median(ms[k]) / fault, Median(ms[k]) * 1000 / (size / 4096.0));
  }
  std::printf("  of which the populate call: %.0f ms\n", Median(populate_ms));
  munmap(reused, size);
  return 0;
}
