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
  // The reply is the one the stage waits for before the dialogue goes on (the success replies of
  // RFC 5321 §4.3.2, RFC 3207 §4 and RFC 4954 §4/§6, below). The session goes on only then; for
  // the end of data it means the message was accepted.
  bool accepted = false;
  // RCPT TO only: the server refused this recipient because the transaction has too many
  // (452 / x.5.3, or 552 on RCPT). RFC 5321 §4.5.3.1.10: the client should send the remaining
  // recipients in a later transaction. The outcome is temporary; the session may retry the
  // recipient after this transaction instead of leaving it to the engine's retry delay.
  bool too_many_recipients = false;
  // 421 (RFC 5321 §3.8): the server is closing the connection. Nothing more may be sent on it.
  bool closing_connection = false;
  // A 2xx or 3xx that is not a reply the stage can get (250 to DATA, 354 to MAIL FROM, 334
  // outside AUTH, 220 to RCPT TO, 3xx to the end of data): client and server no longer agree
  // where the dialogue is (a broken server, or a pipelined reply out of step). Temporary; the
  // session must end, since whatever it sends next may be read as something else.
  bool protocol_error = false;
};

// Classifies `reply` as the answer at `stage`.
//
// Accepted replies, per stage; nothing else ever counts as success:
//   greeting 220; EHLO/HELO 250; STARTTLS 220; AUTH 235 (334 continues the exchange); MAIL FROM
//   250; RCPT TO 250 or 251; DATA 354 (the only reply that lets the message go out); end of data
//   any 2xx (RFC 5321 §4.2.1: the first digit tells success).
// Disposition: accepted → kDelivered (for the end of data: the message is accepted); 4xx
// temporary; 5xx permanent; any other 2xx or 3xx a protocol error (temporary, protocol_error,
// the text says what was expected); except as below.
// Scope: greeting, EHLO, STARTTLS, AUTH → kAccount; MAIL FROM, DATA, end of data → kMessage;
// RCPT TO → kRecipient (a protocol error there → kMessage: every recipient of the transaction is
// in doubt). Special cases:
//   - 421 at any stage: temporary, kAccount, closing_connection (RFC 5321 §3.8: the service is
//     shutting down the channel — Gmail and Yahoo use it for rate limits too).
//   - RCPT TO 452, or any 4xx/5xx with enhanced status x.5.3 ("too many recipients", RFC 3463):
//     temporary, kRecipient, too_many_recipients (RFC 5321 §4.5.3.1.10). A 452 without an enhanced
//     code counts as too many recipients; 452 4.2.2 (mailbox full) and 4.3.1 (no storage) do not.
//   - RCPT TO 552: temporary, as RFC 5321 §4.5.3.1.10 tells clients to treat it (old servers sent
//     552 for too many recipients); with x.5.3 or no enhanced code it is also too_many_recipients.
//   - AUTH 530/534/535/538 (RFC 4954 §6): permanent kAccount; 454 (temporary failure) temporary.
//   - MAIL FROM 5xx about the sender or this client is a refusal of the account — every message
//     through it would get the same: x.7.x (security or policy, RFC 3463: "530 5.7.0
//     Authentication required" of RFC 4954 §6, "550 5.7.1 client host blocked"), x.1.7 / x.1.8
//     (bad sender mailbox or system), 530, and 553 without an enhanced code (RFC 5321 §4.3.2:
//     mailbox name not allowed — the sender's). What concerns this message stays kMessage, and
//     wins: 552 and x.3.4 (too large), x.6.x (content), 555 (MAIL parameters).
//   - greeting 554 (RFC 5321 §3.1: "no SMTP service here"): permanent kAccount.
// policy_refusal (transport.h): a 5xx that refuses this sending host, client or sender by policy
// rather than the recipient, so another outgoing path may succeed: x.7.x at the greeting, EHLO,
// MAIL FROM or RCPT TO ("554 5.7.1 client host blocked", "550 5.7.1 relaying denied"), and a
// greeting 554 without an enhanced code. Never for a refusal of the recipient itself (5.1.1
// unknown user, 5.2.2 mailbox full), a 4xx (greylisting is 4.7.x and only asks to wait), or a
// refusal at AUTH, DATA or the end of data (credentials, content: about this account or message).
// Text: the server's text verbatim (Reply::Text()) cut to kMaxOutcomeText octets at a UTF-8
// boundary, with control characters replaced by spaces so that a reply cannot forge log lines;
// the code and enhanced status go into their own fields. A protocol error's text says first which
// replies the stage expected. A protocol error at the end of data is also maybe_delivered: the whole
// message went out, and the server said neither yes nor no.
Classification Classify(Stage stage, const Reply& reply);

// The scope a failure at `stage` concerns when there is no reply to classify (timeout, dropped
// connection, malformed reply, TLS failure): kAccount up to AUTH, kMessage for a transaction
// (a drop during RCPT TO concerns all the message's recipients).
Scope ScopeWithoutReply(Stage stage);

// A temporary Outcome for a failure without a usable reply at `stage` — the session could not read
// or write, or the reply was malformed — with `reason` as text. After a drop at kDataEnd the
// message may or may not have been accepted: maybe_delivered is set, and the engine retries it as
// a possible duplicate.
Outcome TemporaryFailure(Stage stage, std::string_view reason);

}  // namespace herald::smtp
