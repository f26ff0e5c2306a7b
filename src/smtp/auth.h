// SMTP authentication (RFC 4954) with the SASL mechanisms herald's accounts use: PLAIN (RFC 4616),
// LOGIN (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195) and XOAUTH2 (Google's and Microsoft's
// OAuth 2.0 bearer-token mechanism). This file builds the client's lines from the server's
// challenges; the session sends and reads them. Secrets never appear in a Status message, and
// RedactForLog() is the filter every logged command line goes through.
//
// Threading: pure functions are thread-safe; a SaslClient belongs to one session.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace herald::smtp {

enum class Mechanism { kPlain, kLogin, kCramMd5, kXoauth2 };

std::string_view MechanismName(Mechanism mechanism);  // "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"
std::optional<Mechanism> MechanismFromName(std::string_view name);  // any case

struct AuthPolicy {
  // What the account allows. Empty: the password mechanisms PLAIN, LOGIN and CRAM-MD5. An OAuth2
  // account passes {kXoauth2}.
  std::vector<Mechanism> allowed;
  bool tls_active = false;       // the session runs over TLS (implicit or after STARTTLS)
  bool allow_plaintext = false;  // the user allowed credentials readable on an unencrypted wire
};

// Picks the mechanism for a session from what the server announced (Capabilities::auth_mechanisms)
// and the policy:
//  - under TLS: XOAUTH2, PLAIN, LOGIN, CRAM-MD5, the first both allowed and offered. TLS already
//    protects the secret; PLAIN takes one round trip and works with every password store, while
//    CRAM-MD5 needs the server to keep the password in clear and is not offered by Microsoft 365 or
//    Gmail. LOGIN is for old Exchange servers that offer nothing else.
//  - without TLS: CRAM-MD5 if offered (the password never crosses the wire); the others only with
//    allow_plaintext, since base64 is not encryption.
// Errors (kFailedPrecondition) say what the server offered and what the account allows.
Result<Mechanism> ChooseMechanism(const std::vector<std::string>& offered, const AuthPolicy& policy);

// The client side of one AUTH exchange:
//   AUTH PLAIN <base64("\0" user "\0" password)>        one line (RFC 4616, authzid empty)
//   AUTH LOGIN / 334 Username: / user / 334 Password: / password
//   AUTH CRAM-MD5 / 334 <challenge> / base64(user " " hex(HMAC-MD5(password, challenge)))
//   AUTH XOAUTH2 <base64("user=" user "\x01auth=Bearer " token "\x01\x01")>
// After the AUTH line, each 334 reply is passed to Answer() and its line sent; a 235 ends the
// exchange, a 4xx/5xx fails it. When Answer() fails, the session sends kAuthCancelLine (RFC 4954
// §4) and gives up.
class SaslClient {
 public:
  // `secret` is the password, or for XOAUTH2 the OAuth2 access token. Errors (kInvalidArgument):
  // empty user or secret; NUL in either (PLAIN separates with NUL, RFC 4616 §2); for XOAUTH2,
  // control characters (the format separates with \x01).
  static Result<SaslClient> Create(Mechanism mechanism, std::string user, std::string secret);

  SaslClient(SaslClient&& other) noexcept;
  SaslClient& operator=(SaslClient&& other) noexcept;
  SaslClient(const SaslClient&) = delete;
  SaslClient& operator=(const SaslClient&) = delete;
  ~SaslClient();  // overwrites the secret in memory

  Mechanism mechanism() const { return mechanism_; }

  // The AUTH command line (CRLF-terminated). PLAIN and XOAUTH2 carry their response as the initial
  // response (RFC 4954 §4, saves a round trip); LOGIN and CRAM-MD5 wait for a challenge.
  Result<std::string> InitialCommand() const;

  // The line (CRLF-terminated) answering a 334 reply whose text is `challenge` (base64).
  //  - PLAIN: an empty challenge (a server that ignored the initial response) is answered once.
  //  - LOGIN: the prompt decides between user name and password ("Username:" / "Password:",
  //    checked loosely); other prompts are answered in order, user name first.
  //  - CRAM-MD5: the challenge must decode to a non-empty text.
  //  - XOAUTH2: a 334 carries the server's error as base64 JSON
  //    ({"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}); it is kept in
  //    server_error() and answered with an empty line, after which the server sends its 5xx.
  // Errors (kInvalidArgument): a challenge that is not base64, or one more than the mechanism uses.
  Result<std::string> Answer(std::string_view challenge);

  // XOAUTH2: the decoded error the server sent in a 334 challenge, described in words ("status
  // 401, schemes bearer, scope https://mail.google.com/"); empty if none.
  const std::string& server_error() const { return server_error_; }

 private:
  SaslClient(Mechanism mechanism, std::string user, std::string secret)
      : mechanism_(mechanism), user_(std::move(user)), secret_(std::move(secret)) {}
  void Wipe();

  Mechanism mechanism_;
  std::string user_;
  std::string secret_;
  int answers_ = 0;
  bool sent_user_ = false;  // LOGIN
  std::string server_error_;
};

// Computes the CRAM-MD5 response text (before base64): user, a space, and the lowercase hex
// HMAC-MD5 of `challenge` keyed with `password` (RFC 2195 §2).
std::string CramMd5Response(std::string_view user, std::string_view password, std::string_view challenge);

// Describes the JSON object of an XOAUTH2 error challenge in words ("status 401, schemes bearer,
// scope https://..."). Malformed input is described as printable text, cut to 200 octets.
std::string DescribeXoauth2Error(std::string_view json);

// A command line as it may appear in a log. Known commands (EHLO, MAIL, RCPT, DATA, ...) are kept;
// "AUTH <mechanism> <initial response>" becomes "AUTH <mechanism> ****"; every other line — the
// client's answers inside an AUTH exchange, which are base64 secrets — becomes "****". The line
// end is removed.
std::string RedactForLog(std::string_view command_line);

}  // namespace herald::smtp
