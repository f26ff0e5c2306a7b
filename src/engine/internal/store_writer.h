// StoreWriter: group commit for the engine's store writes. Every coroutine that needs its
// recipients in flight before MAIL FROM queues them and waits; one transaction then writes what
// all of them queued, together with the results gathered since the last one. The
// guarantee holds (in-flight is in the store before the message leaves) and the store costs one
// transaction per round of the event loop instead of two per message.
// Used from the io_context's thread only.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "core/clock.h"
#include "engine/internal/event.h"
#include "store/store.h"

namespace herald::engine_internal {

class StoreWriter {
 public:
  StoreWriter(Store& store, const Clock& clock, asio::any_io_executor executor);

  // Puts the recipients in flight (counted against their account's sending limits); returns once
  // that is written: the entries the store refused (no longer due, or a limit reached), or the
  // error that stopped writing.
  asio::awaitable<Result<std::vector<RefusedInFlight>>> PutInFlight(std::vector<InFlight> entries);
  // Queues a result; written with the next commit, which this schedules.
  void AddResult(AttemptResult result);
  // Writes everything queued; returns once written.
  asio::awaitable<Status> Flush();

  // Hands over what is queued and not yet written, for a caller whose event loop has stopped.
  StoreBatch TakePending() { return std::exchange(batch_, StoreBatch{}); }

  // The first write error; once there is one, nothing more is written.
  const Status& status() const { return status_; }
  std::uint64_t commits() const { return committed_; }
  // The number of the commit that writes what is queued now (written once commits() reaches it).
  std::uint64_t scheduled_commit() const { return scheduled_; }

 private:
  void ScheduleCommit();
  void Commit();
  asio::awaitable<Status> WaitForCommit();

  Store& store_;
  const Clock& clock_;
  asio::any_io_executor executor_;
  Event committed_event_;
  StoreBatch batch_;
  bool commit_scheduled_ = false;
  std::uint64_t scheduled_ = 0;  // number of the next commit
  std::uint64_t committed_ = 0;  // commits done
  Status status_;
  // Refusals of the last commits, by recipient, until the coroutine that asked takes them.
  std::unordered_map<std::int64_t, RefusedInFlight> refused_;
};

}  // namespace herald::engine_internal
