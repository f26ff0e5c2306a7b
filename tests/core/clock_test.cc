#include "core/clock.h"

#include <stdlib.h>
#include <time.h>

#include <optional>
#include <string>

#include <gtest/gtest.h>

namespace herald {
namespace {

// Sets TZ for one test and restores it afterwards. POSIX TZ rules need no time zone database.
class ScopedTimeZone {
 public:
  explicit ScopedTimeZone(const char* tz) {
    if (const char* old = getenv("TZ")) old_ = old;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~ScopedTimeZone() {
    if (old_) setenv("TZ", old_->c_str(), 1);
    else unsetenv("TZ");
    tzset();
  }

 private:
  std::optional<std::string> old_;
};

// 2026-12-06 13:05:00 UTC and 2026-07-01 12:00:00 UTC, plus some milliseconds.
constexpr long long kWinter = 1796562300000 + 999;
constexpr long long kSummer = 1782907200000 + 1;

TEST(FormatLocalTimeTest, LocalTimeWithItsOffset) {
  struct Case {
    const char* tz;
    long long unix_ms;
    const char* want;
  };
  const Case cases[] = {
      {"UTC0", kWinter, "2026-12-06 13:05:00+00:00"},
      {"CET-1CEST,M3.5.0,M10.5.0/3", kWinter, "2026-12-06 14:05:00+01:00"},
      {"CET-1CEST,M3.5.0,M10.5.0/3", kSummer, "2026-07-01 14:00:00+02:00"},
      {"EST5EDT,M3.2.0,M11.1.0", kWinter, "2026-12-06 08:05:00-05:00"},
      {"NST3:30NDT,M3.2.0,M11.1.0", kWinter, "2026-12-06 09:35:00-03:30"},  // Newfoundland
      {"IST-5:30", kSummer, "2026-07-01 17:30:00+05:30"},                    // India
      {"UTC0", 0, "1970-01-01 00:00:00+00:00"},
  };
  for (const Case& c : cases) {
    ScopedTimeZone zone(c.tz);
    EXPECT_EQ(FormatLocalTime(FromUnixMillis(c.unix_ms)), c.want) << "TZ=" << c.tz;
  }
}

}  // namespace
}  // namespace herald
