// Transport: the boundary between the engine and an outgoing path. One implementation per account
// kind (smtp/gmail, direct, ews, graph, pickup); main.cc's TransportFactory picks them.
//
// The engine asks a Transport for a Connection to a destination and hands it messages one at a
// time; each message yields one Outcome per envelope recipient. An SMTP connection is a TCP/TLS
// session, a pickup connection a folder, a Graph connection an HTTP keep-alive — the engine does
// not care. Failures carry their scope (Postfix's site/message/recipient split) so the engine
// knows whether to retry a recipient, fail a message, or move work to the secondary account.
//
// Threading: a Transport may be shared by the coroutines of one io_context; a Connection is used
// by one coroutine at a time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>

#include "address/address.h"
#include "mime/message_data.h"

namespace herald {

// Where in the exchange a result was decided, for logs and the recipient's last error.
enum class Stage {
  kConnect,    // resolving, TCP connect, implicit TLS handshake
  kGreeting,   // the server's 220
  kHello,      // EHLO / HELO
  kStartTls,   // STARTTLS and its handshake
  kAuth,       // AUTH (or POP-before-SMTP)
  kMailFrom,
  kRcptTo,
  kData,       // DATA command and message transfer
  kDataEnd,    // the reply to the end of data: the message is accepted or not
  kWrite,      // writing a file (pickup folder) or an HTTP request (ews, graph)
  kPrepare,    // before anything went out: size limits, SMTPUTF8 not offered, policy
};
std::string_view StageName(Stage stage);

// Who a failure concerns (Postfix: smtp_rcpt_fail / smtp_mesg_fail / smtp_site_fail).
enum class Scope {
  kRecipient,  // this recipient only (a RCPT TO reply)
  kMessage,    // this message, all its recipients (a DATA reply, a message too large)
  kAccount,    // the whole account or destination: cannot connect, greeting 421/554, AUTH
               // rejected, TLS failure — its work moves to the secondary account
  kDestination,  // direct delivery: the recipient's domain as a whole — none of its mail
                 // exchangers can be reached or will talk to us, a 421 from one of them, a
                 // null MX, a domain that does not exist. The account and its other
                 // destinations are fine: no failover; each recipient gets the outcome.
  kLocal,  // herald's own side: a folder on this machine cannot be written (a full disk, a
           // missing folder). No recipient is at fault and no other account would help: the
           // run stops, and the recipients stay unsent for the run after the fault is fixed.
};

enum class Disposition {
  kDelivered,  // accepted by the server / written to the folder
  kTemporary,  // 4xx, timeout, dropped connection: try again later
  kPermanent,  // 5xx or a failure that cannot get better by waiting
};

struct Outcome {
  Disposition disposition = Disposition::kDelivered;
  Scope scope = Scope::kRecipient;
  Stage stage = Stage::kDataEnd;
  int reply_code = 0;           // the server's reply code; 0 when there was none
  std::string enhanced_status;  // RFC 3463 "4.4.2"; empty when none
  std::string text;             // the server's text, or herald's reason in plain words
  // The server refused this sending host, client or sender by policy (RFC 3463 x.7.x: a
  // blocklisted address, no reverse DNS, SPF, "client host blocked") rather than the recipient
  // itself (x.1.1 unknown user, x.2.2 mailbox full). Another outgoing path — the account's
  // secondary — may succeed where this one cannot, so the engine hands the recipient over.
  bool policy_refusal = false;
  // A failure after the whole message went out, before the server's verdict: the connection was
  // lost (or the reply made no sense) after the final dot, so the server may have accepted the
  // message (RFC 1047). Sending it again may deliver it twice: the engine records the recipient
  // as a possible duplicate. Set on temporary outcomes only.
  bool maybe_delivered = false;

  bool delivered() const { return disposition == Disposition::kDelivered; }
};

// The SMTP envelope of one message (RFC 5321 §2.3.1): what transports deliver to.
struct Envelope {
  std::string mail_from;                // reverse-path; empty: the null sender <>
  std::vector<std::string> recipients;  // forward-paths, at least one
  bool smtputf8 = false;                // some address needs SMTPUTF8 (RFC 6531)
};

class Connection {
 public:
  virtual ~Connection() = default;

  // Delivers `message` to the envelope's recipients. Returns exactly one Outcome per recipient,
  // in envelope order; never throws.
  virtual asio::awaitable<std::vector<Outcome>> Send(Envelope envelope,
                                                     std::shared_ptr<const MessageData> message) = 0;

  // False once the connection must not carry another message (after an error, or closed).
  virtual bool reusable() const = 0;

  // Ends the session politely (QUIT); never throws.
  virtual asio::awaitable<void> Close() = 0;
};

// The result of Connect(): a connection, or the Outcome that explains why there is none
// (scope kAccount for a relay or folder; kDestination when direct delivery cannot reach one
// recipient domain).
struct ConnectResult {
  std::unique_ptr<Connection> connection;
  Outcome failure;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // The key under which recipients may share a connection: "" for relays and folders (one path
  // for all), the recipient's domain for direct delivery.
  virtual std::string Destination(const Address& recipient) const = 0;

  // Opens a connection for `destination` (a value returned by Destination()). Never throws.
  virtual asio::awaitable<ConnectResult> Connect(std::string destination) = 0;
};

}  // namespace herald
