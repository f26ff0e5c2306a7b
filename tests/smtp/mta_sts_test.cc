// MTA-STS (RFC 8461) without a network: the TXT record, the policy file, MX patterns, and the HTTP
// response a policy arrives in.
#include "smtp/mta_sts.h"

#include <cstring>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace herald::mta_sts {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(MtaStsRecordTest, ReadsTheId) {
  struct Case {
    const char* record;
    std::optional<std::string> id;
  };
  for (const Case& c : std::vector<Case>{
           {"v=STSv1; id=20160831085700Z;", "20160831085700Z"},
           {"v=STSv1;id=abc", "abc"},
           {"v=STSv1;  id=abc ;  ", "abc"},
           {"v=STSv1; ext=value; id=1", "1"},
           {"v=STSv1; id=", std::nullopt},
           {"v=STSv1;", std::nullopt},
           {"v=STSv1; id=a-b", std::nullopt},
           {"v=STSv1; id=123456789012345678901234567890123", std::nullopt},  // 33 characters
           {"v=STSv1; id=1; id=2", std::nullopt},
           {"v=STSv2; id=1", std::nullopt},
           {"v=spf1 -all", std::nullopt},
           {"id=1; v=STSv1", std::nullopt},
       }) {
    EXPECT_EQ(RecordId(c.record), c.id) << c.record;
  }
}

TEST(MtaStsRecordTest, ExactlyOneStsRecordAnnouncesAPolicy) {
  EXPECT_EQ(AnnouncedId({"v=spf1 -all", "v=STSv1; id=7;"}), "7");
  EXPECT_EQ(AnnouncedId({"v=STSv1; id=7;", "v=STSv1; id=8;"}), std::nullopt);
  EXPECT_EQ(AnnouncedId({"v=STSv1 id=7"}), std::nullopt);  // does not begin with "v=STSv1;"
  EXPECT_EQ(AnnouncedId({}), std::nullopt);
}

TEST(MtaStsPolicyTest, ParsesAPolicy) {
  Result<Policy> policy = ParsePolicy(
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET\r\nmax_age: 604800\r\n"
      "future_key: whatever\r\n");
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  EXPECT_EQ(policy->mode, Mode::kEnforce);
  EXPECT_THAT(policy->mx, ElementsAre("mail.example.com", "*.example.net"));
  EXPECT_EQ(policy->max_age, std::chrono::seconds(604800));
}

TEST(MtaStsPolicyTest, LfLineEndsAndModeNoneWithoutMx) {
  Result<Policy> policy = ParsePolicy("version: STSv1\nmode: none\nmax_age: 0\n");
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  EXPECT_EQ(policy->mode, Mode::kNone);
  EXPECT_EQ(policy->max_age, Duration(0));
}

TEST(MtaStsPolicyTest, RefusesBrokenPolicies) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"mode: enforce\nmx: a.example\nmax_age: 1\n", "no version"},
           {"version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "line 1: version is not STSv1"},
           {"version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "line 2: mode"},
           {"version: STSv1\nmode: enforce\nmx: a.example\n", "no max_age"},
           {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "line 4: max_age"},
           {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "max_age"},
           {"version: STSv1\nmode: enforce\nmax_age: 86400\n", "no mx"},
           {"version: STSv1\nmode: testing\nmx: mail..example\nmax_age: 86400\n", "line 3: mx"},
           {"version: STSv1\nmode: testing\nmx: *.*.example\nmax_age: 86400\n", "line 3: mx"},
           {"version: STSv1\nmode testing\n", "line 2: expected \"key: value\""},
           {"<html>Not found</html>", "line 1"},
       }) {
    Result<Policy> policy = ParsePolicy(c.text);
    ASSERT_FALSE(policy.ok()) << c.text;
    EXPECT_THAT(policy.status().message(), HasSubstr(c.error)) << c.text;
  }
}

