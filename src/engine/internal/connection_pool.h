// ConnectionPool: the open connections of one account, at most max_connections of them in all
// and at most the destination's limit to one destination (direct delivery: a recipient domain;
// relays and folders have the one destination ""). When the account is at its total and a
// destination without a connection needs one, an idle connection of another destination is
// closed to make room. Each connection carries at most `reconnect_every` messages and is then closed,
// the next connection opened after `pause_between_chunks` (docs/settings.md, per account). A connection
// that reports itself not reusable (after an error) is dropped, never handed out again, and so is
// one left idle longer than kMaxIdle. The pause is kept on the engine's Clock and waited out
// with its Sleeper, like every other wait.
// A destination no connection has worked to yet (or since its last failed connect) gets one
// connect at a time: the sends that need a connection meanwhile wait for its result and share
// its failure, so a server that cannot be reached is tried once, not once per concurrent send.
// Used from the io_context's thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "core/clock.h"
#include "engine/internal/event.h"
#include "engine/sleeper.h"
#include "transport/transport.h"

namespace herald::engine_internal {

struct PoolSettings {
  std::uint32_t max_connections = 1;  // open at once, over all destinations
  std::uint32_t reconnect_every = 999;
  Duration pause_between_chunks{0};
  // Open at once to one destination; null: max_connections.
  std::function<std::uint32_t(const std::string& destination)> destination_limit;
};

// A connection lent for one message; give it back with ConnectionPool::Release().
struct Lease {
  std::unique_ptr<Connection> connection;  // null when connecting failed
  Outcome failure;                         // why, when connection is null
  std::string destination;
  std::uint32_t messages_sent = 0;         // on this connection before this message
  bool shared = false;  // the failure is of another send's connect, whose result this one waited for
};

class ConnectionPool {
 public:
  // Servers drop clients that stay silent: RFC 5321 §4.5.3.2.7 asks them to wait at least five
  // minutes, Postfix under load waits only 10 s. A session does not notice until its next
  // MAIL FROM fails, and that failure would defer the message; so a connection idle through a
  // long wait (a block pause, a sending limit, a minimum wait of minutes) is closed rather
  // than used, and a new one is opened.
  static constexpr Duration kMaxIdle = std::chrono::seconds(30);

  // `clock` and `sleeper` must outlive the pool.
  ConnectionPool(Transport& transport, PoolSettings settings, const Clock& clock, Sleeper& sleeper,
                 asio::any_io_executor executor);

  // A connection for `destination`: an idle one, a new one if fewer than max_connections are
  // open (after the pause between chunks, which `stop` cuts short), or the next one given back.
  asio::awaitable<Lease> Acquire(std::string destination, std::function<bool()> stop);
  // Gives the connection back after one message. It is closed when it must not be reused or has
  // carried reconnect_every messages.
  asio::awaitable<void> Release(Lease lease);
  // Closes every idle connection (QUIT).
  asio::awaitable<void> CloseAll();

  // How many connections may be open to `destination` at once (never more than max_connections).
  std::uint32_t DestinationLimit(const std::string& destination) const;

  std::uint64_t connections_opened() const { return connections_opened_; }

 private:
  struct Idle {
    std::unique_ptr<Connection> connection;
    std::uint32_t messages_sent;
    TimePoint since;
  };
  struct Destination {
    std::vector<Idle> idle;
    std::uint32_t open = 0;  // idle + lent + being opened
    TimePoint next_connect_after{};
    bool reachable = false;  // a connect worked, and none failed since
    bool probing = false;    // not reachable, and a connect to it is under way
    std::uint64_t failed_connects = 0;
    Outcome last_failure;  // of the last failed connect
  };

  Transport& transport_;
  PoolSettings settings_;
  const Clock& clock_;
  Sleeper& sleeper_;
  asio::any_io_executor executor_;
  Event released_;
  // Closes the idle connection that has waited longest, of any destination; false when none is idle.
  asio::awaitable<bool> CloseOldestIdle();

  std::map<std::string, Destination> destinations_;
  std::uint32_t open_ = 0;  // over all destinations
  std::uint64_t connections_opened_ = 0;
};

}  // namespace herald::engine_internal
