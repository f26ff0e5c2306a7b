#include "mime/internal/quoted_printable.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "mime/mime_test_util.h"

namespace herald::mime_internal {
namespace {

using mime_test::DecodeQp;
using mime_test::NormaliseLineBreaks;

std::string Encode(std::string_view text) {
  std::string out;
  QpEncoder encoder(out);
  encoder.Add(text);
  encoder.Finish();
  return out;
}

// Encodes, checks every output rule with the strict decoder and returns the decoded text.
std::string RoundTrip(std::string_view text) {
  std::string encoded = Encode(text);
  std::string error;
  std::optional<std::string> decoded = DecodeQp(encoded, &error);
  EXPECT_TRUE(decoded.has_value()) << error << "\nencoded:\n" << encoded;
  return decoded.value_or("");
}

TEST(QuotedPrintableTest, EncodesByTheRules) {
  struct Case {
    std::string input;
    std::string want;
  };
  const Case cases[] = {
      {"Hello, World!", "Hello, World!"},
      {"", ""},
      {"a=b", "a=3Db"},
      {"Gr\xC3\xBC\xC3\x9F" "e", "Gr=C3=BC=C3=9Fe"},
      {std::string("nul\0del\x7F", 8), "nul=00del=7F"},
      // Rule (3): a blank before a line break or at the end is encoded; inside a line it is not.
      {"a  b", "a  b"},
      {"end ", "end=20"},
      {"end\t", "end=09"},
      {"two  \r\nlines", "two =20\r\nlines"},
      {"tab\t\nx", "tab=09\r\nx"},
      // Line breaks: CRLF, bare LF and bare CR all become CRLF.
      {"a\nb\rc\r\nd", "a\r\nb\r\nc\r\nd"},
      {"\r\n\r\n", "\r\n\r\n"},
      {"\n\r", "\r\n\r\n"},
      // Safe for dot-stuffing and mbox: no line begins with '.' or 'F'.
      {".hidden", "=2Ehidden"},
      {"a\n.b", "a\r\n=2Eb"},
      {"From here", "=46rom here"},
      {"x\nFrom: y", "x\r\n=46rom: y"},
      {"Fine", "=46ine"},
      {"a.b From c", "a.b From c"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Encode(c.input), c.want) << mime_test::JsonString(c.input);
  }
}

TEST(QuotedPrintableTest, SoftBreaksKeepLinesWithin76) {
  EXPECT_EQ(Encode(std::string(75, 'a')), std::string(75, 'a'));
  EXPECT_EQ(Encode(std::string(76, 'a')), std::string(75, 'a') + "=\r\na");
  // An escape is never split by a soft break.
  EXPECT_EQ(Encode(std::string(73, 'a') + "\xC3\xA4"), std::string(73, 'a') + "=\r\n=C3=A4");
  EXPECT_EQ(Encode(std::string(72, 'a') + "\xC3\xA4"), std::string(72, 'a') + "=C3=\r\n=A4");
  // After a soft break the rules for a line start apply again.
  EXPECT_EQ(Encode(std::string(75, 'a') + ".x"), std::string(75, 'a') + "=\r\n=2Ex");
  EXPECT_EQ(Encode(std::string(75, 'a') + "From"), std::string(75, 'a') + "=\r\n=46rom");
  // A blank held at the end of a full line.
  EXPECT_EQ(Encode(std::string(75, 'a') + " b"), std::string(75, 'a') + "=\r\n b");
  EXPECT_EQ(Encode(std::string(75, 'a') + " "), std::string(75, 'a') + "=\r\n=20");
  EXPECT_EQ(Encode(std::string(74, 'a') + " \n"), std::string(74, 'a') + "=\r\n=20\r\n");

  std::string long_line(1000, 'x');
  std::string encoded = Encode(long_line);
  std::optional<std::vector<std::string_view>> lines = mime_test::SplitCrlfLines(encoded);
  ASSERT_TRUE(lines);
  EXPECT_EQ(lines->size(), 14u);
  for (std::size_t i = 0; i + 1 < lines->size(); ++i) EXPECT_EQ((*lines)[i].size(), 76u) << i;
  EXPECT_EQ(RoundTrip(long_line), long_line);
}

TEST(QuotedPrintableTest, LineBreaksAcrossCalls) {
  struct Case {
    std::vector<std::string> pieces;
    std::string want;
  };
  const Case cases[] = {
      {{"a\r", "\nb"}, "a\r\nb"},    // one CRLF split over two calls is one break
      {{"a\r", "b"}, "a\r\nb"},      // a bare CR at the end of a call
      {{"a\r", "\r\nb"}, "a\r\n\r\nb"},
      {{"a\r", "", "\nb"}, "a\r\nb"},
      {{"a ", "\n"}, "a=20\r\n"},    // a blank held over the call
      {{"a ", "b"}, "a b"},
      {{"a\n", ".b"}, "a\r\n=2Eb"},
  };
  for (const Case& c : cases) {
    std::string out;
    QpEncoder encoder(out);
    for (const std::string& piece : c.pieces) encoder.Add(piece);
    encoder.Finish();
    EXPECT_EQ(out, c.want) << mime_test::JsonString(c.pieces[0]);
  }
}

TEST(QuotedPrintableTest, EveryByteRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    for (std::string text : {std::string(1, c), "x" + std::string(1, c) + "y", std::string(3, c),
                             std::string(74, 'a') + c, std::string(75, 'a') + c + "\n"}) {
      EXPECT_EQ(RoundTrip(text), NormaliseLineBreaks(text)) << "byte " << b;
    }
    all.push_back(c);
  }
  EXPECT_EQ(RoundTrip(all + all), NormaliseLineBreaks(all + all));
}

TEST(QuotedPrintableTest, RandomBytesInRandomPiecesRoundTrip) {
  std::mt19937 random(20250304);
  const std::string alphabet = std::string("aF. \t\r\n=\xC3\xA4\x01z") + '\0';
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    std::size_t size = random() % 400;
    for (std::size_t i = 0; i < size; ++i) {
      text.push_back(random() % 3 == 0 ? static_cast<char>(random() % 256) : alphabet[random() % alphabet.size()]);
    }
    std::string out;
    QpEncoder encoder(out);
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t n = std::min<std::size_t>(random() % 20, text.size() - pos);
      encoder.Add(std::string_view(text).substr(pos, n));
      pos += n;
    }
    encoder.Finish();
    std::string error;
    std::optional<std::string> decoded = DecodeQp(out, &error);
    ASSERT_TRUE(decoded) << error << "\n" << out;
    ASSERT_EQ(*decoded, NormaliseLineBreaks(text)) << "round " << round;
  }
}

