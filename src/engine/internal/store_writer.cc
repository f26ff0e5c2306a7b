#include "engine/internal/store_writer.h"

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
  if (status_.ok() && !batch_.empty()) status_ = store_.Apply(batch_, clock_.Now());
  batch_.in_flight.clear();
  batch_.results.clear();
  batch_.sends.clear();
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
  batch_.in_flight.insert(batch_.in_flight.end(), ids.begin(), ids.end());
  ScheduleCommit();
  co_return co_await WaitForCommit();
}

void StoreWriter::AddResult(AttemptResult result) {
  batch_.results.push_back(std::move(result));
  ScheduleCommit();
}

void StoreWriter::AddSend(SendCount send) {
  batch_.sends.push_back(std::move(send));
  ScheduleCommit();
}

asio::awaitable<Status> StoreWriter::Flush() {
  if (!batch_.empty()) ScheduleCommit();
  co_return co_await WaitForCommit();
}

}  // namespace herald::engine_internal
