#include "engine/internal/store_writer.h"

#include <string>

#include <asio/post.hpp>

namespace herald::engine_internal {

StoreWriter::StoreWriter(Store& store, const Clock& clock, asio::any_io_executor executor)
    : store_(store), clock_(clock), executor_(executor), committed_event_(executor) {}

void StoreWriter::ScheduleCommit() {
  if (commit_scheduled_) return;
  commit_scheduled_ = true;
  ++scheduled_;
  // Posted, so that every coroutine made ready in this round of the loop joins the same commit.
  asio::post(executor_, [this] { Commit(); });
}

void StoreWriter::Commit() {
  commit_scheduled_ = false;
  if (status_.ok() && !batch_.empty()) {
    Result<ApplyReport> applied = store_.Apply(batch_, clock_.Now());
    if (!applied.ok()) {
      status_ = applied.status();
    } else if (!applied->refused.empty()) {
      status_ = Status(StatusCode::kFailedPrecondition,
                       "recipient " + std::to_string(applied->refused.front().recipient_id) +
                           " was not put in flight: it is no longer unsent or deferred");
    }
  }
  batch_.in_flight.clear();
  batch_.results.clear();
  ++committed_;
  committed_event_.NotifyAll();
}

asio::awaitable<Status> StoreWriter::WaitForCommit() {
  std::uint64_t target = scheduled_;
  while (committed_ < target) co_await committed_event_.Wait();
  co_return status_;
}

asio::awaitable<Status> StoreWriter::PutInFlight(std::vector<std::int64_t> ids) {
  if (!status_.ok()) co_return status_;
  for (std::int64_t id : ids) batch_.in_flight.push_back(InFlight{id, {}, {}});
  ScheduleCommit();
  co_return co_await WaitForCommit();
}

void StoreWriter::AddResult(AttemptResult result) {
  batch_.results.push_back(std::move(result));
  ScheduleCommit();
}

asio::awaitable<Status> StoreWriter::Flush() {
  if (!batch_.empty()) ScheduleCommit();
  co_return co_await WaitForCommit();
}

}  // namespace herald::engine_internal
