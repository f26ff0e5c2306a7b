// A strict reader of header fields, for the header writer's fuzz target: written from the RFCs
// and independently of src/mime, so that a round trip through it checks herald's encoder against
// the standards rather than against itself.
//
// - RFC 5322 §2.2.3 unfolding;
// - RFC 2047 encoded words ("=?UTF-8?Q?...?=", "=?UTF-8?B?...?=") in unstructured text (§5(1))
//   and in a display name (§5(3)), adjacent ones joined without the white space between them
//   (§6.2);
// - RFC 2231 parameter values: quoted strings, extended values (UTF-8''%XX) and continuations.
//
// Strict means: anything two conforming readers could read differently is an error — a malformed
// encoded word, plain text that looks like one (some decoders find "=?" inside words), 8-bit
// bytes outside encoded words, an encoded word holding part of a UTF-8 character (§5: "an integral
// number of characters"), an encoded word longer than 75 characters (§2), a section number out of
// order. Each function returns false and says why in `error`.
#pragma once

#include <string>
#include <string_view>

namespace herald::fuzz {

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsStrictUtf8(std::string_view text);

// `field` is "Name:" value CRLF with folds (CRLF followed by a space or tab). Checks the name, that
// every CR and LF belongs to a fold or the final CRLF, and the line lengths: at most 998 octets
// (RFC 5322 §2.1.1), at most 76 on a line holding an encoded word (RFC 2047 §2), at most
// `soft_limit` on a line holding more than one word. Sets `value` to the unfolded value.
bool UnfoldField(std::string_view field, std::string_view name, std::size_t soft_limit, std::string& value,
                 std::string& error);

// An unstructured value (Subject, extra headers), leading white space dropped.
bool DecodeUnstructured(std::string_view value, std::string& text, std::string& error);

// A mailbox value: `address` alone, or a display name (atoms, one quoted string or encoded words)
// followed by "<address>". Sets `display_name` (empty for the address alone).
bool DecodeMailbox(std::string_view value, std::string_view address, std::string& display_name, std::string& error);

// A value "first_token; attribute=..." (Content-Disposition, Content-Type) with exactly one
// parameter, `attribute`, in any of RFC 2231's forms. Sets `text` to the parameter's value.
bool DecodeParameter(std::string_view value, std::string_view first_token, std::string_view attribute,
                     std::string& text, std::string& error);

}  // namespace herald::fuzz
