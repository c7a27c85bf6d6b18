// What the plain-main benchmarks share: options from `--flag=value` or an environment variable,
// and leaving on the first error (a benchmark that cannot set up measures nothing).
#pragma once

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

}  // namespace ickpt::bench
