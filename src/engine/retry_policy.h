// What becomes of a recipient after an attempt (docs/design.md, "The recipient's state machine"): delivered ->
// sent; permanent -> failed; temporary -> deferred until the task's retry delay has passed
// (growing by retry_backoff each time), or failed once the retries are used up. Pure functions.
#pragma once

#include "config/task_config.h"
#include "core/clock.h"
#include "store/store.h"
#include "transport/transport.h"

namespace herald {

// The delay before retry number `retry` (1 for the first retry): retry_delay * backoff^(retry-1),
// capped at 30 days.
Duration RetryDelay(const SendingConfig& sending, int retry);

// The store result for `recipient_id` after `outcome`. `attempts` counts this attempt. An outcome
// that may have delivered the message (Outcome::maybe_delivered) makes it a possible duplicate.
AttemptResult DecideResult(std::int64_t recipient_id, const Outcome& outcome, int attempts,
                           const SendingConfig& sending, TimePoint now);

// The recipient's last error as the store keeps it: code, enhanced status, and the text prefixed
// with the stage ("RCPT TO: 550 5.1.1 user unknown" keeps its code separately).
DeliveryError ToDeliveryError(const Outcome& outcome);

}  // namespace herald
