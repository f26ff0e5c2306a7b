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
  if (status_.ok() && !batch_.empty()) {
    Result<ApplyReport> applied = store_.Apply(batch_, clock_.Now());
    if (!applied.ok()) {
      status_ = applied.status();
    } else {
      for (RefusedInFlight& refused : applied->refused) refused_[refused.recipient_id] = std::move(refused);
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

asio::awaitable<Result<std::vector<RefusedInFlight>>> StoreWriter::PutInFlight(std::vector<InFlight> entries) {
  if (!status_.ok()) co_return status_;
  for (const InFlight& entry : entries) batch_.in_flight.push_back(entry);
  ScheduleCommit();
  Status written = co_await WaitForCommit();
  if (!written.ok()) co_return written;
  std::vector<RefusedInFlight> refused;
  for (const InFlight& entry : entries) {
    auto found = refused_.find(entry.recipient_id);
    if (found == refused_.end()) continue;
    refused.push_back(std::move(found->second));
    refused_.erase(found);
  }
  co_return refused;
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
