// ReplyParser: RFC 5321 §4.2 replies fed in arbitrary chunks, enhanced status codes, and every kind
// of malformed input a server can send.
#include "smtp/reply.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/text.h"

namespace herald::smtp {
namespace {

struct Parsed {
  std::vector<Reply> replies;
  std::string error;  // empty: no error
};

// Feeds `input` in chunks of `chunk` octets (0: all at once) and collects every reply and the error.
Parsed ParseAll(std::string_view input, std::size_t chunk = 0) {
  ReplyParser parser;
  Parsed out;
  auto drain = [&] {
    for (;;) {
      Result<std::optional<Reply>> next = parser.Next();
      if (!next.ok()) {
        out.error = next.status().message();
        return;
      }
      if (!*next) return;
      out.replies.push_back(std::move(**next));
    }
  };
  if (chunk == 0) chunk = input.size() == 0 ? 1 : input.size();
  for (std::size_t i = 0; i < input.size(); i += chunk) {
    parser.Feed(input.substr(i, chunk));
    drain();
    if (!out.error.empty()) break;
  }
  drain();
  return out;
}

std::string Describe(const std::vector<Reply>& replies) {
  std::string out;
  for (const Reply& r : replies) {
    out += "[" + std::to_string(r.code) + " <" + r.enhanced_status + ">";
    for (const std::string& line : r.lines) out += " |" + line + "|";
    out += "]";
  }
  return out;
}

Reply R(int code, std::string enhanced, std::vector<std::string> lines) {
  return Reply{code, std::move(enhanced), std::move(lines)};
}

TEST(ReplyParserTest, ParsesWellFormedReplies) {
  struct Case {
    std::string name;
    std::string input;
    std::vector<Reply> want;
  };
  const std::vector<Case> cases = {
      {"single line", "220 mail.example.com ESMTP ready\r\n", {R(220, "", {"mail.example.com ESMTP ready"})}},
      {"code only", "250\r\n", {R(250, "", {""})}},
      {"code and space", "250 \r\n", {R(250, "", {""})}},
      {"multi-line",
       "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n",
       {R(250, "", {"mail.example.com", "PIPELINING", "SIZE 1000", "8BITMIME"})}},
      {"empty continuation text", "250-\r\n250 end\r\n", {R(250, "", {"", "end"})}},
      {"enhanced status stripped", "250 2.1.0 Sender ok\r\n", {R(250, "2.1.0", {"Sender ok"})}},
      {"enhanced on every line",
       "550-5.1.1 The email account does not exist.\r\n550 5.1.1 Please try again.\r\n",
       {R(550, "5.1.1", {"The email account does not exist.", "Please try again."})}},
      {"enhanced only", "250 2.0.0\r\n", {R(250, "2.0.0", {""})}},
      {"three-digit detail", "451 4.7.500 Server busy\r\n", {R(451, "4.7.500", {"Server busy"})}},
      {"class must match", "250 5.1.1 odd\r\n", {R(250, "", {"5.1.1 odd"})}},
      {"not in 3xx", "354 2.0.0 go ahead\r\n", {R(354, "", {"2.0.0 go ahead"})}},
      {"needs a space after it", "250 2.1.0x\r\n", {R(250, "", {"2.1.0x"})}},
      {"four digits is no code", "250 2.1234.0 x\r\n", {R(250, "", {"2.1234.0 x"})}},
      {"only at the start", "250 Ok 2.1.0\r\n", {R(250, "", {"Ok 2.1.0"})}},
      {"first code kept, later stripped", "452-4.5.3 a\r\n452 4.5.0 b\r\n", {R(452, "4.5.3", {"a", "b"})}},
      {"bare LF tolerated", "250-a\n250 b\n", {R(250, "", {"a", "b"})}},
      {"mixed line ends", "250-a\r\n250 b\n220 c\r\n", {R(250, "", {"a", "b"}), R(220, "", {"c"})}},
      {"pipelined replies",
       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No such user\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
       {R(250, "2.1.0", {"Ok"}), R(250, "2.1.5", {"Ok"}), R(550, "5.1.1", {"No such user"}),
        R(354, "", {"End data with <CR><LF>.<CR><LF>"})}},
      {"UTF-8 text kept", "550 5.1.1 Empfänger unbekannt\r\n", {R(550, "5.1.1", {"Empfänger unbekannt"})}},
      {"tab kept", "250 a\tb\r\n", {R(250, "", {"a\tb"})}},
      {"longest allowed line", "250 " + std::string(ReplyParser::kMaxLineLength - 4, 'x') + "\r\n",
       {R(250, "", {std::string(ReplyParser::kMaxLineLength - 4, 'x')})}},
  };
  for (const Case& c : cases) {
    for (std::size_t chunk : {0u, 1u, 2u, 3u, 7u}) {
      Parsed got = ParseAll(c.input, chunk);
      EXPECT_EQ(got.error, "") << c.name << " chunk " << chunk;
      EXPECT_EQ(got.replies, c.want) << c.name << " chunk " << chunk << "\n got: " << Describe(got.replies)
                                     << "\nwant: " << Describe(c.want);
    }
  }
}

TEST(ReplyParserTest, RefusesMalformedReplies) {
  struct Case {
    std::string name;
    std::string input;
    std::string want_error;  // a part of the message
    std::size_t want_replies_before = 0;
  };
  std::string many_lines;
  for (std::size_t i = 0; i < ReplyParser::kMaxLines; ++i) many_lines += "250-x\r\n";
  many_lines += "250 last\r\n";
  const std::vector<Case> cases = {
      {"garbage", "hello there\r\n", "does not start with a three-digit code"},
      {"empty line", "\r\n", "does not start with a three-digit code"},
      {"two digits", "25\r\n", "does not start with a three-digit code"},
      {"letter in code", "2x0 ok\r\n", "does not start with a three-digit code"},
      {"1xx", "150 ok\r\n", "outside 200..599"},
      {"6xx", "600 ok\r\n", "outside 200..599"},
      {"000", "000 ok\r\n", "outside 200..599"},
      {"no separator", "250ok\r\n", "expected ' ' or '-'"},
      {"tab separator", "250\tok\r\n", "expected ' ' or '-'"},
      {"inconsistent codes", "250-a\r\n251 b\r\n", "inconsistent codes in a multi-line reply: 251 after 250"},
      {"inconsistent class", "250-a\r\n550 b\r\n", "inconsistent codes"},
      {"overlong line", "250 " + std::string(ReplyParser::kMaxLineLength, 'x') + "\r\n", "overlong reply line"},
      {"overlong without line end", std::string(5000, 'x'), "overlong reply line"},
      {"too many lines", many_lines, "more than 1000 lines"},
      {"NUL", std::string("250 a\0b\r\n", 9), "NUL byte"},
      {"CR inside a line", "250 a\rb\r\n", "CR inside reply line"},
      {"CR CR LF", "250 a\r\r\n", "CR inside reply line"},
      {"error after good replies", "250 ok\r\n221 bye\r\nxyz\r\n", "three-digit code", 2},
  };
  for (const Case& c : cases) {
    for (std::size_t chunk : {0u, 1u, 5u}) {
      Parsed got = ParseAll(c.input, chunk);
      EXPECT_NE(got.error.find(c.want_error), std::string::npos)
          << c.name << " chunk " << chunk << ": got error '" << got.error << "', want '" << c.want_error << "'";
      EXPECT_TRUE(got.error.starts_with("malformed SMTP reply: ")) << got.error;
      EXPECT_EQ(got.replies.size(), c.want_replies_before) << c.name;
    }
  }
}

TEST(ReplyParserTest, OverlongLineFailsBeforeBufferingIt) {
  ReplyParser parser;
  parser.Feed("250 ");
  parser.Feed(std::string(ReplyParser::kMaxLineLength, 'x'));  // no line end yet
  Result<std::optional<Reply>> next = parser.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_NE(next.status().message().find("overlong"), std::string::npos);
}

TEST(ReplyParserTest, ErrorIsStickyAndLaterBytesAreIgnored) {
  ReplyParser parser;
  parser.Feed("250 ok\r\nbad\r\n");
  Result<std::optional<Reply>> first = parser.Next();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(*first);
  EXPECT_EQ((*first)->code, 250);
  parser.Feed("250 fine again\r\n");
  for (int i = 0; i < 3; ++i) {
    Result<std::optional<Reply>> next = parser.Next();
    ASSERT_FALSE(next.ok());
    EXPECT_EQ(next.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(parser.failed());
  parser.Reset();
  EXPECT_FALSE(parser.failed());
  parser.Feed("250 fine again\r\n");
  Result<std::optional<Reply>> after = parser.Next();
  ASSERT_TRUE(after.ok() && *after);
  EXPECT_EQ((*after)->lines, std::vector<std::string>{"fine again"});
}

TEST(ReplyParserTest, ReportsBytesBeyondTheRepliesTaken) {
  struct Case {
    std::string input;
    int replies_to_take;
    bool want_pending;
  };
  const Case cases[] = {
      {"220 2.0.0 Ready to start TLS\r\n", 1, false},
      {"220 2.0.0 Ready to start TLS\r\n250 injected\r\n", 1, true},  // a second reply queued
      {"220 Ready\r\n250-injected\r\n", 1, true},                     // part of a multi-line reply
      {"220 Ready\r\n2", 1, true},                                    // part of a line
      {"220 Ready\r\n\xff\xfe", 1, true},
      {"220 Ready\r\n", 0, true},
      {"220 Ready\r\ngarbage\r\n", 1, true},                          // a failure
  };
  for (const Case& c : cases) {
    ReplyParser parser;
    parser.Feed(c.input);
    for (int i = 0; i < c.replies_to_take; ++i) {
      Result<std::optional<Reply>> next = parser.Next();
      ASSERT_TRUE(next.ok() && *next) << Printable(c.input);
    }
    EXPECT_EQ(parser.HasPendingInput(), c.want_pending) << Printable(c.input);
  }
}

TEST(ReplyParserTest, NeedsMoreBytesUntilTheLastLine) {
  ReplyParser parser;
  parser.Feed("250-first\r\n250-second\r\n");
  Result<std::optional<Reply>> next = parser.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(*next);
  EXPECT_TRUE(parser.HasPendingInput());
  parser.Feed("250 third\r");
  next = parser.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(*next);
  parser.Feed("\n");
  next = parser.Next();
  ASSERT_TRUE(next.ok() && *next);
  EXPECT_EQ((*next)->lines, (std::vector<std::string>{"first", "second", "third"}));
  EXPECT_FALSE(parser.HasPendingInput());
}

TEST(ReplyTest, TextAndClass) {
  Reply reply = R(550, "5.1.1", {"first", "", "second"});
  EXPECT_EQ(reply.Text(), "first second");
  EXPECT_EQ(reply.ToString(), "550 5.1.1 first second");
  EXPECT_TRUE(reply.permanent_negative());
  EXPECT_FALSE(reply.positive());
  EXPECT_EQ(R(221, "", {""}).ToString(), "221");
  EXPECT_TRUE(R(354, "", {"go"}).positive_intermediate());
  EXPECT_TRUE(R(354, "", {"go"}).positive());
  EXPECT_TRUE(R(421, "", {"bye"}).transient_negative());
  EXPECT_TRUE(R(250, "", {"ok"}).positive_completion());
}

}  // namespace
}  // namespace herald::smtp
