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
  EXPECT_EQ(wait.Reserve(t0), t0) << "the first message starts at once";
  EXPECT_EQ(wait.NextLeave(t0), t0);
  wait.Left(t0);
  EXPECT_EQ(wait.Reserve(t0), t0 + seconds(2));
  EXPECT_EQ(wait.NextLeave(t0 + milliseconds(1999)), t0 + seconds(2));
  wait.Left(t0 + seconds(2));
  EXPECT_EQ(wait.Reserve(t0 + seconds(5)), t0 + seconds(5)) << "no debt is built up by idling";
}

TEST(MinimumWaitTest, ParallelMessagesReserveSlotsOneBehindTheOther) {
  TimePoint t0 = FromUnixMillis(0);
  MinimumWait wait(seconds(10));
  EXPECT_EQ(wait.Reserve(t0), t0);
  EXPECT_EQ(wait.Reserve(t0), t0 + seconds(10));
  EXPECT_EQ(wait.Reserve(t0), t0 + seconds(20));
}

TEST(MinimumWaitTest, AMessageThatLeftLateMovesTheNextOnes) {
  TimePoint t0 = FromUnixMillis(0);
  MinimumWait wait(seconds(10));
  TimePoint first = wait.Reserve(t0);
  TimePoint second = wait.Reserve(t0);
  wait.Left(first + seconds(4));  // connecting took 4 s
  EXPECT_EQ(wait.NextLeave(second), first + seconds(14)) << "the second waits for the first's real start";
  wait.Left(first + seconds(14));
  EXPECT_EQ(wait.Reserve(first + seconds(14)), first + seconds(24));
}

TEST(MinimumWaitTest, ZeroWaitNeverWaits) {
  MinimumWait wait(Duration(0));
  TimePoint t0 = FromUnixMillis(1000);
  wait.Left(t0);
  EXPECT_EQ(wait.Reserve(t0), t0);
  EXPECT_EQ(wait.NextLeave(t0), t0);
}

TEST(TaskPacingTest, BlocksPauseAfterEveryNMessages) {
  TimePoint t = FromUnixMillis(0);
  TaskPacing pacing(/*limit=*/0, /*block_size=*/3, /*block_pause=*/minutes(5));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(pacing.Next(t), TaskPacing::Verdict::kStart) << i;
    pacing.Started();
    t += seconds(1);
    pacing.Finished(t);
  }
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kWait);
  EXPECT_EQ(pacing.resume_at(), FromUnixMillis(3000) + minutes(5)) << "the pause counts from the block's last end";
  EXPECT_EQ(pacing.Next(pacing.resume_at() - milliseconds(1)), TaskPacing::Verdict::kWait);
  t = pacing.resume_at();
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kStart);
  pacing.Started();
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kStart) << "a new block has begun";
}

TEST(TaskPacingTest, PauseWaitsForEveryMessageOfTheBlock) {
  TimePoint t = FromUnixMillis(0);
  TaskPacing pacing(/*limit=*/0, /*block_size=*/3, /*block_pause=*/minutes(5));
  for (int i = 0; i < 3; ++i) pacing.Started();  // three sent in parallel
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kBlockUnfinished);
  pacing.Finished(t + seconds(30));  // the block's last one taken is done first
  pacing.Finished(t + seconds(10));
  EXPECT_EQ(pacing.Next(t + minutes(10)), TaskPacing::Verdict::kBlockUnfinished) << "one is still on its way";
  pacing.Finished(t + seconds(40));
  EXPECT_EQ(pacing.Next(t + seconds(40)), TaskPacing::Verdict::kWait);
  EXPECT_EQ(pacing.resume_at(), t + seconds(40) + minutes(5));
}

TEST(TaskPacingTest, UnstartedMessageReopensTheBlock) {
  TimePoint t = FromUnixMillis(0);
  TaskPacing pacing(/*limit=*/0, /*block_size=*/2, /*block_pause=*/minutes(5));
  pacing.Started();
  pacing.Started();
  pacing.Finished(t);
  pacing.Unstarted();  // cancelled before it left: the block has room for one more
  EXPECT_EQ(pacing.Next(t), TaskPacing::Verdict::kStart);
  pacing.Started();
  pacing.Finished(t + seconds(1));
  EXPECT_EQ(pacing.Next(t + seconds(1)), TaskPacing::Verdict::kWait);
  EXPECT_EQ(pacing.resume_at(), t + seconds(1) + minutes(5));
}

TEST(TaskPacingTest, LimitEndsTheRunAndUnstartedMessagesDoNotCount) {
  TimePoint t = FromUnixMillis(0);
  TaskPacing pacing(/*limit=*/2, 0, Duration(0));
  pacing.Started();
  pacing.Started();
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
    pacing.Started();
    pacing.Finished(t);
    ++started;
  }
  EXPECT_EQ(started, 5);
  EXPECT_EQ(t, FromUnixMillis(20'000)) << "two pauses of 10 s between three blocks";
}

}  // namespace
}  // namespace herald
