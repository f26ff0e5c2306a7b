#include "merge/text_encoding.h"

#include <gtest/gtest.h>

#include "core/text.h"

namespace herald {
namespace {

TEST(TextEncodingTest, CheckCharsetKnowsIconvNamesAndRefusesTheRest) {
  for (std::string_view name : {"utf-8", "UTF8", "windows-1252", "CP1252", "iso-8859-2", "latin1", "UTF-16LE",
                                "windows-1250", "macintosh"}) {
    EXPECT_TRUE(CheckCharset(name).ok()) << name << ": " << CheckCharset(name).message();
  }
  for (std::string_view name : {"", "latin-99", "utf-8//IGNORE", "cp1252//TRANSLIT", "auto", "utf-8,ignore"}) {
    Status status = CheckCharset(name);
    EXPECT_FALSE(status.ok()) << name;
    EXPECT_NE(status.message().find("windows-1252 (Western Europe"), std::string::npos) << status.message();
  }
}

TEST(TextEncodingTest, ByteOrderMarks) {
  EXPECT_EQ(CharsetOfByteOrderMark("\xEF\xBB\xBF" "a"), "UTF-8");
  EXPECT_EQ(CharsetOfByteOrderMark("\xFF\xFE" "a"), "UTF-16LE");
  EXPECT_EQ(CharsetOfByteOrderMark("\xFE\xFF"), "UTF-16BE");
  EXPECT_EQ(CharsetOfByteOrderMark("\xEF\xBB"), std::nullopt);
  EXPECT_EQ(CharsetOfByteOrderMark("email"), std::nullopt);
}

TEST(TextEncodingTest, Utf8CensusCountsWellFormedAndInvalid) {
  struct Case {
    std::string_view text;
    std::uint64_t multibyte;
    std::uint64_t invalid;
    bool utf8;
  };
  const Case cases[] = {
      {"plain ASCII, long enough for the eight-byte steps", 0, 0, true},
      {"Jürgen Zoë 日本 😀", 5, 0, true},
      {"M\xFCller", 0, 1, false},                                  // Windows-1252
      {"Gr\xFC\xDF" "e aus K\xF6ln", 0, 3, false},
      {"J\xC3\xBCrgen, M\xFCller, Zo\xC3\xAB", 2, 1, true},       // UTF-8 with one damaged spot
      {"\xC0\xAF \xED\xA0\x80 \xF4\x90\x80\x80", 0, 9, false},     // overlong, surrogate, above U+10FFFF
      {"\xC3", 0, 1, false},                                       // cut by the end
  };
  for (const Case& c : cases) {
    Utf8Census census;
    EXPECT_EQ(census.Add(c.text, /*last=*/true), c.text.size());
    EXPECT_EQ(census.multibyte, c.multibyte) << Printable(c.text);
    EXPECT_EQ(census.invalid, c.invalid) << Printable(c.text);
    EXPECT_EQ(census.LooksLikeUtf8(), c.utf8) << Printable(c.text);
  }
}

TEST(TextEncodingTest, Utf8CensusAcrossPieces) {
  const std::string text = "ab\xE6\x97\xA5" "cd\xF0\x9F\x98\x80";
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    Utf8Census census;
    const std::size_t counted = census.Add(std::string_view(text).substr(0, cut), /*last=*/false);
    EXPECT_LE(cut - counted, 3u);
    census.Add(std::string_view(text).substr(counted), /*last=*/true);
    EXPECT_EQ(census.multibyte, 2u) << "cut at " << cut;
    EXPECT_EQ(census.invalid, 0u) << "cut at " << cut;
    EXPECT_EQ(census.counted, text.size());
  }
  Utf8Census census;
  census.Add("abc", false);
  census.Add("d\xFF", true);
  EXPECT_EQ(census.first_invalid, 4u);
}

TEST(TextEncodingTest, DecoderAcrossPiecesAndUndecodableBytes) {
  Result<std::unique_ptr<CharsetDecoder>> decoder = CharsetDecoder::Open("UTF-16LE");
  ASSERT_TRUE(decoder.ok()) << decoder.status().ToString();
  const std::string input("A\0\x3D\xD8\x00\xDE" "B\0", 8);  // A, U+1F600, B
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    Result<std::unique_ptr<CharsetDecoder>> fresh = CharsetDecoder::Open("utf-16le");
    ASSERT_TRUE(fresh.ok());
    std::string out;
    (*fresh)->Decode(input.substr(0, cut), false, out);
    (*fresh)->Decode(input.substr(cut), true, out);
    EXPECT_EQ(out, "A\xF0\x9F\x98\x80" "B") << "cut at " << cut;
    EXPECT_EQ((*fresh)->first_undecodable(), UINT64_MAX);
  }

