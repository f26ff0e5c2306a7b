#include "engine/retry_policy.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace herald {

Duration RetryDelay(const SendingConfig& sending, int retry) {
  constexpr double kMaxMs = 30.0 * 24 * 3600 * 1000;
  double factor = std::pow(sending.retry_backoff, std::max(0, retry - 1));
  double ms = std::min(kMaxMs, static_cast<double>(sending.retry_delay.count()) * factor);
  return Duration(static_cast<long long>(ms));
}

DeliveryError ToDeliveryError(const Outcome& outcome) {
  DeliveryError error;
  error.reply_code = outcome.reply_code;
  error.enhanced_status = outcome.enhanced_status;
  error.text = fmt::format("{}: {}", StageName(outcome.stage), outcome.text);
  return error;
}

AttemptResult DecideResult(std::int64_t recipient_id, const Outcome& outcome, int attempts,
                           const SendingConfig& sending, TimePoint now) {
  AttemptResult result;
  result.recipient_id = recipient_id;
  result.possible_duplicate = outcome.maybe_delivered;
  switch (outcome.disposition) {
    case Disposition::kDelivered:
      result.status = RecipientStatus::kSent;
      result.error.reply_code = outcome.reply_code;
      result.error.enhanced_status = outcome.enhanced_status;
      result.error.text = outcome.text;
      return result;
    case Disposition::kPermanent:
      result.status = RecipientStatus::kFailed;
      result.error = ToDeliveryError(outcome);
      return result;
    case Disposition::kTemporary:
      result.error = ToDeliveryError(outcome);
      // `attempts` includes the first try, so retries used so far are attempts - 1.
      if (attempts - 1 < static_cast<int>(sending.retries)) {
        result.status = RecipientStatus::kDeferred;
        result.next_attempt_at = now + RetryDelay(sending, attempts);
      } else {
        result.status = RecipientStatus::kFailed;
        result.error.text = fmt::format("gave up after {} attempts; last: {}", attempts, result.error.text);
      }
      return result;
  }
  return result;
}

}  // namespace herald
