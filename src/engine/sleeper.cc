#include "engine/sleeper.h"

#include <algorithm>

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace herald {

asio::awaitable<void> SteadySleeper::SleepUntil(TimePoint until, std::function<bool()> stop) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!stop()) {
    Duration left = until - clock_.Now();
    if (left.count() <= 0) break;
    timer.expires_after(std::min<Duration>(left, std::chrono::seconds(1)));
    co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }
}

}  // namespace herald
