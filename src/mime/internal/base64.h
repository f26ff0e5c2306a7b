// Base64 (RFC 2045 §6.8) for attachment bodies and "B" encoded words. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace herald::mime_internal {

// Appends the base64 of `data` without line breaks (for RFC 2047 "B" encoded words).
void AppendBase64(std::string_view data, std::string& out);

// Appends the base64 of `data` as a MIME body: lines of 76 characters joined by CRLF
// (RFC 2045 §6.8: "no more than 76 characters"). No CRLF after the last line, so the caller's
// boundary delimiter (which begins with CRLF, RFC 2046 §5.1.1) follows directly.
void AppendBase64Lines(std::string_view data, std::string& out);

// Length of the base64 of `size` bytes (with padding).
constexpr std::size_t Base64Length(std::size_t size) { return (size + 2) / 3 * 4; }

}  // namespace herald::mime_internal
