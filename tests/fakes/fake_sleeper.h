// FakeSleeper: a Sleeper that moves a FakeClock to the time asked for and returns at once (after
// letting the other coroutines run), so the engine's waits are tested without sleeping.
#pragma once

#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "engine/sleeper.h"
#include "fakes/fake_clock.h"

namespace herald {

class FakeSleeper final : public Sleeper {
 public:
  explicit FakeSleeper(FakeClock& clock) : clock_(clock) {}

  asio::awaitable<void> SleepUntil(TimePoint until, std::function<bool()> stop) override {
    ++sleeps;
    if (!stop() && until > clock_.Now()) clock_.Set(until);
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }

  int sleeps = 0;

 private:
  FakeClock& clock_;
};

}  // namespace herald
