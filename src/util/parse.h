// Parsing of human-written sizes and durations (options, command-line flags, environment) and
// formatting of byte counts for messages.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ickpt {

// Parses a byte count: a decimal integer with an optional suffix (case-insensitive, optionally
// separated by one space):
//   none or "B"                      bytes
//   "K" "M" "G" "T", "KiB" ... "TiB"  binary: 2^10, 2^20, 2^30, 2^40
//   "KB" "MB" "GB" "TB"               decimal: 10^3, 10^6, 10^9, 10^12
// Examples: "4096", "4k", "64KiB", "64MiB", "1GiB", "10MB". InvalidArgument naming the input for
// an empty string, a sign, a fraction, an unknown suffix, or a value that does not fit in 64 bits.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// Parses a non-negative duration: a number (optionally with a fraction) followed by a unit, one of
// "ns", "us", "ms", "s", "m", "h", "d" (24 h); "0" alone is accepted. Examples: "500ms", "2s",
// "1.5s", "1m", "1h", "2d", "250us". InvalidArgument naming the input otherwise (negative, missing
// unit, overflow).
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);

// "512 B", "1.5 MiB", "64 KiB", "2.3 GiB": binary units, one decimal unless the value is exact.
std::string FormatBytes(uint64_t bytes);

}  // namespace ickpt
