// The user-facing units of configuration: durations ("90s", "2m", "1h30m") and sending limits
// ("200/hour", "10000/month"). Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace herald {

// Parses a duration: one or more <integer><unit> groups, unit one of ms, s, m, h, d, w
// ("500ms", "30s", "2m", "1h30m", "1d"). "0" alone means zero. Errors say what was expected.
Result<Duration> ParseDuration(std::string_view text);

// Formats a duration the way ParseDuration reads it, largest units first ("1h30m", "0s").
std::string FormatDuration(Duration d);

enum class LimitWindow { kMinute, kHour, kDay, kWeek, kMonth };

std::string_view LimitWindowName(LimitWindow window);

// "N per window": at most `count` messages through an account in any one window.
struct SendingLimit {
  std::uint64_t count = 0;
  LimitWindow window = LimitWindow::kHour;

  std::string ToString() const;  // "200/hour"
  friend bool operator==(const SendingLimit&, const SendingLimit&) = default;
};

// Parses "<count>/<window>", window one of minute, hour, day, week, month; count at least 1.
Result<SendingLimit> ParseSendingLimit(std::string_view text);

}  // namespace herald
