#include "address/address.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

#include "address/internal/idna.h"
#include "core/text.h"

namespace herald {
namespace {

// RFC 5321 §4.5.3.1 size limits, in octets of the form that goes on the wire.
constexpr std::size_t kMaxLocalPart = 64;  // §4.5.3.1.1
constexpr std::size_t kMaxDomain = 255;    // §4.5.3.1.2
constexpr std::size_t kMaxLabel = 63;      // RFC 1035 §2.3.4, which §4.5.3.1.2 builds on
// §4.5.3.1.3: a path is at most 256 octets including "<" and ">", which leaves 254 for the address.
constexpr std::size_t kMaxAddress = 254;

constexpr std::string_view kExpectAddress = "expected local-part@domain";
constexpr std::string_view kExpectLocalChars =
    "expected letters, digits, dots and !#$%&'*+-/=?^_`{|}~ (anything else only inside a "
    "local part written in double quotes)";
constexpr std::string_view kExpectDomainChars = "expected letters, digits, '-' and '.'";
constexpr std::string_view kExpectLiteral = "expected [192.0.2.1] or [IPv6:2001:db8::1]";
constexpr std::string_view kExpectIpv4 = "expected four numbers from 0 to 255 separated by dots";
constexpr std::string_view kExpectHost =
    "expected a host name (smtp.example.com), an IPv4 address (192.0.2.1) or an IPv6 address in "
    "brackets ([2001:db8::1])";
constexpr std::string_view kExpectPattern = "expected user@example.com, *@example.com or example.com";

// Character classes of the RFC 5321 §4.1.2 grammar, for ASCII bytes.
enum CharClass : unsigned char {
  kAtext = 1,  // RFC 5322 §3.2.3 atext: ALPHA / DIGIT / "!#$%&'*+-/=?^_`{|}~"
  kLdh = 2,    // Let-dig and "-" of sub-domain: ALPHA / DIGIT / "-"
};

constexpr std::array<unsigned char, 256> MakeCharClasses() {
  std::array<unsigned char, 256> table{};
  for (int c = 'a'; c <= 'z'; ++c) table[c] = kAtext | kLdh;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = kAtext | kLdh;
  for (int c = '0'; c <= '9'; ++c) table[c] = kAtext | kLdh;
  for (char c : std::string_view("!#$%&'*+-/=?^_`{|}~")) table[static_cast<unsigned char>(c)] |= kAtext;
  table['-'] |= kLdh;
  return table;
}
constexpr std::array<unsigned char, 256> kCharClasses = MakeCharClasses();

bool Is(unsigned char c, CharClass cls) { return (kCharClasses[c] & cls) != 0; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "'anna@@example.com': more than one '@'; expected local-part@domain"
Status Invalid(std::string_view text, std::string_view problem) {
  return InvalidArgument(fmt::format("'{}': {}", Printable(text), problem));
}

// Names an ASCII byte for an error message so that invisible ones can be seen.
std::string DescribeByte(unsigned char c) {
  if (c == ' ') return "a space";
  if (c == '\t') return "a tab";
  if (c < 0x20 || c == 0x7F) return fmt::format("control character \\x{:02X}", c);
  return fmt::format("'{}'", static_cast<char>(c));
}

// Decodes the code point that starts at text[i]; `text` must be valid UTF-8 (checked on entry).
char32_t DecodeUtf8(std::string_view text, std::size_t i, std::size_t* length) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) {
    *length = 1;
    return lead;
  }
  if (lead < 0xE0) {
    *length = 2;
    return (char32_t{lead & 0x1Fu} << 6) | (byte(1) & 0x3Fu);
  }
  if (lead < 0xF0) {
    *length = 3;
    return (char32_t{lead & 0x0Fu} << 12) | ((byte(1) & 0x3Fu) << 6) | (byte(2) & 0x3Fu);
  }
  *length = 4;
  return (char32_t{lead & 0x07u} << 18) | ((byte(1) & 0x3Fu) << 12) | ((byte(2) & 0x3Fu) << 6) |
         (byte(3) & 0x3Fu);
}

// Non-ASCII code points herald refuses in addresses although RFC 6531 §3.3 admits any UTF-8:
// C1 controls (RFC 5198 §2 excludes them from text on the wire), Unicode spaces, invisible format
// characters and bidirectional overrides. In a CSV cell they are debris pasted from web pages or
// word processors, never part of a real mailbox name, and they are invisible in every error
// message and user interface (bidi overrides can even make an address display as another one).
// ZWNJ and ZWJ (U+200C, U+200D) stay allowed: some scripts need them in words.
bool IsInvisibleOrControl(char32_t cp) {
  return (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x061C || cp == 0x1680 || cp == 0x180E ||
         (cp >= 0x2000 && cp <= 0x200B) || cp == 0x200E || cp == 0x200F ||
         (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 ||
         cp == 0xFEFF;
}

std::string DescribeCodePoint(char32_t cp) {
  return fmt::format("U+{:04X} (an invisible or control character, often pasted by accident)",
                     static_cast<std::uint32_t>(cp));
}

// RFC 5321 §4.1.2 Dot-string = Atom *("." Atom), Atom = 1*atext, with RFC 6531 §3.3's
// atext =/ UTF8-non-ascii. Invisible characters must have been ruled out before.
bool IsDotString(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '.') {
      if (s[i + 1] == '.') return false;
    } else if (c < 0x80 && !Is(c, kAtext)) {
      return false;
    }
  }
  return true;
}

// Checks the unquoted local part `local` (non-empty) of `text` as a Dot-string and sets *utf8 if it
// holds non-ASCII characters.
Status CheckDotString(std::string_view text, std::string_view local, bool* utf8) {
  for (std::size_t i = 0; i < local.size();) {
    const auto c = static_cast<unsigned char>(local[i]);
    if (c >= 0x80) {
      std::size_t length;
      const char32_t cp = DecodeUtf8(local, i, &length);
      if (IsInvisibleOrControl(cp)) {
        return Invalid(text, fmt::format("local part '{}' has {}", Printable(local), DescribeCodePoint(cp)));
      }
      *utf8 = true;
      i += length;
      continue;
    }
    if (c == '.') {
      const char* problem = i == 0                      ? "starts with '.'"
                            : i + 1 == local.size()     ? "ends with '.'"
                            : local[i + 1] == '.'       ? "has '..'"
                                                        : nullptr;
      if (problem != nullptr) {
        return Invalid(text, fmt::format("local part '{}' {}; a dot may only stand between two other "
                                         "characters (or write the local part in double quotes)",
                                         Printable(local), problem));
      }
    } else if (c == '\\') {
      // RFC 3696 §3 shows "Abc\@def@example.com", but RFC 5321 §4.1.2 allows quoted pairs only
      // inside a Quoted-string (RFC 3696 errata 246).
      return Invalid(text, fmt::format("local part '{}' has a backslash outside double quotes; {}",
                                       Printable(local), kExpectLocalChars));
    } else if (c == '"') {
      return Invalid(text, fmt::format("local part '{}' has '\"'; a quoted local part must be quoted "
                                       "as a whole, as in \"john doe\"@example.com",
                                       Printable(local)));
    } else if (!Is(c, kAtext)) {
      return Invalid(text, fmt::format("local part '{}' has {}; {}", Printable(local), DescribeByte(c),
                                       kExpectLocalChars));
    }
    ++i;
  }
  return Status::Ok();
}

// Parses the RFC 5321 §4.1.2 Quoted-string at the start of `text`:
//   Quoted-string = DQUOTE *QcontentSMTP DQUOTE
//   qtextSMTP = %d32-33 / %d35-91 / %d93-126, quoted-pairSMTP = %d92 %d32-126
// with RFC 6531 §3.3's qtextSMTP =/ UTF8-non-ascii. Stores the content without quotes and escapes
// in *content and the index just past the closing quote in *end.
Status ParseQuotedLocalPart(std::string_view text, std::string* content, std::size_t* end, bool* utf8) {
  for (std::size_t i = 1; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"') {
      *end = i + 1;
      return Status::Ok();
    }
    if (c == '\\') {
      if (i + 1 < text.size()) {
        const auto escaped = static_cast<unsigned char>(text[i + 1]);
        if (escaped < 0x20 || escaped > 0x7E) {
          return Invalid(text, fmt::format("quoted local part escapes {}; a backslash may only escape "
                                           "printable ASCII characters",
                                           escaped < 0x80 ? DescribeByte(escaped) : "a non-ASCII character"));
        }
        content->push_back(static_cast<char>(escaped));
      }
      i += 2;
      continue;
    }
    if (c >= 0x80) {
      std::size_t length;
      const char32_t cp = DecodeUtf8(text, i, &length);
      if (IsInvisibleOrControl(cp)) {
        return Invalid(text, fmt::format("quoted local part has {}", DescribeCodePoint(cp)));
      }
      content->append(text.substr(i, length));
      *utf8 = true;
      i += length;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      return Invalid(text, fmt::format("quoted local part has {}; expected printable characters",
                                       DescribeByte(c)));
    }
    content->push_back(static_cast<char>(c));
    ++i;
  }
  return Invalid(text, "the quoted local part has no closing '\"'; expected \"local part\"@domain");
}

