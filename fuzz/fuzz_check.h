// What the fuzz targets share: a check that aborts (libFuzzer then saves the input as a crash), and
// views of the fuzzer's input. Header-only; included by fuzz/*.cc only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "src/util/str.h"

// Aborts with the condition and a message when `cond` is false: an invariant of a decoder was
// broken (a decoded object that does not re-encode to itself, say). Never used for input that is
// merely invalid: decoders must return an error for that.
#define ICKPT_FUZZ_CHECK(cond, ...)                                                         \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s: %s\n", __FILE__, __LINE__, #cond, \
                   ::ickpt::StrCat("", ##__VA_ARGS__).c_str());                             \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace ickpt::fuzz {

inline std::string_view AsView(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace ickpt::fuzz
