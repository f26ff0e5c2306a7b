// The compact encoding of a list of strings in one BLOB (a recipient's fields, a task's columns):
// for each string, its length as an unsigned LEB128 varint, then its bytes. Any bytes are allowed,
// NUL included; an empty list is an empty blob, and one empty string is the single byte 0.
// Pure functions, thread-safe.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace herald::store_internal {

// Replaces `out` with the encoding of `values` (reusing its capacity).
void EncodeStrings(std::span<const std::string> values, std::string& out);

// Errors: kFailedPrecondition when `blob` is not a valid encoding (truncated length or value);
// the message says where, the caller adds which row.
Result<std::vector<std::string>> DecodeStrings(std::string_view blob);

}  // namespace herald::store_internal
