// Mail addresses: the one strict grammar every address in herald goes through — recipients from
// CSV files, senders and reply-to addresses from task files, patterns in routing rules and
// blacklists. Pure functions and immutable values, thread-safe.
//
// An Address is an RFC 5321 Mailbox (§4.1.2): Local-part "@" (Domain / address-literal), with
// RFC 6531 (SMTPUTF8) UTF-8 local parts and internationalised domains converted to A-labels by
// IDNA2008 (libidn2).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace herald {

struct Address {
  // The local part in its wire form: a dot-string as written, or a quoted-string with its quotes
  // (RFC 5321 §4.1.2). May hold UTF-8 (then needs_smtputf8 is true). ParseAddress writes each
  // mailbox one way: a quoted local part that could be a dot-string loses its quotes ("abc" → abc,
  // RFC 5322 §3.4.1), any other keeps them with only '"' and '\' escaped ("a\b c" → "ab c").
  std::string local_part;
  // The domain as ASCII: lowercased, IDNs as A-labels ("xn--..."), or an address literal such as
  // "[192.0.2.1]" or "[IPv6:2001:db8::1]" (IPv6 in its RFC 5952 form, so one address has one
  // spelling).
  std::string domain;
  // True when the address cannot be written in ASCII (a UTF-8 local part): the SMTP session must
  // use SMTPUTF8 (RFC 6531) and headers carry it as UTF-8 (RFC 6532).
  bool needs_smtputf8 = false;

  // "local@domain" as it goes into MAIL FROM / RCPT TO and headers.
  std::string ToString() const { return local_part + "@" + domain; }

  // The key under which two addresses count as the same recipient: the whole address with ASCII
  // letters lowercased. RFC 5321 §2.4 lets a host treat local parts case-sensitively, but mailbox
  // providers do not, and mailing one person twice is worse than merging "Anna@" and "anna@".
  // Non-ASCII letters are left as they are: no standard defines case folding for UTF-8 local
  // parts, and Unicode folding would merge names that may be different mailboxes (ß and ss).
  std::string DedupKey() const;

  friend bool operator==(const Address&, const Address&) = default;
};

// Parses `text` (surrounding spaces and tabs ignored) as a mailbox. Errors (kInvalidArgument) quote
// the text and say what part is wrong and what was expected ("'anna@exa mple.com': domain
// 'exa mple.com' has a space; expected letters, digits, '-' and '.'").
// Limits of RFC 5321 §4.5.3.1: local part at most 64 octets, domain at most 255, labels at most
// 63 (as A-labels), the whole address at most 254 (a 256-octet path with its angle brackets).
// Stricter than the RFC on purpose: CR, LF and NUL are refused even inside quotes; so are
// single-label domains ("anna@localhost": a typo in a recipient list, not an Internet domain),
// all-digit top-level domains, and invisible Unicode (no-break spaces, bidi overrides, C1
// controls) that pastes into CSV cells. Fast for ASCII: libidn2 is only called for labels with
// non-ASCII characters or an "xn--" prefix.
Result<Address> ParseAddress(std::string_view text);

// An RFC 5322 mailbox for headers: an optional display name and an address, written as
// `Name <local@domain>` or just `local@domain` (From, Reply-To in task files).
struct Mailbox {
  std::string display_name;  // unquoted, UTF-8; empty when none
  Address address;
};

// Parses "Display Name <local@domain>", "\"Quoted, Name\" <local@domain>" or a bare address.
// An unquoted name may not hold RFC 5322 specials other than '.' (the error suggests quoting it);
// its runs of blanks become one space. A quoted name has its quoted pairs resolved. CR, LF, NUL and
// other control characters are refused in the name as in the address.
Result<Mailbox> ParseMailbox(std::string_view text);

// A pattern for routing rules and blacklists:
//   "user@example.com"  that one address (compared by DedupKey)
//   "*@example.com"     every address at example.com
//   "example.com"       the same as "*@example.com"
// Internationalised domains in patterns are converted to A-labels like addresses. A domain pattern
// matches that domain only, not its subdomains; '*' is a wildcard only as the whole local part.
// Matching ignores ASCII case (see Address::DedupKey).
class AddressPattern {
 public:
  static Result<AddressPattern> Parse(std::string_view text);

  bool Matches(const Address& address) const;
  const std::string& text() const { return text_; }  // as written by the user

 private:
  std::string text_;
  std::string key_;       // DedupKey of the address, or the lowercased A-label domain
  bool whole_domain_ = false;
};

// The formal check desktop tools apply to a server address setting: a host name (letters, digits,
// hyphens, dots; IDN converted to A-labels), an IPv4 address, or a bracketed IPv6 literal
// ("[2001:db8::1]"). Returns the host in the form to connect to: lowercase A-labels, or the IPv6
// address without brackets in RFC 5952 form. Unlike address domains, single-label names
// ("exchange01") are accepted: servers on a local network have them. IPv4 numbers with leading
// zeros are refused (some resolvers read them as octal), and so are names that are numbers
// ("0x7f000001", or "¹²³", which IDNA maps to "123"); a port or URL in the setting is an error that
// says so.
Result<std::string> ParseServerHost(std::string_view text);

}  // namespace herald
