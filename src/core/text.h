// Small text helpers shared by every module: UTF-8 validation, ASCII case and trimming, and the
// check for bytes that must never reach a header or an SMTP command. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace herald {

// Returns the offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or std::string_view::npos if all is valid.
std::size_t FindInvalidUtf8(std::string_view text);
inline bool IsValidUtf8(std::string_view text) { return FindInvalidUtf8(text) == std::string_view::npos; }

inline bool IsAscii(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

// True if `text` holds CR, LF or NUL: bytes that would end a header line or an SMTP command.
inline bool HasLineBreakOrNul(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

inline char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }
std::string AsciiLowercase(std::string_view text);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Strips spaces and tabs at both ends.
std::string_view TrimBlanks(std::string_view text);

// How many single-character edits (insert, delete, replace, swap two neighbours) turn `a` into
// `b`, ignoring ASCII case: "sned" to "send" is 1, "prot" to "port" 1 (optimal string alignment).
std::size_t EditDistance(std::string_view a, std::string_view b);

// The candidate `word` is most likely a typo of, for "did you mean" hints: the closest by
// EditDistance when it is at most 1 edit away for words of up to 4 characters, 2 up to 8, and 3
// beyond (the first of equals); empty when none is that close, or `word` is one of them.
std::string_view ClosestWord(std::string_view word, const std::vector<std::string_view>& candidates);

// Renders bytes for an error message: printable ASCII as is, everything else as \xNN, CR as \r,
// LF as \n; cut to `max_bytes` of input with "..." after.
std::string Printable(std::string_view text, std::size_t max_bytes = 80);

}  // namespace herald
