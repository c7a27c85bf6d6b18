#include "src/store/content_range.h"

#include <gtest/gtest.h>

namespace ickpt {
namespace {

TEST(ContentRangeTest, ParsesTheThreeForms) {
  std::optional<ContentRange> r = ParseContentRange("bytes 100-199/1000");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, 100u);
  EXPECT_EQ(r->last, 199u);
  EXPECT_EQ(r->total, 1000u);
  r = ParseContentRange("bytes 0-0/*");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, 0u);
  EXPECT_EQ(r->last, 0u);
  EXPECT_FALSE(r->total.has_value());
  r = ParseContentRange("bytes */0");  // a 416 for an empty object
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->first.has_value());
  EXPECT_FALSE(r->last.has_value());
  EXPECT_EQ(r->total, 0u);
  // As libcurl may hand it over, and as servers spell the unit.
  r = ParseContentRange("  BYTES   4294967296-9223372036854775806/9223372036854775807\r\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, 4294967296u);
  EXPECT_EQ(r->total, 9223372036854775807u);
}

TEST(ContentRangeTest, RefusesWhatIsNotAContentRange) {
  for (const char* bad : {"",
                          "bytes",
                          "bytes ",
                          "bytes 1-2",
                          "bytes 1-2/",
                          "bytes -2/10",
                          "bytes 1-/10",
                          "bytes 3-2/10",
                          "bytes 0-10/10",
                          "bytes */*",
                          "items 0-1/10",
                          "bytes=0-1/10",
                          "bytes 0-1/1x",
                          "bytes +0-1/10",
                          "bytes 0 -1/10",
                          "bytes 0-1 /10",
                          "bytes 0-1/99999999999999999999",
                          "bytes 18446744073709551615-18446744073709551615/*",
                          "bytes\t0-1/10",
                          "bytes 0x1-2/10"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ParseContentRange(bad).has_value());
  }
}

}  // namespace
}  // namespace ickpt
