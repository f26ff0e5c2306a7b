// Media types for attachments (RFC 2046, RFC 6838): the type a file name's extension implies, and
// the check for a type the user wrote. Pure functions over a constant table, thread-safe.
#pragma once

#include <string_view>

namespace herald::mime_internal {

inline constexpr std::string_view kOctetStream = "application/octet-stream";

// The media type for `file_name`'s extension (ASCII-case-insensitive): "report.PDF" ->
// "application/pdf". Unknown or no extension: application/octet-stream.
std::string_view MediaTypeForFileName(std::string_view file_name);

// True if `text` is "type/subtype" with both parts RFC 2045 §5.1 tokens and no parameters.
bool IsValidMediaType(std::string_view text);

}  // namespace herald::mime_internal
