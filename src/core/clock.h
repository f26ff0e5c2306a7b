// Clock: the one source of "now" for herald, injectable so limits, waits and retries are tested
// without sleeping (tests/fakes/fake_clock.h). Implementations are thread-safe.
#pragma once

#include <chrono>
#include <string>

namespace herald {

// Wall-clock time with millisecond resolution; stored in the store as Unix milliseconds.
using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;
using Duration = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override;
};

inline long long ToUnixMillis(TimePoint t) { return t.time_since_epoch().count(); }
inline TimePoint FromUnixMillis(long long ms) { return TimePoint(Duration(ms)); }

// "2026-11-23 15:05:09" in UTC, for messages that name a time (whole seconds).
std::string FormatUtc(TimePoint t);

}  // namespace herald
