#include "rfc2047_decoder.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>

namespace herald::fuzz {
namespace {

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool SameIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool Fail(std::string& error, std::string message) {
  error = std::move(message);
  return false;
}

// RFC 5322 §3.2.3 atext.
bool IsAtext(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

// Words of a line separated by white space, a quoted string counting as part of one word.
std::size_t CountWords(std::string_view line) {
  std::size_t words = 0;
  bool in_word = false;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
      continue;
    }
    if (IsWsp(c)) {
      in_word = false;
      continue;
    }
    if (!in_word) ++words;
    in_word = true;
    if (c == '"') quoted = true;
  }
  return words;
}

// RFC 4648 §4 base64, canonical: whole quanta, padding only at the end, unused bits zero.
std::optional<std::string> DecodeBase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  std::size_t padding = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    int value;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    else if (c >= '0' && c <= '9') value = c - '0' + 52;
    else if (c == '+') value = 62;
    else if (c == '/') value = 63;
    else if (c == '=' && i + 2 >= text.size()) {
      ++padding;
      continue;
    } else {
      return std::nullopt;
    }
    if (padding > 0) return std::nullopt;  // data after '='
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    if (++count == 4) {
      out += static_cast<char>(bits >> 16);
      out += static_cast<char>((bits >> 8) & 0xFF);
      out += static_cast<char>(bits & 0xFF);
      bits = 0;
      count = 0;
    }
  }
  if (padding == 1) {
    if (count != 3 || (bits & 0x3) != 0) return std::nullopt;
    out += static_cast<char>(bits >> 10);
    out += static_cast<char>((bits >> 2) & 0xFF);
  } else if (padding == 2) {
    if (count != 2 || (bits & 0xF) != 0) return std::nullopt;
    out += static_cast<char>(bits >> 4);
  } else if (count != 0) {
    return std::nullopt;
  }
  return out;
}

// RFC 2047 §4.2 Q. In a phrase (§5(3)) only letters, digits and "!*+-/" stand for themselves;
// elsewhere any printable ASCII but "=", "?", "_" and space.
std::optional<std::string> DecodeQ(std::string_view text, bool phrase) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '_') {
      out += ' ';
    } else if (c == '=') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int high = HexValue(text[i + 1]);
      const int low = HexValue(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else if (phrase) {
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            std::string_view("!*+-/").find(c) != std::string_view::npos)) {
        return std::nullopt;
      }
      out += c;
    } else {
      if (c <= 0x20 || c >= 0x7F || c == '?') return std::nullopt;
      out += c;
    }
  }
  return out;
}

bool LooksEncoded(std::string_view word) { return word.starts_with("=?") && word.ends_with("?=") && word.size() >= 4; }

// RFC 2047 §2: "=?" charset "?" encoding "?" encoded-text "?=", at most 75 characters.
bool DecodeWord(std::string_view word, bool phrase, std::string& text, std::string& error) {
  if (word.size() > 75) return Fail(error, "encoded word longer than 75 characters: " + std::string(word));
  const std::string_view inner = word.substr(2, word.size() - 4);
  const std::size_t q1 = inner.find('?');
  if (q1 == std::string_view::npos) return Fail(error, "encoded word without encoding: " + std::string(word));
  const std::size_t q2 = inner.find('?', q1 + 1);
  if (q2 == std::string_view::npos) return Fail(error, "encoded word without text: " + std::string(word));
  const std::string_view charset = inner.substr(0, q1);
  const std::string_view encoding = inner.substr(q1 + 1, q2 - q1 - 1);
  const std::string_view encoded = inner.substr(q2 + 1);
  if (!SameIgnoringCase(charset, "UTF-8")) return Fail(error, "charset is not UTF-8: " + std::string(word));
  if (encoded.empty()) return Fail(error, "empty encoded text: " + std::string(word));
  std::optional<std::string> decoded;
  if (SameIgnoringCase(encoding, "B")) {
    decoded = DecodeBase64(encoded);
  } else if (SameIgnoringCase(encoding, "Q")) {
    decoded = DecodeQ(encoded, phrase);
  } else {
    return Fail(error, "unknown encoding: " + std::string(word));
  }
  if (!decoded) return Fail(error, "malformed encoded text: " + std::string(word));
  if (!IsStrictUtf8(*decoded)) return Fail(error, "encoded word without whole UTF-8 characters: " + std::string(word));
  text += *decoded;
  return true;
}

// RFC 5322 §3.2.4 quoted-string starting at text[pos] (a '"'): appends its content with quoted
// pairs resolved and moves `pos` past the closing quote. Content is printable ASCII and blanks.
bool ReadQuoted(std::string_view text, std::size_t& pos, std::string& content, std::string& error) {
  for (++pos;; ++pos) {
    if (pos >= text.size()) return Fail(error, "an unclosed quoted string");
    char c = text[pos];
    if (c == '"') break;
    if (c == '\\') {
      if (++pos >= text.size()) return Fail(error, "a quoted pair at the end");
      c = text[pos];
    } else if (!IsWsp(c) && (c < 0x21 || c > 0x7E)) {
      return Fail(error, "a byte outside qtext in a quoted string");
    }
    content += c;
  }
  ++pos;
  return true;
}

