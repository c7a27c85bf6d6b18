#include "src/util/coding.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace ickpt {
namespace {

TEST(CodingTest, VarintRoundTripsBoundaryValues) {
  const uint64_t values[] = {0,
                             1,
                             127,
                             128,
                             16383,
                             16384,
                             (1ull << 32) - 1,
                             1ull << 63,
                             std::numeric_limits<uint64_t>::max()};
  for (uint64_t v : values) {
    std::string buf;
    PutVarint64(&buf, v);
    Decoder d(buf);
    uint64_t out = 0;
    ASSERT_TRUE(d.GetVarint64(&out)) << v;
    EXPECT_EQ(out, v);
    EXPECT_TRUE(d.empty());
  }
}

TEST(CodingTest, MaxVarintIsTenBytes) {
  std::string buf;
  PutVarint64(&buf, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(buf.size(), 10u);
}

TEST(CodingTest, RejectsElevenByteVarint) {
  // Ten continuation bytes then a terminator: longer than format.md §1 allows.
  std::string buf(10, static_cast<char>(0x80));
  buf.push_back(0x00);
  Decoder d(buf);
  uint64_t out = 0;
  EXPECT_FALSE(d.GetVarint64(&out));
  EXPECT_EQ(d.remaining(), buf.size()) << "a failed read must not consume input";
}

TEST(CodingTest, RejectsOverflowingTenthByte) {
  // The 10th byte may only carry bit 63; 0x02 there would be bit 64.
  std::string buf(9, static_cast<char>(0xff));
  buf.push_back(0x02);
  Decoder d(buf);
  uint64_t out = 0;
  EXPECT_FALSE(d.GetVarint64(&out));
}

TEST(CodingTest, RejectsTruncatedVarint) {
  std::string buf = "\x80\x80";
  Decoder d(buf);
  uint64_t out = 0;
  EXPECT_FALSE(d.GetVarint64(&out));
  EXPECT_EQ(d.remaining(), 2u);
}

TEST(CodingTest, FixedWidthIsLittleEndian) {
  std::string buf;
  PutFixed16(&buf, 0x0102);
  PutFixed32(&buf, 0x03040506);
  PutFixed64(&buf, 0x0708090a0b0c0d0eull);
  ASSERT_EQ(buf.size(), 14u);
  EXPECT_EQ(buf[0], 0x02);
  EXPECT_EQ(buf[1], 0x01);
  EXPECT_EQ(buf[2], 0x06);
  EXPECT_EQ(buf[13], 0x07);
  Decoder d(buf);
  uint16_t a;
  uint32_t b;
  uint64_t c;
  ASSERT_TRUE(d.GetFixed16(&a));
  ASSERT_TRUE(d.GetFixed32(&b));
  ASSERT_TRUE(d.GetFixed64(&c));
  EXPECT_EQ(a, 0x0102);
  EXPECT_EQ(b, 0x03040506u);
  EXPECT_EQ(c, 0x0708090a0b0c0d0eull);
  uint8_t e;
  EXPECT_FALSE(d.GetFixed8(&e));
}

TEST(CodingTest, FixedReadPastEndFails) {
  std::string buf = "abc";
  Decoder d(buf);
  uint32_t v;
  EXPECT_FALSE(d.GetFixed32(&v));
  EXPECT_EQ(d.remaining(), 3u);
}

TEST(CodingTest, LengthPrefixedRoundTripAndBounds) {
  std::string buf;
  PutLengthPrefixed(&buf, "hello");
  PutLengthPrefixed(&buf, "");
  Decoder d(buf);
  std::string_view v;
  ASSERT_TRUE(d.GetLengthPrefixed(&v));
  EXPECT_EQ(v, "hello");
  ASSERT_TRUE(d.GetLengthPrefixed(&v));
  EXPECT_EQ(v, "");
  EXPECT_TRUE(d.empty());

  // A length larger than what remains must be rejected, not read past the end.
  std::string bad;
  PutVarint64(&bad, 6);
  bad += "hello";
  Decoder d2(bad);
  EXPECT_FALSE(d2.GetLengthPrefixed(&v));
  EXPECT_EQ(d2.remaining(), bad.size());

  std::string huge;
  PutVarint64(&huge, std::numeric_limits<uint64_t>::max());
  Decoder d3(huge);
  EXPECT_FALSE(d3.GetLengthPrefixed(&v));
}

TEST(CodingTest, GetBytes) {
  Decoder d("abcdef");
  std::string_view v;
  ASSERT_TRUE(d.GetBytes(4, &v));
  EXPECT_EQ(v, "abcd");
  EXPECT_FALSE(d.GetBytes(3, &v));
  EXPECT_EQ(d.rest(), "ef");
}

}  // namespace
}  // namespace ickpt