  Result<std::unique_ptr<CharsetDecoder>> cp1252 = CharsetDecoder::Open("windows-1252");
  ASSERT_TRUE(cp1252.ok());
  std::string out;
  (*cp1252)->Decode("M\xFC", false, out);
  (*cp1252)->Decode("ller \x81 \x80", true, out);
  EXPECT_EQ(out, "Müller \xFF €");
  EXPECT_EQ((*cp1252)->first_undecodable(), 7u);

  std::string odd;
  (*decoder)->Decode(std::string("A\0B", 3), true, odd);
  EXPECT_EQ(odd, "A\xFF");
  EXPECT_EQ((*decoder)->first_undecodable(), 2u);

  EXPECT_FALSE(CharsetDecoder::Open("no-such-charset").ok());
}

TEST(TextEncodingTest, FindsTheHtmlMetaCharset) {
  struct Case {
    std::string_view html;
    std::optional<std::string_view> charset;
  };
  const Case cases[] = {
      {"<html><head><meta charset=\"windows-1250\"></head>", "windows-1250"},
      {"<META CHARSET=iso-8859-2>", "iso-8859-2"},
      {"<meta charset='utf-8' />", "utf-8"},
      {"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=ISO-8859-1\">", "ISO-8859-1"},
      {"<meta content='text/html;charset=\"windows-1252\"' http-equiv=content-type>", "windows-1252"},
      {"<meta content=\"text/html; charset=windows-1252\">", std::nullopt},  // no http-equiv
      {"<!-- <meta charset=\"koi8-r\"> --><meta charset=\"latin2\">", "latin2"},
      {"<p title=\"<meta charset=koi8-r>\">x</p>", std::nullopt},
      {"<metadata charset=\"x\">", std::nullopt},
      {"<p>text</p>", std::nullopt},
      {std::string_view("<p>") , std::nullopt},
  };
  for (const Case& c : cases) {
    std::optional<HtmlCharsetDeclaration> found = FindHtmlCharset(c.html);
    ASSERT_EQ(found.has_value(), c.charset.has_value()) << c.html;
    if (!found) continue;
    EXPECT_EQ(found->charset, *c.charset) << c.html;
    EXPECT_EQ(c.html.substr(found->offset, found->charset.size()), *c.charset) << c.html;
  }
  // Only the first 1,024 bytes are looked at (WHATWG's prescan).
  EXPECT_FALSE(FindHtmlCharset(std::string(1100, ' ') + "<meta charset=latin2>").has_value());
}

