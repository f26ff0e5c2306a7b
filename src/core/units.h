// The user-facing units of configuration: durations ("90s", "2m", "1h30m"), sending limits
// ("200/hour", "10000/month") and sizes ("25MB"). Pure functions, thread-safe.
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

// Parses a size in bytes: an integer with an optional unit, B, KB, MB, GB (powers of 1,000, as
// mail providers state their limits) or KiB, MiB, GiB (powers of 1,024): "25MB", "500KB",
// "10MiB", "1048576"; units in any case ("25mb"). Errors say what was expected; so does a size beyond 2^63 bytes.
Result<std::uint64_t> ParseByteSize(std::string_view text);

// A size for people: "512 bytes", "700.0 KB", "25.0 MB", "1.2 GB" (powers of 1,000, one decimal).
std::string FormatByteSize(std::uint64_t bytes);

}  // namespace herald
