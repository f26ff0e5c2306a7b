#include "core/text.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

TEST(Utf8Test, AcceptsWellFormedText) {
  for (std::string_view text : {"", "plain ascii text, longer than eight bytes", "Grüße", "日本語",
                                "\xF0\x9F\x98\x80 emoji", "\xEF\xBB\xBF" "bom"}) {
    EXPECT_TRUE(IsValidUtf8(text)) << Printable(text);
  }
}

TEST(Utf8Test, FindsTheFirstBadByte) {
  struct Case {
    std::string_view text;
    std::size_t want;
  };
  const Case cases[] = {
      {"abc\xFF", 3},                      // never valid
      {"\xC0\xAF", 0},                     // overlong '/'
      {"ok\xE0\x80\xAF", 2},               // overlong three-byte form
      {"\xED\xA0\x80", 0},                 // UTF-16 surrogate
      {"\xF4\x90\x80\x80", 0},             // above U+10FFFF
      {"Gr\xC3", 2},                       // truncated sequence
      {"12345678\xC3(", 8},                // bad continuation after the fast path
      {"latin1 M\xFCller", 8},             // ISO-8859-1, not UTF-8
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FindInvalidUtf8(c.text), c.want) << Printable(c.text);
  }
}

TEST(TextTest, EditDistanceCountsSwapsOfNeighboursAsOneEdit) {
  struct Case {
    std::string_view a, b;
    std::size_t want;
  };
  const Case cases[] = {
      {"send", "send", 0}, {"sned", "send", 1}, {"prot", "port", 1},     {"Host", "host", 0},
      {"hots", "host", 1}, {"usernme", "username", 1}, {"", "abc", 3},   {"abc", "", 3},
      {"status", "stats", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3},  // no double edit of one letter
  };
  for (const Case& c : cases) {
    EXPECT_EQ(EditDistance(c.a, c.b), c.want) << c.a << " -> " << c.b;
    EXPECT_EQ(EditDistance(c.b, c.a), c.want) << c.b << " -> " << c.a;
  }
}

TEST(TextTest, ClosestWordSuggestsOnlyLikelyTypos) {
  const std::vector<std::string_view> commands = {"send", "check", "status", "export", "cancel", "preview"};
  EXPECT_EQ(ClosestWord("sned", commands), "send");
  EXPECT_EQ(ClosestWord("staus", commands), "status");
  EXPECT_EQ(ClosestWord("exprot", commands), "export");
  EXPECT_EQ(ClosestWord("preveiw", commands), "preview");
  EXPECT_EQ(ClosestWord("frobnicate", commands), "");
  EXPECT_EQ(ClosestWord("xy", commands), "");
  EXPECT_EQ(ClosestWord("send", commands), "") << "not a typo";
}

TEST(TextTest, DetectsLineBreaksAndNul) {
  EXPECT_FALSE(HasLineBreakOrNul("Subject text"));
  EXPECT_TRUE(HasLineBreakOrNul("a\rb"));
  EXPECT_TRUE(HasLineBreakOrNul("a\nb"));
  EXPECT_TRUE(HasLineBreakOrNul(std::string_view("a\0b", 3)));
}

TEST(TextTest, PrintableEscapesControlAndInvalidBytes) {
  EXPECT_EQ(Printable("a\r\nb"), "a\\r\\nb");
  EXPECT_EQ(Printable("Grüße"), "Grüße");
  EXPECT_EQ(Printable("M\xFCller"), "M\\xFCller");
  EXPECT_EQ(Printable("abcdef", 3), "abc...");
}

TEST(TextTest, CaseAndTrim) {
  EXPECT_EQ(AsciiLowercase("MiXeD@Example.COM"), "mixed@example.com");
  EXPECT_TRUE(EqualsIgnoreCase("Email", "EMAIL"));
  EXPECT_FALSE(EqualsIgnoreCase("Email", "Emails"));
  EXPECT_EQ(TrimBlanks(" \t x y \t"), "x y");
  EXPECT_EQ(TrimBlanks("   "), "");
}

}  // namespace
}  // namespace herald
