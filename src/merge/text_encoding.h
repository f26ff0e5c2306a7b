// Character encodings of the user's own files — recipient lists and body files — and their
// decoding to UTF-8, which is all herald works with inside. Spreadsheet programs save lists in the
// code page of the user's locale (Excel: Windows-1252 in Western Europe, Windows-1250 in Central
// Europe) or, as "Unicode text", in UTF-16 with a byte-order mark; editors save UTF-8 with or
// without one.
//
// In "auto" mode a file is read as: the encoding of its byte-order mark (UTF-8, UTF-16 LE or BE);
// else, for HTML, the charset its <meta> declares; else UTF-8 when the file as a whole is UTF-8
// (Utf8Census); else the fallback code page. The decision is made once per file, never per row.
// A named encoding is used as is. Decoding uses glibc's iconv.
//
// Pure functions and single-thread objects; nothing is shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace herald {

inline constexpr std::string_view kAutoEncoding = "auto";

// The `encoding` and `fallback_encoding` settings of a file.
struct TextEncoding {
  // "auto", or a character set name iconv knows ("windows-1252", "iso-8859-2", "utf-16le"),
  // used as is.
  std::string name = std::string(kAutoEncoding);
  // In auto mode, the character set of a file without a byte-order mark that is not UTF-8.
  std::string fallback = "windows-1252";
};

// Ok when `name` is a character set iconv can decode to UTF-8 (names are matched ignoring case;
// suffixes such as "//IGNORE" are refused). The error says what was expected and lists common
// names.
Status CheckCharset(std::string_view name);

// True for "utf-8" and "utf8" in any case: text that is read as it is, without iconv.
bool IsUtf8Name(std::string_view name);

// The character set named by a byte-order mark at the start of `start` ("UTF-8", "UTF-16LE",
// "UTF-16BE"), or nothing.
std::optional<std::string_view> CharsetOfByteOrderMark(std::string_view start);

// Counts, over a file read in pieces, the well-formed multi-byte UTF-8 sequences and the bytes
// that are not part of well-formed UTF-8 (RFC 3629), to decide whether the file is UTF-8.
struct Utf8Census {
  std::uint64_t multibyte = 0;  // well-formed sequences of 2 to 4 bytes
  std::uint64_t invalid = 0;    // bytes that are no part of one
  std::uint64_t counted = 0;    // bytes counted so far
  std::uint64_t first_invalid = UINT64_MAX;  // offset of the first invalid byte

  // Counts `bytes`, which follow the bytes counted so far. Returns how many were counted: all,
  // or, unless `last`, all but a sequence cut at the end, which the caller passes again at the
  // start of the next piece.
  std::size_t Add(std::string_view bytes, bool last);

  // UTF-8 when nothing is invalid, or when well-formed multi-byte sequences outnumber the invalid
  // bytes: a UTF-8 file with a few damaged spots, whose damaged rows are refused one by one
  // rather than the whole file read as a code page (which would garble every other accented
  // letter). A file in a code page has invalid bytes wherever it has a non-ASCII letter, and
  // practically never a sequence that happens to be well-formed UTF-8.
  bool LooksLikeUtf8() const { return invalid == 0 || multibyte > invalid; }
};

// Decodes text in one character set into UTF-8, piece by piece. Not for UTF-8 itself.
class CharsetDecoder {
 public:
  // Written for each unit of input that is not a character of the charset (an undefined byte of
  // a code page, an unpaired UTF-16 surrogate, a sequence cut by the end of the input): 0xFF never
  // occurs in UTF-8, so the text stays marked as not decodable where it was not.
  static constexpr char kUndecodable = '\xFF';

  // Errors: CheckCharset's.
  static Result<std::unique_ptr<CharsetDecoder>> Open(std::string_view charset);
  ~CharsetDecoder();
  CharsetDecoder(const CharsetDecoder&) = delete;
  CharsetDecoder& operator=(const CharsetDecoder&) = delete;

  // Appends the UTF-8 of `input` to `out`. A sequence cut at the end of `input` is completed by
  // the next call's input; with `last` it is undecodable.
  void Decode(std::string_view input, bool last, std::string& out);

  const std::string& charset() const { return charset_; }
  // Offset in the whole input of the first undecodable unit, or UINT64_MAX.
  std::uint64_t first_undecodable() const { return first_undecodable_; }

 private:
  CharsetDecoder(void* iconv, std::string charset, std::size_t unit);

  void* iconv_;            // iconv_t
  std::string charset_;
  std::size_t unit_;       // bytes skipped over an undecodable spot: 2 for UTF-16, 1 for a code page
  std::string carry_;      // a sequence cut at the end of the previous input
  std::string joined_;     // carry_ followed by the next input
  std::uint64_t consumed_ = 0;
  std::uint64_t first_undecodable_ = UINT64_MAX;
};

// Where an HTML document declares its character set in its first 1,024 bytes (WHATWG HTML
// §13.2.3.2, "prescan a byte stream"): <meta charset="..."> or <meta http-equiv="Content-Type"
// content="text/html; charset=...">. Comments are skipped.
struct HtmlCharsetDeclaration {
  std::string charset;
  std::size_t offset = 0;  // of the charset name in the text
};
std::optional<HtmlCharsetDeclaration> FindHtmlCharset(std::string_view html);

// A body file's bytes decoded to UTF-8 (a leading byte-order mark removed), and how they were
// read, for messages: "windows-1252 (the file is not UTF-8; message.fallback_encoding)".
struct DecodedText {
  std::string text;
  std::string how;
};

// Decodes a whole body file. With `html`, auto mode honours the file's <meta> charset after a
// byte-order mark, and a <meta> charset in the result is rewritten to utf-8 (herald sends UTF-8).
// `setting` names the settings in errors ("message"). Errors name `file`: a byte that is no
// character of the encoding (with its offset), a file that is UTF-8 but for some bytes, an
// unknown charset in a <meta>.
Result<DecodedText> DecodeTextFile(std::string_view bytes, const TextEncoding& encoding, bool html,
                                   std::string_view file, std::string_view setting);

}  // namespace herald
