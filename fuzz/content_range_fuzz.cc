// Fuzz target: the Content-Range header an S3 store reads from a suffix-range GET's reply
// (src/store/content_range.h; ObjectStore::GetTail learns an object's size from it).
//
// A value that parses must satisfy the header's invariants (first <= last < total, first and last
// together, a range or a size), and writing the parsed range back in the canonical form must parse
// to the same range.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "src/store/content_range.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ickpt;
  std::optional<ContentRange> r = ParseContentRange(fuzz::AsView(data, size));
  if (!r.has_value()) return 0;
  ICKPT_FUZZ_CHECK(r->first.has_value() == r->last.has_value(), "first without last or back");
  ICKPT_FUZZ_CHECK(r->first.has_value() || r->total.has_value(), "neither range nor size");
  if (r->first.has_value()) {
    ICKPT_FUZZ_CHECK(*r->first <= *r->last, "first ", *r->first, " > last ", *r->last);
    if (r->total.has_value()) {
      ICKPT_FUZZ_CHECK(*r->last < *r->total, "last ", *r->last, " >= total ", *r->total);
    }
  }
  const std::string canonical =
      StrCat("bytes ", r->first.has_value() ? StrCat(*r->first, "-", *r->last) : std::string("*"),
             "/", r->total.has_value() ? StrCat(*r->total) : std::string("*"));
  std::optional<ContentRange> again = ParseContentRange(canonical);
  ICKPT_FUZZ_CHECK(again.has_value(), "canonical form ", canonical, " does not parse");
  ICKPT_FUZZ_CHECK(again->first == r->first && again->last == r->last && again->total == r->total,
                   "canonical form ", canonical, " parses differently");
  return 0;
}
