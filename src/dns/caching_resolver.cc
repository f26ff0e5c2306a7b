#include "dns/caching_resolver.h"

#include <list>
#include <optional>
#include <unordered_map>

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

namespace herald::dns {
namespace {

std::string Key(std::string_view name, RecordType type) {
  std::string key = fmt::format("{}/{}", name, static_cast<int>(type));
  for (char& c : key) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return key;
}

// An upstream query in progress, which later callers for the same key wait for.
struct Flight {
  std::optional<Answer> answer;
  std::vector<std::shared_ptr<asio::steady_timer>> waiters;

  void Land(Answer result) {
    answer = std::move(result);
    for (const auto& waiter : waiters) waiter->cancel();
  }
};

Answer Abandoned() {
  Answer answer;
  answer.status = AnswerStatus::kServFail;
  answer.reason = "the query was abandoned";
  return answer;
}

}  // namespace

class CachingResolver::Impl {
 public:
  Impl(std::unique_ptr<Resolver> upstream, const Clock& clock, CacheOptions options)
      : upstream_(std::move(upstream)), clock_(clock), options_(options) {}

  asio::awaitable<Answer> Query(std::string name, RecordType type) {
    ++stats_.queries;
    std::string key = Key(name, type);
    if (std::optional<Answer> cached = Lookup(key)) {
      ++stats_.hits;
      co_return std::move(*cached);
    }
    if (auto found = flights_.find(key); found != flights_.end()) {
      ++stats_.shared;
      std::shared_ptr<Flight> flight = found->second;
      asio::any_io_executor executor = co_await asio::this_coro::executor;
      auto timer = std::make_shared<asio::steady_timer>(executor, asio::steady_timer::time_point::max());
      flight->waiters.push_back(timer);
      if (!flight->answer) co_await timer->async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      co_return flight->answer.value_or(Abandoned());
    }
    ++stats_.upstream_queries;
    // Should this frame be destroyed while the upstream query is in progress (its io_context
    // stopped), the guard still ends the flight, so later callers do not wait for it forever.
    FlightGuard guard(*this, key);
    Answer answer = co_await upstream_->Query(std::move(name), type);
    Store(key, answer);
    guard.Land(answer);
    co_return answer;
  }

  CacheStats stats() const { return stats_; }
  std::size_t size() const { return lru_.size(); }

 private:
  struct Entry {
    std::string key;
    Answer answer;
    TimePoint expires;
  };

  class FlightGuard {
   public:
    FlightGuard(Impl& impl, const std::string& key) : impl_(impl), key_(key), flight_(std::make_shared<Flight>()) {
      impl_.flights_[key_] = flight_;
    }
    ~FlightGuard() {
      if (!flight_->answer) Land(Abandoned());
    }
    void Land(Answer answer) {
      impl_.flights_.erase(key_);
      flight_->Land(std::move(answer));
    }

   private:
    Impl& impl_;
    std::string key_;
    std::shared_ptr<Flight> flight_;
  };

  std::optional<Answer> Lookup(const std::string& key) {
    auto found = index_.find(key);
    if (found == index_.end()) return std::nullopt;
    auto entry = found->second;
    TimePoint now = clock_.Now();
    if (entry->expires <= now) {
      lru_.erase(entry);
      index_.erase(found);
      return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, entry);
    Answer answer = entry->answer;
    answer.ttl = entry->expires - now;
    return answer;
  }

  Duration KeepFor(const Answer& answer) const {
    switch (answer.status) {
      case AnswerStatus::kOk: return std::min(answer.ttl, options_.max_ttl);
      case AnswerStatus::kNoData:
      case AnswerStatus::kNxDomain: return std::min(answer.ttl, options_.max_negative_ttl);
      case AnswerStatus::kServFail:
      case AnswerStatus::kTimeout: return options_.failure_ttl;
    }
    return Duration(0);
  }

  void Store(const std::string& key, const Answer& answer) {
    Duration keep = KeepFor(answer);
    if (keep <= Duration(0) || options_.max_entries == 0) return;
    if (auto found = index_.find(key); found != index_.end()) {
      lru_.erase(found->second);
      index_.erase(found);
    }
    lru_.push_front(Entry{key, answer, clock_.Now() + keep});
    index_[key] = lru_.begin();
    while (lru_.size() > options_.max_entries) {
      index_.erase(lru_.back().key);
      lru_.pop_back();
      ++stats_.evictions;
    }
  }

  std::unique_ptr<Resolver> upstream_;
  const Clock& clock_;
  CacheOptions options_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
  CacheStats stats_;
};

CachingResolver::CachingResolver(std::unique_ptr<Resolver> upstream, const Clock& clock, CacheOptions options)
    : impl_(std::make_unique<Impl>(std::move(upstream), clock, options)) {}
CachingResolver::~CachingResolver() = default;

asio::awaitable<Answer> CachingResolver::Query(std::string name, RecordType type) {
  co_return co_await impl_->Query(std::move(name), type);
}

CacheStats CachingResolver::stats() const { return impl_->stats(); }
std::size_t CachingResolver::size() const { return impl_->size(); }

}  // namespace herald::dns
