#include "core/units.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(ParseDurationTest, AcceptsUnitsAndCombinations) {
  struct Case {
    const char* text;
    Duration want;
  };
  const Case cases[] = {
      {"0", Duration(0)},        {"500ms", milliseconds(500)}, {"30s", seconds(30)},
      {"2m", minutes(2)},        {"1h", hours(1)},             {"1h30m", minutes(90)},
      {"1d", hours(24)},         {"1w", hours(24 * 7)},        {"1m30s", seconds(90)},
  };
  for (const Case& c : cases) {
    Result<Duration> got = ParseDuration(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status().ToString();
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(ParseDurationTest, RejectsWhatIsNotADuration) {
  for (const char* text : {"", "5", "m", "5x", "-5s", "5 s", "1.5h", "s5", "99999999999999999999s",
                           "9999999999999d"}) {
    Result<Duration> got = ParseDuration(text);
    EXPECT_FALSE(got.ok()) << "accepted \"" << text << "\"";
    if (!got.ok()) {
      EXPECT_NE(got.status().message().find("duration"), std::string::npos);
    }
  }
}

TEST(FormatDurationTest, RoundTrips) {
  for (const char* text : {"1h30m", "2m", "1d", "500ms", "1s500ms"}) {
    EXPECT_EQ(FormatDuration(*ParseDuration(text)), text);
  }
  EXPECT_EQ(FormatDuration(Duration(0)), "0s");
}

TEST(ParseSendingLimitTest, AcceptsEveryWindow) {
  EXPECT_EQ(*ParseSendingLimit("200/hour"), (SendingLimit{200, LimitWindow::kHour}));
  EXPECT_EQ(*ParseSendingLimit("10000/month"), (SendingLimit{10000, LimitWindow::kMonth}));
  EXPECT_EQ(*ParseSendingLimit("5/minute"), (SendingLimit{5, LimitWindow::kMinute}));
  EXPECT_EQ(*ParseSendingLimit("2000/day"), (SendingLimit{2000, LimitWindow::kDay}));
  EXPECT_EQ(*ParseSendingLimit("1/week"), (SendingLimit{1, LimitWindow::kWeek}));
  EXPECT_EQ(ParseSendingLimit("200/hour")->ToString(), "200/hour");
}

TEST(ParseSendingLimitTest, RejectsMalformedLimits) {
  for (const char* text : {"", "200", "/hour", "0/hour", "-1/hour", "200/hours", "200/ hour", "200/year",
                           "2e3/day", "200/hour/day"}) {
    Result<SendingLimit> got = ParseSendingLimit(text);
    EXPECT_FALSE(got.ok()) << "accepted \"" << text << "\"";
  }
}

TEST(ParseByteSizeTest, AcceptsBytesAndDecimalAndBinaryUnits) {
  EXPECT_EQ(*ParseByteSize("1048576"), 1048576u);
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  EXPECT_EQ(*ParseByteSize("512B"), 512u);
  EXPECT_EQ(*ParseByteSize("500KB"), 500000u);
  EXPECT_EQ(*ParseByteSize("25MB"), 25000000u);
  EXPECT_EQ(*ParseByteSize("2GB"), 2000000000u);
  EXPECT_EQ(*ParseByteSize("1KiB"), 1024u);
  EXPECT_EQ(*ParseByteSize("10MiB"), 10485760u);
  EXPECT_EQ(*ParseByteSize("3GiB"), 3221225472u);
  EXPECT_EQ(*ParseByteSize("25mb"), 25000000u);
  EXPECT_EQ(*ParseByteSize("10mib"), 10485760u);
}

TEST(ParseByteSizeTest, RejectsWhatIsNotASize) {
  for (const char* text : {"", "MB", "25 MB", "25M", "-1", "2.5MB", "25MBs", "99999999999GB",
                           "18446744073709551616"}) {
    Result<std::uint64_t> got = ParseByteSize(text);
    ASSERT_FALSE(got.ok()) << "accepted \"" << text << "\"";
    EXPECT_NE(got.status().message().find("is not a size like"), std::string::npos) << got.status().message();
  }
}

TEST(FormatByteSizeTest, OneDecimalInTheLargestUnitBelowAThousand) {
  EXPECT_EQ(FormatByteSize(0), "0 bytes");
  EXPECT_EQ(FormatByteSize(999), "999 bytes");
  EXPECT_EQ(FormatByteSize(1000), "1.0 KB");
  EXPECT_EQ(FormatByteSize(700 * 1024), "716.8 KB");
  EXPECT_EQ(FormatByteSize(25000000), "25.0 MB");
  EXPECT_EQ(FormatByteSize(999960), "1.0 MB") << "not \"1000.0 KB\"";
  EXPECT_EQ(FormatByteSize(13981013), "14.0 MB");
  EXPECT_EQ(FormatByteSize(UINT64_MAX), "18.4 EB");
}

}  // namespace
}  // namespace herald
