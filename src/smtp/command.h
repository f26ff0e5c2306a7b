// SMTP commands: the one place where herald writes command lines (STYLE.md, "Security habits").
// Every builder checks its arguments against the grammar of RFC 5321 §4.1 (and the extension that
// defines the command) and refuses CR, LF and NUL anywhere, so that nothing from a CSV cell or a
// configuration file can end a command early and start another one. Errors (kInvalidArgument) name
// the argument and say what is wrong. Every line returned ends with CRLF. Pure functions,
// thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace herald::smtp {

// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including the CRLF.
inline constexpr std::size_t kMaxCommandLine = 512;
// RFC 4954 §4: AUTH command lines and SASL responses may be up to 12288 octets with the CRLF.
inline constexpr std::size_t kMaxAuthLine = 12288;
// RFC 5321 §4.5.3.1.3: a path is at most 256 octets including '<' and '>'.
inline constexpr std::size_t kMaxPathLength = 256;

// Commands without arguments.
inline constexpr std::string_view kDataCommand = "DATA\r\n";
inline constexpr std::string_view kRsetCommand = "RSET\r\n";
inline constexpr std::string_view kQuitCommand = "QUIT\r\n";
inline constexpr std::string_view kNoopCommand = "NOOP\r\n";
inline constexpr std::string_view kStartTlsCommand = "STARTTLS\r\n";
// RFC 4954 §4: a client cancels an AUTH exchange with a line holding a single '*'.
inline constexpr std::string_view kAuthCancelLine = "*\r\n";

// "EHLO <domain>" / "HELO <domain>". `domain` is a host name in ASCII (IDNs as A-labels, letters,
// digits and '-' in dot-separated labels) or an address literal ("[192.0.2.1]",
// "[IPv6:2001:db8::1]"), RFC 5321 §4.1.1.1.
Result<std::string> EhloCommand(std::string_view domain);
Result<std::string> HeloCommand(std::string_view domain);

// Parameters of MAIL FROM. Set each only when the server announced the extension.
struct MailParameters {
  std::optional<std::uint64_t> size;  // "SIZE=<n>" (RFC 1870): the message size in octets
  bool body_8bitmime = false;         // "BODY=8BITMIME" (RFC 6152)
  bool smtputf8 = false;              // "SMTPUTF8" (RFC 6531): allows UTF-8 in the paths
};

// "MAIL FROM:<reverse-path>[ SIZE=n][ BODY=8BITMIME][ SMTPUTF8]". `reverse_path` is an address as
// "local@domain" without angle brackets, or empty for the null sender "<>". The address must
// follow RFC 5321 §4.1.2 (a dot-string or quoted-string local part, a domain or address literal);
// non-ASCII is allowed only with `smtputf8` (and must be UTF-8).
Result<std::string> MailFromCommand(std::string_view reverse_path, const MailParameters& params = {});

// "RCPT TO:<forward-path>". `forward_path` as for MailFromCommand but never empty; the bare
// "Postmaster" of RFC 5321 §4.1.1.3 is accepted. `smtputf8`: the transaction was opened with
// SMTPUTF8, so UTF-8 is allowed in the address.
Result<std::string> RcptToCommand(std::string_view forward_path, bool smtputf8 = false);

// "AUTH <mechanism>[ <initial-response>]" (RFC 4954 §4). `mechanism` is a SASL mechanism name
// (RFC 4422 §3.1: 1..20 of A-Z, 0-9, '-', '_'; lowercase is uppercased). `initial_response` is
// base64 text; an empty one is sent as "=" as RFC 4954 requires. At most kMaxAuthLine octets.
Result<std::string> AuthCommand(std::string_view mechanism,
                                std::optional<std::string_view> initial_response = std::nullopt);

// A client line of a SASL exchange in answer to a 334 challenge: base64 text (may be empty).
// At most kMaxAuthLine octets.
Result<std::string> AuthResponseLine(std::string_view base64);

}  // namespace herald::smtp
