// The header writer: the one chokepoint through which every header field of a message is written
// (STYLE.md, "Security habits"). It rejects CR, LF and NUL, other control characters (C0 except
// tab, and DEL: parsers flag them as defects, terminals obey them) and invalid UTF-8 in any
// value, encodes non-ASCII text as RFC 2047 encoded words, and folds lines (RFC 5322 §2.2.3).
//
// Line lengths: a line is folded at whitespace to stay within 78 characters (RFC 5322 §2.1.1),
// and a line holding an encoded word within 76 (RFC 2047 §2). The one exception is an ASCII word
// too long for a line, e.g. a URL in a List-Unsubscribe extra header: it stays whole, because
// encoding would break a structured field — unless it is longer than 900 characters: then it is
// encoded and split. So no line is ever longer than 998 octets (RFC 5322 §2.1.1's hard limit).
//
// What is encoded (RFC 2047 §5): a word with non-ASCII characters, or that contains
// "=?" (text that looks like an encoded word is encoded itself, so a decoder never decodes what
// a recipient's CSV cell wrote — "=?utf-8?q?=0D=0A?=" arrives as those characters). Adjacent
// words to encode become one run, split into encoded words of at most 75 characters at UTF-8
// character boundaries and separated by folding whitespace, which decoders drop between them.
// "Q" or "B" is chosen per run: B when it is a quarter shorter or more (CJK text), else Q, which
// keeps mostly-Latin text readable. Q uses only the characters RFC 2047 §5(3)
// allows in a phrase, so the same encoder serves display names.
//
// Leading and trailing blanks of a value are not written (decoders drop them anyway).
//
// Functions append to a caller's string and are thread-safe; on error `out` is left as it was.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "address/address.h"
#include "core/clock.h"
#include "core/status.h"

namespace herald::mime_internal {

inline constexpr std::size_t kPreferredLineLength = 78;   // RFC 5322 §2.1.1 (SHOULD)
inline constexpr std::size_t kMaxLineLength = 998;        // RFC 5322 §2.1.1 (MUST)
inline constexpr std::size_t kEncodedWordLineLength = 76; // RFC 2047 §2
inline constexpr std::size_t kMaxEncodedWordLength = 75;  // RFC 2047 §2
// Field names longer than this are refused so that the first word of a value, even an encoded
// one, fits on the field's first line (folding right after the colon would add a leading space
// to the value in some decoders).
inline constexpr std::size_t kMaxFieldNameLength = 50;

// The chokepoint check. Returns an empty view if `value` may be written into a header, else what
// is wrong: "contains a line break (CR)", "contains a line break (LF)", "contains a NUL byte",
// "contains a control character", "is not valid UTF-8".
std::string_view HeaderValueProblem(std::string_view value);

// RFC 5322 §3.6.8: 1*ftext (printable ASCII except ':'), at most kMaxFieldNameLength.
bool IsValidFieldName(std::string_view name);

// One header field being written: "Name:" then tokens, folded as they come, then CRLF.
class HeaderLine {
 public:
  // Appends "Name:". Precondition: IsValidFieldName(name).
  HeaderLine(std::string& out, std::string_view name);

  // Appends `blanks` (non-empty spaces/tabs) and an unbreakable token of `size` characters
  // that the caller appends right after; folds before the blanks when the token would pass the
  // line limit. The first token always stays on the field's first line.
  void BeginToken(std::string_view blanks, std::size_t size);

  // A plain token: BeginToken and the token's bytes.
  void AddPlain(std::string_view blanks, std::string_view token);

  // Encoded words for `text` (valid UTF-8), after `blank` (one space or tab).
  void AddEncoded(std::string_view blank, std::string_view text);

  // "; attribute=value" for Content-Type and Content-Disposition (RFC 2045 §5.1): a quoted
  // string for printable ASCII, RFC 2231 continuations ("name*0=...") when it does not fit on a
  // line, and RFC 2231 extended values ("name*=UTF-8''%C3%A4...") for anything else.
  // Precondition: HeaderValueProblem(value) is empty.
  void AddParameter(std::string_view attribute, std::string_view value);

  // Ends the field with CRLF.
  void Finish();

  std::size_t column() const { return out_->size() - line_start_; }

 private:
  void Fold();

  std::string* out_;
  std::size_t line_start_;
  bool at_field_start_ = true;
  bool line_has_encoded_word_ = false;
};

// "Name: value" for unstructured fields (RFC 5322 §3.2.5): Subject, extra headers.
// Errors: HeaderValueProblem(value).
Status AppendUnstructuredField(std::string_view name, std::string_view value, std::string& out);

// "Name: display name <address>" or "Name: address" (RFC 5322 §3.4). The display name is written
// as atoms, a quoted-string when it holds specials (",", ".", "\"", ...), or encoded words when
// it holds non-ASCII (RFC 2047 §5(3)). A UTF-8 local part is written as UTF-8 (RFC 6532 §3.2).
// Errors: HeaderValueProblem of the display name ("display name ...") or the address
// ("address ..."), an empty local part or domain.
Status AppendMailboxField(std::string_view name, std::string_view display_name, const Address& address,
                          std::string& out);

// "Message-ID: <id>" (RFC 5322 §3.6.4). Errors: `id` empty, not printable ASCII, holding "<",
// ">", "\"", "\\" or blanks, or without "@" between two non-empty parts.
Status AppendMessageIdField(std::string_view id, std::string& out);

// "Date: Tue, 04 Mar 2025 09:05:03 +0000" (RFC 5322 §3.3), in UTC.
void AppendDateField(TimePoint date, std::string& out);

}  // namespace herald::mime_internal
