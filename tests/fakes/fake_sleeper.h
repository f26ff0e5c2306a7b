// FakeSleeper: a Sleeper on virtual time, so the engine's waits are tested without sleeping. A
// coroutine that sleeps is parked; the FakeClock moves only once everything that can run at the
// present time has run — the event loop has gone kIdleRounds rounds without the sleeper being
// needed — and then to the earliest wake-up time of the parked coroutines, which resume. So a
// wait of one coroutine never moves time under another that still has work to do now (a send
// between being put in flight and MAIL FROM, say), as a real clock would not; what happens at
// the same moment gets the same timestamp.
// Use from the event loop's thread only; one event loop at a time, run until it has no work.
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
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
    asio::any_io_executor executor = co_await asio::this_coro::executor;
    if (until <= clock_.Now() || stop()) {
      co_await asio::post(executor, asio::use_awaitable);
      co_return;
    }
    auto waiter = std::make_shared<Waiter>(until, std::move(stop), executor);
    waiters_.push_back(waiter);
    ScheduleAdvance(executor);
    co_await waiter->timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }

  int sleeps = 0;

 private:
  // Rounds of the event loop (each one runs every handler that was ready at its start) after
  // which nothing is left to do at the present time. A chain of work at one moment in the
  // engine takes a few rounds per message (group commit, connection hand-over); this is far more.
  static constexpr int kIdleRounds = 1000;

  struct Waiter {
    Waiter(TimePoint at, std::function<bool()> stop_when, const asio::any_io_executor& executor)
        : until(at), stop(std::move(stop_when)), timer(executor, asio::steady_timer::time_point::max()) {}
    TimePoint until;
    std::function<bool()> stop;
    asio::steady_timer timer;
  };

  void ScheduleAdvance(const asio::any_io_executor& executor) {
    if (advance_scheduled_) return;
    advance_scheduled_ = true;
    AfterRounds(executor, kIdleRounds);
  }

  void AfterRounds(asio::any_io_executor executor, int rounds) {
    asio::post(executor, [this, executor, rounds] {
      if (rounds > 0) {
        AfterRounds(executor, rounds - 1);
      } else {
        Advance(executor);
      }
    });
  }

  // Resumes the waiters that are due or told to stop; true if there were any.
  bool WakeDue() {
    bool woke = false;
    TimePoint now = clock_.Now();
    std::erase_if(waiters_, [&](const std::shared_ptr<Waiter>& waiter) {
      if (waiter->until > now && !waiter->stop()) return false;
      waiter->timer.cancel();
      woke = true;
      return true;
    });
    return woke;
  }

  void Advance(const asio::any_io_executor& executor) {
    advance_scheduled_ = false;
    if (!WakeDue() && !waiters_.empty()) {
      auto earliest = std::min_element(waiters_.begin(), waiters_.end(),
                                       [](const auto& a, const auto& b) { return a->until < b->until; });
      clock_.Set((*earliest)->until);
      WakeDue();
    }
    if (!waiters_.empty()) ScheduleAdvance(executor);
  }

  FakeClock& clock_;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  bool advance_scheduled_ = false;
};

}  // namespace herald
