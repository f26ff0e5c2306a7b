// Clock: the one source of "now" for herald, injectable so limits, waits and retries are tested
// without sleeping (tests/fakes/fake_clock.h), and the one way herald writes a time for people.
// Implementations are thread-safe.
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

// Every time herald prints or stores as text — terminal output, warnings, recipients' error texts,
// exports: the local time of the TZ environment (or /etc/localtime) to the second, with its offset
// from UTC, as RFC 3339 §5.6 writes it with the space its note allows: "2026-12-06 14:05:00+01:00".
// Unambiguous across zones and daylight saving changes; spreadsheets, Python's
// datetime.fromisoformat and SQL read it back.
std::string FormatLocalTime(TimePoint t);

}  // namespace herald