bool IsPrintableAscii(std::string_view word) {
  for (char c : word) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

}  // namespace

bool IsStrictUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length;
    std::uint32_t cp;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      cp = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      cp = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      cp = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

bool UnfoldField(std::string_view field, std::string_view name, std::size_t soft_limit, std::string& value,
                 std::string& error) {
  if (!field.starts_with(name) || field.size() <= name.size() || field[name.size()] != ':') {
    return Fail(error, "the field does not start with its name and ':'");
  }
  if (!field.ends_with("\r\n")) return Fail(error, "the field does not end with CRLF");
  value.clear();
  std::size_t start = 0;
  bool first = true;
  while (start < field.size()) {
    const std::size_t end = field.find("\r\n", start);
    std::string_view line = field.substr(start, end - start);
    if (line.find_first_of("\r\n") != std::string_view::npos) return Fail(error, "a bare CR or LF");
    if (line.size() > 998) return Fail(error, "a line longer than 998 octets");
    if (line.find("=?") != std::string_view::npos && line.size() > 76) {
      return Fail(error, "a line with an encoded word longer than 76 characters");
    }
    const std::string_view words = first ? line.substr(name.size() + 1) : line;
    if (CountWords(words) > 1 && line.size() > soft_limit) {
      return Fail(error, "a line of several words longer than " + std::to_string(soft_limit));
    }
    if (!first && (line.empty() || !IsWsp(line.front()))) return Fail(error, "a line break that is not a fold");
    if (!first && line.find_first_not_of(" \t") == std::string_view::npos) {
      return Fail(error, "a folded line holding only white space");
    }
    value += words;
    first = false;
    start = end + 2;
  }
  return true;
}

bool DecodeUnstructured(std::string_view value, std::string& text, std::string& error) {
  text.clear();
  std::size_t pos = 0;
  while (pos < value.size() && IsWsp(value[pos])) ++pos;
  std::string blanks;
  bool previous_encoded = false;
  while (pos < value.size()) {
    if (IsWsp(value[pos])) {
      blanks += value[pos++];
      continue;
    }
    std::size_t end = pos;
    while (end < value.size() && !IsWsp(value[end])) ++end;
    const std::string_view word = value.substr(pos, end - pos);
    pos = end;
    if (LooksEncoded(word)) {
      // §6.2: white space between adjacent encoded words is not displayed.
      if (!previous_encoded) text += blanks;
      if (!DecodeWord(word, /*phrase=*/false, text, error)) return false;
      previous_encoded = true;
    } else {
      if (word.find("=?") != std::string_view::npos) return Fail(error, "plain text that looks like an encoded word");
      if (!IsPrintableAscii(word)) return Fail(error, "8-bit or control bytes outside an encoded word");
      text += blanks;
      text += word;
      previous_encoded = false;
    }
    blanks.clear();
  }
  text += blanks;
  return true;
}

bool DecodeMailbox(std::string_view value, std::string_view address, std::string& display_name, std::string& error) {
  display_name.clear();
  std::size_t pos = 0;
  while (pos < value.size() && IsWsp(value[pos])) ++pos;
  if (value.substr(pos) == address) return true;
  const std::string angle = "<" + std::string(address) + ">";
  enum class Kind { kAtom, kQuoted, kEncoded };
  std::optional<Kind> previous;
  for (;;) {
    while (pos < value.size() && IsWsp(value[pos])) ++pos;
    if (pos >= value.size()) return Fail(error, "no <address> after the display name");
    if (value.substr(pos) == angle) break;
    Kind kind;
    std::string word;
    if (value[pos] == '"') {
      kind = Kind::kQuoted;
      if (!ReadQuoted(value, pos, word, error)) return false;
    } else {
      std::size_t end = pos;
      while (end < value.size() && !IsWsp(value[end])) ++end;
      const std::string_view token = value.substr(pos, end - pos);
      pos = end;
      if (LooksEncoded(token)) {
        kind = Kind::kEncoded;
        if (!DecodeWord(token, /*phrase=*/true, word, error)) return false;
      } else {
        kind = Kind::kAtom;
        for (char c : token) {
          if (!IsAtext(c)) return Fail(error, "a display name word that is neither atom nor encoded word");
        }
        word.assign(token);
      }
    }
    // Words of a phrase are separated by one space when shown, adjacent encoded words by none.
    if (previous && !(*previous == Kind::kEncoded && kind == Kind::kEncoded)) display_name += ' ';
    display_name += word;
    previous = kind;
  }
  if (!previous) return Fail(error, "an empty display name before <address>");
  return true;
}

