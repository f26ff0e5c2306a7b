// FakeClock: a Clock that stands still until a test moves it, so waits, limits and retries are
// tested without sleeping. Thread-safe.
#pragma once

#include <atomic>

#include "core/clock.h"

namespace herald {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = FromUnixMillis(1'767'225'600'000))  // 2026-01-01T00:00:00Z
      : now_ms_(ToUnixMillis(start)) {}

  TimePoint Now() const override { return FromUnixMillis(now_ms_.load()); }
  void Advance(Duration d) { now_ms_ += d.count(); }
  void Set(TimePoint t) { now_ms_ = ToUnixMillis(t); }

 private:
  std::atomic<long long> now_ms_;
};

}  // namespace herald
