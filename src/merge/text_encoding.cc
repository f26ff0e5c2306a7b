#include "merge/text_encoding.h"

#include <iconv.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/text.h"

namespace herald {
namespace {

constexpr std::string_view kCommonCharsets =
    "utf-8, utf-16 (utf-16le, utf-16be), windows-1252 (Western Europe, Excel's default there), windows-1250 "
    "(Central Europe), iso-8859-1, iso-8859-15, iso-8859-2, windows-1251 (Cyrillic), macintosh";

iconv_t AsIconv(void* handle) { return static_cast<iconv_t>(handle); }

bool IsCharsetNameCharacter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == ':';
}

// Bytes one character of `charset` takes at least: "AA" and "A" encoded differ by it (2 for
// UTF-16, whose encoder may add a byte-order mark to both; 1 for a code page).
std::size_t UnitSize(const std::string& charset) {
  iconv_t encoder = iconv_open(charset.c_str(), "UTF-8");
  if (encoder == reinterpret_cast<iconv_t>(-1)) return 1;
  auto encoded_size = [&](std::string_view text) -> std::size_t {
    iconv(encoder, nullptr, nullptr, nullptr, nullptr);
    char input[2] = {text[0], text.size() > 1 ? text[1] : '\0'};
    char output[32];
    char* in = input;
    char* out = output;
    std::size_t in_left = text.size();
    std::size_t out_left = sizeof output;
    if (iconv(encoder, &in, &in_left, &out, &out_left) == static_cast<std::size_t>(-1)) return 0;
    iconv(encoder, nullptr, nullptr, &out, &out_left);
    return sizeof output - out_left;
  };
  const std::size_t one = encoded_size("A");
  const std::size_t two = encoded_size("AA");
  iconv_close(encoder);
  return two > one ? two - one : 1;
}

bool IsHtmlSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

bool StartsWithIgnoringCase(std::string_view text, std::size_t pos, std::string_view prefix) {
  return pos + prefix.size() <= text.size() && EqualsIgnoreCase(text.substr(pos, prefix.size()), prefix);
}

struct Attribute {
  std::string_view name;
  std::string_view value;
  std::size_t value_offset = 0;
};

// WHATWG HTML §13.2.3.2 "get an attribute", without entity decoding (the prescan does none).
// Returns nothing at the end of the tag.
std::optional<Attribute> NextAttribute(std::string_view html, std::size_t& pos) {
  while (pos < html.size() && (IsHtmlSpace(html[pos]) || html[pos] == '/')) ++pos;
  if (pos >= html.size() || html[pos] == '>') return std::nullopt;
  Attribute attribute;
  const std::size_t name_start = pos;
  ++pos;  // a first '=' belongs to the name
  while (pos < html.size() && !IsHtmlSpace(html[pos]) && html[pos] != '=' && html[pos] != '/' && html[pos] != '>') {
    ++pos;
  }
  attribute.name = html.substr(name_start, pos - name_start);
  while (pos < html.size() && IsHtmlSpace(html[pos])) ++pos;
  if (pos >= html.size() || html[pos] != '=') {
    attribute.value_offset = pos;
    return attribute;
  }
  ++pos;
  while (pos < html.size() && IsHtmlSpace(html[pos])) ++pos;
  if (pos < html.size() && (html[pos] == '"' || html[pos] == '\'')) {
    const char quote = html[pos++];
    std::size_t end = html.find(quote, pos);
    if (end == std::string_view::npos) end = html.size();
    attribute.value = html.substr(pos, end - pos);
    attribute.value_offset = pos;
    pos = end < html.size() ? end + 1 : end;
    return attribute;
  }
  const std::size_t value_start = pos;
  while (pos < html.size() && !IsHtmlSpace(html[pos]) && html[pos] != '>') ++pos;
  attribute.value = html.substr(value_start, pos - value_start);
  attribute.value_offset = value_start;
  return attribute;
}

// WHATWG HTML §2.5.x "extracting a character encoding from a meta element": the value after
// "charset=" in a content attribute; its offset within `content`.
std::optional<std::pair<std::string_view, std::size_t>> CharsetInContent(std::string_view content) {
  std::size_t pos = 0;
  for (;;) {
    std::size_t found = std::string_view::npos;
    for (std::size_t i = pos; i + 7 <= content.size(); ++i) {
      if (EqualsIgnoreCase(content.substr(i, 7), "charset")) {
        found = i;
        break;
      }
    }
    if (found == std::string_view::npos) return std::nullopt;
    pos = found + 7;
    while (pos < content.size() && IsHtmlSpace(content[pos])) ++pos;
    if (pos >= content.size() || content[pos] != '=') continue;
    ++pos;
    while (pos < content.size() && IsHtmlSpace(content[pos])) ++pos;
    if (pos >= content.size()) return std::nullopt;
    if (content[pos] == '"' || content[pos] == '\'') {
      const std::size_t end = content.find(content[pos], pos + 1);
      if (end == std::string_view::npos) return std::nullopt;
      return std::make_pair(content.substr(pos + 1, end - pos - 1), pos + 1);
    }
    std::size_t end = pos;
    while (end < content.size() && !IsHtmlSpace(content[end]) && content[end] != ';') ++end;
    return std::make_pair(content.substr(pos, end - pos), pos);
  }
}

std::string HexByte(char c) { return fmt::format("0x{:02X}", static_cast<unsigned char>(c)); }

}  // namespace