// The one wire spelling of a local part whose content (unquoted, unescaped) is `content`.
// RFC 5322 §3.4.1: a local part that can be a dot-atom SHOULD be written as one, and its quoted
// form names the same mailbox; RFC 5321 §4.1.2 likewise advises against the Quoted-string form.
// So `"abc"` becomes `abc`, and anything else is quoted with only the backslashes it needs (before
// '"' and '\'). One spelling per mailbox keeps DedupKey and the store's keys honest.
std::string CanonicalLocalPart(std::string_view content) {
  if (IsDotString(content)) return std::string(content);
  std::string quoted;
  quoted.reserve(content.size() + 2);
  quoted.push_back('"');
  for (char c : content) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

// RFC 5321 §4.1.3 IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT up to 255. Leading
// zeros ("010") are refused as well: some programs read them as octal. Returns what is wrong, or an
// empty string.
std::string Ipv4Problem(std::string_view text) {
  int numbers = 0;
  std::size_t i = 0;
  while (true) {
    const std::size_t start = i;
    while (i < text.size() && IsDigit(text[i])) ++i;
    const std::string_view number = text.substr(start, i - start);
    if (number.empty() || number.size() > 3) return std::string(kExpectIpv4);
    if (number.size() > 1 && number[0] == '0') {
      return fmt::format("'{}' has a leading zero, which some programs read as octal; {}", number, kExpectIpv4);
    }
    int value = 0;
    for (char c : number) value = value * 10 + (c - '0');
    if (value > 255) return fmt::format("'{}' is above 255; {}", number, kExpectIpv4);
    ++numbers;
    if (i == text.size()) break;
    if (text[i] != '.' || numbers == 4) return std::string(kExpectIpv4);
    ++i;
  }
  if (numbers != 4) return std::string(kExpectIpv4);
  return {};
}

// Checks an IPv6 address (RFC 4291 §2.2 text form, no zone index) with inet_pton and stores its
// RFC 5952 form (inet_ntop) in *canonical. With `rfc5321` also applies RFC 5321 §4.1.3's IPv6-comp
// rule that "::" stands for at least two zero groups, i.e. at most six groups besides it (an
// embedded IPv4 address counts as two). Returns what is wrong, or an empty string.
std::string Ipv6Problem(std::string_view text, bool rfc5321, std::string* canonical) {
  char buffer[INET6_ADDRSTRLEN];
  in6_addr address;
  if (text.empty() || text.size() >= sizeof buffer) {
    return fmt::format("'{}' is not an IPv6 address", Printable(text));
  }
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  if (inet_pton(AF_INET6, buffer, &address) != 1) {
    return fmt::format("'{}' is not an IPv6 address", Printable(text));
  }
  if (rfc5321 && text.find("::") != std::string_view::npos) {
    int groups = 0;
    for (std::size_t start = 0; start <= text.size();) {
      std::size_t colon = text.find(':', start);
      if (colon == std::string_view::npos) colon = text.size();
      const std::string_view group = text.substr(start, colon - start);
      if (!group.empty()) groups += group.find('.') == std::string_view::npos ? 1 : 2;
      start = colon + 1;
    }
    if (groups > 6) {
      return fmt::format("'{}' uses '::' for a single zero group, which RFC 5321 does not allow; "
                         "write that group as 0",
                         Printable(text));
    }
  }
  if (inet_ntop(AF_INET6, &address, buffer, sizeof buffer) == nullptr) {
    return fmt::format("'{}' is not an IPv6 address", Printable(text));
  }
  canonical->assign(buffer);
  return {};
}

// RFC 5321 §4.1.3 address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
// General-address-literal ) "]". General-address-literal needs a tag registered with IANA, and
// none but "IPv6" is, so other tags are refused. IPv6 literals are stored in RFC 5952 form behind
// the tag spelled "IPv6:", so that one address has one spelling.
Status ParseAddressLiteral(std::string_view text, std::string_view literal, std::string* out) {
  if (literal.size() < 2 || literal.back() != ']') {
    return Invalid(text, fmt::format("address literal '{}' has no closing ']'; {}", Printable(literal),
                                     kExpectLiteral));
  }
  const std::string_view inner = literal.substr(1, literal.size() - 2);
  if (inner.size() >= 5 && EqualsIgnoreCase(inner.substr(0, 5), "IPv6:")) {
    std::string canonical;
    if (std::string problem = Ipv6Problem(inner.substr(5), /*rfc5321=*/true, &canonical); !problem.empty()) {
      return Invalid(text, fmt::format("address literal '{}': {}; {}", Printable(literal), problem, kExpectLiteral));
    }
    *out = fmt::format("[IPv6:{}]", canonical);
    return Status::Ok();
  }
  if (const std::size_t colon = inner.find(':'); colon != std::string_view::npos) {
    if (std::string canonical; Ipv6Problem(inner, /*rfc5321=*/false, &canonical).empty()) {
      return Invalid(text, fmt::format("address literal '{}' lacks the tag of an IPv6 address; expected "
                                       "[IPv6:{}]",
                                       Printable(literal), Printable(inner)));
    }
    return Invalid(text, fmt::format("address literal '{}' has the unknown tag '{}'; {}", Printable(literal),
                                     Printable(inner.substr(0, colon)), kExpectLiteral));
  }
  if (std::string problem = Ipv4Problem(inner); !problem.empty()) {
    return Invalid(text, fmt::format("address literal '{}': {}", Printable(literal), problem));
  }
  out->assign(literal);
  return Status::Ok();
}

struct DomainRules {
  std::string_view noun;         // "domain" or "host name", for messages
  bool allow_literal;            // "[192.0.2.1]", "[IPv6:...]"
  bool allow_single_label;       // "localhost"
};
constexpr DomainRules kAddressDomain{"domain", /*allow_literal=*/true, /*allow_single_label=*/false};
constexpr DomainRules kHostName{"host name", /*allow_literal=*/false, /*allow_single_label=*/true};

bool HasAcePrefix(std::string_view label) {
  return label.size() >= 4 && EqualsIgnoreCase(label.substr(0, 4), "xn--");
}

// Checks labels produced by IDNA conversion against RFC 5321's sub-domain = Let-dig [Ldh-str].
// UTS #46 mapping can turn characters into '.', '_' or ' ', or map a label to nothing.
std::string ALabelsProblem(std::string_view alabels) {
  std::size_t start = 0;
  while (true) {
    std::size_t dot = alabels.find('.', start);
    if (dot == std::string_view::npos) dot = alabels.size();
    const std::string_view label = alabels.substr(start, dot - start);
    if (label.empty()) return "has an empty label";
    if (label.size() > kMaxLabel) {
      return fmt::format("has the label '{}', which is {} bytes long; at most {} are allowed", label,
                         label.size(), kMaxLabel);
    }
    if (label.front() == '-' || label.back() == '-') {
      return fmt::format("has the label '{}', which starts or ends with '-'", label);
    }
    for (char c : label) {
      if (!Is(static_cast<unsigned char>(c), kLdh)) {
        return fmt::format("has {}; {}", DescribeByte(static_cast<unsigned char>(c)), kExpectDomainChars);
      }
    }
    if (dot == alabels.size()) return {};
    start = dot + 1;
  }
}

// Appends one label of `domain` to *out: ASCII labels lowercased, U-labels (and "xn--" labels, to
// validate them) through IDNA2008. ASCII labels never reach libidn2, which keeps the common case
// fast and makes an ASCII label's validity independent of its neighbours.
Status AppendLabel(std::string_view text, std::string_view domain, std::string_view label,
                   const DomainRules& rules, std::string* out) {
  bool ascii = true;
  for (std::size_t i = 0; i < label.size();) {
    const auto c = static_cast<unsigned char>(label[i]);
    if (c >= 0x80) {
      std::size_t length;
      const char32_t cp = DecodeUtf8(label, i, &length);
      if (IsInvisibleOrControl(cp)) {
        return Invalid(text, fmt::format("{} '{}' has {}", rules.noun, Printable(domain), DescribeCodePoint(cp)));
      }
      ascii = false;
      i += length;
      continue;
    }
    if (!Is(c, kLdh)) {
      return Invalid(text, fmt::format("{} '{}' has {}; {}", rules.noun, Printable(domain), DescribeByte(c),
                                       kExpectDomainChars));
    }
    ++i;
  }
  // RFC 5321 §4.1.2: sub-domain = Let-dig [Ldh-str], Ldh-str ending in Let-dig.
  if (label.front() == '-' || label.back() == '-') {
    return Invalid(text, fmt::format("{} label '{}' {} with '-'; a label must begin and end with a letter "
                                     "or digit",
                                     rules.noun, Printable(label), label.front() == '-' ? "starts" : "ends"));
  }
  if (ascii && !HasAcePrefix(label)) {
    if (label.size() > kMaxLabel) {
      return Invalid(text, fmt::format("{} label '{}' is {} bytes long; at most {} are allowed", rules.noun,
                                       Printable(label, 20), label.size(), kMaxLabel));
    }
    for (char c : label) out->push_back(AsciiLower(c));
    return Status::Ok();
  }
  Result<std::string> alabels = address_internal::ToALabels(label);
  if (!alabels.ok()) {
    // An ASCII label here is an "xn--" label: it claims to be an A-label and must decode as one.
    return Invalid(text, fmt::format("{} label '{}' is not a valid {}: {}", rules.noun, Printable(label),
                                     ascii ? "A-label ('xn--' starts an encoded internationalised label)"
                                           : "internationalised domain name",
                                     alabels.status().message()));
  }
  if (std::string problem = ALabelsProblem(*alabels); !problem.empty()) {
    return Invalid(text, fmt::format("{} label '{}' becomes '{}' as an A-label, which {}", rules.noun,
                                     Printable(label), Printable(*alabels), problem));
  }
  out->append(*alabels);
  return Status::Ok();
}

// Parses the Domain (or address-literal) `domain` of `text` into *out: lowercase ASCII, IDNs as
// A-labels (RFC 5321 §4.1.2 Domain, RFC 6531 §3.3 sub-domain =/ U-label).
Status ParseDomain(std::string_view text, std::string_view domain, const DomainRules& rules, std::string* out) {
  out->clear();
  if (rules.allow_literal && domain.front() == '[') return ParseAddressLiteral(text, domain, out);
  out->reserve(domain.size());
  bool converted = false;
  for (std::size_t start = 0;;) {
    const std::size_t dot = domain.find('.', start);
    const std::string_view label =
        domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) {
      const char* where = start == 0                     ? "starts with '.'"
                          : dot == std::string_view::npos ? "ends with '.'"
                                                          : "has '..'";
      return Invalid(text, fmt::format("{} '{}' {}; expected labels separated by single dots, as in "
                                       "example.com",
                                       rules.noun, Printable(domain), where));
    }
    HERALD_RETURN_IF_ERROR(AppendLabel(text, domain, label, rules, out));
    converted = converted || !IsAscii(label) || HasAcePrefix(label);
    if (dot == std::string_view::npos) break;
    out->push_back('.');
    start = dot + 1;
  }
  const std::string_view ascii = *out;
  const std::string_view as_sent = converted ? " as sent (with A-labels)" : "";
  if (ascii.size() > kMaxDomain) {
    return Invalid(text, fmt::format("{} is {} bytes long{}; at most {} are allowed", rules.noun, ascii.size(),
                                     as_sent, kMaxDomain));
  }
  const std::size_t last_dot = ascii.rfind('.');
  if (last_dot == std::string_view::npos) {
    // The grammar allows a one-label Domain, but mail to dotless domains does not work on the
    // Internet (RFC 7085; ICANN bars new top-level domains from MX records at their apex), and in
    // a recipient list "anna@gmailcom" is a typo. herald refuses it rather than let the resolver's
    // search list turn it into some local host. Address literals are not affected.
    if (!rules.allow_single_label) {
      return Invalid(text, fmt::format("{} '{}' has no dot; expected a domain such as example.com",
                                       rules.noun, Printable(domain)));
    }
    return Status::Ok();
  }
  const std::string_view tld = ascii.substr(last_dot + 1);
  bool numeric_tld = true;
  for (char c : tld) numeric_tld = numeric_tld && IsDigit(c);
  if (numeric_tld) {
    // RFC 3696 §2: top-level domain names are never all-numeric. "1.2.3.4" is an IP address.
    if (rules.allow_literal && Ipv4Problem(ascii).empty()) {
      return Invalid(text, fmt::format("{} '{}' is an IP address; expected a name, or the address in "
                                       "brackets: [{}]",
                                       rules.noun, Printable(domain), ascii));
    }
    return Invalid(text, fmt::format("{} '{}' ends in the all-digit label '{}'; expected a top-level "
                                     "domain such as com or de",
                                     rules.noun, Printable(domain), tld));
  }
  return Status::Ok();
}

