// SASL mechanisms with the RFCs' and providers' published vectors, mechanism choice, and log
// redaction.
#include "smtp/auth.h"

#include <gtest/gtest.h>

#include "smtp/internal/base64.h"

namespace herald::smtp {
namespace {

using smtp_internal::DecodeBase64;
using smtp_internal::EncodeBase64;

SaslClient MakeClient(Mechanism m, std::string user, std::string secret) {
  Result<SaslClient> client = SaslClient::Create(m, std::move(user), std::move(secret));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return std::move(client).value();
}

TEST(Base64Test, RoundTripsAndRefusesBadText) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"foobar", "Zm9vYmFy"},
      {std::string("\0\xFF\xFE", 3), "AP/+"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(EncodeBase64(plain), encoded);
    EXPECT_EQ(DecodeBase64(encoded), plain) << encoded;
  }
  EXPECT_EQ(DecodeBase64("Zg"), "f");  // padding left out
  EXPECT_EQ(DecodeBase64("Zm8"), "fo");
  for (std::string_view bad : {"Z", "Zg=", "Z===", "Zg==Zg==", "Zm 9v", "Zm9v\r\n", "Zh==", "Zm9=", "*", "Zm9v="}) {
    EXPECT_FALSE(DecodeBase64(bad)) << bad;
  }
}

TEST(SaslTest, CramMd5Rfc2195Example) {
  // RFC 2195 §2.
  EXPECT_EQ(CramMd5Response("tim", "tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>"),
            "tim b913a602c7eda7a495b4e6e7334d3890");
  SaslClient client = MakeClient(Mechanism::kCramMd5, "tim", "tanstaaftanstaaf");
  EXPECT_EQ(*client.InitialCommand(), "AUTH CRAM-MD5\r\n");
  Result<std::string> answer = client.Answer("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(*answer, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
  EXPECT_FALSE(client.Answer("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+").ok());
}

TEST(SaslTest, CramMd5RefusesEmptyOrBadChallenge) {
  SaslClient empty = MakeClient(Mechanism::kCramMd5, "tim", "pw");
  EXPECT_FALSE(empty.Answer("").ok());
  SaslClient bad = MakeClient(Mechanism::kCramMd5, "tim", "pw");
  Result<std::string> answer = bad.Answer("not base64!");
  ASSERT_FALSE(answer.ok());
  EXPECT_NE(answer.status().message().find("is not base64"), std::string::npos) << answer.status().message();
}

TEST(SaslTest, PlainRfc4616) {
  // RFC 4616 §4: authzid empty, authcid "tim", password "tanstaaftanstaaf".
  SaslClient client = MakeClient(Mechanism::kPlain, "tim", "tanstaaftanstaaf");
  EXPECT_EQ(*client.InitialCommand(), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
  // A server that ignored the initial response asks with an empty challenge; answered once.
  EXPECT_EQ(*client.Answer(""), "AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
  EXPECT_FALSE(client.Answer("").ok());
  SaslClient other = MakeClient(Mechanism::kPlain, "tim", "x");
  EXPECT_FALSE(other.Answer("c29tZXRoaW5n").ok());  // PLAIN has no real challenge

  SaslClient utf8 = MakeClient(Mechanism::kPlain, "jörg", "pässword");
  std::optional<std::string> decoded = DecodeBase64(utf8.InitialCommand()->substr(11, utf8.InitialCommand()->size() - 13));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, std::string("\0jörg\0pässword", 16));
}

TEST(SaslTest, LoginAnswersByPrompt) {
  struct Case {
    std::string name;
    std::vector<std::string> prompts;
    std::vector<std::string> want;  // decoded answers
  };
  const std::vector<Case> cases = {
      {"standard", {"Username:", "Password:"}, {"anna", "secret"}},
      {"lowercase", {"username:", "password:"}, {"anna", "secret"}},
      {"odd words, in order", {"Who are you?", "Prove it"}, {"anna", "secret"}},
      {"empty prompts, in order", {"", ""}, {"anna", "secret"}},
      {"password asked first", {"Password:", "User Name"}, {"secret", "anna"}},
  };
  for (const Case& c : cases) {
    SaslClient client = MakeClient(Mechanism::kLogin, "anna", "secret");
    EXPECT_EQ(*client.InitialCommand(), "AUTH LOGIN\r\n");
    for (std::size_t i = 0; i < c.prompts.size(); ++i) {
      Result<std::string> line = client.Answer(EncodeBase64(c.prompts[i]));
      ASSERT_TRUE(line.ok()) << c.name;
      ASSERT_TRUE(line->ends_with("\r\n"));
      EXPECT_EQ(DecodeBase64(line->substr(0, line->size() - 2)), c.want[i]) << c.name << " answer " << i;
    }
    EXPECT_FALSE(client.Answer("VXNlcm5hbWU6").ok()) << c.name << ": a third prompt";
  }
  SaslClient client = MakeClient(Mechanism::kLogin, "anna", "secret");
  EXPECT_EQ(*client.Answer("VXNlcm5hbWU6"), "YW5uYQ==\r\n");
  EXPECT_EQ(*client.Answer("UGFzc3dvcmQ6"), "c2VjcmV0\r\n");
}

TEST(SaslTest, Xoauth2GoogleExample) {
  // Google's XOAUTH2 documentation (developers.google.com/gmail/imap/xoauth2-protocol).
  SaslClient client = MakeClient(Mechanism::kXoauth2, "someuser@example.com",
                                 "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
  EXPECT_EQ(*client.InitialCommand(),
            "AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
            "YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n");
  // The error challenge from the same page; the client answers with an empty line.
  Result<std::string> answer = client.Answer(
      "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K");
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(*answer, "\r\n");
  EXPECT_EQ(client.server_error(), "status 401, schemes bearer mac, scope https://mail.google.com/");
  EXPECT_FALSE(client.Answer("").ok());
}

TEST(SaslTest, DescribesXoauth2Errors) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"status":"400","schemes":"Bearer","scope":"https://outlook.office.com/SMTP.Send"})",
       "status 400, schemes Bearer, scope https://outlook.office.com/SMTP.Send"},
      {R"( { "status" : 401 , "x":true } )", "status 401, x true"},
      {R"({"a":"with \"quotes\""})", "a with \"quotes\""},
      {"{}", ""},
      {"not json at all", "not json at all"},
      {R"({"nested":{"a":1}})", "{\"nested\":{\"a\":1}}"},
      {R"({"unterminated":"abc)", "{\"unterminated\":\"abc"},
      {std::string("{\"a\":\"\x1b[31mred\"}"), "a \\x1B[31mred"},
      {std::string(300, 'x'), std::string(200, 'x') + "..."},
  };
  for (const auto& [json, want] : cases) EXPECT_EQ(DescribeXoauth2Error(json), want) << json;
}

