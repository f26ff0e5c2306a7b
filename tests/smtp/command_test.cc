// Command builders: exact lines for good arguments; an error naming the argument for everything
// that could break the command or the grammar, CR/LF/NUL first of all.
#include "smtp/command.h"

#include <gtest/gtest.h>

#include "core/text.h"

namespace herald::smtp {
namespace {

struct Case {
  std::string name;
  Result<std::string> got;
  std::string want;  // the line, or for an error a part of its message
  bool want_ok = true;
};

void Check(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    if (c.want_ok) {
      ASSERT_TRUE(c.got.ok()) << c.name << ": " << c.got.status().ToString();
      EXPECT_EQ(*c.got, c.want) << c.name;
    } else {
      ASSERT_FALSE(c.got.ok()) << c.name << ": got line '" << Printable(*c.got) << "'";
      EXPECT_EQ(c.got.status().code(), StatusCode::kInvalidArgument) << c.name;
      EXPECT_NE(c.got.status().message().find(c.want), std::string::npos)
          << c.name << ": got '" << c.got.status().message() << "', want it to contain '" << c.want << "'";
    }
  }
}

std::string Nul(std::string_view a, std::string_view b) { return std::string(a) + std::string(1, '\0') + std::string(b); }

TEST(CommandTest, Hello) {
  Check({
      {"EHLO host", EhloCommand("client.example.com"), "EHLO client.example.com\r\n"},
      {"HELO host", HeloCommand("client.example.com"), "HELO client.example.com\r\n"},
      {"single label", EhloCommand("localhost"), "EHLO localhost\r\n"},
      {"digits and hyphen", EhloCommand("mx-01.a1.example"), "EHLO mx-01.a1.example\r\n"},
      {"IPv4 literal", EhloCommand("[192.0.2.1]"), "EHLO [192.0.2.1]\r\n"},
      {"IPv6 literal", EhloCommand("[IPv6:2001:db8::1]"), "EHLO [IPv6:2001:db8::1]\r\n"},
      {"CRLF injection", EhloCommand("x\r\nMAIL FROM:<a@b.c>"), "EHLO domain 'x\\r\\nMAIL", false},
      {"LF", HeloCommand("x\ny"), "HELO domain", false},
      {"NUL", EhloCommand(Nul("x", "y")), "CR, LF or NUL", false},
      {"empty", EhloCommand(""), "the domain is empty", false},
      {"space", EhloCommand("my host"), "a space in the domain", false},
      {"underscore", EhloCommand("my_host.example"), "'_' in the domain", false},
      {"empty label", EhloCommand("a..b"), "empty label", false},
      {"trailing dot", EhloCommand("a.b."), "empty label", false},
      {"hyphen start", EhloCommand("-a.b"), "starts or ends with '-'", false},
      {"non-ASCII", EhloCommand("bücher.example"), "non-ASCII", false},
      {"long label", EhloCommand(std::string(64, 'a') + ".example"), "longer than 63", false},
      {"too long", EhloCommand(std::string(200, 'a') + "." + std::string(60, 'b')), "at most 255", false},
      {"unclosed literal", EhloCommand("[192.0.2.1"), "address literal", false},
      {"space in literal", EhloCommand("[192.0.2.1 ]"), "a space in the address literal", false},
  });
}

TEST(CommandTest, MailFrom) {
  MailParameters all;
  all.size = 12345;
  all.body_8bitmime = true;
  all.smtputf8 = true;
  MailParameters utf8;
  utf8.smtputf8 = true;
  Check({
      {"plain", MailFromCommand("anna@example.com"), "MAIL FROM:<anna@example.com>\r\n"},
      {"null sender", MailFromCommand(""), "MAIL FROM:<>\r\n"},
      {"all parameters", MailFromCommand("anna@example.com", all),
       "MAIL FROM:<anna@example.com> SIZE=12345 BODY=8BITMIME SMTPUTF8\r\n"},
      {"size zero", MailFromCommand("a@b.example", MailParameters{0}), "MAIL FROM:<a@b.example> SIZE=0\r\n"},
      {"atext specials", MailFromCommand("a!#$%&'*+-/=?^_`{|}~b@example.com"),
       "MAIL FROM:<a!#$%&'*+-/=?^_`{|}~b@example.com>\r\n"},
      {"dotted local", MailFromCommand("first.last@example.com"), "MAIL FROM:<first.last@example.com>\r\n"},
      {"quoted with space and angle brackets", MailFromCommand("\"john <doe> smith\"@example.com"),
       "MAIL FROM:<\"john <doe> smith\"@example.com>\r\n"},
      {"quoted pair", MailFromCommand("\"a\\\"b\"@example.com"), "MAIL FROM:<\"a\\\"b\"@example.com>\r\n"},
      {"address literal", MailFromCommand("a@[192.0.2.1]"), "MAIL FROM:<a@[192.0.2.1]>\r\n"},
      {"UTF-8 with SMTPUTF8", MailFromCommand("jörg@bücher.example", utf8),
       "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n"},
      {"UTF-8 without SMTPUTF8", MailFromCommand("jörg@example.com"), "need SMTPUTF8", false},
      {"invalid UTF-8", MailFromCommand("j\xF6rg@example.com", utf8), "not valid UTF-8", false},
      {"CRLF injection", MailFromCommand("a@b.example>\r\nRCPT TO:<victim@example.com"),
       "MAIL FROM address 'a@b.example>\\r\\nRCPT", false},
      {"LF alone", MailFromCommand("a@b.example\n"), "CR, LF or NUL", false},
      {"CR alone", MailFromCommand("a\r@b.example"), "CR, LF or NUL", false},
      {"NUL", MailFromCommand(Nul("a", "@b.example")), "CR, LF or NUL", false},
      {"angle bracket", MailFromCommand("a>b@example.com"), "'>' in the local part outside quotes", false},
      {"angle bracket open", MailFromCommand("<a@example.com"), "'<' in the local part", false},
      {"closing bracket in domain", MailFromCommand("a@example.com> SIZE=1"), "in the domain", false},
      {"space", MailFromCommand("a b@example.com"), "a space in the local part outside quotes", false},
      {"space in domain", MailFromCommand("a@exa mple.com"), "a space in the domain", false},
      {"tab in quotes", MailFromCommand("\"a\tb\"@example.com"), "control character \\x09 in the quoted", false},
      {"DEL", MailFromCommand("a\x7F" "b@example.com"), "control character \\x7F", false},
      {"no at", MailFromCommand("anna.example.com"), "no '@'", false},
      {"empty local", MailFromCommand("@example.com"), "local part is empty", false},
      {"empty quoted local", MailFromCommand("\"\"@example.com"), "local part is empty", false},
      {"leading dot", MailFromCommand(".a@example.com"), "leading, trailing or doubled '.'", false},
      {"double dot", MailFromCommand("a..b@example.com"), "leading, trailing or doubled '.'", false},
      {"trailing dot", MailFromCommand("a.@example.com"), "leading, trailing or doubled '.'", false},
      {"unclosed quote", MailFromCommand("\"abc@example.com"), "no closing", false},
      {"empty domain", MailFromCommand("a@"), "domain is empty", false},
      {"long local part", MailFromCommand(std::string(65, 'a') + "@example.com"), "at most 64", false},
      {"long path", MailFromCommand("a@" + std::string(60, 'b') + "." + std::string(60, 'c') + "." +
                                    std::string(60, 'd') + "." + std::string(60, 'e') + ".example.com"),
       "a path holds at most 254", false},
      {"source route", MailFromCommand("@relay.example:a@example.com"), "local part is empty", false},
  });
}

TEST(CommandTest, RcptTo) {
  Check({
      {"plain", RcptToCommand("bob@example.org"), "RCPT TO:<bob@example.org>\r\n"},
      {"postmaster", RcptToCommand("Postmaster"), "RCPT TO:<Postmaster>\r\n"},
      {"UTF-8 in transaction", RcptToCommand("ñoño@example.org", true), "RCPT TO:<ñoño@example.org>\r\n"},
      {"UTF-8 outside", RcptToCommand("ñoño@example.org"), "RCPT TO address 'ñoño@example.org': it has non-ASCII",
       false},
      {"empty", RcptToCommand(""), "RCPT TO address '': it is empty", false},
      {"injection", RcptToCommand("a@b.example>\r\nDATA"), "CR, LF or NUL", false},
      {"brackets", RcptToCommand("<a@b.example>"), "'<' in the local part", false},
      {"parameter smuggled", RcptToCommand("a@b.example> NOTIFY=NEVER"), "in the domain", false},
  });
}

TEST(CommandTest, Auth) {
  Check({
      {"mechanism only", AuthCommand("LOGIN"), "AUTH LOGIN\r\n"},
      {"lowercase mechanism", AuthCommand("cram-md5"), "AUTH CRAM-MD5\r\n"},
      {"initial response", AuthCommand("PLAIN", "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"),
       "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n"},
      {"empty initial response", AuthCommand("EXTERNAL", ""), "AUTH EXTERNAL =\r\n"},
      {"mechanism with CRLF", AuthCommand("PLAIN\r\nQUIT"), "AUTH mechanism", false},
      {"mechanism with space", AuthCommand("PL AIN"), "a space", false},
      {"mechanism too long", AuthCommand("ABCDEFGHIJKLMNOPQRSTU"), "1 to 20", false},
      {"empty mechanism", AuthCommand(""), "1 to 20", false},
      {"response with CRLF", AuthCommand("PLAIN", "abc\r\nQUIT"), "AUTH initial response: contains CR", false},
      {"response not base64", AuthCommand("PLAIN", "abc def"), "not base64", false},
      {"padding in the middle", AuthCommand("PLAIN", "ab=c"), "not base64", false},
      {"response line", AuthResponseLine("dGltIGI5MTNh"), "dGltIGI5MTNh\r\n"},
      {"empty response line", AuthResponseLine(""), "\r\n"},
      {"response line CR", AuthResponseLine("ab\rcd"), "SASL response: contains CR", false},
      {"response line star", AuthResponseLine("*"), "not base64", false},
  });
}

TEST(CommandTest, LengthLimits) {
  // RFC 5321 §4.5.3.1.4: 512 octets with CRLF for commands.
  const std::string label(63, 'a');
  std::string long_domain = label + "." + label + "." + label + "." + label;  // 255 octets
  MailParameters params;
  params.size = 18446744073709551615u;
  params.body_8bitmime = true;
  params.smtputf8 = true;
  Result<std::string> mail = MailFromCommand(std::string(64, 'l') + "@" + std::string(61, 'd') + "." +
                                                 std::string(61, 'e') + "." + std::string(61, 'f') + ".com",
                                             params);
  ASSERT_TRUE(mail.ok()) << mail.status().ToString();
  EXPECT_LE(mail->size(), kMaxCommandLine);
  ASSERT_TRUE(EhloCommand(long_domain).ok());

  // RFC 4954 §4: 12288 octets for AUTH lines.
  const std::string fits(kMaxAuthLine - std::string_view("AUTH PLAIN \r\n").size(), 'A');
  Result<std::string> auth = AuthCommand("PLAIN", fits);
  ASSERT_TRUE(auth.ok()) << auth.status().ToString();
  EXPECT_EQ(auth->size(), kMaxAuthLine);
  Result<std::string> too_long = AuthCommand("PLAIN", fits + "AAAA");
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("at most 12288"), std::string::npos) << too_long.status().message();
  EXPECT_EQ(too_long.status().message().find("AAAA"), std::string::npos) << "the secret must not be quoted";
  EXPECT_FALSE(AuthResponseLine(std::string(kMaxAuthLine - 1, 'A')).ok());
  EXPECT_TRUE(AuthResponseLine(std::string(kMaxAuthLine - 2, 'A')).ok());
}

