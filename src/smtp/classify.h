// Outcome classification: what a server's reply at a stage of the session means for the engine —
// delivered, try again later, or give up — and for whom (the account, the message, one recipient;
// Postfix's site/message/recipient failure split). Pure functions, thread-safe.
#pragma once

#include <string_view>

#include "smtp/reply.h"
#include "transport/transport.h"

namespace herald::smtp {

// The outcome text keeps at most this many octets of the server's text.
inline constexpr std::size_t kMaxOutcomeText = 1000;

struct Classification {
  Outcome outcome;
  // RCPT TO only: the server refused this recipient because the transaction has too many
  // (452 / x.5.3, or 552 on RCPT). RFC 5321 §4.5.3.1.10: the client should send the remaining
  // recipients in a later transaction. The outcome is temporary; the session may retry the
  // recipient after this transaction instead of leaving it to the engine's retry delay.
  bool too_many_recipients = false;
  // 421 (RFC 5321 §3.8): the server is closing the connection. Nothing more may be sent on it.
  bool closing_connection = false;
};

// Classifies `reply` as the answer at `stage`.
//
// Disposition: 2xx is delivered (accepted); 3xx is accepted where the stage expects it (354 after
// DATA, 334 during AUTH) and a temporary protocol failure elsewhere; 4xx is temporary; 5xx is
// permanent, except as below.
// Scope: greeting, EHLO, STARTTLS, AUTH → kAccount; MAIL FROM, DATA, end of data → kMessage;
// RCPT TO → kRecipient. Special cases:
//   - 421 at any stage: temporary, kAccount, closing_connection (RFC 5321 §3.8: the service is
//     shutting down the channel — Gmail and Yahoo use it for rate limits too).
//   - RCPT TO 452, or any 4xx/5xx with enhanced status x.5.3 ("too many recipients", RFC 3463):
//     temporary, kRecipient, too_many_recipients (RFC 5321 §4.5.3.1.10). A 452 without an enhanced
//     code counts as too many recipients; 452 4.2.2 (mailbox full) and 4.3.1 (no storage) do not.
//   - RCPT TO 552: temporary, as RFC 5321 §4.5.3.1.10 tells clients to treat it (old servers sent
//     552 for too many recipients); with x.5.3 or no enhanced code it is also too_many_recipients.
//   - AUTH 530/534/535/538 (RFC 4954 §6): permanent kAccount; 454 (temporary failure) temporary.
//   - 530 at MAIL FROM (RFC 4954 §6: "5.7.0 Authentication required"): permanent kAccount — the
//     account's authentication setting is wrong, not the message.
//   - greeting 554 (RFC 5321 §3.1: "no SMTP service here"): permanent kAccount.
// Text: the server's text verbatim (Reply::Text()) cut to kMaxOutcomeText octets at a UTF-8
// boundary, with control characters replaced by spaces so that a reply cannot forge log lines;
// the code and enhanced status go into their own fields.
Classification Classify(Stage stage, const Reply& reply);

// The scope a failure at `stage` concerns when there is no reply to classify (timeout, dropped
// connection, malformed reply, TLS failure): kAccount up to AUTH, kMessage for a transaction
// (a drop during RCPT TO concerns all the message's recipients).
Scope ScopeWithoutReply(Stage stage);

// A temporary Outcome for a failure without a usable reply at `stage` — the session could not read
// or write, or the reply was malformed — with `reason` as text. After a drop at kDataEnd the
// message may or may not have been accepted: the engine retries it (a possible duplicate).
Outcome TemporaryFailure(Stage stage, std::string_view reason);

}  // namespace herald::smtp
