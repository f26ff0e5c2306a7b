// Sleeper: how the engine waits for a time on the Clock (a minimum wait, a block pause, a sending
// limit, the pending delay). SteadySleeper waits for real; a test's sleeper moves a FakeClock
// instead, so every wait is tested without sleeping. Used from the engine's thread only.
#pragma once

#include <functional>

#include <asio/awaitable.hpp>

#include "core/clock.h"

namespace herald {

class Sleeper {
 public:
  virtual ~Sleeper() = default;
  // Returns once clock.Now() >= `until`, or soon after `stop()` turns true.
  virtual asio::awaitable<void> SleepUntil(TimePoint until, std::function<bool()> stop) = 0;
};

// Waits on steady timers in slices of at most a second, re-reading the clock after each (the
// wall clock may be set while herald waits) and checking `stop` between slices.
class SteadySleeper final : public Sleeper {
 public:
  explicit SteadySleeper(const Clock& clock) : clock_(clock) {}
  asio::awaitable<void> SleepUntil(TimePoint until, std::function<bool()> stop) override;

 private:
  const Clock& clock_;
};

}  // namespace herald