Status CheckCharset(std::string_view name) {
  bool plain = !name.empty() && name.size() <= 64;
  for (char c : name) plain = plain && IsCharsetNameCharacter(c);
  if (plain && IsUtf8Name(name)) return Status::Ok();
  if (plain) {
    iconv_t decoder = iconv_open("UTF-8", std::string(name).c_str());
    if (decoder != reinterpret_cast<iconv_t>(-1)) {
      iconv_close(decoder);
      return Status::Ok();
    }
  }
  return InvalidArgument(fmt::format("\"{}\" is not a character set this system can read; common names: {} "
                                     "(`iconv -l` lists them all)",
                                     Printable(name), kCommonCharsets));
}

bool IsUtf8Name(std::string_view name) { return EqualsIgnoreCase(name, "utf-8") || EqualsIgnoreCase(name, "utf8"); }

std::optional<std::string_view> CharsetOfByteOrderMark(std::string_view start) {
  if (start.starts_with("\xEF\xBB\xBF")) return "UTF-8";
  if (start.starts_with("\xFF\xFE")) return "UTF-16LE";
  if (start.starts_with("\xFE\xFF")) return "UTF-16BE";
  return std::nullopt;
}

std::size_t Utf8Census::Add(std::string_view bytes, bool last) {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  std::size_t i = 0;
  auto note_invalid = [&] {
    if (invalid++ == 0) first_invalid = counted + i;
    ++i;
  };
  while (i < n) {
    while (i + 8 <= n) {  // eight ASCII bytes at a time
      std::uint64_t word;
      std::memcpy(&word, s + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // RFC 3629 §4: the lead byte gives the length and the allowed range of the second byte.
    std::size_t length;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      note_invalid();
      continue;
    }
    std::size_t good = 1;  // bytes of the sequence that fit
    while (good < length && i + good < n &&
           (good == 1 ? s[i + 1] >= lo && s[i + 1] <= hi : (s[i + good] & 0xC0) == 0x80)) {
      ++good;
    }
    if (good == length) {
      ++multibyte;
      i += length;
    } else if (i + good == n && !last) {
      break;  // cut by the end of this piece
    } else {
      note_invalid();
    }
  }
  counted += i;
  return i;
}

CharsetDecoder::CharsetDecoder(void* iconv, std::string charset, std::size_t unit)
    : iconv_(iconv), charset_(std::move(charset)), unit_(unit) {}

CharsetDecoder::~CharsetDecoder() { iconv_close(AsIconv(iconv_)); }

Result<std::unique_ptr<CharsetDecoder>> CharsetDecoder::Open(std::string_view charset) {
  HERALD_RETURN_IF_ERROR(CheckCharset(charset));
  std::string name(charset);
  iconv_t decoder = iconv_open("UTF-8", name.c_str());
  if (decoder == reinterpret_cast<iconv_t>(-1)) {
    return IoError(fmt::format("cannot start decoding {}: {}", name, std::strerror(errno)));
  }
  const std::size_t unit = UnitSize(name);
  return std::unique_ptr<CharsetDecoder>(new CharsetDecoder(decoder, std::move(name), unit));
}

void CharsetDecoder::Decode(std::string_view input, bool last, std::string& out) {
  std::uint64_t start = consumed_;
  if (!carry_.empty()) {
    joined_.assign(carry_);
    joined_.append(input);
    input = joined_;
    start -= carry_.size();
    carry_.clear();
  }
  char* in = const_cast<char*>(input.data());
  std::size_t in_left = input.size();
  auto undecodable = [&](std::size_t bytes) {
    if (first_undecodable_ == UINT64_MAX) first_undecodable_ = start + (input.size() - in_left);
    out.push_back(kUndecodable);
    const std::size_t skip = std::min(bytes, in_left);
    in += skip;
    in_left -= skip;
  };
  while (in_left > 0) {
    // Single-byte code pages need at most 3 bytes of UTF-8 per byte, UTF-16 at most 3 per 2.
    const std::size_t old_size = out.size();
    out.resize(old_size + in_left * 3 + 16);
    char* out_ptr = out.data() + old_size;
    std::size_t out_left = out.size() - old_size;
    const std::size_t result = iconv(AsIconv(iconv_), &in, &in_left, &out_ptr, &out_left);
    const int error = errno;
    out.resize(out.size() - out_left);
    if (result != static_cast<std::size_t>(-1)) break;
    if (error == E2BIG) continue;
    if (error == EINVAL && !last) {
      carry_.assign(in, in_left);  // cut by the end of this piece
      in_left = 0;
      break;
    }
    // EILSEQ, or EINVAL at the very end: one unit that is no character.
    undecodable(unit_);
  }
  consumed_ = start + input.size();
  if (last) {
    char flush[16];
    char* flush_ptr = flush;
    std::size_t flush_left = sizeof flush;
    iconv(AsIconv(iconv_), nullptr, nullptr, &flush_ptr, &flush_left);
    out.append(flush, sizeof flush - flush_left);
  }
}

std::optional<HtmlCharsetDeclaration> FindHtmlCharset(std::string_view html) {
  constexpr std::size_t kPrescanBytes = 1024;
  std::size_t pos = 0;
  while (pos < html.size() && pos < kPrescanBytes) {
    if (html.compare(pos, 4, "<!--") == 0) {
      const std::size_t end = html.find("-->", pos + 2);
      if (end == std::string_view::npos) return std::nullopt;
      pos = end + 3;
    } else if (StartsWithIgnoringCase(html, pos, "<meta") && pos + 5 < html.size() &&
               (IsHtmlSpace(html[pos + 5]) || html[pos + 5] == '/')) {
      pos += 5;
      bool pragma = false;       // http-equiv="content-type"
      bool needs_pragma = false;  // the charset came from a content attribute
      std::optional<HtmlCharsetDeclaration> found;
      while (std::optional<Attribute> attribute = NextAttribute(html, pos)) {
        if (EqualsIgnoreCase(attribute->name, "http-equiv")) {
          pragma = pragma || EqualsIgnoreCase(attribute->value, "content-type");
        } else if (EqualsIgnoreCase(attribute->name, "charset")) {
          if (!found || needs_pragma) {
            found = HtmlCharsetDeclaration{std::string(TrimBlanks(attribute->value)), attribute->value_offset};
            found->offset += attribute->value.find(found->charset);
            needs_pragma = false;
          }
        } else if (EqualsIgnoreCase(attribute->name, "content") && !found) {
          if (auto charset = CharsetInContent(attribute->value)) {
            found = HtmlCharsetDeclaration{std::string(charset->first), attribute->value_offset + charset->second};
            needs_pragma = true;
          }
        }
      }
      if (found && !found->charset.empty() && (!needs_pragma || pragma)) return found;
    } else if (html[pos] == '<' && pos + 1 < html.size() &&
               (std::isalpha(static_cast<unsigned char>(html[pos + 1])) ||
                (html[pos + 1] == '/' && pos + 2 < html.size() &&
                 std::isalpha(static_cast<unsigned char>(html[pos + 2]))))) {
      // Another tag: skip its name and attributes (a '>' inside a quoted value does not end it).
      while (pos < html.size() && !IsHtmlSpace(html[pos]) && html[pos] != '>') ++pos;
      while (NextAttribute(html, pos)) {
      }
      ++pos;
    } else if (html.compare(pos, 2, "<!") == 0 || html.compare(pos, 2, "</") == 0 || html.compare(pos, 2, "<?") == 0) {
      const std::size_t end = html.find('>', pos + 2);
      if (end == std::string_view::npos) return std::nullopt;
      pos = end + 1;
    } else {
      ++pos;
    }
  }
  return std::nullopt;
}

Result<DecodedText> DecodeTextFile(std::string_view bytes, const TextEncoding& encoding, bool html,
                                   std::string_view file, std::string_view setting) {
  std::string charset;
  std::string how;
  if (encoding.name != kAutoEncoding) {
    charset = encoding.name;
    how = fmt::format("{} ({}.encoding)", charset, setting);
  } else if (std::optional<std::string_view> marked = CharsetOfByteOrderMark(bytes)) {
    charset = *marked;
    how = fmt::format("{} (byte-order mark)", charset);
  } else {
    Utf8Census census;
    census.Add(bytes, /*last=*/true);
    std::optional<HtmlCharsetDeclaration> declared = html ? FindHtmlCharset(bytes) : std::nullopt;
    // A declared UTF-16 means UTF-8 in a file read as bytes (WHATWG HTML §13.2.3.2). A file that
    // is UTF-8 through and through, with letters beyond ASCII, keeps being read as UTF-8 even
    // when its <meta> names a code page: an editor saved it as UTF-8 and left an old declaration
    // (read as the code page, every letter would be garbled; herald always sends UTF-8).
    const bool utf8_with_letters = census.invalid == 0 && census.multibyte > 0;
    if (declared && !IsUtf8Name(declared->charset) && !StartsWithIgnoringCase(declared->charset, 0, "utf-16") &&
        !utf8_with_letters) {
      if (Status known = CheckCharset(declared->charset); !known.ok()) {
        return InvalidArgument(fmt::format("{}: the charset its <meta> declares: {}; set {}.encoding to the file's "
                                           "encoding",
                                           file, known.message(), setting));
      }
      charset = declared->charset;
      how = fmt::format("{} (declared by the file's <meta>)", charset);
    } else if (census.invalid == 0) {
      charset = "UTF-8";
      how = "UTF-8";
    } else if (census.LooksLikeUtf8()) {
      return InvalidArgument(fmt::format(
          "{} is UTF-8 except for {} byte(s), the first at offset {} ({}); repair the file, or set {}.encoding if it "
          "is in another encoding",
          file, census.invalid, census.first_invalid, HexByte(bytes[census.first_invalid]), setting));
    } else {
      charset = encoding.fallback;
      how = fmt::format("{} (the file is not UTF-8; {}.fallback_encoding)", charset, setting);
    }
  }

  DecodedText decoded;
  decoded.how = std::move(how);
  if (IsUtf8Name(charset)) {
    if (std::size_t bad = FindInvalidUtf8(bytes); bad != std::string_view::npos) {
      return InvalidArgument(fmt::format(
          "{} is not UTF-8 (invalid byte {} at offset {}); save it as UTF-8 or set {}.encoding", file,
          HexByte(bytes[bad]), bad, setting));
    }
    decoded.text = std::string(bytes);
  } else {
    Result<std::unique_ptr<CharsetDecoder>> decoder = CharsetDecoder::Open(charset);
    if (!decoder.ok()) return decoder.status();
    (*decoder)->Decode(bytes, /*last=*/true, decoded.text);
    if (const std::uint64_t bad = (*decoder)->first_undecodable(); bad != UINT64_MAX) {
      return InvalidArgument(fmt::format("{}: the byte {} at offset {} is not a character of {}; set {}.encoding to "
                                         "the file's encoding",
                                         file, HexByte(bytes[bad]), bad, decoded.how, setting));
    }
  }
  if (decoded.text.starts_with("\xEF\xBB\xBF")) decoded.text.erase(0, 3);
  if (html) {
    // herald sends UTF-8: a <meta> naming another charset would contradict the part's header.
    std::optional<HtmlCharsetDeclaration> declared = FindHtmlCharset(decoded.text);
    if (declared && !IsUtf8Name(declared->charset)) {
      decoded.text.replace(declared->offset, declared->charset.size(), "utf-8");
    }
  }
  return decoded;
}

}  // namespace herald
