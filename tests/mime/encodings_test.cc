// Base64 and the media type table.
#include <gtest/gtest.h>

#include <string>

#include "mime/internal/base64.h"
#include "mime/internal/media_types.h"
#include "mime/mime_test_util.h"

namespace herald::mime_internal {
namespace {

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<std::string, std::string> cases[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}, {std::string("\xFF\xFE\x00", 3), "//4A"},
  };
  for (const auto& [input, want] : cases) {
    std::string out;
    AppendBase64(input, out);
    EXPECT_EQ(out, want);
    EXPECT_EQ(out.size(), Base64Length(input.size()));
  }
}

TEST(Base64Test, LinesOf76WithoutTrailingBreak) {
  for (std::size_t size : {0u, 1u, 56u, 57u, 58u, 114u, 3u * 57u + 1u, 10000u}) {
    std::string data;
    for (std::size_t i = 0; i < size; ++i) data.push_back(static_cast<char>((i * 37 + size) & 0xFF));
    std::string out = "prefix";
    AppendBase64Lines(data, out);
    ASSERT_TRUE(out.starts_with("prefix"));
    std::string encoded = out.substr(6);
    EXPECT_FALSE(encoded.ends_with("\r\n")) << size;
    std::optional<std::vector<std::string_view>> lines = mime_test::SplitCrlfLines(encoded);
    ASSERT_TRUE(lines);
    for (std::size_t i = 0; i < lines->size(); ++i) {
      if (i + 1 < lines->size()) {
        EXPECT_EQ((*lines)[i].size(), 76u) << size;
      } else {
        EXPECT_LE((*lines)[i].size(), 76u) << size;
      }
    }
    EXPECT_EQ(mime_test::DecodeBase64(encoded), data) << size;
  }
}

TEST(MediaTypesTest, ByExtension) {
  const std::pair<const char*, const char*> cases[] = {
      {"report.pdf", "application/pdf"},
      {"Letter.DOCX", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
      {"sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
      {"slides.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
      {"text.odt", "application/vnd.oasis.opendocument.text"},
      {"calc.ods", "application/vnd.oasis.opendocument.spreadsheet"},
      {"logo.png", "image/png"},
      {"photo.jpg", "image/jpeg"},
      {"photo.JPEG", "image/jpeg"},
      {"anim.gif", "image/gif"},
      {"icon.svg", "image/svg+xml"},
      {"notes.txt", "text/plain"},
      {"list.csv", "text/csv"},
      {"page.html", "text/html"},
      {"page.htm", "text/html"},
      {"archive.zip", "application/zip"},
      {"invite.ics", "text/calendar"},
      {"forward.eml", "message/rfc822"},
      {"card.vcf", "text/vcard"},
      {"data.json", "application/json"},
      {"a.tar.gz", "application/gzip"},
      {"program.exe", "application/octet-stream"},
      {"README", "application/octet-stream"},
      {"trailing.", "application/octet-stream"},
      {".pdf", "application/pdf"},
      {"M\xC3\xA4rz.pdf", "application/pdf"},
  };
  for (const auto& [name, want] : cases) EXPECT_EQ(MediaTypeForFileName(name), want) << name;
}

TEST(MediaTypesTest, ValidTypes) {
  EXPECT_TRUE(IsValidMediaType("application/pdf"));
  EXPECT_TRUE(IsValidMediaType("application/vnd.ms-excel"));
  EXPECT_TRUE(IsValidMediaType("image/svg+xml"));
  EXPECT_FALSE(IsValidMediaType("pdf"));
  EXPECT_FALSE(IsValidMediaType("/pdf"));
  EXPECT_FALSE(IsValidMediaType("application/"));
  EXPECT_FALSE(IsValidMediaType("text/plain; charset=utf-8"));
  EXPECT_FALSE(IsValidMediaType("text/plain\r\nBcc: x"));
  EXPECT_FALSE(IsValidMediaType("a/b/c"));
}

}  // namespace
}  // namespace herald::mime_internal
