// Quoted-printable body encoding (RFC 2045 §6.7) as a streaming encoder, plus template literals
// prepared once per task so that rendering a body mostly copies pre-encoded bytes.
//
// Output rules, beyond RFC 2045:
//   - line breaks in the input (CRLF, a bare LF or a bare CR) become CRLF hard breaks, also when
//     a CR ends one Add() and the LF begins the next;
//   - encoded lines are at most 76 characters including the "=" of a soft break (the content
//     before it at most 75), so every line is valid whether or not a hard break follows;
//   - a space or tab before a hard break or at the end of the body is encoded (=20, =09), rule (3);
//   - a '.' or 'F' at the start of an encoded line is encoded (=2E, =46): no line begins with "."
//     (safe before and after SMTP dot-stuffing, RFC 5321 §4.5.2) or "From " (mbox). Encoding every
//     line-initial 'F' avoids looking ahead across values.
//
// A QpEncoder appends to a caller's string and is used by one thread; QpLiteral is immutable.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace herald::mime_internal {

// The most characters on an encoded line before a soft break's "=" (RFC 2045 §6.7 rule (5): lines
// of at most 76 characters).
inline constexpr std::size_t kQpMaxContent = 75;

// A template literal split for rendering after a value (see QpEncoder::AddLiteral):
//   head     raw text encoded at render time, continuing the line the value ended on — the
//            literal up to its first line break if that comes soon; empty otherwise;
//   encoded  the middle, encoded once from column 0;
//   tail     trailing spaces, tabs and CRs, encoded at render time because whether they end a
//            line depends on what follows.
// A short literal is all head.
struct QpLiteral {
  std::string head;
  std::string encoded;
  std::size_t end_column = 0;  // the column after `encoded`
  std::string tail;
};

// Splits and pre-encodes `literal`. `starts_body`: the literal is the first text of the body
// (rendered at column 0, so nothing needs to be dynamic at its start).
QpLiteral PrepareQpLiteral(std::string_view literal, bool starts_body);

class QpEncoder {
 public:
  explicit QpEncoder(std::string& out) : out_(&out) {}

  // Encodes `text` (any bytes) after what was added before.
  void Add(std::string_view text);

  // Adds a prepared literal; the output is the same bytes Add(literal) would decode to. Where
  // the pre-encoded middle begins the encoder moves to column 0 with a soft break when needed.
  void AddLiteral(const QpLiteral& literal);

  // Ends the body: a pending space or tab is written encoded. The encoder may be reused after.
  void Finish();

  // Column of the output's current line (0 after a line break).
  std::size_t column() const { return column_; }

  // True when no blank or CR is held back waiting for the next byte.
  bool idle() const { return held_blank_ == 0 && !skip_lf_; }

 private:
  void Escape(unsigned char c);
  void EmitHeldBlank();  // the held blank is followed by more text on the line: written as is
  void SoftBreak();
  void HardBreak();

  std::string* out_;
  std::size_t column_ = 0;
  char held_blank_ = 0;   // a space or tab not yet written: encoded if a line break follows
  bool skip_lf_ = false;  // the last input byte was a CR: an LF next belongs to the same break
};

}  // namespace herald::mime_internal
