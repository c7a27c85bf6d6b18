// The Content-Range header of an HTTP reply to a range request (RFC 9110 §14.4), as an S3 store
// reads it: a suffix-range GET ("Range: bytes=-N", ObjectStore::GetTail) learns the object's size
// from it. Kept apart from the transport so that it is tested and fuzzed
// (fuzz/content_range_fuzz.cc) without a server.
//
// Accepted: "bytes FIRST-LAST/TOTAL" with FIRST <= LAST < TOTAL, "bytes FIRST-LAST/*" (size
// unknown), and "bytes */TOTAL" (the form of a 416 reply). Numbers are decimal digits only, at most
// 19 of them (below 2^63), no sign, no spaces inside; the unit is "bytes", case-insensitive, then
// one or more spaces. Anything else is not a Content-Range (nullopt).
//
// Thread safety: a pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ickpt {

struct ContentRange {
  std::optional<uint64_t> first;  // absent in "bytes */TOTAL"
  std::optional<uint64_t> last;   // present exactly when `first` is
  std::optional<uint64_t> total;  // absent in "bytes FIRST-LAST/*"
};

std::optional<ContentRange> ParseContentRange(std::string_view value);

}  // namespace ickpt