// Rejects what can never be part of one mailbox or host: bytes that are not UTF-8 (a CSV file
// saved as Latin-1), and CR, LF or NUL, which would end an SMTP command or header line.
Status CheckText(std::string_view text) {
  if (const std::size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return Invalid(text, fmt::format("byte {} is not UTF-8; expected UTF-8 text (save the file as UTF-8)",
                                     bad + 1));
  }
  if (HasLineBreakOrNul(text)) return Invalid(text, "has a line break or NUL; expected a single line");
  return Status::Ok();
}

// Checks an unquoted display name (an RFC 5322 §3.2.5 phrase of atoms, with the obsolete '.'
// allowed since "Dr. Anna Smith" is everywhere) and appends it to *out with runs of blanks made
// one space.
Status AppendUnquotedName(std::string_view text, std::string_view name, std::string* out) {
  bool blank = false;
  for (std::size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c == ' ' || c == '\t') {
      blank = true;
      ++i;
      continue;
    }
    if (blank) out->push_back(' ');
    blank = false;
    if (c >= 0x80) {
      std::size_t length;
      const char32_t cp = DecodeUtf8(name, i, &length);
      // C1 controls (RFC 5198 §2) and the Unicode line and paragraph separators.
      if (cp <= 0x9F || cp == 0x2028 || cp == 0x2029) {
        return Invalid(text, fmt::format("display name has U+{:04X}, a control character; expected text",
                                         static_cast<std::uint32_t>(cp)));
      }
      out->append(name.substr(i, length));
      i += length;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      return Invalid(text, fmt::format("display name has {}; expected text", DescribeByte(c)));
    }
    // RFC 5322 §3.2.3 specials other than '.': only inside a quoted-string.
    if (std::string_view("()<>[]:;@\\,\"").find(static_cast<char>(c)) != std::string_view::npos) {
      return Invalid(text, fmt::format("display name '{}' has {}; put the name in double quotes, as in "
                                       "\"Smith, Anna\" <anna@example.com>",
                                       Printable(name), DescribeByte(c)));
    }
    out->push_back(static_cast<char>(c));
    ++i;
  }
  return Status::Ok();
}

