#include "engine/retry_policy.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

Outcome Make(Disposition disposition) {
  Outcome outcome;
  outcome.disposition = disposition;
  outcome.stage = Stage::kRcptTo;
  outcome.reply_code = disposition == Disposition::kPermanent ? 550 : 451;
  outcome.text = "reason";
  return outcome;
}

TEST(RetryPolicyTest, DelaysGrowByTheBackoffAndAreCapped) {
  SendingConfig sending;
  sending.retry_delay = std::chrono::minutes(10);
  sending.retry_backoff = 3.0;
  EXPECT_EQ(RetryDelay(sending, 1), std::chrono::minutes(10));
  EXPECT_EQ(RetryDelay(sending, 2), std::chrono::minutes(30));
  EXPECT_EQ(RetryDelay(sending, 3), std::chrono::minutes(90));
  EXPECT_EQ(RetryDelay(sending, 60), std::chrono::hours(24 * 30));
}

TEST(RetryPolicyTest, DecidesByDispositionAndAttempts) {
  SendingConfig sending;
  sending.retries = 2;
  sending.retry_delay = std::chrono::hours(1);
  TimePoint now = FromUnixMillis(1'000'000);
  struct Case {
    Disposition disposition;
    int attempts;
    RecipientStatus want;
  };
  const Case cases[] = {
      {Disposition::kDelivered, 1, RecipientStatus::kSent},
      {Disposition::kPermanent, 1, RecipientStatus::kFailed},
      {Disposition::kTemporary, 1, RecipientStatus::kDeferred},
      {Disposition::kTemporary, 2, RecipientStatus::kDeferred},
      {Disposition::kTemporary, 3, RecipientStatus::kFailed},
  };
  for (const Case& c : cases) {
    AttemptResult result = DecideResult(7, Make(c.disposition), c.attempts, sending, now);
    EXPECT_EQ(result.status, c.want) << "attempts " << c.attempts;
    EXPECT_EQ(result.recipient_id, 7);
    EXPECT_EQ(result.next_attempt_at.has_value(), c.want == RecipientStatus::kDeferred);
  }
  AttemptResult failed = DecideResult(7, Make(Disposition::kPermanent), 1, sending, now);
  EXPECT_EQ(failed.error.reply_code, 550);
  EXPECT_EQ(failed.error.text, "RCPT TO: reason");
}

// A connection lost after the final dot may have delivered the message: whatever becomes of the
// recipient, the store counts it as a possible duplicate.
TEST(RetryPolicyTest, AnOutcomeThatMayHaveDeliveredMakesAPossibleDuplicate) {
  SendingConfig sending;
  sending.retries = 1;
  Outcome lost = Make(Disposition::kTemporary);
  lost.stage = Stage::kDataEnd;
  lost.maybe_delivered = true;
  AttemptResult deferred = DecideResult(1, lost, 1, sending, FromUnixMillis(0));
  EXPECT_EQ(deferred.status, RecipientStatus::kDeferred);
  EXPECT_TRUE(deferred.possible_duplicate);
  AttemptResult given_up = DecideResult(1, lost, 2, sending, FromUnixMillis(0));
  EXPECT_EQ(given_up.status, RecipientStatus::kFailed);
  EXPECT_TRUE(given_up.possible_duplicate);
  EXPECT_FALSE(DecideResult(1, Make(Disposition::kTemporary), 1, sending, FromUnixMillis(0)).possible_duplicate);
}

TEST(RetryPolicyTest, NoRetriesMeansTheFirstTemporaryFailureIsFinal) {
  SendingConfig sending;
  sending.retries = 0;
  AttemptResult result = DecideResult(1, Make(Disposition::kTemporary), 1, sending, FromUnixMillis(0));
  EXPECT_EQ(result.status, RecipientStatus::kFailed);
}

}  // namespace
}  // namespace herald
