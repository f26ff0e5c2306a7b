#include "engine/internal/connection_pool.h"

namespace herald::engine_internal {

ConnectionPool::ConnectionPool(Transport& transport, PoolSettings settings, const Clock& clock, Sleeper& sleeper,
                               asio::any_io_executor executor)
    : transport_(transport),
      settings_(settings),
      clock_(clock),
      sleeper_(sleeper),
      executor_(executor),
      released_(executor) {}

asio::awaitable<Lease> ConnectionPool::Acquire(std::string destination, std::function<bool()> stop) {
  while (true) {
    Destination& slot = destinations_[destination];
    if (!slot.idle.empty()) {
      Idle idle = std::move(slot.idle.back());
      slot.idle.pop_back();
      if (clock_.Now() - idle.since <= kMaxIdle) {
        co_return Lease{std::move(idle.connection), {}, destination, idle.messages_sent};
      }
      co_await idle.connection->Close();  // idle too long: the server may have dropped it
      --destinations_[destination].open;
      continue;
    }
    if (slot.open < settings_.max_connections) {
      ++slot.open;
      TimePoint resume = slot.next_connect_after;
      if (resume > clock_.Now()) co_await sleeper_.SleepUntil(resume, std::move(stop));
      ConnectResult connected = co_await transport_.Connect(destination);
      Destination& after = destinations_[destination];
      if (connected.connection == nullptr) {
        --after.open;
        released_.NotifyAll();
        co_return Lease{nullptr, std::move(connected.failure), destination, 0};
      }
      ++connections_opened_;
      co_return Lease{std::move(connected.connection), {}, destination, 0};
    }
    co_await released_.Wait();
  }
}

asio::awaitable<void> ConnectionPool::Release(Lease lease) {
  if (lease.connection == nullptr) co_return;
  std::uint32_t sent = lease.messages_sent + 1;
  bool chunk_done = sent >= settings_.reconnect_every;
  if (lease.connection->reusable() && !chunk_done) {
    destinations_[lease.destination].idle.push_back(Idle{std::move(lease.connection), sent, clock_.Now()});
    released_.NotifyAll();
    co_return;
  }
  co_await lease.connection->Close();
  Destination& slot = destinations_[lease.destination];
  --slot.open;
  if (chunk_done) slot.next_connect_after = clock_.Now() + settings_.pause_between_chunks;
  released_.NotifyAll();
}

asio::awaitable<void> ConnectionPool::CloseAll() {
  for (auto& [name, slot] : destinations_) {
    std::vector<Idle> idle = std::move(slot.idle);
    slot.idle.clear();
    for (Idle& entry : idle) {
      co_await entry.connection->Close();
      --slot.open;
    }
  }
}

}  // namespace herald::engine_internal