// Parses the RFC 5322 §3.2.4 quoted-string display name at the start of `text` into *out (quotes
// removed, quoted pairs resolved); sets *end to the index just past the closing quote.
Status ParseQuotedName(std::string_view text, std::string* out, std::size_t* end) {
  for (std::size_t i = 1; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"') {
      *end = i + 1;
      return Status::Ok();
    }
    if (c == '\\') {
      // RFC 5322 §3.2.1 quoted-pair: the next character stands for itself. Only '"' and '\' need
      // taking here; any other is checked and taken by the next round like unescaped text.
      ++i;
      if (i < text.size() && (text[i] == '"' || text[i] == '\\')) out->push_back(text[i++]);
      continue;
    }
    if (c >= 0x80) {
      std::size_t length;
      const char32_t cp = DecodeUtf8(text, i, &length);
      if (cp <= 0x9F || cp == 0x2028 || cp == 0x2029) {
        return Invalid(text, fmt::format("display name has U+{:04X}, a control character; expected text",
                                         static_cast<std::uint32_t>(cp)));
      }
      out->append(text.substr(i, length));
      i += length;
      continue;
    }
    if ((c < 0x20 && c != '\t') || c == 0x7F) {
      return Invalid(text, fmt::format("display name has {}; expected text", DescribeByte(c)));
    }
    out->push_back(static_cast<char>(c));
    ++i;
  }
  return Invalid(text, "the quoted display name has no closing '\"'; expected \"Name\" <local-part@domain>");
}

