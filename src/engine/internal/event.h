// Event: wakes every coroutine waiting on it, like a condition variable for coroutines on one
// io_context thread. Waiters re-check their condition after waking. Not thread-safe: use from the
// io_context's thread only.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

namespace herald::engine_internal {

class Event {
 public:
  explicit Event(asio::any_io_executor executor) : executor_(std::move(executor)) {}

  // Suspends until the next NotifyAll(), or until `timeout` passes.
  asio::awaitable<void> Wait(std::chrono::steady_clock::duration timeout = std::chrono::hours(24 * 365)) {
    auto timer = std::make_shared<asio::steady_timer>(executor_, timeout);
    waiters_.push_back(timer);
    co_await timer->async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    std::erase(waiters_, timer);
  }

  void NotifyAll() {
    for (const auto& timer : waiters_) timer->cancel();
  }

 private:
  asio::any_io_executor executor_;
  std::vector<std::shared_ptr<asio::steady_timer>> waiters_;
};

}  // namespace herald::engine_internal
