// Fuzz target: the address parser (address/address.h) — recipient addresses from CSV cells,
// mailboxes and patterns from task files, server hosts from account files. The input is the text
// given to each of ParseAddress, ParseMailbox, AddressPattern::Parse and ParseServerHost.
//
// Properties, beyond "no crash, leak or undefined behaviour":
// - What is accepted is safe to use: no CR, LF, NUL or other control characters, the RFC 5321
//   §4.5.3.1 size limits, an ASCII lowercase domain, needs_smtputf8 exactly when the local part is
//   not ASCII; IP literals and server hosts that inet_pton reads as the same address, and no host
//   name that the resolver would read as an IPv4 number ("0x7f000001").
// - The canonical form is stable: parsing ToString() gives the same Address, a mailbox written
//   back as "quoted name" <address> gives the same Mailbox, a server host parses to itself.
// - An address matches the patterns made from it (the address, *@domain, the domain), and the
//   header writer accepts every mailbox the parser accepts.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "address/address.h"
#include "core/text.h"
#include "fuzz_check.h"
#include "mime/internal/header_writer.h"

namespace herald {
namespace {

using fuzz::Escaped;

// C0 controls and DEL; a tab counts unless `tab_allowed` (RFC 5322 allows it in a quoted display
// name as whitespace; RFC 5321 allows none in an address).
bool HasControl(std::string_view text, bool tab_allowed = false) {
  for (unsigned char c : text) {
    if ((c < 0x20 && !(tab_allowed && c == '\t')) || c == 0x7F) return true;
  }
  return false;
}

// inet_pton's reading of `text` as an address of `family`; empty when it refuses.
std::string Packed(int family, const std::string& text) {
  unsigned char bytes[16];
  if (inet_pton(family, text.c_str(), bytes) != 1) return {};
  return std::string(reinterpret_cast<char*>(bytes), family == AF_INET ? 4 : 16);
}

void CheckDomain(std::string_view domain, std::string_view shown) {
  FUZZ_CHECK(!domain.empty() && domain.size() <= 255, "domain length: " + Escaped(shown));
  if (domain.front() == '[') {
    FUZZ_CHECK(domain.back() == ']', "unclosed address literal: " + Escaped(shown));
    const std::string inner(domain.substr(1, domain.size() - 2));
    if (inner.starts_with("IPv6:")) {
      const std::string ip = inner.substr(5);
      FUZZ_CHECK(!Packed(AF_INET6, ip).empty(), "inet_pton refuses the IPv6 literal of " + Escaped(shown));
    } else {
      FUZZ_CHECK(!Packed(AF_INET, inner).empty(), "inet_pton refuses the IPv4 literal of " + Escaped(shown));
    }
    return;
  }
  std::size_t label = 0;
  for (char c : domain) {
    FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.',
               "domain is not lowercase LDH ASCII: " + Escaped(shown));
    label = c == '.' ? 0 : label + 1;
    FUZZ_CHECK(label <= 63, "a label longer than 63 octets: " + Escaped(shown));
  }
}

void CheckAddress(const Address& address) {
  const std::string text = address.ToString();
  FUZZ_CHECK(!HasControl(text) && IsValidUtf8(text), "control character or bad UTF-8 in " + Escaped(text));
  FUZZ_CHECK(!address.local_part.empty() && address.local_part.size() <= 64, "local part length: " + Escaped(text));
  FUZZ_CHECK(text.size() <= 254, "address longer than 254 octets: " + Escaped(text));
  FUZZ_CHECK(address.needs_smtputf8 == !IsAscii(address.local_part), "needs_smtputf8 is wrong for " + Escaped(text));
  CheckDomain(address.domain, text);

  Result<Address> again = ParseAddress(text);
  FUZZ_CHECK(again.ok(), "the canonical form does not parse: " + Escaped(text) + ": " +
                             (again.ok() ? std::string() : again.status().message()));
  FUZZ_CHECK(*again == address, "the canonical form parses to another address: " + Escaped(text));
  std::string key = text;
  for (char& c : key) c = AsciiLower(c);
  FUZZ_CHECK(address.DedupKey() == key, "DedupKey is not the ASCII-lowercased address");

  for (const std::string& pattern_text : {text, "*@" + address.domain, address.domain}) {
    Result<AddressPattern> pattern = AddressPattern::Parse(pattern_text);
    // An address whose local part holds '*' cannot be a pattern on its own (it would read as a
    // mistaken wildcard); every other one can.
    if (!pattern.ok() && pattern_text == text && address.local_part.find('*') != std::string::npos) continue;
    FUZZ_CHECK(pattern.ok(), "pattern " + Escaped(pattern_text) + " refused: " +
                                 (pattern.ok() ? std::string() : pattern.status().message()));
    FUZZ_CHECK(pattern->Matches(address), "pattern " + Escaped(pattern_text) + " does not match " + Escaped(text));
  }
}

std::string QuotedName(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void CheckMailbox(const Mailbox& mailbox) {
  CheckAddress(mailbox.address);
  FUZZ_CHECK(!HasControl(mailbox.display_name, /*tab_allowed=*/true) && IsValidUtf8(mailbox.display_name),
             "control character or bad UTF-8 in the display name " + Escaped(mailbox.display_name));
  std::string header;
  Status written = mime_internal::AppendMailboxField("From", mailbox.display_name, mailbox.address, header);
  FUZZ_CHECK(written.ok(), "the header writer refuses a parsed mailbox: " + written.message());
  if (mailbox.display_name.empty()) return;
  const std::string text = QuotedName(mailbox.display_name) + " <" + mailbox.address.ToString() + ">";
  Result<Mailbox> again = ParseMailbox(text);
  FUZZ_CHECK(again.ok() && again->display_name == mailbox.display_name && again->address == mailbox.address,
             "the mailbox written back parses differently: " + Escaped(text));
}

void CheckServerHost(std::string_view input, const std::string& host) {
  FUZZ_CHECK(!host.empty() && !HasControl(host) && IsAscii(host), "server host " + Escaped(host));
  if (host.find(':') != std::string::npos) {
    const std::string inner(TrimBlanks(input).substr(1, TrimBlanks(input).size() - 2));
    FUZZ_CHECK(!Packed(AF_INET6, host).empty() && Packed(AF_INET6, host) == Packed(AF_INET6, inner),
               "the IPv6 host " + Escaped(host) + " is not inet_pton's reading of " + Escaped(input));
    Result<std::string> again = ParseServerHost("[" + host + "]");
    FUZZ_CHECK(again.ok() && *again == host, "the IPv6 host does not parse to itself: " + Escaped(host));
    return;
  }
  for (char c : host) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "server host not lowercase: " + Escaped(host));
  // A name the resolver reads as an IPv4 number (inet_aton, as getaddrinfo does) must be the
  // dotted quad itself, which inet_pton reads as the same address.
  if (in_addr number; inet_aton(host.c_str(), &number) != 0) {
    FUZZ_CHECK(Packed(AF_INET, host) == std::string(reinterpret_cast<const char*>(&number), 4),
               "the server host " + Escaped(host) + " is read as an IPv4 number but is no dotted quad");
  }
  Result<std::string> again = ParseServerHost(host);
  FUZZ_CHECK(again.ok() && *again == host, "the server host does not parse to itself: " + Escaped(host));
}

}  // namespace
}  // namespace herald

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (Result<Address> address = ParseAddress(text); address.ok()) CheckAddress(*address);
  if (Result<Mailbox> mailbox = ParseMailbox(text); mailbox.ok()) CheckMailbox(*mailbox);
  if (Result<AddressPattern> pattern = AddressPattern::Parse(text); pattern.ok()) {
    FUZZ_CHECK(pattern->text() == TrimBlanks(text), "the pattern's text is not the trimmed input");
  }
  if (Result<std::string> host = ParseServerHost(text); host.ok()) CheckServerHost(text, *host);
  return 0;
}
