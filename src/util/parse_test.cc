#include "src/util/parse.h"

#include <string>

#include "gtest/gtest.h"
#include "src/testing/status_matchers.h"
#include "src/util/log.h"

namespace ickpt {
namespace {

TEST(ParseSizeTest, AcceptsPlainAndSuffixedSizes) {
  struct Case {
    const char* text;
    uint64_t value;
  } cases[] = {
      {"0", 0},
      {"4096", 4096},
      {"64KiB", 64 << 10},
      {"64MiB", 64ull << 20},
      {"1GiB", 1ull << 30},
      {"1TiB", 1ull << 40},
      {"10KB", 10000},
      {"10MB", 10000000},
      {"10GB", 10000000000ull},
      {"4k", 4096},
      {"64m", 64ull << 20},
      {"1g", 1ull << 30},
      {"12B", 12},
      {"2 MiB", 2ull << 20},
      {" 8K ", 8192},
      {"18446744073709551615", 18446744073709551615ull},
  };
  for (const Case& c : cases) {
    ASSERT_OK_AND_ASSIGN(uint64_t value, ParseSize(c.text));
    EXPECT_EQ(value, c.value) << c.text;
  }
}

TEST(ParseSizeTest, RejectsMalformedWithInputInMessage) {
  for (const char* text : {"", "  ", "-1", "-4k", "abc", "4x", "4 KiBB", "1.5GiB", "k",
                           "18446744073709551616", "16777216TiB", "99999999999999999999999"}) {
    absl::StatusOr<uint64_t> result = ParseSize(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(result.status().message().find(std::string("\"") + text + "\""),
              absl::string_view::npos)
        << result.status();
  }
}

TEST(ParseDurationTest, AcceptsUnits) {
  struct Case {
    const char* text;
    absl::Duration value;
  } cases[] = {
      {"500ms", absl::Milliseconds(500)}, {"2s", absl::Seconds(2)},
      {"1m", absl::Minutes(1)},           {"1h", absl::Hours(1)},
      {"250us", absl::Microseconds(250)}, {"7ns", absl::Nanoseconds(7)},
      {"1.5s", absl::Milliseconds(1500)}, {"0", absl::ZeroDuration()},
  };
  for (const Case& c : cases) {
    ASSERT_OK_AND_ASSIGN(absl::Duration value, ParseDuration(c.text));
    EXPECT_EQ(value, c.value) << c.text;
  }
}

// "d" is 24 hours (a day of the calendar may not be: durations ignore time zones).
TEST(ParseDurationTest, AcceptsDays) {
  ASSERT_OK_AND_ASSIGN(absl::Duration day, ParseDuration("1d"));
  EXPECT_EQ(day, absl::Hours(24));
  ASSERT_OK_AND_ASSIGN(absl::Duration days, ParseDuration("1.5d"));
  EXPECT_EQ(days, absl::Hours(36));
}

TEST(ParseDurationTest, RejectsMalformed) {
  for (const char* text : {"", "-1s", "5", "s", "1w", "1D", "1.s", "ms", "d",
                           "99999999999999999999h", "99999999999999999999d"}) {
    absl::StatusOr<absl::Duration> result = ParseDuration(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(FormatBytesTest, PicksBinaryUnit) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1 KiB");
  EXPECT_EQ(FormatBytes(1536 * 1024), "1.5 MiB");
  EXPECT_EQ(FormatBytes(64ull << 20), "64 MiB");
  EXPECT_EQ(FormatBytes(1ull << 40), "1 TiB");
  EXPECT_EQ(FormatBytes(~0ull), "16.0 EiB");
}

TEST(LogTest, LogOnceLogsAKeyOnce) {
  SetLogLevel(LogLevel::kOff);  // keep test output clean; LogOnce still records the key
  EXPECT_TRUE(LogOnce("parse_test.once", LogLevel::kWarn, "first"));
  EXPECT_FALSE(LogOnce("parse_test.once", LogLevel::kWarn, "second"));
  EXPECT_TRUE(LogOnce("parse_test.other", LogLevel::kWarn, "other key"));
  ICKPT_LOG_ONCE("parse_test.macro", LogLevel::kError, "value {}", 42);
  ICKPT_LOG_WARN("formatted {} {}", "warn", 1);
  EXPECT_FALSE(LogEnabled(LogLevel::kError));
  SetLogLevel(LogLevel::kWarn);
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
}

TEST(LogTest, ParseLogLevel) {
  EXPECT_EQ(ParseLogLevel("DEBUG", LogLevel::kWarn), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("info", LogLevel::kWarn), LogLevel::kInfo);
  EXPECT_EQ(ParseLogLevel("error", LogLevel::kWarn), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("bogus", LogLevel::kWarn), LogLevel::kWarn);
}

}  // namespace
}  // namespace ickpt
