// What the plain-main benchmarks share: options from `--flag=value` or an environment variable,
// leaving on the first error (a benchmark that cannot set up measures nothing), and a fast random
// generator whose output does not compress.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ickpt::bench {

// `--flag=N`, else $env, else `fallback`.
inline uint64_t Option(int argc, char** argv, const char* flag, const char* env,
                       uint64_t fallback) {
  const std::string prefix = std::string("--") + flag + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      return std::strtoull(argv[i] + prefix.size(), nullptr, 10);
    }
  }
  const char* v = std::getenv(env);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

inline std::string StringOption(int argc, char** argv, const char* flag, const char* env,
                                const char* fallback) {
  const std::string prefix = std::string("--") + flag + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      return argv[i] + prefix.size();
    }
  }
  const char* v = std::getenv(env);
  return v != nullptr && *v != '\0' ? v : fallback;
}

template <typename T>
T Check(absl::StatusOr<T> v) {
  if (!v.ok()) {
    std::fprintf(stderr, "error: %s\n", v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}
inline void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

// splitmix64: fast, and its output does not compress.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
  void Fill(char* p, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
      const uint64_t w = Next();
      std::memcpy(p + i, &w, std::min<size_t>(8, n - i));
    }
  }

 private:
  uint64_t s_;
};

}  // namespace ickpt::bench