// The index of the '>' that closes the angle-addr opened at text[open], skipping a quoted local
// part (which may hold '>'), or npos.
std::size_t FindAngleClose(std::string_view text, std::size_t open) {
  std::size_t i = text.find_first_not_of(" \t", open + 1);
  if (i != std::string_view::npos && text[i] == '"') {
    for (++i; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\') ++i;
    }
    if (i >= text.size()) return text.find('>', open);  // unclosed: ParseAddress will say so
  }
  return text.find('>', i == std::string_view::npos ? open : i);
}

}  // namespace

std::string Address::DedupKey() const {
  // ASCII letters only: no standard defines case-insensitivity for UTF-8 local parts (RFC 6530
  // leaves the local part to the receiving host), and Unicode case folding would merge mailboxes
  // that may differ (ß and ss fold together). Quoted local parts need nothing extra here:
  // ParseAddress already wrote them in their one canonical spelling.
  std::string key;
  key.reserve(local_part.size() + 1 + domain.size());
  for (char c : local_part) key.push_back(AsciiLower(c));
  key.push_back('@');
  for (char c : domain) key.push_back(AsciiLower(c));
  return key;
}

Result<Address> ParseAddress(std::string_view input) {
  const std::string_view text = TrimBlanks(input);
  if (text.empty()) return InvalidArgument(fmt::format("the address is empty; {}", kExpectAddress));
  HERALD_RETURN_IF_ERROR(CheckText(text));
  if (text.front() == '<' || text.back() == '>') {
    return Invalid(text, "angle brackets belong to a mailbox (Name <local-part@domain>); expected the bare "
                         "local-part@domain");
  }

  Address address;
  std::size_t at = 0;
  if (text.front() == '"') {
    std::string content;
    HERALD_RETURN_IF_ERROR(ParseQuotedLocalPart(text, &content, &at, &address.needs_smtputf8));
    if (at == text.size()) return Invalid(text, fmt::format("no '@' after the quoted local part; {}", kExpectAddress));
    if (text[at] != '@') {
      return Invalid(text, fmt::format("{} after the closing '\"'; expected '@' right after a quoted local part",
                                       DescribeByte(static_cast<unsigned char>(text[at]))));
    }
    if (content.empty()) return Invalid(text, fmt::format("the local part is empty; {}", kExpectAddress));
    address.local_part = CanonicalLocalPart(content);
  } else {
    at = text.find('@');
    if (at == std::string_view::npos) return Invalid(text, fmt::format("no '@'; {}", kExpectAddress));
    if (at == 0) return Invalid(text, fmt::format("nothing before '@'; {}", kExpectAddress));
    const std::string_view local = text.substr(0, at);
    HERALD_RETURN_IF_ERROR(CheckDotString(text, local, &address.needs_smtputf8));
    address.local_part.assign(local);
  }
  if (address.local_part.size() > kMaxLocalPart) {
    return Invalid(text, fmt::format("the local part is {} bytes long; at most {} are allowed",
                                     address.local_part.size(), kMaxLocalPart));
  }

  const std::string_view domain = text.substr(at + 1);
  if (domain.find('@') != std::string_view::npos) {
    return Invalid(text, fmt::format("more than one '@'; {}", kExpectAddress));
  }
  if (domain.empty()) return Invalid(text, "nothing after '@'; expected a domain such as example.com");
  HERALD_RETURN_IF_ERROR(ParseDomain(text, domain, kAddressDomain, &address.domain));

  const std::size_t length = address.local_part.size() + 1 + address.domain.size();
  if (length > kMaxAddress) {
    return Invalid(text, fmt::format("the address is {} bytes long; at most {} fit in an SMTP command",
                                     length, kMaxAddress));
  }
  return address;
}

