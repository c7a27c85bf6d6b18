// What a frame costs to encode (docs/persist.md §1, "Frames that do not compress"): zstd at levels
// 1 and 3 on 64 KiB frames of random bytes and of text-like records, through the persist pipeline's
// path (PackBuilder::AddFrame with one reused zstd context and scratch buffer) and through
// EncodeFrame (a fresh context and buffers per frame, what the writer did before the pipeline);
// and the checksums every pack pays for (XXH3 of each frame, SHA-256 of the pack). One thread, the
// cases interleaved round by round; the summary gives each case's best round in MiB/s of raw input.
//
//   frame_bench [--frames=N] [--rounds=N]     (ICKPT_BENCH_FRAMES, default 2048 = 128 MiB;
//                                              ICKPT_BENCH_ROUNDS, default 3)
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench_options.h"
#include "src/repo/pack.h"
#include "src/util/hash.h"

namespace ickpt {
namespace {

constexpr size_t kFrame = kMaxFrameRawBytes;

std::vector<std::string> RandomFrames(size_t n) {
  bench::Rng rng(1);
  std::vector<std::string> frames(n, std::string(kFrame, '\0'));
  for (std::string& f : frames) rng.Fill(f.data(), f.size());
  return frames;
}

// Records like the text half of bench/peers.sh's state: repeated structure, varying numbers.
std::vector<std::string> TextFrames(size_t n) {
  bench::Rng rng(2);
  std::vector<std::string> frames(n);
  uint64_t id = 0;
  for (std::string& f : frames) {
    char line[160];
    while (f.size() < kFrame) {
      const int len = std::snprintf(
          line, sizeof(line),
          "{\"id\":%llu,\"user\":\"user%04llu\",\"score\":%lld,"
          "\"status\":\"%s\"}\n",
          static_cast<unsigned long long>(id++), static_cast<unsigned long long>(rng.Below(2000)),
          static_cast<long long>(rng.Below(200001)) - 100000, rng.Below(2) == 0 ? "ok" : "retry");
      f.append(line, static_cast<size_t>(len));
    }
    f.resize(kFrame);
  }
  return frames;
}

double Seconds(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int Main(int argc, char** argv) {
  const size_t n = bench::Option(argc, argv, "frames", "ICKPT_BENCH_FRAMES", 2048);
  const int rounds = static_cast<int>(bench::Option(argc, argv, "rounds", "ICKPT_BENCH_ROUNDS", 3));
  const std::vector<std::string> random = RandomFrames(n);
  const std::vector<std::string> text = TextFrames(n);
  const double mib = static_cast<double>(n * kFrame) / (1 << 20);

  struct Case {
    std::string name;
    std::function<uint64_t()> run;  // returns the stored bytes
    double best = 0;
    uint64_t stored = 0;
  };
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::string scratch;
  std::vector<Case> cases;
  for (const auto* data : {&random, &text}) {
    const std::string kind = data == &random ? "random" : "text";
    for (int level : {1, 3}) {
      cases.push_back({kind + ", level " + std::to_string(level) + ", pipeline (reused context)",
                       [&, data, level] {
                         // Packs of 64 frames (4 MiB, the default pack_target_bytes), each
                         // built in a buffer of its own as the pipeline does.
                         uint64_t stored = 0;
                         for (size_t first = 0; first < data->size(); first += 64) {
                           PackBuilder builder;
                           builder.Reserve(64 * kFrame);
                           const size_t end = std::min(data->size(), first + 64);
                           for (size_t i = first; i < end; ++i) {
                             builder.AddFrame((*data)[i], level, cctx, &scratch);
                           }
                           stored += builder.stored_size();
                         }
                         return stored;
                       }});
      cases.push_back({kind + ", level " + std::to_string(level) + ", EncodeFrame (fresh context)",
                       [&, data, level] {
                         uint64_t stored = 0;
                         for (const std::string& f : *data)
                           stored += EncodeFrame(f, level).stored.size();
                         return stored;
                       }});
    }
  }
  cases.push_back({"XXH3 of every frame", [&] {
                     uint64_t x = 0;
                     for (const std::string& f : random) x ^= Xxh3(f);
                     return x & 1;
                   }});
  cases.push_back({"SHA-256 of every frame", [&] {
                     uint64_t x = 0;
                     for (const std::string& f : random) x ^= Sha256(f)[0];
                     return x & 1;
                   }});
  for (int r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < cases.size(); ++i) {
      Case& c = cases[(i + static_cast<size_t>(r)) % cases.size()];  // a different order each round
      uint64_t stored = 0;
      const double s = Seconds([&] { stored = c.run(); });
      c.best = std::max(c.best, mib / s);
      c.stored = stored;
    }
  }
  ZSTD_freeCCtx(cctx);
  std::printf("frame_bench: %zu frames of %zu KiB (%.0f MiB), one thread, best of %d rounds\n", n,
              kFrame / 1024, mib, rounds);
  for (const Case& c : cases) {
    if (c.name.find("level") != std::string::npos) {
      std::printf("  %-52s %7.0f MiB/s  ratio %.2f\n", c.name.c_str(), c.best,
                  static_cast<double>(n * kFrame) / static_cast<double>(c.stored));
    } else {
      std::printf("  %-52s %7.0f MiB/s\n", c.name.c_str(), c.best);
    }
  }
  return 0;
}

}  // namespace
}  // namespace ickpt

int main(int argc, char** argv) { return ickpt::Main(argc, argv); }