bool DecodeParameter(std::string_view value, std::string_view first_token, std::string_view attribute,
                     std::string& text, std::string& error) {
  std::size_t pos = 0;
  auto skip_wsp = [&] {
    while (pos < value.size() && IsWsp(value[pos])) ++pos;
  };
  skip_wsp();
  if (value.substr(pos, first_token.size()) != first_token) return Fail(error, "the value does not start with its type");
  pos += first_token.size();
  std::optional<std::string> simple;
  std::map<unsigned, std::pair<bool, std::string>> sections;  // number → (extended, raw value)
  bool single_extended = false;
  std::string extended_value;
  for (;;) {
    skip_wsp();
    if (pos == value.size()) break;
    if (value[pos] != ';') return Fail(error, "parameters not separated by ';'");
    ++pos;
    skip_wsp();
    const std::size_t equals = value.find('=', pos);
    if (equals == std::string_view::npos) return Fail(error, "a parameter without '='");
    const std::string_view name = value.substr(pos, equals - pos);
    pos = equals + 1;
    std::string raw;
    bool quoted = false;
    if (pos < value.size() && value[pos] == '"') {
      quoted = true;
      if (!ReadQuoted(value, pos, raw, error)) return false;
    } else {
      while (pos < value.size() && value[pos] != ';' && !IsWsp(value[pos])) raw += value[pos++];
      if (raw.empty()) return Fail(error, "an empty parameter value");
    }
    if (name.size() < attribute.size() || !SameIgnoringCase(name.substr(0, attribute.size()), attribute)) {
      return Fail(error, "an unexpected parameter " + std::string(name));
    }
    std::string_view suffix = name.substr(attribute.size());
    if (suffix.empty()) {
      if (simple || !sections.empty() || single_extended) return Fail(error, "the parameter is given twice");
      simple = raw;
      continue;
    }
    if (suffix == "*") {
      if (quoted || simple || !sections.empty() || single_extended) return Fail(error, "a bad extended parameter");
      single_extended = true;
      extended_value = raw;
      continue;
    }
    // RFC 2231 §3: "*" section number (no leading zeros), then "*" for an extended section.
    suffix.remove_prefix(1);
    const bool extended = suffix.ends_with("*");
    if (extended) suffix.remove_suffix(1);
    if (suffix.empty() || suffix.size() > 3 || (suffix.size() > 1 && suffix[0] == '0')) {
      return Fail(error, "a bad section number in " + std::string(name));
    }
    unsigned number = 0;
    for (char c : suffix) {
      if (c < '0' || c > '9') return Fail(error, "a bad section number in " + std::string(name));
      number = number * 10 + static_cast<unsigned>(c - '0');
    }
    if (extended && quoted) return Fail(error, "an extended section in quotes");
    if (simple || single_extended || !sections.emplace(number, std::make_pair(extended, raw)).second) {
      return Fail(error, "a section given twice or mixed with a whole value");
    }
  }

  auto percent_decode = [&](std::string_view raw, std::string& out) {
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '%') {
        if (i + 2 >= raw.size()) return Fail(error, "a cut %XX");
        const int high = HexValue(raw[i + 1]);
        const int low = HexValue(raw[i + 2]);
        if (high < 0 || low < 0) return Fail(error, "a bad %XX");
        out += static_cast<char>(high * 16 + low);
        i += 2;
      } else if (raw[i] <= 0x20 || raw[i] >= 0x7F || std::string_view("*'%()<>@,;:\\\"/[]?=").find(raw[i]) !=
                                                          std::string_view::npos) {
        return Fail(error, "a character that must be %-encoded in an extended value");
      } else {
        out += raw[i];
      }
    }
    return true;
  };
  // RFC 2231 §4: the first extended section starts with charset'language'.
  auto strip_charset = [&](std::string& raw) {
    const std::size_t first = raw.find('\'');
    const std::size_t second = first == std::string::npos ? first : raw.find('\'', first + 1);
    if (second == std::string::npos || !SameIgnoringCase(raw.substr(0, first), "UTF-8")) {
      return Fail(error, "an extended value without UTF-8''");
    }
    raw.erase(0, second + 1);
    return true;
  };

  text.clear();
  if (simple) {
    text = *simple;
  } else if (single_extended) {
    if (!strip_charset(extended_value) || !percent_decode(extended_value, text)) return false;
  } else {
    if (sections.empty()) return Fail(error, "no parameter");
    unsigned expected = 0;
    for (auto& [number, section] : sections) {
      if (number != expected++) return Fail(error, "a missing section");
      auto& [extended, raw] = section;
      if (extended) {
        if (number == 0 && !strip_charset(raw)) return false;
        std::string part;
        if (!percent_decode(raw, part)) return false;
        if (!IsStrictUtf8(part)) return Fail(error, "a section that splits a UTF-8 character");
        text += part;
      } else {
        text += raw;
      }
    }
  }
  if (!IsStrictUtf8(text)) return Fail(error, "the parameter value is not UTF-8");
  return true;
}

}  // namespace herald::fuzz