Result<Mailbox> ParseMailbox(std::string_view input) {
  const std::string_view text = TrimBlanks(input);
  if (text.empty()) {
    return InvalidArgument("the mailbox is empty; expected Name <local-part@domain> or local-part@domain");
  }
  HERALD_RETURN_IF_ERROR(CheckText(text));

  Mailbox mailbox;
  std::size_t open;  // index of the '<' of the angle-addr
  if (text.front() == '"') {
    std::size_t end = 0;
    HERALD_RETURN_IF_ERROR(ParseQuotedName(text, &mailbox.display_name, &end));
    if (end < text.size() && text[end] == '@') {
      // Not a display name but a bare address with a quoted local part: "Fred Bloggs"@example.com.
      mailbox.display_name.clear();
      Result<Address> address = ParseAddress(text);
      if (!address.ok()) return address.status();
      mailbox.address = std::move(address).value();
      return mailbox;
    }
    open = text.find_first_not_of(" \t", end);
    if (open == std::string_view::npos || text[open] != '<') {
      return Invalid(text, "expected <local-part@domain> after the quoted display name");
    }
  } else {
    open = text.find('<');
    if (open == std::string_view::npos) {
      if (text.find('>') != std::string_view::npos) {
        return Invalid(text, "has '>' without '<'; expected Name <local-part@domain> or local-part@domain");
      }
      Result<Address> address = ParseAddress(text);
      if (!address.ok()) return address.status();
      mailbox.address = std::move(address).value();
      return mailbox;
    }
    HERALD_RETURN_IF_ERROR(AppendUnquotedName(text, TrimBlanks(text.substr(0, open)), &mailbox.display_name));
  }

  const std::size_t close = FindAngleClose(text, open);
  if (close == std::string_view::npos) {
    return Invalid(text, "has '<' without '>'; expected Name <local-part@domain>");
  }
  if (close + 1 != text.size()) {
    return Invalid(text, "has text after '>'; expected one Name <local-part@domain> with nothing after it");
  }
  const std::string_view inner = text.substr(open + 1, close - open - 1);
  if (TrimBlanks(inner).empty()) {
    return Invalid(text, "nothing between '<' and '>'; expected Name <local-part@domain>");
  }
  Result<Address> address = ParseAddress(inner);
  if (!address.ok()) return address.status();
  mailbox.address = std::move(address).value();
  return mailbox;
}