TEST(TextEncodingTest, DecodesBodyFiles) {
  struct Case {
    std::string name;
    std::string bytes;
    TextEncoding encoding;
    bool html;
    std::string want_text;
    std::string want_how;
  };
  const Case cases[] = {
      {"UTF-8", "Grüße", {}, false, "Grüße", "UTF-8"},
      {"UTF-8 with a mark", "\xEF\xBB\xBFGrüße", {}, false, "Grüße", "UTF-8 (byte-order mark)"},
      {"Windows-1252", "Gr\xFC\xDF" "e \x80", {}, false, "Grüße €", "windows-1252 (the file is not UTF-8; "
                                                                    "message.fallback_encoding)"},
      {"ISO-8859-2 fallback", "\xA3ukasz", {.fallback = "iso-8859-2"}, false, "Łukasz",
       "iso-8859-2 (the file is not UTF-8; message.fallback_encoding)"},
      {"named", "\xA3ukasz", {.name = "windows-1250"}, false, "Łukasz", "windows-1250 (message.encoding)"},
      {"UTF-16 BE", std::string("\xFE\xFF\x00Z\x00\xEB", 6), {}, false, "Zë", "UTF-16BE (byte-order mark)"},
      {"HTML meta wins over the fallback",
       "<html><head><meta charset=\"iso-8859-2\"></head><body>\xA3ukasz</body></html>", {}, true,
       "<html><head><meta charset=\"utf-8\"></head><body>Łukasz</body></html>",
       "iso-8859-2 (declared by the file's <meta>)"},
      {"HTML http-equiv",
       "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1250\"><p>\x8A\x9D" "astn\xFD</p>", {},
       true, "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"><p>Šťastný</p>",
       "windows-1250 (declared by the file's <meta>)"},
      {"HTML meta of an ASCII file", "<meta charset=\"windows-1250\"><p>plain</p>", {}, true,
       "<meta charset=\"utf-8\"><p>plain</p>", "windows-1250 (declared by the file's <meta>)"},
      {"a stale meta in a UTF-8 file", "<meta charset=\"iso-8859-1\"><p>Grüße</p>", {}, true,
       "<meta charset=\"utf-8\"><p>Grüße</p>", "UTF-8"},
      {"a named encoding wins over the meta", "<meta charset=\"iso-8859-2\"><p>\xA3</p>", {.name = "windows-1252"},
       true, "<meta charset=\"utf-8\"><p>£</p>", "windows-1252 (message.encoding)"},
      {"a mark wins over the meta", "\xEF\xBB\xBF<meta charset=\"iso-8859-2\"><p>Ł</p>", {}, true,
       "<meta charset=\"utf-8\"><p>Ł</p>", "UTF-8 (byte-order mark)"},
      {"meta in a text body is text", "<meta charset=\"iso-8859-2\"> \xA3", {}, false,
       "<meta charset=\"iso-8859-2\"> £", "windows-1252 (the file is not UTF-8; message.fallback_encoding)"},
  };
  for (const Case& c : cases) {
    Result<DecodedText> decoded = DecodeTextFile(c.bytes, c.encoding, c.html, "body", "message");
    ASSERT_TRUE(decoded.ok()) << c.name << ": " << decoded.status().ToString();
    EXPECT_EQ(decoded->text, c.want_text) << c.name;
    EXPECT_EQ(decoded->how, c.want_how) << c.name;
  }
}

TEST(TextEncodingTest, BodyFileErrors) {
  struct Case {
    std::string name;
    std::string bytes;
    TextEncoding encoding;
    bool html;
    std::string want;
  };
  const Case cases[] = {
      {"undefined byte", "ab\x81", {}, false,
       "body.txt: the byte 0x81 at offset 2 is not a character of windows-1252 (the file is not UTF-8; "
       "message.fallback_encoding); set message.encoding to the file's encoding"},
      {"UTF-8 but for a byte", "Jürgen, Zoë, M\xFCller", {}, false,
       "body.txt is UTF-8 except for 1 byte(s), the first at offset 16 (0xFC); repair the file, or set "
       "message.encoding if it is in another encoding"},
      {"named UTF-8", "M\xFCller", {.name = "utf-8"}, false,
       "body.txt is not UTF-8 (invalid byte 0xFC at offset 1); save it as UTF-8 or set message.encoding"},
      {"unknown meta charset", "<meta charset=\"klingon\">\xFC", {}, true,
       "body.txt: the charset its <meta> declares: \"klingon\" is not a character set this system can read"},
  };
  for (const Case& c : cases) {
    Result<DecodedText> decoded = DecodeTextFile(c.bytes, c.encoding, c.html, "body.txt", "message");
    ASSERT_FALSE(decoded.ok()) << c.name;
    EXPECT_NE(decoded.status().message().find(c.want), std::string::npos)
        << c.name << "\n got: " << decoded.status().message() << "\nwant: " << c.want;
  }
}

}  // namespace
}  // namespace herald
