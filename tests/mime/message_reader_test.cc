#include "mime/message_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "address/address.h"
#include "core/text.h"
#include "merge/field_set.h"
#include "merge/template.h"
#include "mime/composer.h"

namespace herald {
namespace {

using ::testing::HasSubstr;

TEST(DecodeHeaderTextTest, DecodesUtf8EncodedWordsAndKeepsTheRest) {
  struct Case {
    std::string_view raw;
    std::string_view want;
  };
  const Case cases[] = {
      {"plain text", "plain text"},
      {"=?utf-8?q?M=C3=BCller?=", "Müller"},
      {"=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Grüße aus Köln"},
      {"=?utf-8?b?5pel5pys6Kqe?=", "日本語"},
      {"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"},             // RFC 2047 §6.2: blanks between words dropped
      {"=?utf-8?q?a?=  \t =?utf-8?q?_b?=", "a b"},        // an encoded space stays
      {"=?utf-8?q?Anna?= <anna@example.com>", "Anna <anna@example.com>"},
      {"Hello =?utf-8?q?J=C3=BCrgen?=, welcome", "Hello Jürgen, welcome"},
      {"=?utf-8*de?q?Stra=C3=9Fe?=", "Straße"},           // RFC 2231 §5 language
      {"=?iso-8859-1?q?M=FCller?=", "=?iso-8859-1?q?M=FCller?="},  // another charset: as written
      {"=?utf-8?q?=FF?=", "=?utf-8?q?=FF?="},             // not UTF-8 once decoded
      {"=?utf-8?q?=ZZ?=", "=?utf-8?q?=ZZ?="},
      {"=?utf-8?q?unterminated", "=?utf-8?q?unterminated"},
      {"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},
      {"a =? b", "a =? b"},
  };
  for (const Case& c : cases) EXPECT_EQ(DecodeHeaderText(c.raw), c.want) << c.raw;
}

TEST(DecodeQuotedPrintableTest, DecodesEscapesAndSoftBreaks) {
  EXPECT_EQ(*DecodeQuotedPrintable("a=3Db=\r\nc\r\nd=C3=BC"), "a=bc\r\ndü");
  EXPECT_EQ(*DecodeQuotedPrintable("=2E starts=20\r\n"), ". starts \r\n");
  for (std::string_view bad : {"=G1", "abc=", "=4"}) {
    Result<std::string> decoded = DecodeQuotedPrintable(bad);
    ASSERT_FALSE(decoded.ok()) << bad;
    EXPECT_THAT(decoded.status().message(), HasSubstr("quoted-printable"));
  }
}

TEST(DecodeBase64Test, DecodesLinesAndChecksPadding) {
  EXPECT_EQ(*DecodeBase64("SGVsbG8="), "Hello");
  EXPECT_EQ(*DecodeBase64("SGVs\r\nbG8h"), "Hell" "o!");
  EXPECT_EQ(*DecodeBase64("SGk="), "Hi");
  EXPECT_EQ(*DecodeBase64("SA=="), "H");
  EXPECT_EQ(*DecodeBase64(""), "");
  for (std::string_view bad : {"SGV", "S=GV", "SGk=SGk=", "SG*k", "S==="}) {
    EXPECT_FALSE(DecodeBase64(bad).ok()) << bad;
  }
}

TEST(ParseMessageTest, RejectsWhatItCannotRead) {
  EXPECT_FALSE(ParseMessage("Subject: no body separator").ok());
  EXPECT_FALSE(ParseMessage("Content-Type: multipart/mixed\r\n\r\nbody").ok());
  EXPECT_FALSE(ParseMessage("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ntext").ok());
  EXPECT_FALSE(ParseMessage("Content-Transfer-Encoding: base64\r\n\r\n*").ok());
}

// A message from herald's own composer reads back to what went in.
TEST(ParseMessageTest, ReadsBackAComposedMessage) {
  const std::filesystem::path attachment =
      std::filesystem::temp_directory_path() / ("herald_reader_test_" + std::to_string(::getpid()) + ".bin");
  std::string bytes;
  for (int i = 0; i < 1000; ++i) bytes += static_cast<char>((i * 37) & 0xFF);
  std::ofstream(attachment, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  FieldSet fields({"email", "name"});
  auto compile = [&](std::string_view text) { return *Template::Compile(text, fields, "test"); };
  ComposerSpec spec{.task_title = "Herbst",
                    .from_address = *ParseAddress("news@example.org"),
                    .from_name = compile("Verein für Kultur"),
                    .reply_to = std::nullopt,
                    .to_name = compile("{%name%}"),
                    .subject = compile("Grüße, {%name%}: unser Programm für den Herbst 2026 in der Stadthalle"),
                    .text_body = compile("Hallo {%name%},\nhier ist das Programm.\n.Punkt am Anfang\n"),
                    .html_body = compile("<p>Hallo <b>{%name%}</b></p>"),
                    .attachments = {AttachmentSpec{attachment.string(), "Programm für Sie.bin", ""}},
                    .extra_headers = {},
                    .sensitivity = Sensitivity::kNormal};
  Result<std::shared_ptr<const MessageComposer>> composer = MessageComposer::Create(std::move(spec), fields);
  ASSERT_TRUE(composer.ok()) << composer.status().message();
  const Address to = *ParseAddress("anna@example.com");
  const std::vector<std::string_view> values = {"anna@example.com", "Anna Müller-Lüdenscheidt"};
  MessageData data;
  ASSERT_TRUE((*composer)->Compose(RecipientParts{values, &to, "m.1@example.org", FromUnixMillis(0), nullptr}, data).ok());
  std::filesystem::remove(attachment);

  Result<ParsedMessage> parsed = ParseMessage(data.ToString());
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->Header("subject"), "Grüße, Anna Müller-Lüdenscheidt: unser Programm für den Herbst 2026 in der Stadthalle");
  EXPECT_EQ(parsed->Header("From"), "Verein für Kultur <news@example.org>");
  EXPECT_EQ(parsed->Header("To"), "Anna Müller-Lüdenscheidt <anna@example.com>");
  EXPECT_EQ(parsed->Header("Message-ID"), "<m.1@example.org>");
  ASSERT_EQ(parsed->parts.size(), 3u);
  const MessagePart* text = parsed->Body("text/plain");
  ASSERT_NE(text, nullptr);
  EXPECT_EQ(text->charset, "utf-8");
  EXPECT_EQ(text->transfer_encoding, "quoted-printable");
  EXPECT_EQ(text->body, "Hallo Anna Müller-Lüdenscheidt,\r\nhier ist das Programm.\r\n.Punkt am Anfang\r\n");
  const MessagePart* html = parsed->Body("text/html");
  ASSERT_NE(html, nullptr);
  EXPECT_EQ(html->body, "<p>Hallo <b>Anna Müller-Lüdenscheidt</b></p>");
  const MessagePart& file = parsed->parts[2];
  EXPECT_TRUE(file.attachment);
  EXPECT_EQ(file.file_name, "Programm für Sie.bin");
  EXPECT_EQ(file.transfer_encoding, "base64");
  EXPECT_EQ(file.body, bytes);
  EXPECT_GT(file.encoded_size, bytes.size());
}

}  // namespace
}  // namespace herald
