// CachingResolver: answers kept for their TTL on a fake clock, negative answers per RFC 2308,
// failures briefly, the size bound with least-recently-used eviction, and concurrent queries
// sharing one upstream query.
#include "dns/caching_resolver.h"

#include <memory>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_resolver.h"
#include "run_awaitable.h"

namespace herald::dns {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

class CachingResolverTest : public ::testing::Test {
 protected:
  void Make(CacheOptions options = {}) {
    auto upstream = std::make_unique<FakeResolver>();
    upstream_ = upstream.get();
    cache_ = std::make_unique<CachingResolver>(std::move(upstream), clock_, options);
  }

  Answer Query(const std::string& name, RecordType type) { return RunAwaitable(cache_->Query(name, type)); }
  std::size_t UpstreamQueries() const { return upstream_->queries().size(); }

  FakeClock clock_;
  FakeResolver* upstream_ = nullptr;
  std::unique_ptr<CachingResolver> cache_;
};

TEST_F(CachingResolverTest, KeepsAnAnswerForItsTtlAndCountsItDown) {
  Make();
  upstream_->SetAddresses("mx.example", RecordType::kA, {"192.0.2.1"}, seconds(300));
  Answer first = Query("mx.example", RecordType::kA);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.ttl, seconds(300));

  clock_.Advance(seconds(100));
  Answer second = Query("mx.example", RecordType::kA);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.addresses, std::vector<std::string>{"192.0.2.1"});
  EXPECT_EQ(second.ttl, seconds(200));
  EXPECT_EQ(UpstreamQueries(), 1u);

  clock_.Advance(seconds(200));
  EXPECT_TRUE(Query("mx.example", RecordType::kA).ok());
  EXPECT_EQ(UpstreamQueries(), 2u) << "asked again once the TTL has run out";
  CacheStats stats = cache_->stats();
  EXPECT_EQ(stats.queries, 3u);
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.upstream_queries, 2u);
}

TEST_F(CachingResolverTest, NamesAreComparedWithoutCaseAndTypesApart) {
  Make();
  upstream_->SetAddresses("mx.example", RecordType::kA, {"192.0.2.1"});
  upstream_->SetAddresses("mx.example", RecordType::kAaaa, {"2001:db8::1"});
  EXPECT_EQ(Query("MX.Example", RecordType::kA).addresses, std::vector<std::string>{"192.0.2.1"});
  EXPECT_EQ(Query("mx.example", RecordType::kA).addresses, std::vector<std::string>{"192.0.2.1"});
  EXPECT_EQ(Query("mx.example", RecordType::kAaaa).addresses, std::vector<std::string>{"2001:db8::1"});
  EXPECT_EQ(upstream_->queries(), (std::vector<std::string>{"A MX.Example", "AAAA mx.example"}));
}

TEST_F(CachingResolverTest, PositiveAnswersAreKeptAtMostMaxTtl) {
  Make(CacheOptions{.max_ttl = hours(1)});
  upstream_->SetAddresses("mx.example", RecordType::kA, {"192.0.2.1"}, hours(48));
  EXPECT_TRUE(Query("mx.example", RecordType::kA).ok());
  clock_.Advance(hours(1) - seconds(1));
  EXPECT_EQ(Query("mx.example", RecordType::kA).ttl, seconds(1));
  clock_.Advance(seconds(1));
  EXPECT_TRUE(Query("mx.example", RecordType::kA).ok());
  EXPECT_EQ(UpstreamQueries(), 2u);
}

TEST_F(CachingResolverTest, NegativeAnswersAreKeptForTheirNegativeTtl) {
  Make();
  upstream_->SetStatus("nx.example", RecordType::kMx, AnswerStatus::kNxDomain, seconds(600));
  upstream_->SetStatus("nodata.example", RecordType::kMx, AnswerStatus::kNoData, seconds(60));
  EXPECT_EQ(Query("nx.example", RecordType::kMx).status, AnswerStatus::kNxDomain);
  EXPECT_EQ(Query("nodata.example", RecordType::kMx).status, AnswerStatus::kNoData);
  clock_.Advance(seconds(59));
  EXPECT_EQ(Query("nx.example", RecordType::kMx).status, AnswerStatus::kNxDomain);
  EXPECT_EQ(Query("nodata.example", RecordType::kMx).status, AnswerStatus::kNoData);
  EXPECT_EQ(UpstreamQueries(), 2u);
  clock_.Advance(seconds(1));
  EXPECT_EQ(Query("nodata.example", RecordType::kMx).status, AnswerStatus::kNoData);
  EXPECT_EQ(UpstreamQueries(), 3u) << "NODATA expired after its 60 s";
  clock_.Advance(seconds(540));
  EXPECT_EQ(Query("nx.example", RecordType::kMx).status, AnswerStatus::kNxDomain);
  EXPECT_EQ(UpstreamQueries(), 4u) << "NXDOMAIN expired after its 600 s";
}

