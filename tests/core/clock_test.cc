#include "core/clock.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

TEST(ClockTest, FormatUtcShowsWholeSecondsInUtc) {
  EXPECT_EQ(FormatUtc(FromUnixMillis(0)), "1970-01-01 00:00:00");
  EXPECT_EQ(FormatUtc(FromUnixMillis(1'795'446'309'999)), "2026-11-23 15:05:09");
}

}  // namespace
}  // namespace herald