// Random template text: words, blanks, every kind of line break, dots and F at line starts,
// long lines and non-ASCII.
std::string RandomText(std::mt19937& random, std::size_t max_pieces) {
  static const std::vector<std::string> kPieces = {
      "Hello", " ", "  ", "\t", "\r\n", "\n", "\r", ".", "From ", "F", "Gr\xC3\xBC\xC3\x9F" "e", "=", "\xE6\x97\xA5",
      "<p>", "word", std::string(90, 'x'), std::string(30, 'y'), " \r\n", "\r\n.", "\r\n\r\n",
  };
  std::string text;
  std::size_t pieces = random() % (max_pieces + 1);
  for (std::size_t i = 0; i < pieces; ++i) text += kPieces[random() % kPieces.size()];
  return text;
}

TEST(QuotedPrintableTest, PreparedLiteralsEncodeLikeTheirText) {
  std::mt19937 random(7);
  int pre_encoded = 0;
  int forced_soft_breaks = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<std::string> literals;
    std::vector<std::string> values;
    std::size_t segments = 1 + random() % 5;
    std::string expected;
    for (std::size_t i = 0; i < segments; ++i) {
      literals.push_back(RandomText(random, round % 3 == 0 ? 60 : 12));
      values.push_back(i + 1 < segments ? RandomText(random, 4) : "");
      expected += literals.back() + values.back();
    }
    std::string out;
    QpEncoder encoder(out);
    for (std::size_t i = 0; i < segments; ++i) {
      QpLiteral literal = PrepareQpLiteral(literals[i], i == 0);
      if (!literal.encoded.empty()) {
        ++pre_encoded;
        if (i > 0 && literal.head.empty()) ++forced_soft_breaks;
        // The pre-encoded middle is what encoding it from column 0 gives.
        std::string middle = literals[i].substr(literal.head.size(),
                                                literals[i].size() - literal.head.size() - literal.tail.size());
        std::string alone;
        QpEncoder middle_encoder(alone);
        middle_encoder.Add(middle);
        EXPECT_EQ(literal.encoded, alone);
        EXPECT_EQ(literal.head + middle + literal.tail, literals[i]);
      }
      encoder.AddLiteral(literal);
      encoder.Add(values[i]);
    }
    encoder.Finish();
    std::string error;
    std::optional<std::string> decoded = DecodeQp(out, &error);
    ASSERT_TRUE(decoded) << "round " << round << ": " << error << "\n" << out;
    ASSERT_EQ(*decoded, NormaliseLineBreaks(expected)) << "round " << round;
  }
  // The cases above did exercise the pre-encoded path, including a literal with no early line
  // break after a value.
  EXPECT_GT(pre_encoded, 1000);
  EXPECT_GT(forced_soft_breaks, 10);
}

TEST(QuotedPrintableTest, PreparedLiteralSplit) {
  std::string literal = ",\r\nthank you for your order.\r\nWe ship tomorrow. \t";
  QpLiteral prepared = PrepareQpLiteral(literal, false);
  EXPECT_EQ(prepared.head, ",\r\n");
  EXPECT_EQ(prepared.encoded, "thank you for your order.\r\nWe ship tomorrow.");
  EXPECT_EQ(prepared.end_column, 17u);
  EXPECT_EQ(prepared.tail, " \t");

  // Short literals are rendered in full each time.
  EXPECT_EQ(PrepareQpLiteral(" and ", false).head, " and ");
  EXPECT_TRUE(PrepareQpLiteral(" and ", false).encoded.empty());

  // After a value the pre-encoded middle starts on a fresh line: a soft break gets there.
  std::string out;
  QpEncoder encoder(out);
  encoder.Add("Anna");
  std::string long_line(200, 'z');
  encoder.AddLiteral(PrepareQpLiteral(long_line, false));
  encoder.Finish();
  EXPECT_EQ(out.substr(0, 7 + 75), "Anna=\r\n" + std::string(75, 'z'));
}

}  // namespace
}  // namespace herald::mime_internal