TEST(SaslTest, RefusesBadCredentialsWithoutQuotingThem) {
  struct Case {
    Mechanism mechanism;
    std::string user;
    std::string secret;
    std::string want;
  };
  const Case cases[] = {
      {Mechanism::kPlain, "", "hunter2", "user name is empty"},
      {Mechanism::kPlain, "anna", "", "password is empty"},
      {Mechanism::kXoauth2, "anna", "", "access token is empty"},
      {Mechanism::kPlain, std::string("an\0na", 5), "hunter2", "user name contains NUL"},
      {Mechanism::kLogin, "anna", std::string("hun\0ter2", 8), "secret contains NUL"},
      {Mechanism::kXoauth2, "anna", "tok\x01" "auth=Bearer evil", "control characters"},
      {Mechanism::kXoauth2, "anna\r\n", "token", "control characters"},
  };
  for (const Case& c : cases) {
    Result<SaslClient> client = SaslClient::Create(c.mechanism, c.user, c.secret);
    ASSERT_FALSE(client.ok()) << c.want;
    EXPECT_NE(client.status().message().find(c.want), std::string::npos) << client.status().message();
    EXPECT_EQ(client.status().message().find("hunter2"), std::string::npos);
    EXPECT_EQ(client.status().message().find("evil"), std::string::npos);
  }
}

