// ParseCapabilities: EHLO keywords in any case, SIZE values, both AUTH forms.
#include "smtp/capabilities.h"

#include <gtest/gtest.h>

namespace herald::smtp {
namespace {

Reply Ehlo(std::vector<std::string> lines) { return Reply{250, "", std::move(lines)}; }

TEST(CapabilitiesTest, ReadsEveryKnownKeyword) {
  Capabilities caps = ParseCapabilities(Ehlo({"mx.example.com Hello client [192.0.2.1]", "PIPELINING",
                                              "SIZE 35882577", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                                              "STARTTLS", "AUTH LOGIN PLAIN XOAUTH2", "CHUNKING", "DSN",
                                              "VRFY", "X-UNKNOWN foo"}));
  EXPECT_EQ(caps.server_name, "mx.example.com");
  EXPECT_TRUE(caps.pipelining);
  EXPECT_TRUE(caps.size);
  EXPECT_EQ(caps.max_size, 35882577u);
  EXPECT_TRUE(caps.eight_bit_mime);
  EXPECT_TRUE(caps.smtputf8);
  EXPECT_TRUE(caps.enhanced_status_codes);
  EXPECT_TRUE(caps.starttls);
  EXPECT_TRUE(caps.chunking);
  EXPECT_TRUE(caps.dsn);
  EXPECT_EQ(caps.auth_mechanisms, (std::vector<std::string>{"LOGIN", "PLAIN", "XOAUTH2"}));
  EXPECT_TRUE(caps.OffersAuth("xoauth2"));
  EXPECT_FALSE(caps.OffersAuth("CRAM-MD5"));
}

TEST(CapabilitiesTest, NothingAnnouncedMeansNothingSet) {
  Capabilities caps = ParseCapabilities(Ehlo({"mx.example.com"}));
  EXPECT_EQ(caps.server_name, "mx.example.com");
  EXPECT_FALSE(caps.pipelining || caps.size || caps.eight_bit_mime || caps.smtputf8 ||
               caps.enhanced_status_codes || caps.starttls || caps.chunking || caps.dsn);
  EXPECT_TRUE(caps.auth_mechanisms.empty());
}

TEST(CapabilitiesTest, KeywordsIgnoreCase) {
  Capabilities caps = ParseCapabilities(Ehlo({"x", "pipelining", "StartTLS", "size 10", "auth plain cram-md5",
                                              "8bitmime", "smtpUTF8"}));
  EXPECT_TRUE(caps.pipelining);
  EXPECT_TRUE(caps.starttls);
  EXPECT_EQ(caps.max_size, 10u);
  EXPECT_TRUE(caps.eight_bit_mime);
  EXPECT_TRUE(caps.smtputf8);
  EXPECT_EQ(caps.auth_mechanisms, (std::vector<std::string>{"PLAIN", "CRAM-MD5"}));
}

TEST(CapabilitiesTest, SizeValues) {
  struct Case {
    std::string line;
    bool want_size;
    std::uint64_t want_max;
  };
  const Case cases[] = {
      {"SIZE", true, 0},                          // RFC 1870: no limit declared
      {"SIZE 0", true, 0},                        // RFC 1870 §4: zero means no fixed maximum
      {"SIZE 52428800", true, 52428800},
      {"SIZE  1000 ", true, 1000},
      {"SIZE 18446744073709551615", true, 18446744073709551615u},
      {"SIZE 18446744073709551616", true, 0},     // overflow: treated as undeclared
      {"SIZE 100000000000000000000000", true, 0},
      {"SIZE 12abc", true, 0},
      {"SIZE -5", true, 0},
      {"SIZEX 5", false, 0},
  };
  for (const Case& c : cases) {
    Capabilities caps = ParseCapabilities(Ehlo({"x", c.line}));
    EXPECT_EQ(caps.size, c.want_size) << c.line;
    EXPECT_EQ(caps.max_size, c.want_max) << c.line;
  }
}

TEST(CapabilitiesTest, BothAuthFormsMergeWithoutDuplicates) {
  Capabilities caps = ParseCapabilities(Ehlo({"x", "AUTH=LOGIN PLAIN", "AUTH LOGIN PLAIN CRAM-MD5", "AUTH="}));
  EXPECT_EQ(caps.auth_mechanisms, (std::vector<std::string>{"LOGIN", "PLAIN", "CRAM-MD5"}));
  Capabilities old_only = ParseCapabilities(Ehlo({"x", "auth=login"}));
  EXPECT_EQ(old_only.auth_mechanisms, (std::vector<std::string>{"LOGIN"}));
}

TEST(CapabilitiesTest, KeywordOnTheFirstLineIsTheServerName) {
  // The first line is the greeting, even when it looks like a keyword.
  Capabilities caps = ParseCapabilities(Ehlo({"STARTTLS", "PIPELINING"}));
  EXPECT_FALSE(caps.starttls);
  EXPECT_TRUE(caps.pipelining);
}

TEST(CapabilitiesTest, NegativeReplyHasNoCapabilities) {
  Capabilities caps = ParseCapabilities(Reply{502, "5.5.1", {"x", "PIPELINING", "STARTTLS"}});
  EXPECT_FALSE(caps.pipelining);
  EXPECT_FALSE(caps.starttls);
  EXPECT_EQ(caps.server_name, "");
}

}  // namespace
}  // namespace herald::smtp
