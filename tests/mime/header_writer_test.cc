#include "mime/internal/header_writer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/text.h"
#include "mime/mime_test_util.h"

namespace herald::mime_internal {
namespace {

using mime_test::DecodeEncodedWord;
using mime_test::DecodeUnstructured;
using mime_test::Unfold;

struct FieldReport {
  std::size_t lines = 0;
  std::size_t longest = 0;
  std::size_t encoded_words = 0;
};

// Checks the form of one written field: CRLF line ends, continuation lines start with a blank
// and are not blank-only, no line over 998, lines with encoded words within 76, encoded words
// within 75 characters and each one whole UTF-8 on its own (no character split across words).
FieldReport CheckField(std::string_view field) {
  FieldReport report;
  EXPECT_TRUE(field.ends_with("\r\n")) << field;
  std::optional<std::vector<std::string_view>> lines = mime_test::SplitCrlfLines(field.substr(0, field.size() - 2));
  EXPECT_TRUE(lines.has_value()) << "bare CR or LF in " << field;
  if (!lines) return report;
  report.lines = lines->size();
  for (std::size_t i = 0; i < lines->size(); ++i) {
    std::string_view line = (*lines)[i];
    report.longest = std::max(report.longest, line.size());
    EXPECT_LE(line.size(), kMaxLineLength) << "line " << i;
    if (i > 0) {
      EXPECT_TRUE(line.starts_with(" ") || line.starts_with("\t")) << "line " << i << ": " << line;
      EXPECT_NE(TrimBlanks(line), "") << "blank-only line " << i;
    }
    std::size_t pos = 0;
    bool has_encoded_word = false;
    while ((pos = line.find("=?UTF-8?", pos)) != std::string_view::npos) {
      std::size_t end = line.find("?=", pos + 10);
      EXPECT_NE(end, std::string_view::npos) << line;
      if (end == std::string_view::npos) break;
      std::string_view word = line.substr(pos, end + 2 - pos);
      EXPECT_LE(word.size(), kMaxEncodedWordLength) << word;
      std::optional<std::string> decoded = DecodeEncodedWord(word);
      EXPECT_TRUE(decoded.has_value()) << word;
      if (decoded) {
        EXPECT_TRUE(IsValidUtf8(*decoded)) << "encoded word splits a character: " << word;
      }
      has_encoded_word = true;
      ++report.encoded_words;
      pos = end + 2;
    }
    if (has_encoded_word) {
      EXPECT_LE(line.size(), kEncodedWordLineLength) << line;
    }
  }
  return report;
}

std::string Unstructured(std::string_view value, std::string_view name = "Subject") {
  std::string out;
  Status status = AppendUnstructuredField(name, value, out);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return out;
}

// The value a decoder reads back from a written unstructured field.
std::string DecodedValue(std::string_view field, std::string_view name = "Subject") {
  std::string unfolded = Unfold(field.substr(0, field.size() - 2));
  EXPECT_TRUE(std::string_view(unfolded).starts_with(std::string(name) + ":")) << unfolded;
  std::string_view value = std::string_view(unfolded).substr(name.size() + 1);
  return DecodeUnstructured(TrimBlanks(value));
}

TEST(HeaderWriterTest, AsciiStaysPlain) {
  EXPECT_EQ(Unstructured("Your invoice for March"), "Subject: Your invoice for March\r\n");
  EXPECT_EQ(Unstructured("  padded\t "), "Subject: padded\r\n");
  EXPECT_EQ(Unstructured("a  \tb"), "Subject: a  \tb\r\n");
  EXPECT_EQ(Unstructured(""), "Subject:\r\n");
  EXPECT_EQ(Unstructured("100% = ? _ (ok) \"quoted\""), "Subject: 100% = ? _ (ok) \"quoted\"\r\n");
}

TEST(HeaderWriterTest, FoldsAsciiAt78) {
  std::string value;
  for (int i = 0; i < 40; ++i) value += (i ? " " : "") + std::string("word") + std::to_string(i);
  std::string field = Unstructured(value);
  FieldReport report = CheckField(field);
  EXPECT_GT(report.lines, 3u);
  EXPECT_LE(report.longest, kPreferredLineLength);
  EXPECT_EQ(report.encoded_words, 0u);
  EXPECT_EQ(Unfold(field), "Subject: " + value);
}

TEST(HeaderWriterTest, EncodesNonAsciiWordsOnly) {
  EXPECT_EQ(Unstructured("Gr\xC3\xBC\xC3\x9F" "e aus M\xC3\xBCnchen"),
            "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?UTF-8?Q?M=C3=BCnchen?=\r\n");
  // Adjacent words to encode are one run; the blank between them is encoded inside it.
  EXPECT_EQ(Unstructured("Caf\xC3\xA9 cr\xC3\xA8me!"), "Subject: =?UTF-8?Q?Caf=C3=A9_cr=C3=A8me!?=\r\n");
  // Mostly non-ASCII text is shorter in base64.
  EXPECT_EQ(Unstructured("\xE6\x97\xA5\xE6\x9C\xAC"), "Subject: =?UTF-8?B?5pel5pys?=\r\n");
}

TEST(HeaderWriterTest, LongNonAsciiSubjectsFoldAndDecode) {
  const std::vector<std::string> values = {
      // German, mostly ASCII.
      "Ihre Bestellung \xC3\xBC" "ber 3 Artikel: Gr\xC3\xBC\xC3\x9F" "e aus M\xC3\xBCnchen, K\xC3\xB6ln und "
      "D\xC3\xBCsseldorf \xE2\x80\x93 bitte pr\xC3\xBC" "fen Sie die Lieferadresse und best\xC3\xA4tigen Sie",
      // Japanese, one long word without blanks.
      "\xE3\x81\x94\xE6\xB3\xA8\xE6\x96\x87\xE3\x81\x82\xE3\x82\x8A\xE3\x81\x8C\xE3\x81\xA8\xE3\x81\x86\xE3\x81\x94"
      "\xE3\x81\x96\xE3\x81\x84\xE3\x81\xBE\xE3\x81\x99\xE3\x80\x82\xE3\x81\x8A\xE5\xB1\x8A\xE3\x81\x91\xE4\xBA\x88"
      "\xE5\xAE\x9A\xE6\x97\xA5\xE3\x81\xAF\xE6\x98\x8E\xE6\x97\xA5\xE3\x81\xA7\xE3\x81\x99\xE3\x80\x82\xE6\x9D\xB1"
      "\xE4\xBA\xAC\xE9\x83\xBD\xE6\xB8\x8B\xE8\xB0\xB7\xE5\x8C\xBA\xE3\x81\xAE\xE5\x80\x89\xE5\xBA\xAB\xE3\x81\x8B"
      "\xE3\x82\x89\xE7\x99\xBA\xE9\x80\x81\xE3\x81\x84\xE3\x81\x9F\xE3\x81\x97\xE3\x81\xBE\xE3\x81\x99",
      // Emoji (4-byte characters) mixed with ASCII.
      "Party \xF0\x9F\x8E\x89\xF0\x9F\x8E\x89\xF0\x9F\x8E\x89 tonight \xF0\x9F\x8D\xBB at 8, "
      "bring friends \xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80 "
      "and more \xF0\x9F\x8E\x89\xF0\x9F\x8E\x89\xF0\x9F\x8E\x89\xF0\x9F\x8E\x89\xF0\x9F\x8E\x89",
      // French with punctuation.
      "\xC2\xAB Derni\xC3\xA8re chance \xC2\xBB : r\xC3\xA9servez d\xC3\xA8s aujourd'hui \xC3\xA0 "
      "l'h\xC3\xB4tel \xC3\xA0 No\xC3\xABl, \xC3\xA9t\xC3\xA9 comme hiver",
  };
  for (const std::string& value : values) {
    std::string field = Unstructured(value);
    FieldReport report = CheckField(field);
    EXPECT_GT(report.lines, 1u) << field;
    EXPECT_LE(report.longest, kPreferredLineLength) << field;
    EXPECT_EQ(DecodedValue(field), value) << field;
  }
}

TEST(HeaderWriterTest, LongWords) {
  // An ASCII word that fits within 998 stays whole (it may be a URL in a structured field).
  std::string url = "https://example.com/unsubscribe?token=" + std::string(300, 'a');
  std::string field = Unstructured("see " + url, "List-Help");
  EXPECT_EQ(field, "List-Help: see\r\n " + url + "\r\n");
  CheckField(field);

  // Longer words are encoded and split, so no line passes 998 (nor, here, 76).
  for (std::string word : {std::string(5000, 'x'), std::string(1200, 'y') + "\xC3\xA4"}) {
    field = Unstructured("before " + word + " after");
    FieldReport report = CheckField(field);
    EXPECT_LE(report.longest, kEncodedWordLineLength);
    EXPECT_EQ(DecodedValue(field), "before " + word + " after");
  }

  // Long runs of blanks go inside encoded words; a fold cannot split them.
  std::string spaced = "a" + std::string(100, ' ') + "b" + std::string(3000, '\t') + "c";
  field = Unstructured(spaced);
  FieldReport report = CheckField(field);
  EXPECT_LE(report.longest, kPreferredLineLength);
  EXPECT_EQ(DecodedValue(field), spaced);
}

TEST(HeaderWriterTest, EncodedWordLookalikesAreEncoded) {
  const std::vector<std::string> values = {
      "=?utf-8?q?=0D=0A?=",
      "=?utf-8?q?=0D=0ABcc:_victim@evil.example?=",
      "Hi =?UTF-8?B?DQpCY2M6IHg=?= there",
      "abc=?x?q?y?=def",
      "=?",
      "x =?utf-8?q?a?= =?utf-8?q?b?= y",
  };
  for (const std::string& value : values) {
    std::string field = Unstructured(value);
    CheckField(field);
    // Only herald's own encoded words remain; decoding gives the text back as written.
    EXPECT_EQ(field.find("=?utf-8?"), std::string::npos) << field;
    EXPECT_EQ(field.find("=?x?"), std::string::npos) << field;
    EXPECT_EQ(DecodedValue(field), value) << field;
  }
}

TEST(HeaderWriterTest, SplitsEncodedWordsBeforeBlanks) {
  // A long run of encoded text is split where a blank lets the next word begin with it.
  std::string value;
  for (int i = 0; i < 12; ++i) value += "M\xC3\xBCller ";
  value += "\xC3\xA4";
  std::string field = Unstructured(value);
  CheckField(field);
  std::string unfolded = Unfold(field);
  for (std::size_t pos = 0; (pos = unfolded.find("?==?UTF-8?Q?", pos)) != std::string::npos; ++pos) ADD_FAILURE();
  for (std::size_t pos = 0; (pos = unfolded.find("?= =?UTF-8?Q?", pos)) != std::string::npos; ++pos) {
    EXPECT_EQ(unfolded.substr(pos + 13, 1), "_") << unfolded;
  }
  EXPECT_EQ(DecodedValue(field), value);
}

TEST(HeaderWriterTest, RejectsLineBreaksNulAndInvalidUtf8) {
  struct Case {
    std::string value;
    std::string want;
  };
  const Case cases[] = {
      {"x\r\nBcc: victim@evil.example", "contains a line break (CR)"},
      {"x\nBcc: victim@evil.example", "contains a line break (LF)"},
      {"x\rBcc: victim@evil.example", "contains a line break (CR)"},
      {std::string("a\0b", 3), "contains a NUL byte"},
      {"caf\xE9", "is not valid UTF-8"},
      {"\xC0\xAF", "is not valid UTF-8"},
      {"\xED\xA0\x80", "is not valid UTF-8"},
      {"esc\x1B[31m", "contains a control character"},
      {"bell\x07", "contains a control character"},
      {"del\x7F", "contains a control character"},
  };
  for (const Case& c : cases) {
    std::string out = "Kept: yes\r\n";
    Status status = AppendUnstructuredField("Subject", c.value, out);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << c.want;
    EXPECT_EQ(status.message(), c.want);
    EXPECT_EQ(out, "Kept: yes\r\n");
    Address address{"a", "example.com"};
    status = AppendMailboxField("To", c.value, address, out);
    EXPECT_EQ(status.message(), "display name " + c.want);
    EXPECT_EQ(out, "Kept: yes\r\n");
  }
}

TEST(HeaderWriterTest, LongFieldNamesStillKeepTheFirstWordOnTheFirstLine) {
  std::string name(kMaxFieldNameLength, 'X');
  ASSERT_TRUE(IsValidFieldName(name));
  for (std::string value : {std::string("\xF0\x9F\x98\x80 smile"), std::string("\xC3\xA4"), std::string(100, 'a')}) {
    std::string field = Unstructured(value, name);
    CheckField(field);
    EXPECT_NE(field[name.size() + 1], '\r') << field;  // not folded right after the colon
    EXPECT_EQ(DecodedValue(field, name), value);
  }
}

TEST(HeaderWriterTest, FieldNames) {
  EXPECT_TRUE(IsValidFieldName("X-Campaign"));
  EXPECT_TRUE(IsValidFieldName("List-Unsubscribe-Post"));
  EXPECT_FALSE(IsValidFieldName(""));
  EXPECT_FALSE(IsValidFieldName("X Campaign"));
  EXPECT_FALSE(IsValidFieldName("X:Campaign"));
  EXPECT_FALSE(IsValidFieldName("X-\xC3\xA4"));
  EXPECT_FALSE(IsValidFieldName("X-\r\n"));
  EXPECT_FALSE(IsValidFieldName(std::string(kMaxFieldNameLength + 1, 'X')));
}

std::string Mailbox(std::string_view name, const Address& address, std::string_view field = "To") {
  std::string out;
  Status status = AppendMailboxField(field, name, address, out);
  EXPECT_TRUE(status.ok()) << status.ToString();
  if (status.ok()) CheckField(out);
  return out;
}

TEST(HeaderWriterTest, Mailboxes) {
  const Address anna{"anna", "example.com"};
  struct Case {
    std::string name;
    std::string want;
  };
  const Case cases[] = {
      {"", "To: anna@example.com\r\n"},
      {"  ", "To: anna@example.com\r\n"},
      {"Anna Schmidt", "To: Anna Schmidt <anna@example.com>\r\n"},
      {"Anna O'Neil-Smith", "To: Anna O'Neil-Smith <anna@example.com>\r\n"},
      {"Schmidt, Anna", "To: \"Schmidt, Anna\" <anna@example.com>\r\n"},
      {"J. Smith", "To: \"J. Smith\" <anna@example.com>\r\n"},
      {"Anna  Schmidt", "To: \"Anna  Schmidt\" <anna@example.com>\r\n"},
      {"Say \"hi\" \\ bye", "To: \"Say \\\"hi\\\" \\\\ bye\" <anna@example.com>\r\n"},
      {"J\xC3\xBCrgen M\xC3\xBCller", "To: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <anna@example.com>\r\n"},
      {"M\xC3\xBCller, J\xC3\xBCrgen", "To: =?UTF-8?Q?M=C3=BCller=2C_J=C3=BCrgen?= <anna@example.com>\r\n"},
      {"=?utf-8?q?x?=", "To: =?UTF-8?Q?=3D=3Futf-8=3Fq=3Fx=3F=3D?= <anna@example.com>\r\n"},
  };
  for (const Case& c : cases) EXPECT_EQ(Mailbox(c.name, anna), c.want) << c.name;

  // RFC 6532: an address that needs SMTPUTF8 is written as UTF-8.
  EXPECT_EQ(Mailbox("J\xC3\xBCrgen", Address{"j\xC3\xBCrgen", "xn--mnchen-3ya.de", true}),
            "To: =?UTF-8?Q?J=C3=BCrgen?= <j\xC3\xBCrgen@xn--mnchen-3ya.de>\r\n");
  EXPECT_EQ(Mailbox("", Address{"\"john doe\"", "example.com"}), "To: \"john doe\"@example.com\r\n");
}

TEST(HeaderWriterTest, LongDisplayNamesFold) {
  const Address anna{"anna.schmidt.from.the.sales.department", "subsidiary.example.com"};
  std::string atoms;
  for (int i = 0; i < 20; ++i) atoms += (i ? " " : "") + std::string("Name") + std::to_string(i);
  std::string field = Mailbox(atoms, anna);
  FieldReport report = CheckField(field);
  EXPECT_GT(report.lines, 1u);
  EXPECT_LE(report.longest, kPreferredLineLength);
  EXPECT_EQ(Unfold(field), "To: " + atoms + " <" + anna.ToString() + ">");

  // Too long for one quoted-string line: encoded words instead, which fold.
  std::string specials = "Schmidt, Anna (" + std::string(80, 'x') + ")";
  field = Mailbox(specials, anna);
  report = CheckField(field);
  EXPECT_LE(report.longest, kPreferredLineLength);
  EXPECT_GT(report.encoded_words, 1u);
}

TEST(HeaderWriterTest, BadAddresses) {
  std::string out;
  EXPECT_FALSE(AppendMailboxField("To", "", Address{"", "example.com"}, out).ok());
  EXPECT_FALSE(AppendMailboxField("To", "", Address{"a", ""}, out).ok());
  Status status = AppendMailboxField("To", "", Address{"a\r\nBcc: b", "example.com"}, out);
  EXPECT_EQ(status.message(), "address contains a line break (CR)");
  EXPECT_FALSE(AppendMailboxField("To", "", Address{"a\x01", "example.com"}, out).ok());
  EXPECT_EQ(out, "");
}

TEST(HeaderWriterTest, MessageIds) {
  std::string out;
  ASSERT_TRUE(AppendMessageIdField("20250304.abc123@mail.example.com", out).ok());
  EXPECT_EQ(out, "Message-ID: <20250304.abc123@mail.example.com>\r\n");
  for (std::string_view bad : {"", "no-at-sign", "a b@example.com", "<a@example.com>", "a@b@c", "@example.com",
                               "a@", "a@example.com\r\nBcc: x", "\xC3\xA4@example.com"}) {
    out.clear();
    Status status = AppendMessageIdField(bad, out);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(status.message().starts_with("message-id")) << status.message();
    EXPECT_EQ(out, "");
  }
}

TEST(HeaderWriterTest, Dates) {
  using namespace std::chrono;
  struct Case {
    TimePoint time;
    std::string want;
  };
  const Case cases[] = {
      {TimePoint(sys_days(2025y / March / 4) + 9h + 5min + 3s + 789ms), "Date: Tue, 04 Mar 2025 09:05:03 +0000\r\n"},
      {TimePoint(sys_days(2024y / February / 29) + 23h + 59min + 59s), "Date: Thu, 29 Feb 2024 23:59:59 +0000\r\n"},
      {TimePoint(sys_days(1970y / January / 1)), "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"},
      {TimePoint(sys_days(2038y / December / 31) + 12h), "Date: Fri, 31 Dec 2038 12:00:00 +0000\r\n"},
  };
  for (const Case& c : cases) {
    std::string out;
    AppendDateField(c.time, out);
    EXPECT_EQ(out, c.want);
  }
}

std::string Disposition(std::string_view file_name) {
  std::string out;
  HeaderLine line(out, "Content-Disposition");
  line.AddPlain(" ", "attachment");
  line.AddParameter("filename", file_name);
  line.Finish();
  FieldReport report = CheckField(out);
  EXPECT_LE(report.longest, kPreferredLineLength) << out;
  return out;
}

// Reassembles an RFC 2231 parameter from a field (test-side decoder): splits the unfolded
// parameters at ';' outside quoted strings and joins "name", "name*", "name*N" and "name*N*" in
// order, unquoting and %-decoding as marked.
std::string DecodeParameter(std::string_view field, std::string_view attribute) {
  std::string text = Unfold(field);
  std::string value;
  std::size_t pos = text.find(';');
  while (pos != std::string::npos && pos < text.size()) {
    ++pos;
    while (pos < text.size() && text[pos] == ' ') ++pos;
    std::size_t equals = text.find('=', pos);
    if (equals == std::string::npos) break;
    std::string name = text.substr(pos, equals - pos);
    std::string raw;
    pos = equals + 1;
    if (pos < text.size() && text[pos] == '"') {
      for (++pos; pos < text.size() && text[pos] != '"'; ++pos) {
        if (text[pos] == '\\') ++pos;
        raw.push_back(text[pos]);
      }
      ++pos;
    } else {
      std::size_t end = text.find_first_of(";\r", pos);
      raw = text.substr(pos, end - pos);
      pos = end;
    }
    pos = text.find(';', pos);
    if (name.compare(0, attribute.size(), attribute) != 0) continue;
    if (name.back() == '*') {
      if (raw.starts_with("UTF-8''")) raw.erase(0, 7);
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '%') {
          value.push_back(static_cast<char>(mime_test::HexValue(raw[i + 1]) * 16 + mime_test::HexValue(raw[i + 2])));
          i += 2;
        } else {
          value.push_back(raw[i]);
        }
      }
    } else {
      value += raw;
    }
  }
  return value;
}