TEST(MtaStsPolicyTest, MxPatterns) {
  Policy policy;
  policy.mx = {"mail.example.com", "*.example.net"};
  EXPECT_TRUE(AllowsMx(policy, "mail.example.com"));
  EXPECT_TRUE(AllowsMx(policy, "MAIL.Example.com"));
  EXPECT_TRUE(AllowsMx(policy, "mx1.example.net"));
  // RFC 8461 §4.1: the wildcard stands for exactly one label.
  EXPECT_FALSE(AllowsMx(policy, "example.net"));
  EXPECT_FALSE(AllowsMx(policy, "a.b.example.net"));
  EXPECT_FALSE(AllowsMx(policy, "mail.example.com.evil.example"));
  EXPECT_FALSE(AllowsMx(policy, "other.example.com"));
  EXPECT_FALSE(AllowsMx(policy, ".example.net"));
}

constexpr char kPolicy[] = "version: STSv1\r\nmode: enforce\r\nmx: mx.example\r\nmax_age: 86400\r\n";

TEST(MtaStsResponseTest, BodyByContentLength) {
  std::string response = std::string("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ") +
                         std::to_string(std::strlen(kPolicy)) + "\r\n\r\n" + kPolicy;
  for (std::size_t cut = 0; cut < response.size(); ++cut) {
    Result<HttpBody> partial = ParsePolicyResponse(std::string_view(response).substr(0, cut), false);
    ASSERT_TRUE(partial.ok()) << cut << ": " << partial.status().ToString();
    EXPECT_FALSE(partial->complete) << cut;
  }
  Result<HttpBody> whole = ParsePolicyResponse(response, false);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_TRUE(whole->complete);
  EXPECT_EQ(whole->body, kPolicy);
  EXPECT_FALSE(ParsePolicyResponse(std::string_view(response).substr(0, response.size() - 3), true).ok())
      << "cut off by the end of the connection";
}

TEST(MtaStsResponseTest, ChunkedBody) {
  std::string response =
      "HTTP/1.1 200 OK\r\ncontent-type: TEXT/PLAIN\r\ntransfer-encoding: chunked\r\n\r\n"
      "10\r\nversion: STSv1\r\n\r\n"
      "5;ext=1\r\nmode:\r\n"
      "0\r\n\r\n";
  Result<HttpBody> body = ParsePolicyResponse(response, false);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_TRUE(body->complete);
  EXPECT_EQ(body->body, "version: STSv1\r\nmode:");
  Result<HttpBody> partial = ParsePolicyResponse(std::string_view(response).substr(0, 70), false);
  ASSERT_TRUE(partial.ok());
  EXPECT_FALSE(partial->complete);
  EXPECT_FALSE(ParsePolicyResponse("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "zz\r\n",
                                   false)
                   .ok());
}

TEST(MtaStsResponseTest, BodyUntilTheConnectionEnds) {
  std::string response = std::string("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n") + kPolicy;
  Result<HttpBody> open = ParsePolicyResponse(response, false);
  ASSERT_TRUE(open.ok());
  EXPECT_FALSE(open->complete);
  Result<HttpBody> closed = ParsePolicyResponse(response, true);
  ASSERT_TRUE(closed.ok());
  EXPECT_TRUE(closed->complete);
  EXPECT_EQ(closed->body, kPolicy);
}

TEST(MtaStsResponseTest, RefusesWhatIsNoPolicy) {
  struct Case {
    std::string response;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere.example/\r\n\r\n", "must not be followed"},
           {"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n", "HTTP status 404"},
           {"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi", "not text/plain"},
           {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "not text/plain"},
           {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 70000\r\n\r\n", "larger than 65536"},
           {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: x\r\n\r\n", "Content-Length"},
           {"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x response"},
           {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + std::string(70'000, 'a'), "larger than"},
           {std::string(20'000, 'x'), "headers are too long"},
       }) {
    Result<HttpBody> body = ParsePolicyResponse(c.response, false);
    ASSERT_FALSE(body.ok()) << c.response.substr(0, 60);
    EXPECT_THAT(body.status().message(), HasSubstr(c.error)) << c.response.substr(0, 60);
  }
  EXPECT_FALSE(ParsePolicyResponse("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", true).ok());
}

}  // namespace
}  // namespace herald::mta_sts