TEST(SaslTest, MovedClientKeepsWorking) {
  SaslClient a = MakeClient(Mechanism::kPlain, "tim", "tanstaaftanstaaf");
  SaslClient b = std::move(a);
  EXPECT_EQ(*b.InitialCommand(), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
  SaslClient c = MakeClient(Mechanism::kLogin, "x", "y");
  c = std::move(b);
  EXPECT_EQ(c.mechanism(), Mechanism::kPlain);
  EXPECT_EQ(*c.InitialCommand(), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
}

TEST(SaslTest, MechanismNames) {
  for (Mechanism m : {Mechanism::kPlain, Mechanism::kLogin, Mechanism::kCramMd5, Mechanism::kXoauth2}) {
    EXPECT_EQ(MechanismFromName(MechanismName(m)), m);
  }
  EXPECT_EQ(MechanismFromName("cram-md5"), Mechanism::kCramMd5);
  EXPECT_EQ(MechanismFromName("GSSAPI"), std::nullopt);
}

TEST(ChooseMechanismTest, Table) {
  using M = Mechanism;
  struct Case {
    std::string name;
    std::vector<std::string> offered;
    AuthPolicy policy;
    std::optional<Mechanism> want;  // nullopt: an error
    std::string want_error = {};
  };
  const std::vector<std::string> all = {"LOGIN", "PLAIN", "CRAM-MD5", "XOAUTH2"};
  const std::vector<Case> cases = {
      {"TLS prefers PLAIN", {"LOGIN", "CRAM-MD5", "PLAIN"}, {{}, true, false}, M::kPlain},
      {"TLS: LOGIN when no PLAIN", {"LOGIN", "CRAM-MD5"}, {{}, true, false}, M::kLogin},
      {"TLS: CRAM-MD5 last", {"CRAM-MD5"}, {{}, true, false}, M::kCramMd5},
      {"TLS: case-insensitive offer", {"plain"}, {{}, true, false}, M::kPlain},
      {"TLS: account allows only CRAM-MD5", all, {{M::kCramMd5}, true, false}, M::kCramMd5},
      {"TLS: OAuth2 account", all, {{M::kXoauth2}, true, false}, M::kXoauth2},
      {"TLS: password account never picks XOAUTH2", {"XOAUTH2"}, {{}, true, false}, std::nullopt,
       "the server offers AUTH XOAUTH2; the account allows PLAIN, LOGIN, CRAM-MD5"},
      {"no TLS: CRAM-MD5 first", {"PLAIN", "LOGIN", "CRAM-MD5"}, {{}, false, false}, M::kCramMd5},
      {"no TLS: CRAM-MD5 even with plaintext allowed", {"PLAIN", "CRAM-MD5"}, {{}, false, true}, M::kCramMd5},
      {"no TLS: PLAIN only when allowed", {"PLAIN", "LOGIN"}, {{}, false, true}, M::kPlain},
      {"no TLS: PLAIN refused", {"PLAIN", "LOGIN"}, {{}, false, false}, std::nullopt,
       "none protects the credentials"},
      {"no TLS: token refused", {"XOAUTH2"}, {{M::kXoauth2}, false, false}, std::nullopt,
       "none protects the credentials"},
      {"nothing offered", {}, {{}, true, false}, std::nullopt, "the server offers no AUTH mechanism"},
      {"nothing in common", {"GSSAPI", "NTLM"}, {{}, true, false}, std::nullopt,
       "the server offers AUTH GSSAPI NTLM; the account allows PLAIN, LOGIN, CRAM-MD5"},
      {"allowed but not offered", {"PLAIN"}, {{M::kLogin}, true, false}, std::nullopt, "allows LOGIN"},
  };
  for (const Case& c : cases) {
    Result<Mechanism> got = ChooseMechanism(c.offered, c.policy);
    if (c.want) {
      ASSERT_TRUE(got.ok()) << c.name << ": " << got.status().ToString();
      EXPECT_EQ(MechanismName(*got), MechanismName(*c.want)) << c.name;
    } else {
      ASSERT_FALSE(got.ok()) << c.name << ": got " << MechanismName(*got);
      EXPECT_EQ(got.status().code(), StatusCode::kFailedPrecondition);
      EXPECT_NE(got.status().message().find(c.want_error), std::string::npos)
          << c.name << ": got '" << got.status().message() << "'";
    }
  }
}

TEST(RedactForLogTest, Table) {
  const std::pair<std::string, std::string> cases[] = {
      {"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n", "AUTH PLAIN ****"},
      {"auth plain AHRpbQB0YW5zdGFhZnRhbnN0YWFm", "AUTH plain ****"},
      {"AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFt\r\n", "AUTH XOAUTH2 ****"},
      {"AUTH LOGIN\r\n", "AUTH LOGIN"},
      {"AUTH CRAM-MD5\r\n", "AUTH CRAM-MD5"},
      {"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n", "****"},  // CRAM-MD5 answer
      {"YW5uYQ==\r\n", "****"},                                          // LOGIN user name
      {"c2VjcmV0\r\n", "****"},                                          // LOGIN password
      {"\r\n", "****"},
      {"*\r\n", "****"},
      {"EHLO client.example.com\r\n", "EHLO client.example.com"},
      {"MAIL FROM:<anna@example.com> SIZE=100\r\n", "MAIL FROM:<anna@example.com> SIZE=100"},
      {"RCPT TO:<bob@example.org>\r\n", "RCPT TO:<bob@example.org>"},
      {"DATA\r\n", "DATA"},
      {"QUIT\r\n", "QUIT"},
      {"STARTTLS\r\n", "STARTTLS"},
      {"rset\r\n", "rset"},
      {"MAILX\r\n", "****"},
  };
  for (const auto& [line, want] : cases) EXPECT_EQ(RedactForLog(line), want) << line;
}

}  // namespace
}  // namespace herald::smtp