TEST(HeaderWriterTest, FileNameParameters) {
  EXPECT_EQ(Disposition("report.pdf"), "Content-Disposition: attachment; filename=\"report.pdf\"\r\n");
  EXPECT_EQ(Disposition("say \"hi\".txt"), "Content-Disposition: attachment; filename=\"say \\\"hi\\\".txt\"\r\n");
  EXPECT_EQ(Disposition("\xC3\x9C" "berweisung M\xC3\xA4rz.pdf"),
            "Content-Disposition: attachment;\r\n filename*=UTF-8''%C3%9Cberweisung%20M%C3%A4rz.pdf\r\n");
  EXPECT_EQ(Disposition("=?utf-8?q?x?=.pdf"),
            "Content-Disposition: attachment;\r\n filename*=UTF-8''%3D%3Futf-8%3Fq%3Fx%3F%3D.pdf\r\n");

  // RFC 2231 continuations for long names, ASCII and not.
  std::string long_ascii = "Quarterly report of the northern sales region " + std::string(60, 'q') + " final.pdf";
  std::string field = Disposition(long_ascii);
  EXPECT_NE(field.find("filename*0=\""), std::string::npos) << field;
  EXPECT_NE(field.find("filename*1=\""), std::string::npos) << field;
  EXPECT_EQ(DecodeParameter(field, "filename"), long_ascii);

  std::string long_utf8;
  for (int i = 0; i < 12; ++i) long_utf8 += "\xE5\xA0\xB1\xE5\x91\x8A\xE6\x9B\xB8 M\xC3\xA4rz ";
  long_utf8 += ".pdf";
  field = Disposition(long_utf8);
  EXPECT_NE(field.find("filename*0*=UTF-8''"), std::string::npos) << field;
  EXPECT_NE(field.find("filename*2*="), std::string::npos) << field;
  EXPECT_EQ(DecodeParameter(field, "filename"), long_utf8);
  // No segment splits a character: each decodes to UTF-8 on its own.
  std::string unfolded = Unfold(field);
  for (std::size_t pos = 0; (pos = unfolded.find("*=", pos)) != std::string::npos; pos += 2) {
    std::size_t end = unfolded.find_first_of(";\r", pos);
    std::string segment = unfolded.substr(pos + 2, end - pos - 2);
    if (segment.starts_with("UTF-8''")) segment.erase(0, 7);
    std::string bytes = DecodeParameter("X: x; f*=" + segment + "\r\n", "f");
    EXPECT_TRUE(IsValidUtf8(bytes)) << segment;
  }
}

}  // namespace
}  // namespace herald::mime_internal
