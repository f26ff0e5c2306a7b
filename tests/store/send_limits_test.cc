#include "store/internal/send_limits.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace herald::store_internal {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// 2026-01-01T00:00:00Z: a whole day, hour and minute of Unix time.
const TimePoint kT = FromUnixMillis(1'767'225'600'000);
const std::int64_t kMinute0 = 1'767'225'600'000 / 60'000;
const std::int64_t kHour0 = 1'767'225'600'000 / 3'600'000;
const std::int64_t kDay0 = 1'767'225'600'000 / 86'400'000;

SendingLimit Limit(std::string_view text) {
  Result<SendingLimit> limit = ParseSendingLimit(text);
  EXPECT_TRUE(limit.ok()) << text << ": " << limit.status().ToString();
  return limit.ok() ? *limit : SendingLimit{};
}

std::string Offset(TimePoint t) { return "T" + std::string(t >= kT ? "+" : "") + std::to_string((t - kT).count()) + "ms"; }

TEST(SendLimitsTest, EveryWindowHasItsLengthAndLevel) {
  struct Case {
    LimitWindow window;
    Duration length;
    CountLevel level;
    std::int64_t bucket_ms;
  };
  const Case cases[] = {
      {LimitWindow::kMinute, seconds(60), CountLevel::kMinute, 60'000},
      {LimitWindow::kHour, minutes(60), CountLevel::kMinute, 60'000},
      {LimitWindow::kDay, hours(24), CountLevel::kHour, 3'600'000},
      {LimitWindow::kWeek, days(7), CountLevel::kHour, 3'600'000},
      {LimitWindow::kMonth, days(31), CountLevel::kDay, 86'400'000},
  };
  for (const Case& c : cases) {
    const WindowSpec spec = SpecOf(c.window);
    EXPECT_EQ(spec.length, c.length) << LimitWindowName(c.window);
    EXPECT_EQ(spec.level, c.level) << LimitWindowName(c.window);
    EXPECT_EQ(BucketMillis(spec.level), c.bucket_ms) << LimitWindowName(c.window);
    // At most 2, 61, 25, 169 or 32 buckets overlap a window.
    EXPECT_LE(spec.length.count() / c.bucket_ms + 1, 169) << LimitWindowName(c.window);
  }
}

TEST(SendLimitsTest, BucketsAreFloorsOfUnixTime) {
  struct Case {
    CountLevel level;
    TimePoint at;
    std::int64_t want;
  };
  const Case cases[] = {
      {CountLevel::kMinute, kT, kMinute0},
      {CountLevel::kMinute, kT + seconds(59) + milliseconds(999), kMinute0},
      {CountLevel::kMinute, kT + seconds(60), kMinute0 + 1},
      {CountLevel::kMinute, kT - milliseconds(1), kMinute0 - 1},
      {CountLevel::kHour, kT + minutes(59), kHour0},
      {CountLevel::kDay, kT + hours(23) + minutes(59), kDay0},
      {CountLevel::kDay, kT + days(1), kDay0 + 1},
      // Before 1970: floor, not truncation towards zero.
      {CountLevel::kMinute, FromUnixMillis(-1), -1},
      {CountLevel::kDay, FromUnixMillis(-86'400'000), -1},
      {CountLevel::kDay, FromUnixMillis(-86'400'001), -2},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(BucketOf(c.level, c.at), c.want) << ToUnixMillis(c.at) << " ms, level " << static_cast<int>(c.level);
  }
}

TEST(SendLimitsTest, FirstCountedBucketIsTheFirstOverlappingTheWindow) {
  // The window of a message at `now` is (now - length, now]; its first millisecond is
  // now - length + 1 ms, and the bucket holding it is the first that counts.
  struct Case {
    LimitWindow window;
    Duration now;  // after kT
    std::int64_t want;
  };
  const Case cases[] = {
      {LimitWindow::kMinute, seconds(60), kMinute0},
      {LimitWindow::kMinute, seconds(119) + milliseconds(999), kMinute0 + 1},
      {LimitWindow::kMinute, seconds(119) + milliseconds(998), kMinute0},
      {LimitWindow::kHour, hours(1), kMinute0},
      {LimitWindow::kHour, hours(1) + seconds(59) + milliseconds(998), kMinute0},
      {LimitWindow::kHour, hours(1) + seconds(59) + milliseconds(999), kMinute0 + 1},
      {LimitWindow::kHour, seconds(30), kMinute0 - 60},
      {LimitWindow::kDay, days(1) + minutes(59) + seconds(59) + milliseconds(998), kHour0},
      {LimitWindow::kDay, days(1) + minutes(59) + seconds(59) + milliseconds(999), kHour0 + 1},
      {LimitWindow::kWeek, days(7), kHour0},
      {LimitWindow::kWeek, days(7) + hours(1) - milliseconds(1), kHour0 + 1},
      {LimitWindow::kMonth, days(31) + hours(12), kDay0},
      {LimitWindow::kMonth, days(32) - milliseconds(1), kDay0 + 1},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FirstCountedBucket(SpecOf(c.window), kT + c.now), c.want)
        << LimitWindowName(c.window) << " at T+" << c.now.count() << " ms";
  }
}

TEST(SendLimitsTest, RoomAtIsWhenTheNewestBucketThatMustGoHasLeft) {
  struct Case {
    const char* name;
    LimitWindow window;
    std::vector<BucketCount> counts;
    std::uint64_t limit;
    std::optional<TimePoint> want;
  };
  const TimePoint hour_after_first_minute = kT + seconds(59) + milliseconds(999) + hours(1);
  const Case cases[] = {
      {"nothing counted", LimitWindow::kHour, {}, 1, std::nullopt},
      {"below the limit", LimitWindow::kHour, {{kMinute0, 1}}, 2, std::nullopt},
      {"one message, limit 1", LimitWindow::kHour, {{kMinute0, 1}}, 1, hour_after_first_minute},
      {"the oldest minute is enough", LimitWindow::kHour, {{kMinute0, 2}, {kMinute0 + 2, 2}}, 4,
       hour_after_first_minute},
      {"both minutes must go", LimitWindow::kHour, {{kMinute0, 2}, {kMinute0 + 2, 2}}, 2,
       hour_after_first_minute + minutes(2)},
      {"a big old minute", LimitWindow::kHour, {{kMinute0, 5}, {kMinute0 + 10, 1}}, 3, hour_after_first_minute},
      {"three single minutes", LimitWindow::kHour, {{kMinute0, 1}, {kMinute0 + 1, 1}, {kMinute0 + 2, 1}}, 3,
       hour_after_first_minute},
      {"three single minutes, limit 2", LimitWindow::kHour, {{kMinute0, 1}, {kMinute0 + 1, 1}, {kMinute0 + 2, 1}}, 2,
       hour_after_first_minute + minutes(1)},
      {"over the limit in the newest minute", LimitWindow::kHour, {{kMinute0, 1}, {kMinute0 + 2, 5}}, 3,
       hour_after_first_minute + minutes(2)},
      {"minute window", LimitWindow::kMinute, {{kMinute0, 1}}, 1, kT + seconds(119) + milliseconds(999)},
      {"day window", LimitWindow::kDay, {{kHour0, 3}}, 3, kT + hours(25) - milliseconds(1)},
      {"week window", LimitWindow::kWeek, {{kHour0, 3}, {kHour0 + 100, 1}}, 4, kT + days(7) + hours(1) - milliseconds(1)},
      {"month window", LimitWindow::kMonth, {{kDay0, 1}}, 1, kT + days(32) - milliseconds(1)},
  };
  for (const Case& c : cases) {
    const std::optional<TimePoint> got = RoomAt(c.counts, SpecOf(c.window), c.limit);
    EXPECT_EQ(got, c.want) << c.name << ": got " << (got ? Offset(*got) : "none") << ", want "
                           << (c.want ? Offset(*c.want) : "none");
  }
}

// Counters in memory, as the store would return them; records every load.
class FakeCounters {
 public:
  void Set(const std::string& account, CountLevel level, std::vector<BucketCount> counts) {
    counts_[{account, level}] = std::move(counts);
  }

  LimitCheck::Loader Loader() {
    return [this](std::string_view account, CountLevel level, std::int64_t first, std::vector<BucketCount>& out) {
      loads.emplace_back(std::string(account), level, first);
      if (!error.ok()) return error;
      for (const BucketCount& c : counts_[{std::string(account), level}]) {
        if (c.bucket >= first) out.push_back(c);
      }
      return Status::Ok();
    };
  }

  std::vector<std::tuple<std::string, CountLevel, std::int64_t>> loads;
  Status error;

 private:
  std::map<std::pair<std::string, CountLevel>, std::vector<BucketCount>> counts_;
};

TEST(LimitCheckTest, LaterEntriesSeeEarlierOnesAndTheLatestRoomWins) {
  FakeCounters counters;
  counters.Set("relay", CountLevel::kMinute, {{kMinute0 - 30, 2}});  // 30 minutes ago
  const TimePoint now = kT + seconds(10);
  LimitCheck check(now, counters.Loader());
  const std::vector<SendingLimit> limits = {Limit("3/minute"), Limit("4/hour")};

  std::vector<std::optional<LimitCheck::Refusal>> got;
  for (int i = 0; i < 4; ++i) {
    Result<std::optional<LimitCheck::Refusal>> refusal = check.Check("relay", limits);
    ASSERT_TRUE(refusal.ok()) << refusal.status().ToString();
    if (!*refusal) check.Count("relay");
    got.push_back(*refusal);
  }
  // Two fit (2 + 1 and 3 + 1 <= 4 per hour); the third and fourth reach 4/hour while the minute
  // has room (2 + 1 <= 3): the hour has room again once the old minute has left.
  EXPECT_FALSE(got[0].has_value());
  EXPECT_FALSE(got[1].has_value());
  for (int i : {2, 3}) {
    ASSERT_TRUE(got[i].has_value()) << i;
    EXPECT_EQ(got[i]->limit, Limit("4/hour")) << i;
    EXPECT_EQ(got[i]->retry_at, kT - minutes(30) + seconds(59) + milliseconds(999) + hours(1))
        << i << ": " << Offset(got[i]->retry_at);
  }
  // One load of the minutes, from the hour window's first bucket: (T+10s-1h, T+10s] begins in
  // the minute that starts at T-60min.
  ASSERT_EQ(counters.loads.size(), 1u);
  EXPECT_EQ(counters.loads[0], std::make_tuple(std::string("relay"), CountLevel::kMinute, kMinute0 - 60));

  std::map<std::string, std::uint64_t> counted;
  check.ForEachCounted([&](const std::string& account, std::uint64_t messages) { counted[account] = messages; });
  EXPECT_EQ(counted, (std::map<std::string, std::uint64_t>{{"relay", 2}}));
}

TEST(LimitCheckTest, BothLimitsReachedReportTheLaterRoomAndTheFirstOnATie) {
  struct Case {
    std::vector<SendingLimit> limits;
    SendingLimit want_limit;
    TimePoint want_retry_at;
  };
  // Counted: 2 in the current minute, 2 at T-5min. 2/minute has room at T+1m59.999s;
  // 4/hour once T-5min's minute has left, at T+55m59.999s; 2/hour later still.
  const Case cases[] = {
      {{Limit("2/minute"), Limit("4/hour")}, Limit("4/hour"), kT + minutes(55) + seconds(59) + milliseconds(999)},
      {{Limit("4/hour"), Limit("2/minute")}, Limit("4/hour"), kT + minutes(55) + seconds(59) + milliseconds(999)},
      {{Limit("2/minute"), Limit("1000/day")}, Limit("2/minute"), kT + minutes(1) + seconds(59) + milliseconds(999)},
      {{Limit("4/hour"), Limit("2/hour"), Limit("2/minute")}, Limit("2/hour"),
       kT + hours(1) + seconds(59) + milliseconds(999)},
      // Two limits with the same room: the first is named.
      {{Limit("4/hour"), Limit("3/hour")}, Limit("4/hour"), kT + minutes(55) + seconds(59) + milliseconds(999)},
      {{Limit("3/day"), Limit("4/day")}, Limit("3/day"), kT + days(1) - milliseconds(1)},
  };
  for (const Case& c : cases) {
    FakeCounters counters;
    counters.Set("relay", CountLevel::kMinute, {{kMinute0 - 5, 2}, {kMinute0, 2}});
    counters.Set("relay", CountLevel::kHour, {{kHour0 - 1, 2}, {kHour0, 2}});
    LimitCheck check(kT + seconds(1), counters.Loader());
    Result<std::optional<LimitCheck::Refusal>> refusal = check.Check("relay", c.limits);
    ASSERT_TRUE(refusal.ok()) << refusal.status().ToString();
    ASSERT_TRUE(refusal->has_value()) << c.want_limit.ToString();
    EXPECT_EQ((*refusal)->limit, c.want_limit) << (*refusal)->limit.ToString();
    EXPECT_EQ((*refusal)->retry_at, c.want_retry_at)
        << c.want_limit.ToString() << ": got " << Offset((*refusal)->retry_at) << ", want " << Offset(c.want_retry_at);
  }
}

TEST(LimitCheckTest, LoadsAgainFurtherBackKeepingTheBatchsCounts) {
  FakeCounters counters;
  counters.Set("relay", CountLevel::kMinute, {{kMinute0 - 30, 4}});
  LimitCheck check(kT, counters.Loader());
  // The minute window needs only the last two minutes; nothing counted there yet.
  for (int i = 0; i < 2; ++i) {
    Result<std::optional<LimitCheck::Refusal>> refusal = check.Check("relay", std::vector{Limit("10/minute")});
    ASSERT_TRUE(refusal.ok() && !refusal->has_value());
    check.Count("relay");
  }
  // The hour window reaches further back: loaded again, with the 2 of this batch still counted.
  Result<std::optional<LimitCheck::Refusal>> refusal = check.Check("relay", std::vector{Limit("6/hour")});
  ASSERT_TRUE(refusal.ok());
  ASSERT_TRUE(refusal->has_value()) << "4 stored + 2 of the batch reach 6/hour";
  EXPECT_EQ((*refusal)->retry_at, kT - minutes(30) + seconds(59) + milliseconds(999) + hours(1));
  refusal = check.Check("relay", std::vector{Limit("7/hour"), Limit("3/minute")});
  ASSERT_TRUE(refusal.ok());
  EXPECT_FALSE(refusal->has_value()) << "4 + 2 + 1 <= 7 and 2 + 1 <= 3";
  ASSERT_EQ(counters.loads.size(), 2u);
  EXPECT_EQ(std::get<2>(counters.loads[0]), kMinute0 - 1);
  EXPECT_EQ(std::get<2>(counters.loads[1]), kMinute0 - 60);

  // Accounts apart; no limits, no load; a loader error is returned.
  refusal = check.Check("other", std::vector{Limit("1/hour")});
  ASSERT_TRUE(refusal.ok());
  EXPECT_FALSE(refusal->has_value());
  refusal = check.Check("third", std::vector<SendingLimit>{});
  ASSERT_TRUE(refusal.ok());
  EXPECT_FALSE(refusal->has_value());
  EXPECT_EQ(counters.loads.size(), 3u);
  counters.error = Status(StatusCode::kIo, "disk gone");
  refusal = check.Check("fourth", std::vector{Limit("1/day")});
  EXPECT_EQ(refusal.status().code(), StatusCode::kIo);
}

}  // namespace
}  // namespace herald::store_internal
