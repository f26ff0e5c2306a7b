// Independent decoders and checks for the mime tests: a strict quoted-printable decoder, an
// RFC 2047 decoder for unstructured fields, line checks and a small JSON writer. Written apart
// from src/mime so the tests do not check the encoders against themselves.
#pragma once

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald::mime_test {

// Splits `text` at CRLF. Returns nullopt if it holds a CR or LF that is not part of a CRLF.
inline std::optional<std::vector<std::string_view>> SplitCrlfLines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      if (i + 1 >= text.size() || text[i + 1] != '\n') return std::nullopt;
      lines.push_back(text.substr(start, i - start));
      start = i + 2;
      ++i;
    } else if (text[i] == '\n') {
      return std::nullopt;
    }
  }
  lines.push_back(text.substr(start));
  return lines;
}

inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // RFC 2045 §6.7 (1): uppercase hex only
}

// Decodes quoted-printable text, checking every rule herald's encoder promises: CRLF line ends,
// lines of at most 76 characters, only printable ASCII, space and tab, "=XX" with uppercase hex,
// "=" at line end for soft breaks, no space or tab at the end of a line, and no line starting
// with "." or "From ". On a violation returns nullopt and sets `error`.
inline std::optional<std::string> DecodeQp(std::string_view encoded, std::string* error) {
  auto fail = [&](std::string why, std::size_t line) -> std::optional<std::string> {
    if (error != nullptr) *error = "line " + std::to_string(line + 1) + ": " + why;
    return std::nullopt;
  };
  std::optional<std::vector<std::string_view>> lines = SplitCrlfLines(encoded);
  if (!lines) return fail("bare CR or LF", 0);
  std::string decoded;
  for (std::size_t n = 0; n < lines->size(); ++n) {
    std::string_view line = (*lines)[n];
    if (line.size() > 76) return fail("longer than 76 characters", n);
    if (!line.empty() && (line.back() == ' ' || line.back() == '\t')) return fail("ends with a blank", n);
    if (line.starts_with(".")) return fail("starts with '.'", n);
    if (line.starts_with("From ")) return fail("starts with 'From '", n);
    bool soft = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      if (c == '=') {
        if (i + 1 == line.size()) {
          soft = true;
          break;
        }
        if (i + 2 >= line.size()) return fail("truncated escape", n);
        int hi = HexValue(line[i + 1]);
        int lo = HexValue(line[i + 2]);
        if (hi < 0 || lo < 0) return fail("bad escape '" + std::string(line.substr(i, 3)) + "'", n);
        decoded.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
      } else if (c == ' ' || c == '\t' || (c >= 33 && c <= 126)) {
        decoded.push_back(static_cast<char>(c));
      } else {
        return fail("byte " + std::to_string(c) + " not allowed", n);
      }
    }
    if (!soft && n + 1 < lines->size()) decoded += "\r\n";
  }
  return decoded;
}

// CR, LF and CRLF each become CRLF.
inline std::string NormaliseLineBreaks(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
      out += "\r\n";
    } else if (text[i] == '\n') {
      out += "\r\n";
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// Removes the CRLF of every fold (RFC 5322 §2.2.3 unfolding).
inline std::string Unfold(std::string_view field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\r' && i + 1 < field.size() && field[i + 1] == '\n') {
      ++i;
      continue;
    }
    out.push_back(field[i]);
  }
  return out;
}

inline std::optional<std::string> DecodeBase64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned bits = 0;
  int count = 0;
  std::size_t pad = 0;
  for (char c : text) {
    if (c == '\r' || c == '\n') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad > 0) return std::nullopt;
    int v = value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<unsigned>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  return out;
}

// One RFC 2047 encoded word "=?charset?enc?text?=" at the start of `word` (the whole word).
inline std::optional<std::string> DecodeEncodedWord(std::string_view word, std::string* charset = nullptr) {
  if (!word.starts_with("=?") || !word.ends_with("?=") || word.size() < 8) return std::nullopt;
  std::string_view inner = word.substr(2, word.size() - 4);
  std::size_t q1 = inner.find('?');
  if (q1 == std::string_view::npos || q1 + 2 >= inner.size() || inner[q1 + 2] != '?') return std::nullopt;
  if (charset != nullptr) *charset = std::string(inner.substr(0, q1));
  char encoding = inner[q1 + 1];
  std::string_view text = inner.substr(q1 + 3);
  if (text.find('?') != std::string_view::npos || text.find(' ') != std::string_view::npos) return std::nullopt;
  if (encoding == 'B' || encoding == 'b') return DecodeBase64(text);
  if (encoding != 'Q' && encoding != 'q') return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '_') {
      out.push_back(' ');
    } else if (text[i] == '=') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = HexValue(text[i + 1]), lo = HexValue(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// Decodes an unfolded unstructured value (RFC 2047 §6.2): words that are encoded words are
// decoded, blanks between two adjacent encoded words are dropped, everything else is kept.
inline std::string DecodeUnstructured(std::string_view value) {
  std::string out;
  std::string pending_blanks;
  bool last_encoded = false;
  std::size_t pos = 0;
  while (pos < value.size()) {
    std::size_t blank_end = value.find_first_not_of(" \t", pos);
    if (blank_end == std::string_view::npos) blank_end = value.size();
    pending_blanks = std::string(value.substr(pos, blank_end - pos));
    if (blank_end == value.size()) {
      out += pending_blanks;
      break;
    }
    std::size_t word_end = value.find_first_of(" \t", blank_end);
    if (word_end == std::string_view::npos) word_end = value.size();
    std::string_view word = value.substr(blank_end, word_end - blank_end);
    std::optional<std::string> decoded = DecodeEncodedWord(word);
    if (decoded) {
      if (!last_encoded) out += pending_blanks;
      out += *decoded;
    } else {
      out += pending_blanks;
      out += word;
    }
    last_encoded = decoded.has_value();
    pos = word_end;
  }
  return out;
}

// Minimal JSON writing for the expectation files the Python checker reads.
inline std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
          out += buffer;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

}  // namespace herald::mime_test