TEST(CommandTest, ConstantsEndWithCrlf) {
  for (std::string_view c : {kDataCommand, kRsetCommand, kQuitCommand, kNoopCommand, kStartTlsCommand, kAuthCancelLine}) {
    EXPECT_TRUE(c.ends_with("\r\n")) << c;
    EXPECT_EQ(c.find_first_of("\r\n"), c.size() - 2) << c;
  }
}

// Every builder refuses CR, LF and NUL wherever they are placed in any argument.
TEST(CommandTest, NoLineBreakOrNulEverReachesALine) {
  const std::string bad_bytes[] = {"\r", "\n", std::string(1, '\0'), "\r\n"};
  const std::string good_address = "anna.berg@example.com";
  for (const std::string& bad : bad_bytes) {
    for (std::size_t pos = 0; pos <= good_address.size(); ++pos) {
      std::string address = good_address;
      address.insert(pos, bad);
      MailParameters utf8;
      utf8.smtputf8 = true;
      EXPECT_FALSE(MailFromCommand(address).ok()) << Printable(address);
      EXPECT_FALSE(MailFromCommand(address, utf8).ok()) << Printable(address);
      EXPECT_FALSE(RcptToCommand(address).ok()) << Printable(address);
      EXPECT_FALSE(RcptToCommand(address, true).ok()) << Printable(address);
      std::string quoted = "\"" + address.substr(0, address.find('@')) + "\"" + address.substr(address.find('@'));
      EXPECT_FALSE(MailFromCommand(quoted).ok()) << Printable(quoted);
      std::string domain = "mail.example.com";
      domain.insert(std::min(pos, domain.size()), bad);
      EXPECT_FALSE(EhloCommand(domain).ok()) << Printable(domain);
      EXPECT_FALSE(HeloCommand(domain).ok()) << Printable(domain);
      std::string base64 = "AHRpbQB0YW5zdGFh";
      base64.insert(std::min(pos, base64.size()), bad);
      EXPECT_FALSE(AuthCommand("PLAIN", base64).ok()) << Printable(base64);
      EXPECT_FALSE(AuthResponseLine(base64).ok()) << Printable(base64);
      std::string mech = "CRAM-MD5";
      mech.insert(std::min(pos, mech.size()), bad);
      EXPECT_FALSE(AuthCommand(mech).ok()) << Printable(mech);
    }
  }
}

}  // namespace
}  // namespace herald::smtp
