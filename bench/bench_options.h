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
#include <string_view>
#include <utility>
#include <vector>

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

// The command line with `--flag value` read as `--flag=value` and a switch in `switches` given
// alone as `--flag=1`, for Option and StringOption. A flag not in `known`, an argument that is not
// a flag, or a flag without its value ends the program with an error naming `program`: a misspelt
// flag silently ignored would measure the wrong thing.
inline std::vector<std::string> NormalizeFlags(int argc, char** argv,
                                               const std::vector<std::string_view>& known,
                                               const std::vector<std::string_view>& switches,
                                               std::string_view program) {
  auto fail = [&](const std::string& what) {
    std::fprintf(stderr, "%.*s: error: %s\n", static_cast<int>(program.size()), program.data(),
                 what.c_str());
    std::exit(1);
  };
  std::vector<std::string> out = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (!a.starts_with("--")) fail("unexpected argument '" + a + "'");
    const size_t eq = a.find('=');
    const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      fail("unknown flag --" + name + " (see the comment at the top of " + std::string(program) +
           ".cc)");
    }
    if (eq == std::string::npos) {
      if (std::find(switches.begin(), switches.end(), name) != switches.end()) {
        a += "=1";
      } else if (i + 1 < argc) {
        a += std::string("=") + argv[++i];
      } else {
        fail("--" + name + " needs a value");
      }
    }
    out.push_back(std::move(a));
  }
  return out;
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
