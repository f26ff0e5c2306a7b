// Base64 (RFC 4648 §4) for SASL exchanges (RFC 4954 §4): encoding of client responses and strict
// decoding of server challenges, which are network input. Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace herald::smtp_internal {

std::string EncodeBase64(std::string_view data);

// Decodes base64 text. Padding may be left out (some servers do), but where present it must be
// correct; any octet outside the alphabet, including whitespace, makes the text invalid.
std::optional<std::string> DecodeBase64(std::string_view text);

}  // namespace herald::smtp_internal