TEST_F(CachingResolverTest, NegativeAnswersAreKeptAtMostMaxNegativeTtl) {
  Make(CacheOptions{.max_negative_ttl = seconds(900)});
  upstream_->SetStatus("nx.example", RecordType::kMx, AnswerStatus::kNxDomain, hours(3));
  EXPECT_EQ(Query("nx.example", RecordType::kMx).status, AnswerStatus::kNxDomain);
  clock_.Advance(seconds(900));
  EXPECT_EQ(Query("nx.example", RecordType::kMx).status, AnswerStatus::kNxDomain);
  EXPECT_EQ(UpstreamQueries(), 2u);
}

TEST_F(CachingResolverTest, AnswersWithTtlZeroAreNotKept) {
  Make();
  upstream_->SetStatus("nx.example", RecordType::kMx, AnswerStatus::kNxDomain, Duration(0));
  EXPECT_EQ(Query("nx.example", RecordType::kMx).status, AnswerStatus::kNxDomain);
  EXPECT_EQ(Query("nx.example", RecordType::kMx).status, AnswerStatus::kNxDomain);
  EXPECT_EQ(UpstreamQueries(), 2u);
  EXPECT_EQ(cache_->size(), 0u);
}

TEST_F(CachingResolverTest, FailuresAreKeptBriefly) {
  Make(CacheOptions{.failure_ttl = seconds(30)});
  upstream_->SetStatus("broken.example", RecordType::kMx, AnswerStatus::kServFail);
  upstream_->SetStatus("silent.example", RecordType::kMx, AnswerStatus::kTimeout);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Query("broken.example", RecordType::kMx).status, AnswerStatus::kServFail);
    EXPECT_EQ(Query("silent.example", RecordType::kMx).status, AnswerStatus::kTimeout);
    clock_.Advance(seconds(10));
  }
  EXPECT_EQ(UpstreamQueries(), 2u);
  EXPECT_EQ(Query("broken.example", RecordType::kMx).status, AnswerStatus::kServFail);
  EXPECT_EQ(UpstreamQueries(), 3u) << "asked again after 30 s";
}

TEST_F(CachingResolverTest, HoldsAtMostMaxEntriesAndDropsTheLeastRecentlyUsed) {
  Make(CacheOptions{.max_entries = 3});
  for (const char* name : {"a.example", "b.example", "c.example", "d.example"}) {
    upstream_->SetAddresses(name, RecordType::kA, {"192.0.2.1"});
  }
  Query("a.example", RecordType::kA);
  Query("b.example", RecordType::kA);
  Query("c.example", RecordType::kA);
  Query("a.example", RecordType::kA);  // a is now the most recently used, b the least
  Query("d.example", RecordType::kA);
  EXPECT_EQ(cache_->size(), 3u);
  EXPECT_EQ(cache_->stats().evictions, 1u);
  std::size_t before = UpstreamQueries();
  Query("a.example", RecordType::kA);
  Query("c.example", RecordType::kA);
  Query("d.example", RecordType::kA);
  EXPECT_EQ(UpstreamQueries(), before) << "a, c and d are still cached";
  Query("b.example", RecordType::kA);
  EXPECT_EQ(UpstreamQueries(), before + 1) << "b was evicted";
  EXPECT_EQ(cache_->size(), 3u);
}

TEST_F(CachingResolverTest, ConcurrentQueriesShareOneUpstreamQuery) {
  Make();
  upstream_->SetMx("example.com", {{10, "mx.example.com"}});
  // Even an answer that may not be kept (TTL 0) is shared by the queries waiting for it.
  upstream_->SetStatus("nx.example", RecordType::kMx, AnswerStatus::kNxDomain, Duration(0));
  asio::io_context io;
  std::vector<Answer> answers;
  for (int i = 0; i < 10; ++i) {
    for (const char* name : {"example.com", "nx.example"}) {
      asio::co_spawn(io, cache_->Query(name, RecordType::kMx), [&](std::exception_ptr error, Answer answer) {
        ASSERT_FALSE(error);
        answers.push_back(std::move(answer));
      });
    }
  }
  io.run();
  ASSERT_EQ(answers.size(), 20u);
  int found = 0;
  for (const Answer& answer : answers) {
    if (answer.ok()) {
      ++found;
      EXPECT_EQ(answer.mx, (std::vector<MxRecord>{{10, "mx.example.com"}}));
    } else {
      EXPECT_EQ(answer.status, AnswerStatus::kNxDomain);
    }
  }
  EXPECT_EQ(found, 10);
  EXPECT_EQ(UpstreamQueries(), 2u);
  EXPECT_EQ(cache_->stats().shared, 18u);
}

TEST_F(CachingResolverTest, NothingIsKeptWithMaxEntriesZero) {
  Make(CacheOptions{.max_entries = 0});
  upstream_->SetAddresses("mx.example", RecordType::kA, {"192.0.2.1"});
  Query("mx.example", RecordType::kA);
  Query("mx.example", RecordType::kA);
  EXPECT_EQ(UpstreamQueries(), 2u);
}

}  // namespace
}  // namespace herald::dns
