#include "src/util/parse.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

absl::Status Invalid(std::string_view kind, std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(StrCat("invalid ", kind, " \"", text, "\": ", why));
}

// Splits `text` into its leading digits (with an optional ".digits" fraction when
// `allow_fraction`) and the rest. Returns false if there is no leading digit.
bool SplitNumber(std::string_view text, bool allow_fraction, std::string_view* number,
                 std::string_view* rest) {
  size_t i = 0;
  while (i < text.size() && (text[i] >= '0' && text[i] <= '9')) ++i;
  if (i == 0) return false;
  if (allow_fraction && i < text.size() && text[i] == '.') {
    size_t j = i + 1;
    while (j < text.size() && (text[j] >= '0' && text[j] <= '9')) ++j;
    if (j == i + 1) return false;  // "1." has no fraction digits
    i = j;
  }
  *number = text.substr(0, i);
  *rest = text.substr(i);
  return true;
}

}  // namespace

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  const std::string_view trimmed = StripWhitespace(text);
  if (trimmed.empty()) return Invalid("size", text, "empty");
  if (trimmed[0] == '-') return Invalid("size", text, "negative");
  std::string_view digits, suffix;
  if (!SplitNumber(trimmed, /*allow_fraction=*/false, &digits, &suffix)) {
    return Invalid("size", text, "expected a number like 4096, 64KiB or 1GiB");
  }
  if (!suffix.empty() && suffix[0] == ' ') suffix.remove_prefix(1);
  const std::string unit = AsciiLower(suffix);
  uint64_t multiplier;
  if (unit.empty() || unit == "b") {
    multiplier = 1;
  } else if (unit == "k" || unit == "kib") {
    multiplier = uint64_t{1} << 10;
  } else if (unit == "m" || unit == "mib") {
    multiplier = uint64_t{1} << 20;
  } else if (unit == "g" || unit == "gib") {
    multiplier = uint64_t{1} << 30;
  } else if (unit == "t" || unit == "tib") {
    multiplier = uint64_t{1} << 40;
  } else if (unit == "kb") {
    multiplier = 1000;
  } else if (unit == "mb") {
    multiplier = 1000 * 1000;
  } else if (unit == "gb") {
    multiplier = 1000 * 1000 * 1000;
  } else if (unit == "tb") {
    multiplier = uint64_t{1000} * 1000 * 1000 * 1000;
  } else if (unit[0] == '.') {
    return Invalid("size", text, "fractions are not supported");
  } else {
    return Invalid("size", text, "unknown unit (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
  }
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  uint64_t value = 0;
  for (char c : digits) {
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (value > (kMax - d) / 10) return Invalid("size", text, "does not fit in 64 bits");
    value = value * 10 + d;
  }
  if (value > kMax / multiplier) return Invalid("size", text, "does not fit in 64 bits");
  return value * multiplier;
}

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  const std::string_view trimmed = StripWhitespace(text);
  if (trimmed.empty()) return Invalid("duration", text, "empty");
  if (trimmed[0] == '-') return Invalid("duration", text, "negative");
  std::string_view number, unit;
  if (!SplitNumber(trimmed, /*allow_fraction=*/true, &number, &unit)) {
    return Invalid("duration", text, "expected a number and a unit like 500ms, 2s or 1m");
  }
  if (unit.empty()) {
    // A bare zero is unambiguous; any other bare number is probably a unit mistake.
    if (number.find_first_not_of("0.") == std::string_view::npos) return absl::ZeroDuration();
    return Invalid("duration", text, "missing unit (ns, us, ms, s, m, h, d)");
  }
  absl::Duration unit_length;
  if (unit == "ns") {
    unit_length = absl::Nanoseconds(1);
  } else if (unit == "us") {
    unit_length = absl::Microseconds(1);
  } else if (unit == "ms") {
    unit_length = absl::Milliseconds(1);
  } else if (unit == "s") {
    unit_length = absl::Seconds(1);
  } else if (unit == "m") {
    unit_length = absl::Minutes(1);
  } else if (unit == "h") {
    unit_length = absl::Hours(1);
  } else if (unit == "d") {
    unit_length = absl::Hours(24);
  } else {
    return Invalid("duration", text, "unknown unit (ns, us, ms, s, m, h, d)");
  }
  const std::string_view int_part = number.substr(0, number.find('.'));
  const std::string_view frac_part =
      int_part.size() < number.size() ? number.substr(int_part.size() + 1) : std::string_view();
  // Integer part exactly (Duration multiplication saturates to infinity on overflow), the
  // fraction in double precision, which is plenty for a fraction of one unit.
  absl::Duration result = absl::ZeroDuration();
  for (char c : int_part) {
    result = result * 10 + unit_length * (c - '0');
    if (result == absl::InfiniteDuration()) return Invalid("duration", text, "too large");
  }
  if (!frac_part.empty()) {
    double fraction = 0;
    double scale = 0.1;
    for (char c : frac_part) {
      fraction += (c - '0') * scale;
      scale /= 10;
    }
    result += unit_length * fraction;
  }
  if (result == absl::InfiniteDuration()) return Invalid("duration", text, "too large");
  return result;
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return StrCat(bytes, " B");
  int unit = 0;
  uint64_t divisor = 1;
  while (unit < 6 && bytes / divisor >= 1024) {
    divisor <<= 10;
    ++unit;
  }
  if (bytes % divisor == 0) return StrCat(bytes / divisor, " ", kUnits[unit]);
  return absl::StrFormat("%.1f %s", static_cast<double>(bytes) / static_cast<double>(divisor),
                         kUnits[unit]);
}

}  // namespace ickpt