Result<AddressPattern> AddressPattern::Parse(std::string_view input) {
  const std::string_view text = TrimBlanks(input);
  if (text.empty()) return InvalidArgument(fmt::format("the pattern is empty; {}", kExpectPattern));
  HERALD_RETURN_IF_ERROR(CheckText(text));

  AddressPattern pattern;
  pattern.text_.assign(text);
  std::string_view domain;
  if (text.starts_with("*@")) {
    domain = text.substr(2);
  } else if (text.front() == '@') {
    return Invalid(text, fmt::format("write '*{}' for every address at a domain; {}", Printable(text),
                                     kExpectPattern));
  } else if (text.find('@') == std::string_view::npos) {
    domain = text;
  } else {
    // '*' is an atext character, so "a*@example.com" is a valid address; but in a pattern it is
    // almost certainly meant as a wildcard, which herald offers only for the whole local part.
    if (text.front() != '"' && text.substr(0, text.find('@')).find('*') != std::string_view::npos) {
      return Invalid(text, fmt::format("'*' stands only for a whole local part (*@example.com); {}",
                                       kExpectPattern));
    }
    Result<Address> address = ParseAddress(text);
    if (!address.ok()) return address.status();
    pattern.key_ = address->DedupKey();
    return pattern;
  }
  if (domain.empty()) return Invalid(text, fmt::format("no domain; {}", kExpectPattern));
  if (domain.find('*') != std::string_view::npos) {
    return Invalid(text, fmt::format("'*' is not a wildcard in domains (subdomains are listed one by one); {}",
                                     kExpectPattern));
  }
  if (domain.find('@') != std::string_view::npos) {
    return Invalid(text, fmt::format("more than one '@'; {}", kExpectPattern));
  }
  HERALD_RETURN_IF_ERROR(ParseDomain(text, domain, kAddressDomain, &pattern.key_));
  pattern.whole_domain_ = true;
  return pattern;
}

