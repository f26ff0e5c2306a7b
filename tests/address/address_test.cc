#include "address/address.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/text.h"

namespace herald {
namespace {

using namespace std::string_literals;

// A domain of exactly `length` bytes (at least 5): labels of at most 63 bytes, then ".com".
std::string DomainOfLength(std::size_t length) {
  std::string domain;
  std::size_t rest = length - 4;  // bytes before ".com"
  while (rest > 63) {
    const std::size_t label = rest == 64 ? 62 : 63;  // never leave a lone dot for the last label
    domain += std::string(label, 'd') + ".";
    rest -= label + 1;
  }
  return domain + std::string(rest, 'd') + ".com";
}

std::string Repeat(std::string_view text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text;
  return out;
}

TEST(DomainOfLengthTest, BuildsWhatTheLimitTestsNeed) {
  for (std::size_t length : {60u, 252u, 253u, 255u, 256u}) {
    const std::string domain = DomainOfLength(length);
    EXPECT_EQ(domain.size(), length);
    EXPECT_EQ(domain.find(".."), std::string::npos) << domain;
    EXPECT_NE(domain.front(), '.') << domain;
  }
}

struct ValidCase {
  std::string_view input;
  std::string_view local_part;
  std::string_view domain;
  bool needs_smtputf8 = false;
};

TEST(ParseAddressTest, AcceptsValidAddresses) {
  const ValidCase cases[] = {
      {"user@example.com", "user", "example.com"},
      {"  user@example.com\t", "user", "example.com"},
      {"User.Name+tag@Example.COM", "User.Name+tag", "example.com"},
      {"a@b.co", "a", "b.co"},
      {"user@mail-1.sub.example.com", "user", "mail-1.sub.example.com"},
      {"user@123.example.com", "user", "123.example.com"},
      {"user@example.c0m", "user", "example.c0m"},
      // RFC 5321 §4.1.2 Ldh-str allows "--" inside an ASCII label; only IDNA reserves it.
      {"user@ab--cd.example", "user", "ab--cd.example"},
      // RFC 3696 §3 examples that RFC 5321 accepts.
      {"customer/department=shipping@example.com", "customer/department=shipping", "example.com"},
      {"$A12345@example.com", "$A12345", "example.com"},
      {"!def!xyz%abc@example.com", "!def!xyz%abc", "example.com"},
      {"_somename@example.com", "_somename", "example.com"},
      {"\"Abc@def\"@example.com", "\"Abc@def\"", "example.com"},
      {"\"Fred Bloggs\"@example.com", "\"Fred Bloggs\"", "example.com"},
      {"\"Joe\\\\Blow\"@example.com", "\"Joe\\\\Blow\"", "example.com"},
      // Quoted local parts are written in one canonical spelling (RFC 5322 §3.4.1).
      {"\"abc\"@example.com", "abc", "example.com"},
      {"\"a\\bc\"@example.com", "abc", "example.com"},
      {"\"first.last\"@example.com", "first.last", "example.com"},
      {"\"john..doe\"@example.com", "\"john..doe\"", "example.com"},
      {"\".dot\"@example.com", "\".dot\"", "example.com"},
      {"\"\\\"quoted\\\"\"@example.com", "\"\\\"quoted\\\"\"", "example.com"},
      {"\" \"@example.com", "\" \"", "example.com"},
      {"\"a<b>,c;d:e[f]\"@example.com", "\"a<b>,c;d:e[f]\"", "example.com"},
      // RFC 6531 §3.3: UTF-8 local parts need SMTPUTF8.
      {"üser@example.com", "üser", "example.com", true},
      {"用户@example.com", "用户", "example.com", true},
      {"\"ü ser\"@example.com", "\"ü ser\"", "example.com", true},
      // U-labels become A-labels, in any case and normalisation form.
      {"user@bücher.de", "user", "xn--bcher-kva.de"},
      {"user@Bücher.DE", "user", "xn--bcher-kva.de"},
      {"user@BÜCHER.de", "user", "xn--bcher-kva.de"},
      {"user@bu\xCC\x88" "cher.de", "user", "xn--bcher-kva.de"},  // decomposed ü (NFD)
      {"user@mail.bücher.de", "user", "mail.xn--bcher-kva.de"},
      {"user@xn--bcher-kva.de", "user", "xn--bcher-kva.de"},
      {"user@XN--BCHER-KVA.DE", "user", "xn--bcher-kva.de"},
      {"user@straße.de", "user", "xn--strae-oqa.de"},  // IDNA2008 keeps ß
      {"user@ｂücher.de", "user", "xn--bcher-kva.de"},   // UTS #46 maps full-width letters
      {"user@bücher。de", "user", "xn--bcher-kva.de"},   // and the ideographic full stop
      {"Δοκιμή@παράδειγμα.δοκιμή", "Δοκιμή", "xn--hxajbheg2az3al.xn--jxalpdlp", true},
      {"用户@例子.广告", "用户", "xn--fsqu00a.xn--4rr70v", true},
      // RFC 5321 §4.1.3 address literals; IPv6 in RFC 5952 form behind the tag "IPv6:".
      {"user@[192.0.2.1]", "user", "[192.0.2.1]"},
      {"user@[0.0.0.0]", "user", "[0.0.0.0]"},
      {"user@[255.255.255.255]", "user", "[255.255.255.255]"},
      {"user@[IPv6:2001:db8::1]", "user", "[IPv6:2001:db8::1]"},
      {"user@[ipv6:2001:DB8:0:0:0:0:0:1]", "user", "[IPv6:2001:db8::1]"},
      {"user@[IPv6:2001:db8:1:2:3:4:0:5]", "user", "[IPv6:2001:db8:1:2:3:4:0:5]"},
      {"user@[IPv6:::ffff:192.0.2.1]", "user", "[IPv6:::ffff:192.0.2.1]"},
      {"user@[IPv6:::1]", "user", "[IPv6:::1]"},
  };
  for (const ValidCase& c : cases) {
    Result<Address> got = ParseAddress(c.input);
    ASSERT_TRUE(got.ok()) << "ParseAddress(" << Printable(c.input) << "): " << got.status().ToString();
    EXPECT_EQ(got->local_part, c.local_part) << "input " << Printable(c.input);
    EXPECT_EQ(got->domain, c.domain) << "input " << Printable(c.input);
    EXPECT_EQ(got->needs_smtputf8, c.needs_smtputf8) << "input " << Printable(c.input);
    // What herald writes, it reads back as the same address.
    Result<Address> again = ParseAddress(got->ToString());
    ASSERT_TRUE(again.ok()) << "reparsing " << Printable(got->ToString()) << ": " << again.status().ToString();
    EXPECT_EQ(*again, *got) << "reparsing " << Printable(got->ToString());
  }
}

struct InvalidCase {
  std::string input;
  std::string_view want;  // a part of the error message
};

void ExpectInvalid(const InvalidCase& c) {
  Result<Address> got = ParseAddress(c.input);
  ASSERT_FALSE(got.ok()) << "ParseAddress(" << Printable(c.input) << ") = " << Printable(got->ToString())
                         << ", want an error with \"" << c.want << "\"";
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << Printable(c.input);
  EXPECT_NE(got.status().message().find(c.want), std::string::npos)
      << "ParseAddress(" << Printable(c.input) << ")\n got: " << got.status().message()
      << "\nwant: a message with \"" << c.want << "\"";
}

TEST(ParseAddressTest, RejectsMalformedAddresses) {
  const InvalidCase cases[] = {
      {"", "the address is empty"},
      {" \t ", "the address is empty"},
      {"anna", "no '@'; expected local-part@domain"},
      {"John Smith", "no '@'"},
      {"@example.com", "nothing before '@'"},
      {"anna@", "nothing after '@'; expected a domain such as example.com"},
      {"anna@@example.com", "more than one '@'"},
      {"anna@example.com@example.com", "more than one '@'"},
      {"<anna@example.com>", "angle brackets"},
      {"Anna <anna@example.com>", "angle brackets"},
      // RFC 3696 §3 shows these, but RFC 5321 allows backslashes only in quoted strings (errata 246).
      {"Abc\\@def@example.com", "backslash outside double quotes"},
      {"Fred\\ Bloggs@example.com", "backslash outside double quotes"},
      {"Joe.\\\\Blow@example.com", "backslash outside double quotes"},
      // Dots.
      {".anna@example.com", "local part '.anna' starts with '.'"},
      {"anna.@example.com", "local part 'anna.' ends with '.'"},
      {"an..na@example.com", "local part 'an..na' has '..'"},
      {".@example.com", "starts with '.'"},
      // Characters outside atext.
      {"an na@example.com", "local part 'an na' has a space"},
      {"anna @example.com", "has a space"},
      {"an\tna@example.com", "has a tab"},
      {"anna,bob@example.com", "has ','"},
      {"an(na)@example.com", "has '('"},
      {"anna;@example.com", "has ';'"},
      {"mailto:anna@example.com", "has ':'"},
      {"anna\x01@example.com", "control character \\x01"},
      {"anna\x7F@example.com", "control character \\x7F"},
      // Quoted strings.
      {"a\"b\"@example.com", "must be quoted as a whole"},
      {"\"ab\"c@example.com", "'c' after the closing '\"'"},
      {"\"ab\".c@example.com", "'.' after the closing '\"'"},
      {"\"abc@example.com", "no closing '\"'"},
      {"\"abc\\\"@example.com", "no closing '\"'"},
      {"\"abc\"", "no '@' after the quoted local part"},
      {"\"\"@example.com", "the local part is empty"},
      {"\"a\tb\"@example.com", "has a tab"},
      {"\"a\\\tb\"@example.com", "escapes a tab"},
      {"\"a\\ü\"@example.com", "escapes a non-ASCII character"},
      // CR, LF and NUL never reach the wire, not even inside quotes.
      {"anna\r\n@example.com", "line break or NUL"},
      {"anna@exa\nmple.com", "line break or NUL"},
      {"\"a\rb\"@example.com", "line break or NUL"},
      {"\"a\0b\"@example.com"s, "line break or NUL"},
      {"anna@example.com\0"s, "line break or NUL"},
      {"anna@example.com\r\nRCPT TO:<x@example.org>", "line break or NUL"},
      // Not UTF-8 (a CSV file saved as Latin-1).
      {"M\xFCller@example.com", "byte 2 is not UTF-8"},
      {"anna@b\xFC" "cher.de", "byte 7 is not UTF-8"},
      {"\"M\xFCller\"@example.com", "is not UTF-8"},
      // Invisible characters pasted with an address.
      {"\xC2\xA0" "anna@example.com", "U+00A0"},
      {"anna@example.com\xC2\xA0", "U+00A0"},
      {"anna\xE2\x80\x8B@example.com", "U+200B"},
      {"anna@exam\xE2\x80\xAEple.com", "U+202E"},
      {"a\xC2\x85" "b@example.com", "U+0085"},
      {"\"a\xEF\xBB\xBF" "b\"@example.com", "U+FEFF"},
      // Domain characters and dots.
      {"anna@exa mple.com", "domain 'exa mple.com' has a space; expected letters, digits, '-' and '.'"},
      {"anna@exa_mple.com", "domain 'exa_mple.com' has '_'"},
      {"anna@example.com;", "has ';'"},
      {"anna@example.com,", "has ','"},
      {"anna@example.com.", "domain 'example.com.' ends with '.'"},
      {"anna@.example.com", "starts with '.'"},
      {"anna@example..com", "has '..'"},
      {"anna@bü_cher.de", "has '_'"},
      // Labels begin and end with a letter or digit (RFC 5321 §4.1.2 sub-domain).
      {"anna@-example.com", "label '-example' starts with '-'"},
      {"anna@example-.com", "label 'example-' ends with '-'"},
      {"anna@example.-com", "label '-com' starts with '-'"},
      {"anna@-bücher.de", "starts with '-'"},
      // Dotless domains and all-digit top-level domains.
      {"anna@localhost", "domain 'localhost' has no dot; expected a domain such as example.com"},
      {"anna@gmailcom", "has no dot"},
      {"anna@bücher", "has no dot"},
      {"anna@example.123", "ends in the all-digit label '123'"},
      {"anna@192.168.0.1", "is an IP address; expected a name, or the address in brackets: [192.168.0.1]"},
      // Internationalised domains that IDNA2008 refuses.
      {"anna@☃.example", "not a valid internationalised domain name"},
      {"anna@\xF0\x9F\x92\xA9.la", "such as a symbol or emoji"},
      {"anna@bü--cher.de", "reserved by IDNA"},
      {"anna@xn--abc.de", "label 'xn--abc' is not a valid A-label"},
      {"anna@xn--.de", "label 'xn--' ends with '-'"},
      {"anna@xn--a.de", "not a valid A-label"},
      {"anna@xn--bcher-kvb.de", "not a valid A-label"},
      // Address literals.
      {"anna@[192.0.2.1", "address literal '[192.0.2.1' has no closing ']'"},
      {"anna@[192.0.2.1]x", "no closing ']'"},
      {"anna@[]", "expected four numbers from 0 to 255"},
      {"anna@[192.0.2.256]", "'256' is above 255"},
      {"anna@[192.0.2.01]", "'01' has a leading zero"},
      {"anna@[192.0.2]", "expected four numbers"},
      {"anna@[192.0.2.1.5]", "expected four numbers"},
      {"anna@[192.0.2.-1]", "expected four numbers"},
      {"anna@[1922.0.2.1]", "expected four numbers"},
      {"anna@[IPv6:2001:db8::g]", "'2001:db8::g' is not an IPv6 address"},
      {"anna@[IPv6:1:2:3:4:5:6:7:8:9]", "is not an IPv6 address"},
      {"anna@[IPv6:]", "is not an IPv6 address"},
      {"anna@[IPv6:fe80::1%eth0]", "is not an IPv6 address"},
      {"anna@[IPv6:2001:db8:1:2:3:4::5]", "'::' for a single zero group"},
      {"anna@[2001:db8::1]", "lacks the tag of an IPv6 address; expected [IPv6:2001:db8::1]"},
      {"anna@[x-tag:stuff]", "the unknown tag 'x-tag'"},
  };
  for (const InvalidCase& c : cases) ExpectInvalid(c);
}

TEST(ParseAddressTest, ErrorMessagesQuoteTheInputAndSayWhatWasExpected) {
  struct Case {
    std::string_view input;
    std::string_view want;
  };
  const Case cases[] = {
      {"anna@@example.com", "'anna@@example.com': more than one '@'; expected local-part@domain"},
      {" anna@example \t", "'anna@example': domain 'example' has no dot; expected a domain such as example.com"},
      {"an\x01na@example.com",
       "'an\\x01na@example.com': local part 'an\\x01na' has control character \\x01; expected letters, "
       "digits, dots and !#$%&'*+-/=?^_`{|}~ (anything else only inside a local part written in double "
       "quotes)"},
  };
  for (const Case& c : cases) {
    Result<Address> got = ParseAddress(c.input);
    ASSERT_FALSE(got.ok()) << Printable(c.input);
    EXPECT_EQ(got.status().message(), c.want) << "input " << Printable(c.input);
  }
}

TEST(ParseAddressTest, LengthLimitsAtTheBoundary) {
  const std::string ue = "\xC3\xBC";  // ü, two octets
  const std::string ue32 = Repeat(ue, 32);

  // RFC 5321 §4.5.3.1.1: local part at most 64 octets (UTF-8 counted in octets).
  const std::string ok_cases[] = {
      std::string(64, 'a') + "@example.com",
      ue32 + "@example.com",
      "\"" + std::string(31, 'a') + " " + std::string(30, 'a') + "\"@example.com",  // 64 with quotes
      "\"" + std::string(64, 'a') + "\"@example.com",  // 66 as written, 64 once unquoted
      // RFC 1035 §2.3.4: labels at most 63 octets, also as A-labels.
      "user@" + std::string(63, 'l') + ".com",
      "user@" + std::string(55, 'a') + ue + ".de",  // A-label of exactly 63 octets
      // RFC 5321 §4.5.3.1.3: the address fits a 256-octet path with its angle brackets.
      "a@" + DomainOfLength(252),
  };
  for (const std::string& input : ok_cases) {
    Result<Address> got = ParseAddress(input);
    EXPECT_TRUE(got.ok()) << "ParseAddress(" << Printable(input, 300) << "): " << got.status().ToString();
  }

  const InvalidCase bad_cases[] = {
      {std::string(65, 'a') + "@example.com", "the local part is 65 bytes long; at most 64 are allowed"},
      {ue32 + "a@example.com", "the local part is 65 bytes long"},
      {"\"" + std::string(31, 'a') + " " + std::string(31, 'a') + "\"@example.com", "65 bytes long"},
      {"user@" + std::string(64, 'l') + ".com", "is 64 bytes long; at most 63 are allowed"},
      {"user@" + std::string(56, 'a') + ue + ".de", "as an A-label it would be longer than 63 bytes"},
      {"a@" + DomainOfLength(253), "the address is 255 bytes long; at most 254 fit in an SMTP command"},
      {"a@" + DomainOfLength(256), "domain is 256 bytes long; at most 255 are allowed"},
      {"a@" + Repeat("bücher.", 20) + "com",  // 163 bytes as written, 283 as A-labels
       "domain is 283 bytes long as sent (with A-labels); at most 255 are allowed"},
  };
  for (const InvalidCase& c : bad_cases) ExpectInvalid(c);
}

TEST(ParseAddressTest, ArbitraryInputEitherFailsOrGivesWireSafeValues) {
  // Inputs shaped like "[Name <]local@domain[>]" from pieces that reach every branch of the
  // grammar, with junk (line breaks, NUL, invalid UTF-8, invisible characters) mixed in.
  const std::vector<std::string> name_pieces = {"Anna", " ", "\"", ",", "\\", "Jörg", "."};
  const std::vector<std::string> local_pieces = {"a", "Z", "0", ".", "\"", "\\", " ", "-", "_", "+", "!",
                                                 "*", "ü", "δ", "@", "(", ">"};
  const std::vector<std::string> domain_pieces = {"example", "com", ".", "-", "bücher", "xn--", "xn--bcher-kva",
                                                  "[", "]", "IPv6:", "::", "1", "255", ":", "δ", "_", "."};
  const std::vector<std::string> good_domains = {"example.com", "Bücher.de", "xn--bcher-kva.de", "[192.0.2.1]",
                                                 "[IPv6:2001:DB8::1]", "δοκιμή.gr"};
  const std::vector<std::string> junk = {"\r", "\n", std::string(1, '\0'), "\x01", "\x7F", "\xFF",
                                         "\xC2\xA0", "\xE2\x80\xAE", "\t", "<"};
  std::mt19937 random(20240601);  // fixed seed: failures reproduce
  std::uniform_int_distribution<int> percent(0, 99);
  const auto append_pieces = [&](const std::vector<std::string>& pieces, int max, std::string* out) {
    for (int n = 1 + percent(random) % max; n > 0; --n) {
      const std::vector<std::string>& from = percent(random) < 4 ? junk : pieces;
      *out += from[static_cast<std::size_t>(percent(random)) % from.size()];
    }
  };
  int accepted = 0, mailboxes = 0, hosts = 0, patterns = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string input;
    const bool angle = percent(random) < 30;
    if (angle) {
      append_pieces(name_pieces, 4, &input);
      input += " <";
    }
    if (percent(random) < 90) {
      append_pieces(local_pieces, 4, &input);
      input += "@";
    }
    if (percent(random) < 50) {
      append_pieces(domain_pieces, 6, &input);
    } else {
      append_pieces(good_domains, 1, &input);
    }
    if (angle) input += ">";

    if (Result<Mailbox> mailbox = ParseMailbox(input); mailbox.ok()) {
      ++mailboxes;
      EXPECT_FALSE(HasLineBreakOrNul(mailbox->display_name)) << Printable(input);
      EXPECT_TRUE(IsValidUtf8(mailbox->display_name)) << Printable(input);
    }
    if (Result<std::string> host = ParseServerHost(input); host.ok()) {
      ++hosts;
      EXPECT_TRUE(IsAscii(*host)) << Printable(input);
      EXPECT_EQ(host->find_first_of("[] \t\r\n@"), std::string::npos) << Printable(input);
    }
    Result<Address> got = ParseAddress(input);
    if (Result<AddressPattern> pattern = AddressPattern::Parse(input); pattern.ok() && got.ok()) {
      ++patterns;
      EXPECT_TRUE(pattern->Matches(*got)) << Printable(input);  // an address matches itself
    }
    if (!got.ok()) {
      EXPECT_FALSE(got.status().message().empty()) << Printable(input);
      continue;
    }
    ++accepted;
    const std::string wire = got->ToString();
    EXPECT_FALSE(HasLineBreakOrNul(wire)) << Printable(input);
    EXPECT_TRUE(IsValidUtf8(wire)) << Printable(input);
    EXPECT_TRUE(IsAscii(got->domain)) << Printable(input);
    EXPECT_EQ(got->needs_smtputf8, !IsAscii(got->local_part)) << Printable(input);
    EXPECT_LE(wire.size(), 254u) << Printable(input);
    Result<Address> again = ParseAddress(wire);
    ASSERT_TRUE(again.ok()) << Printable(input) << " gave " << Printable(wire) << ": " << again.status().ToString();
    EXPECT_EQ(*again, *got) << Printable(input);
  }
  // The generator must reach the accepting paths too.
  EXPECT_GT(accepted, 0);
  EXPECT_GT(mailboxes, 0);
  EXPECT_GT(hosts, 0);
  EXPECT_GT(patterns, 0);
}

TEST(DedupKeyTest, LowercasesAsciiOfTheWholeAddress) {
  struct Case {
    std::string_view input;
    std::string_view want;
  };
  const Case cases[] = {
      {"Anna.Smith@Example.COM", "anna.smith@example.com"},
      {"\"Anna Smith\"@example.com", "\"anna smith\"@example.com"},
      {"\"ABC\"@example.com", "abc@example.com"},
      {"user@Bücher.DE", "user@xn--bcher-kva.de"},
      {"user@[IPv6:2001:DB8:0::1]", "user@[ipv6:2001:db8::1]"},
      // Only ASCII letters fold: Unicode case rules are not the receiving host's rules.
      {"Ünal@example.com", "Ünal@example.com"},
  };
  for (const Case& c : cases) {
    Result<Address> address = ParseAddress(c.input);
    ASSERT_TRUE(address.ok()) << Printable(c.input) << ": " << address.status().ToString();
    EXPECT_EQ(address->DedupKey(), c.want) << "input " << Printable(c.input);
  }
}

TEST(DedupKeyTest, SpellingsOfOneMailboxShareAKey) {
  const std::vector<std::vector<std::string_view>> groups = {
      {"anna@example.com", "ANNA@EXAMPLE.COM", "\"anna\"@example.com", "\"an\\na\"@Example.com"},
      {"user@bücher.de", "user@BÜCHER.DE", "user@xn--bcher-kva.de", "USER@XN--BCHER-KVA.DE"},
      {"x@[IPv6:2001:db8::1]", "x@[IPv6:2001:0db8:0:0:0:0:0:1]", "X@[ipv6:2001:DB8::1]"},
  };
  for (const auto& group : groups) {
    const std::string want = ParseAddress(group[0])->DedupKey();
    for (std::string_view input : group) {
      Result<Address> address = ParseAddress(input);
      ASSERT_TRUE(address.ok()) << Printable(input) << ": " << address.status().ToString();
      EXPECT_EQ(address->DedupKey(), want) << "input " << Printable(input);
    }
  }
  EXPECT_NE(ParseAddress("Ünal@example.com")->DedupKey(), ParseAddress("ünal@example.com")->DedupKey());
  EXPECT_NE(ParseAddress("anna@example.com")->DedupKey(), ParseAddress("anna@example.org")->DedupKey());
}

TEST(ParseMailboxTest, AcceptsNameAndAddressForms) {
  struct Case {
    std::string_view input;
    std::string_view display_name;
    std::string_view address;
  };
  const Case cases[] = {
      {"anna@example.com", "", "anna@example.com"},
      {"  anna@example.com  ", "", "anna@example.com"},
      {"Anna Smith <anna@example.com>", "Anna Smith", "anna@example.com"},
      {"  Anna \t  Smith   <anna@example.com> ", "Anna Smith", "anna@example.com"},
      {"Anna<anna@example.com>", "Anna", "anna@example.com"},
      {"Dr. Anna Smith <anna@example.com>", "Dr. Anna Smith", "anna@example.com"},
      {"<anna@example.com>", "", "anna@example.com"},
      {"Anna < anna@example.com >", "Anna", "anna@example.com"},
      {"\"Smith, Anna\" <anna@example.com>", "Smith, Anna", "anna@example.com"},
      {"\"Anna\"<anna@example.com>", "Anna", "anna@example.com"},
      {"\"\" <anna@example.com>", "", "anna@example.com"},
      {"\"Anna \\\"Annie\\\" Smith\" <anna@example.com>", "Anna \"Annie\" Smith", "anna@example.com"},
      {"\"back\\\\slash \\x\" <anna@example.com>", "back\\slash x", "anna@example.com"},
      {"\"Team <Sales> @ Example\" <sales@example.com>", "Team <Sales> @ Example", "sales@example.com"},
      {"Jörg Müller <jörg@bücher.de>", "Jörg Müller", "jörg@xn--bcher-kva.de"},
      {"\"Δοκιμή, Ομάδα\" <Δοκιμή@παράδειγμα.δοκιμή>", "Δοκιμή, Ομάδα",
       "Δοκιμή@xn--hxajbheg2az3al.xn--jxalpdlp"},
      {"Anna <Anna@Example.COM>", "Anna", "Anna@example.com"},
      {"\"Fred Bloggs\"@example.com", "", "\"Fred Bloggs\"@example.com"},
      {"\"Fred\" <\"Fred Bloggs\"@example.com>", "Fred", "\"Fred Bloggs\"@example.com"},
      {"Odd <\"x>y\"@example.com>", "Odd", "\"x>y\"@example.com"},
  };
  for (const Case& c : cases) {
    Result<Mailbox> got = ParseMailbox(c.input);
    ASSERT_TRUE(got.ok()) << "ParseMailbox(" << Printable(c.input) << "): " << got.status().ToString();
    EXPECT_EQ(got->display_name, c.display_name) << "input " << Printable(c.input);
    EXPECT_EQ(got->address.ToString(), c.address) << "input " << Printable(c.input);
  }
}

TEST(ParseMailboxTest, RejectsMalformedMailboxes) {
  struct Case {
    std::string input;
    std::string_view want;
  };
  const Case cases[] = {
      {"", "the mailbox is empty"},
      {"Smith, Anna <anna@example.com>", "has ','; put the name in double quotes"},
      {"Anna (work) <anna@example.com>", "has '('"},
      {"Anna \"Annie\" Smith <anna@example.com>", "has '\"'"},
      {"Anna: <anna@example.com>", "has ':'"},
      {"Anna <anna@example.com", "has '<' without '>'"},
      {"Anna anna@example.com>", "has '>' without '<'"},
      {"Anna <anna@example.com> x", "has text after '>'"},
      {"Anna <anna@example.com>, Bob <bob@example.com>", "has text after '>'"},
      {"Anna <>", "nothing between '<' and '>'"},
      {"Anna < >", "nothing between '<' and '>'"},
      {"\"Anna <anna@example.com>", "no closing '\"'"},
      {"\"Anna\" anna@example.com", "expected <local-part@domain> after the quoted display name"},
      {"\"Anna\"", "expected <local-part@domain> after the quoted display name"},
      {"Anna <anna@@example.com>", "'anna@@example.com': more than one '@'"},
      {"\"Fred Bloggs\"@@example.com", "more than one '@'"},
      {"Anna <anna@example.com>>", "has text after '>'"},
      {"Anna <\"abc@example.com>", "no closing '\"'"},
      {"Anna <anna@localhost>", "has no dot"},
      {"anna@example.com (Anna)", "has a space"},
      // Header injection: CR, LF and NUL are refused anywhere.
      {"Anna\r\nBcc: victim@example.org <anna@example.com>", "line break or NUL"},
      {"\"Anna\rX\" <anna@example.com>", "line break or NUL"},
      {"Anna <anna@example.com>\n", "line break or NUL"},
      {"\"An\0na\" <anna@example.com>"s, "line break or NUL"},
      {"Anna\x01 <anna@example.com>", "control character \\x01"},
      {"\"Anna\x1B\" <anna@example.com>", "control character \\x1B"},
      {"Ann\xC2\x85" "a <anna@example.com>", "U+0085"},
      {"\"Ann\xE2\x80\xA8" "a\" <anna@example.com>", "U+2028"},
      {"M\xFCller <anna@example.com>", "byte 2 is not UTF-8"},
  };
  for (const Case& c : cases) {
    Result<Mailbox> got = ParseMailbox(c.input);
    ASSERT_FALSE(got.ok()) << "ParseMailbox(" << Printable(c.input) << ") accepted, want an error with \""
                           << c.want << "\"";
    EXPECT_NE(got.status().message().find(c.want), std::string::npos)
        << "ParseMailbox(" << Printable(c.input) << ")\n got: " << got.status().message()
        << "\nwant: a message with \"" << c.want << "\"";
  }
}

TEST(AddressPatternTest, MatchesAddressesAndDomains) {
  struct Case {
    std::string_view pattern;
    std::string_view address;
    bool want;
  };
  const Case cases[] = {
      {"user@example.com", "user@example.com", true},
      {"user@example.com", "USER@Example.COM", true},
      {"User@Example.com", "user@example.com", true},
      {"user@example.com", "user2@example.com", false},
      {"user@example.com", "use@example.com", false},
      {"user@example.com", "user@example.org", false},
      {"user@example.com", "user@sub.example.com", false},
      {"*@example.com", "anyone@EXAMPLE.com", true},
      {"*@example.com", "\"a b\"@example.com", true},
      {"*@example.com", "a@sub.example.com", false},  // subdomains are not included
      {"*@example.com", "a@example.com.evil.org", false},
      {"*@example.com", "a@notexample.com", false},
      {"example.com", "x@example.com", true},
      {"Example.COM", "x@example.com", true},
      {"example.com", "x@example.org", false},
      {"*@bücher.de", "x@xn--bcher-kva.de", true},
      {"bücher.de", "x@BÜCHER.de", true},
      {"user@bücher.de", "USER@xn--bcher-kva.de", true},
      {"\"Abc@def\"@example.com", "\"abc@def\"@example.com", true},
      {"\"abc\"@example.com", "ABC@example.com", true},
      {"*@[192.0.2.1]", "a@[192.0.2.1]", true},
      {"[IPv6:2001:db8::1]", "a@[IPv6:2001:DB8:0::1]", true},
      {"ünal@example.com", "ünal@example.com", true},
      {"ünal@example.com", "Ünal@example.com", false},
  };
  for (const Case& c : cases) {
    Result<AddressPattern> pattern = AddressPattern::Parse(c.pattern);
    ASSERT_TRUE(pattern.ok()) << "AddressPattern::Parse(" << Printable(c.pattern) << "): "
                              << pattern.status().ToString();
    Result<Address> address = ParseAddress(c.address);
    ASSERT_TRUE(address.ok()) << Printable(c.address) << ": " << address.status().ToString();
    EXPECT_EQ(pattern->Matches(*address), c.want)
        << "pattern " << Printable(c.pattern) << " on " << Printable(c.address) << ": got "
        << !c.want << ", want " << c.want;
  }
}

TEST(AddressPatternTest, MatchesAddressesBuiltByHand) {
  // Matches compares case-insensitively even for an Address that did not come from ParseAddress.
  const Address address{.local_part = "Anna", .domain = "EXAMPLE.COM"};
  for (std::string_view text : {"anna@example.com", "*@example.com", "example.com"}) {
    Result<AddressPattern> pattern = AddressPattern::Parse(text);
    ASSERT_TRUE(pattern.ok()) << text << ": " << pattern.status().ToString();
    EXPECT_TRUE(pattern->Matches(address)) << "pattern " << text;
  }
}

TEST(AddressPatternTest, KeepsTheTextAsWritten) {
  Result<AddressPattern> pattern = AddressPattern::Parse("  *@Bücher.DE ");
  ASSERT_TRUE(pattern.ok()) << pattern.status().ToString();
  EXPECT_EQ(pattern->text(), "*@Bücher.DE");
}

TEST(AddressPatternTest, RejectsMalformedPatterns) {
  struct Case {
    std::string input;
    std::string_view want;
  };
  const Case cases[] = {
      {"", "the pattern is empty; expected user@example.com, *@example.com or example.com"},
      {"@example.com", "write '*@example.com' for every address at a domain"},
      {"*.example.com", "'*' is not a wildcard in domains"},
      {"*@*.example.com", "'*' is not a wildcard in domains"},
      {"a*@example.com", "'*' stands only for a whole local part"},
      {"*a@example.com", "'*' stands only for a whole local part"},
      {"*@", "no domain"},
      {"*@example", "has no dot"},
      {"*@a@example.com", "more than one '@'"},
      {"localhost", "has no dot"},
      {"user@@example.com", "more than one '@'"},
      {"exa mple.com", "has a space"},
      {"example.com\n", "line break or NUL"},
      {"*@" + DomainOfLength(256), "domain is 256 bytes long; at most 255"},
  };
  for (const Case& c : cases) {
    Result<AddressPattern> got = AddressPattern::Parse(c.input);
    ASSERT_FALSE(got.ok()) << "AddressPattern::Parse(" << Printable(c.input) << ") accepted, want \"" << c.want
                           << "\"";
    EXPECT_NE(got.status().message().find(c.want), std::string::npos)
        << "AddressPattern::Parse(" << Printable(c.input) << ")\n got: " << got.status().message()
        << "\nwant: a message with \"" << c.want << "\"";
  }
  // A whole-domain pattern may be as long as RFC 5321 allows a domain to be.
  Result<AddressPattern> longest = AddressPattern::Parse("*@" + DomainOfLength(255));
  EXPECT_TRUE(longest.ok()) << longest.status().ToString();
}

TEST(ParseServerHostTest, AcceptsHostNamesAndAddresses) {
  struct Case {
    std::string_view input;
    std::string_view want;
  };
  const Case cases[] = {
      {"smtp.example.com", "smtp.example.com"},
      {"  SMTP.Example.COM ", "smtp.example.com"},
      {"localhost", "localhost"},  // a server on the local network may have a single-label name
      {"exchange01", "exchange01"},
      {"mail-1.example.com", "mail-1.example.com"},
      {"mail.bücher.de", "mail.xn--bcher-kva.de"},
      {"192.0.2.1", "192.0.2.1"},
      {"0.0.0.0", "0.0.0.0"},
      {"255.255.255.255", "255.255.255.255"},
      {"[2001:db8::1]", "2001:db8::1"},
      {"[2001:DB8:0:0::1]", "2001:db8::1"},
      {"[::1]", "::1"},
      {"[2001:db8:1:2:3:4::5]", "2001:db8:1:2:3:4:0:5"},
      {"[::ffff:192.0.2.1]", "::ffff:192.0.2.1"},
  };
  for (const Case& c : cases) {
    Result<std::string> got = ParseServerHost(c.input);
    ASSERT_TRUE(got.ok()) << "ParseServerHost(" << Printable(c.input) << "): " << got.status().ToString();
    EXPECT_EQ(*got, c.want) << "input " << Printable(c.input);
  }
  const std::string longest = DomainOfLength(255);
  Result<std::string> got = ParseServerHost(longest);
  EXPECT_TRUE(got.ok()) << got.status().ToString();
}

TEST(ParseServerHostTest, RejectsWithTheExpectedForms) {
  struct Case {
    std::string input;
    std::string_view want;
  };
  const Case cases[] = {
      {"", "the server host is empty; expected a host name (smtp.example.com), an IPv4 address "
           "(192.0.2.1) or an IPv6 address in brackets ([2001:db8::1])"},
      {"smtp.example.com:587", "a port does not belong in the host"},
      {"2001:db8::1", "an IPv6 address must be written in brackets: [2001:db8::1]"},
      {"a:b:c", "has ':'"},
      {"[2001:db8::1", "no closing ']'"},
      {"[2001:db8::1]:25", "has text after ']'"},
      {"[192.0.2.1]", "write an IPv4 address without brackets (192.0.2.1)"},
      {"[not-an-address]", "'not-an-address' is not an IPv6 address"},
      {"[]", "is not an IPv6 address"},
      {"256.1.1.1", "'256' is above 255"},
      {"192.168.010.1", "'010' has a leading zero"},
      {"192.168.1", "expected four numbers from 0 to 255"},
      {"192.168.1.1.", "expected four numbers"},
      {"1.2.3.4.5", "expected four numbers"},
      {"smtp://example.com", "is a URL"},
      {"smtp example.com", "host name 'smtp example.com' has a space"},
      {"smtp_1.example.com", "has '_'"},
      {"-smtp.example.com", "label '-smtp' starts with '-'"},
      {"smtp.example.com.", "ends with '.'"},
      {"smtp..example.com", "has '..'"},
      {"mail.123", "ends in the all-digit label '123'"},
      // Names that are numbers, which getaddrinfo reads as IPv4 addresses (inet_aton): hexadecimal,
      // and digits that IDNA maps from other numerals (fuzz/address_fuzzer.cc found "\u00B9"
      // becoming "1", and a 59-digit name that then did not parse again).
      {"0x7f000001", "host name '0x7f000001' is a number, not a name"},
      {"\u00B9", "host name '1' is a number, not a name"},
      {"\uFF10\uFF11\uFF10", "host name '010' is a number, not a name"},
      {"88888\u00B3" + std::string(53, '8'), "888' is a number, not a name"},
      {"mail.☃.com", "not a valid internationalised domain name"},
      {"smtp.example.com\r\n", "line break or NUL"},
      {"smtp.ex\xE4mple.com", "is not UTF-8"},
      {std::string(64, 'h') + ".example.com", "at most 63 are allowed"},
      {DomainOfLength(256), "host name is 256 bytes long; at most 255 are allowed"},
  };
  for (const Case& c : cases) {
    Result<std::string> got = ParseServerHost(c.input);
    ASSERT_FALSE(got.ok()) << "ParseServerHost(" << Printable(c.input) << ") = " << *got << ", want \""
                           << c.want << "\"";
    EXPECT_NE(got.status().message().find(c.want), std::string::npos)
        << "ParseServerHost(" << Printable(c.input) << ")\n got: " << got.status().message()
        << "\nwant: a message with \"" << c.want << "\"";
  }
}

}  // namespace
}  // namespace herald
