#include "engine/internal/connection_pool.h"

#include <algorithm>

namespace herald::engine_internal {

ConnectionPool::ConnectionPool(Transport& transport, PoolSettings settings, const Clock& clock, Sleeper& sleeper,
                               asio::any_io_executor executor)
    : transport_(transport),
      settings_(std::move(settings)),
      clock_(clock),
      sleeper_(sleeper),
      executor_(executor),
      released_(executor) {}

std::uint32_t ConnectionPool::DestinationLimit(const std::string& destination) const {
  if (!settings_.destination_limit) return settings_.max_connections;
  return std::clamp<std::uint32_t>(settings_.destination_limit(destination), 1, settings_.max_connections);
}

asio::awaitable<Lease> ConnectionPool::Acquire(std::string destination, std::function<bool()> stop) {
  const std::uint32_t limit = DestinationLimit(destination);
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
      --open_;
      released_.NotifyAll();  // the room may be another destination's to take
      continue;
    }
    if (!slot.reachable && slot.probing) {
      // Another send is finding out whether the destination can be reached: its result is ours.
      const std::uint64_t failed_before = slot.failed_connects;
      co_await released_.Wait();
      Destination& after = destinations_[destination];
      if (after.failed_connects != failed_before) {
        co_return Lease{nullptr, after.last_failure, destination, 0, /*shared=*/true};
      }
      continue;
    }
    if (slot.open < limit && open_ >= settings_.max_connections) {
      // The account is at its total: an idle connection to another destination makes room.
      if (co_await CloseOldestIdle()) continue;
    }
    if (slot.open < limit && open_ < settings_.max_connections) {
      ++slot.open;
      ++open_;
      const bool probe = !slot.reachable;
      slot.probing = probe;
      TimePoint resume = slot.next_connect_after;
      if (resume > clock_.Now()) co_await sleeper_.SleepUntil(resume, std::move(stop));
      ConnectResult connected = co_await transport_.Connect(destination);
      Destination& after = destinations_[destination];
      if (probe) after.probing = false;
      released_.NotifyAll();  // the sends waiting for this result, or for room
      if (connected.connection == nullptr) {
        --after.open;
        --open_;
        after.reachable = false;
        ++after.failed_connects;
        after.last_failure = connected.failure;
        co_return Lease{nullptr, std::move(connected.failure), destination, 0};
      }
      after.reachable = true;
      ++connections_opened_;
      co_return Lease{std::move(connected.connection), {}, destination, 0};
    }
    co_await released_.Wait();
  }
}

asio::awaitable<bool> ConnectionPool::CloseOldestIdle() {
  Destination* oldest = nullptr;
  for (auto& [name, slot] : destinations_) {
    if (slot.idle.empty()) continue;
    if (oldest == nullptr || slot.idle.front().since < oldest->idle.front().since) oldest = &slot;
  }
  if (oldest == nullptr) co_return false;
  Idle idle = std::move(oldest->idle.front());
  oldest->idle.erase(oldest->idle.begin());
  // Still counted, to its destination too, until the QUIT is done: no new connection to it
  // goes over its limit meanwhile. Then the room goes to whoever asks first.
  co_await idle.connection->Close();
  --oldest->open;
  --open_;
  released_.NotifyAll();
  co_return true;
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
  --open_;
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
      --open_;
    }
  }
}

}  // namespace herald::engine_internal