bool AddressPattern::Matches(const Address& address) const {
  if (whole_domain_) return EqualsIgnoreCase(address.domain, key_);
  // key_ == address.DedupKey(), without building the key for every recipient.
  const std::string_view key = key_;
  const std::size_t local_size = address.local_part.size();
  return key.size() == local_size + 1 + address.domain.size() && key[local_size] == '@' &&
         EqualsIgnoreCase(key.substr(0, local_size), address.local_part) &&
         EqualsIgnoreCase(key.substr(local_size + 1), address.domain);
}

Result<std::string> ParseServerHost(std::string_view input) {
  const std::string_view text = TrimBlanks(input);
  if (text.empty()) return InvalidArgument(fmt::format("the server host is empty; {}", kExpectHost));
  HERALD_RETURN_IF_ERROR(CheckText(text));

  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return Invalid(text, fmt::format("no closing ']'; {}", kExpectHost));
    if (close + 1 != text.size()) {
      return Invalid(text, fmt::format("has text after ']' (set the port separately); {}", kExpectHost));
    }
    const std::string_view inner = text.substr(1, close - 1);
    if (Ipv4Problem(inner).empty()) {
      return Invalid(text, fmt::format("write an IPv4 address without brackets ({}); {}", inner, kExpectHost));
    }
    std::string host;
    if (std::string problem = Ipv6Problem(inner, /*rfc5321=*/false, &host); !problem.empty()) {
      return Invalid(text, fmt::format("{}; {}", problem, kExpectHost));
    }
    return host;
  }
  if (text.find("://") != std::string_view::npos) {
    return Invalid(text, fmt::format("is a URL; {}", kExpectHost));
  }
  if (const std::size_t colon = text.find(':'); colon != std::string_view::npos) {
    std::string ignored;
    if (Ipv6Problem(text, /*rfc5321=*/false, &ignored).empty()) {
      return Invalid(text, fmt::format("an IPv6 address must be written in brackets: [{}]", text));
    }
    if (text.find(':', colon + 1) == std::string_view::npos) {
      return Invalid(text, fmt::format("a port does not belong in the host (set the port separately); {}",
                                       kExpectHost));
    }
    return Invalid(text, fmt::format("has ':'; {}", kExpectHost));
  }
  if (text.find_first_not_of("0123456789.") == std::string_view::npos) {
    if (std::string problem = Ipv4Problem(text); !problem.empty()) {
      return Invalid(text, fmt::format("is not an IPv4 address: {}", problem));
    }
    return std::string(text);
  }
  std::string host;
  HERALD_RETURN_IF_ERROR(ParseDomain(text, text, kHostName, &host));
  // A name of digits only ("¹²³", which IDNA maps to "123") or one inet_aton reads as a number
  // ("0x7f000001"): getaddrinfo takes it for an IPv4 address (0.0.0.123, 127.0.0.1) or, too large
  // for one, looks up a name no host has. Only the dotted quad checked above is an address here
  // (found by fuzz/address_fuzzer.cc).
  in_addr ignored;
  if (host.find_first_not_of("0123456789") == std::string::npos || inet_aton(host.c_str(), &ignored) != 0) {
    return Invalid(text, fmt::format("host name '{}' is a number, not a name; {}", host, kExpectHost));
  }
  return host;
}

}  // namespace herald
