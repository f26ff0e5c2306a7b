// Session: one SMTP client connection (RFC 5321), from the greeting to QUIT, written as
// straight-line coroutine steps with an explicit state kept for deadlines, logs and error text.
//
//   Open():  connect (implicit TLS on port 465) -> greeting -> EHLO (HELO when EHLO is refused)
//            -> STARTTLS (RFC 3207: what the server sent before the handshake is discarded; bytes
//               after its 220 abort the session) -> EHLO again -> AUTH
//   Send():  [RSET after an aborted transaction] MAIL FROM -> RCPT TO... -> DATA -> message ->
//            end of data, pipelined in one write when the server offers PIPELINING (RFC 2920);
//            one Outcome per recipient. Recipients refused as "too many" (452, RFC 5321
//            §4.5.3.1.10) are sent in a further transaction on the same connection.
//   Quit():  QUIT, then close (waiting at most 5 s for the reply: nothing depends on it).
//
// The session does not care where the host name came from (a relay's setting or an MX record).
// Every state has its own deadline (Timeouts); a timeout says which reply did not come within the
// state's whole timeout ("timed out: no reply to RCPT TO from mx.example within 1m"). Only the
// replies of classify.h's accepted list let the dialogue go on: a reply the state cannot get (250
// to DATA, 354 to MAIL FROM) is a protocol error that ends the session, and no message data goes
// out without a 354 to DATA. After a timeout, a dropped connection, a malformed reply, a protocol
// error or a 421 the session is broken: usable() turns false and it must not be used again.
// Nothing from a task reaches the wire unchecked: commands are built by smtp/command.h (which
// rejects CR, LF and NUL), message data goes through the dot-stuffer.
//
// Threading: a Session belongs to the coroutine that opened it; one operation at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>

#include "config/account_config.h"
#include "core/clock.h"
#include "net/stream.h"
#include "smtp/auth.h"
#include "smtp/capabilities.h"
#include "transport/transport.h"

namespace herald::smtp {

// Deadlines per state. Defaults are RFC 5321 §4.5.3.2's minimum client timeouts; FromAccount()
// applies an account's timeout setting.
struct Timeouts {
  Duration connect = std::chrono::seconds(60);    // resolve + TCP connect (+ implicit TLS handshake)
  Duration greeting = std::chrono::minutes(5);    // §4.5.3.2.1
  Duration command = std::chrono::minutes(5);     // EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET (§4.5.3.2.2/3);
                                                  // QUIT waits min(command, 5 s)
  Duration data_init = std::chrono::minutes(2);   // DATA -> 354 (§4.5.3.2.4)
  Duration data_block = std::chrono::minutes(3);  // each block of message data written (§4.5.3.2.5)
  Duration data_end = std::chrono::minutes(10);   // "." -> reply (§4.5.3.2.6)

  // The account's `timeout` bounds connecting and every wait for a reply to a command — a bulk
  // sender should give up on a silent server long before five minutes — except the reply to the
  // end of data, which keeps the RFC's ten minutes: giving up there while the server is still
  // accepting the message is how duplicates are made (§4.5.3.2.6).
  static Timeouts FromAccount(Duration account_timeout);
};

struct SessionOptions {
  std::string host;
  std::uint16_t port = 25;
  Security security = Security::kStartTls;  // kStartTls: required, nothing is sent without it
  // Opportunistic STARTTLS (direct delivery): encrypt when offered, go on in clear otherwise.
  bool opportunistic_tls = false;
  TlsOptions tls;                            // verification, CA file, server name (default: host)
  std::string helo_name;                     // EHLO/HELO argument
  std::string local_address;

  // Authentication; none when `username` is empty.
  std::vector<Mechanism> mechanisms;  // allowed, in no particular order; empty: all but XOAUTH2
  std::string username;
  std::string secret;                 // password, or OAuth2 access token for XOAUTH2
  bool allow_plaintext_auth = false;  // credentials may cross an unencrypted connection

  Timeouts timeouts;

  // Called with each line of the dialogue ("C: MAIL FROM:<...>", "S: 250 2.1.0 Ok"), AUTH
  // secrets replaced by "****", message data summarised. For `herald test-account`; may be empty.
  std::function<void(std::string_view)> transcript;
};

enum class SessionState {
  kConnecting,
  kGreeting,
  kHello,
  kStartTls,
  kAuth,
  kReady,     // between transactions
  kMailFrom,
  kRcptTo,
  kData,
  kDataEnd,
  kReset,
  kQuit,
  kClosed,    // after QUIT or a failure: unusable
};
std::string_view SessionStateName(SessionState state);

class Session;

struct OpenResult {
  std::unique_ptr<Session> session;  // null on failure
  Outcome failure;                   // why, with its scope (usually kAccount)
};

class Session {
 public:
  // Connects and brings the session to kReady. Never throws.
  static asio::awaitable<OpenResult> Open(SessionOptions options);

  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Sends one message to the envelope's recipients: exactly one Outcome per recipient, in order.
  // Checks before anything goes out: the message against the server's SIZE limit, SMTPUTF8 when
  // an address needs it (permanent, kMessage, stage kPrepare). Never throws.
  asio::awaitable<std::vector<Outcome>> Send(Envelope envelope, std::shared_ptr<const MessageData> message);

  // QUIT and close, waiting min(timeouts.command, 5 s) for the reply; never throws.
  asio::awaitable<void> Quit();

  bool usable() const;
  SessionState state() const;
  const Capabilities& capabilities() const;
  const Stream& stream() const;
  std::uint64_t messages_sent() const;

  class Impl;

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace herald::smtp
