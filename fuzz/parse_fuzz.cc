// Fuzz target: human-written sizes and durations (src/util/parse.h): ParseSize, ParseDuration,
// and FormatBytes.
//
// The whole input is parsed as text. Its first 8 bytes, as a u64, are formatted with FormatBytes;
// an exact result in a unit ParseSize knows ("64 KiB", not "1.5 MiB" or "1 PiB") must parse back to
// the same value.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "src/util/parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  const std::string_view text = fuzz::AsView(data, size);
  absl::StatusOr<uint64_t> bytes = ParseSize(text);
  if (bytes.ok()) (void)FormatBytes(*bytes);
  absl::StatusOr<absl::Duration> duration = ParseDuration(text);
  if (duration.ok()) {
    ICKPT_FUZZ_CHECK(*duration >= absl::ZeroDuration(), "negative duration from \"", text, "\"");
    ICKPT_FUZZ_CHECK(*duration != absl::InfiniteDuration(), "infinite duration from \"", text,
                     "\"");
  }
  if (size >= 8) {
    uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value |= static_cast<uint64_t>(data[i]) << (8 * i);
    // Small shifts too, so that exact multiples of the units come up often.
    for (uint64_t v : {value, value >> 20, (value >> 44) << 10, (value >> 40) << 20}) {
      const std::string formatted = FormatBytes(v);
      if (Contains(formatted, ".") || Contains(formatted, "PiB") || Contains(formatted, "EiB")) {
        continue;
      }
      absl::StatusOr<uint64_t> parsed = ParseSize(formatted);
      ICKPT_FUZZ_CHECK(parsed.ok() && *parsed == v, "FormatBytes(", v, ") = \"", formatted,
                       "\" parses as ", parsed.ok() ? StrCat(*parsed) : parsed.status().ToString());
    }
  }
  return 0;
}
