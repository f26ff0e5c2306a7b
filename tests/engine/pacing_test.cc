#include "engine/pacing.h"

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace herald {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(MinimumWaitTest, SpacesTheStartsOfMessages) {
  FakeClock clock;
  MinimumWait wait(seconds(2));
  TimePoint t0 = clock.Now();
  EXPECT_EQ(wait.NextStart(t0), t0) << "the first message starts at once";
  wait.Started(t0);
  EXPECT_EQ(wait.NextStart(t0), t0 + seconds(2));
  EXPECT_EQ(wait.NextStart(t0 + milliseconds(1999)), t0 + seconds(2));
  EXPECT_EQ(wait.NextStart(t0 + seconds(5)), t0 + seconds(5)) << "no debt is built up by idling";
  wait.Started(t0 + seconds(5));
  EXPECT_EQ(wait.NextStart(t0 + seconds(5)), t0 + seconds(7));
}

TEST(MinimumWaitTest, ZeroWaitNeverWaits) {
  MinimumWait wait(Duration(0));
  TimePoint t0 = FromUnixMillis(1000);
  wait.Started(t0);
  EXPECT_EQ(wait.NextStart(t0), t0);
}

TEST(TaskPacingTest, BlocksPauseAfterEveryNMessages) {
  TimePoint t = FromUnixMillis(0);
  TaskPacing pacing(/*limit=*/0, /*block_size=*/3, /*block_pause=*/minutes(5));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(pacing.Next(t), TaskPacing::Verdict::kStart) << i;
    pacing.Started(t);
    t += seconds(1);
  }
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kWait);
  EXPECT_EQ(pacing.resume_at(), FromUnixMillis(2000) + minutes(5)) << "the pause counts from the block's last start";
  EXPECT_EQ(pacing.Next(pacing.resume_at() - milliseconds(1)), TaskPacing::Verdict::kWait);
  t = pacing.resume_at();
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kStart);
  pacing.Started(t);
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kStart) << "a new block has begun";
}

TEST(TaskPacingTest, LimitEndsTheRunAndUnstartedMessagesDoNotCount) {
  TimePoint t = FromUnixMillis(0);
  TaskPacing pacing(/*limit=*/2, 0, Duration(0));
  pacing.Started(t);
  pacing.Started(t);
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kDone);
  pacing.Unstarted();
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kStart);
  EXPECT_EQ(pacing.started(), 1u);
}

TEST(TaskPacingTest, BlocksAndLimitTogether) {
  TimePoint t = FromUnixMillis(0);
  TaskPacing pacing(/*limit=*/5, /*block_size=*/2, seconds(10));
  int started = 0;
  for (int step = 0; step < 100 && pacing.Next(t) != TaskPacing::Verdict::kDone; ++step) {
    if (pacing.Next(t) == TaskPacing::Verdict::kWait) {
      t = pacing.resume_at();
      continue;
    }
    pacing.Started(t);
    ++started;
  }
  EXPECT_EQ(started, 5);
  EXPECT_EQ(t, FromUnixMillis(20'000)) << "two pauses of 10 s between three blocks";
}

}  // namespace
}  // namespace herald
