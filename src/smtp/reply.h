// SMTP replies (RFC 5321 §4.2) and an incremental parser for them. The SMTP client feeds the
// parser whatever bytes a read returned and takes complete replies out; one read may hold several
// replies (PIPELINING, RFC 2920) or part of one. Everything here is network input: malformed bytes
// give an error value, never an assertion.
//
// Threading: Reply is a plain value. A ReplyParser belongs to one session (one coroutine).
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace herald::smtp {

struct Reply {
  int code = 0;                 // 200..599 (RFC 5321 §4.2: the parser refuses 1xx and 6xx+)
  std::string enhanced_status;  // RFC 3463 "class.subject.detail" ("5.1.1"); empty when none
  // The text of each line without its code, its ' '/'-' and the enhanced status code.
  std::vector<std::string> lines;

  // The lines joined by single spaces (Postfix's habit for multi-line replies): the server's
  // words for logs and outcomes. Empty lines are skipped.
  std::string Text() const;
  // "550 5.1.1 text of all lines" for logs and error messages.
  std::string ToString() const;

  int reply_class() const { return code / 100; }
  bool positive() const { return code >= 200 && code < 400; }           // 2xx or 3xx
  bool positive_completion() const { return reply_class() == 2; }       // 2xx
  bool positive_intermediate() const { return reply_class() == 3; }     // 3xx (354, 334)
  bool transient_negative() const { return reply_class() == 4; }        // 4xx: try again later
  bool permanent_negative() const { return reply_class() == 5; }        // 5xx

  friend bool operator==(const Reply&, const Reply&) = default;
};

// Reads replies from a byte stream.
//
// Line ends: CRLF, and also a bare LF (the CR before the LF is optional). RFC 5321 §2.3.8 asks
// for CRLF, but a few servers and proxies send LF alone, and accepting it here is harmless: reply
// bytes are never forwarded, so the end-of-data smuggling class (CVE-2023-51764) does not apply to
// this direction. A CR anywhere else in a line is refused (it could hide text in logs), as is NUL.
//
// Limits: a line may hold kMaxLineLength octets before its line end (RFC 5321 §4.5.3.1.5 says 512;
// servers exceed that with long texts, so herald is tolerant up to a cap), a reply kMaxLines lines.
// A line must start with a three-digit code 200..599 followed by ' ' (last line), '-' (more lines
// follow) or the line end (last line, no text); every line of a reply carries the same code.
//
// Enhanced status codes (RFC 2034, RFC 3463): when a line's text starts with "c.sss.ddd " whose
// class c equals the reply's first digit (2, 4 or 5), the code is removed from the text; the first
// one found becomes Reply::enhanced_status. Elsewhere (3xx replies, a different class) the text is
// left as it is.
//
// Once malformed input is seen the parser is failed: replies completed before the bad line are
// still handed out by Next(), then Next() returns the error for good.
class ReplyParser {
 public:
  static constexpr std::size_t kMaxLineLength = 2000;
  static constexpr std::size_t kMaxLines = 1000;

  // Takes bytes as received. Complete lines are parsed at once; an incomplete last line is kept
  // (copied) until the rest arrives. Bytes fed after a failure are ignored.
  void Feed(std::string_view bytes);

  // The next complete reply; std::nullopt when more bytes are needed; an error (kInvalidArgument,
  // "malformed SMTP reply: ...") when the input is malformed and no complete reply precedes it.
  Result<std::optional<Reply>> Next();

  // True when bytes were received that do not belong to a reply already taken with Next(): a
  // queued reply, part of a multi-line reply, part of a line, or a failure. After the 220 to
  // STARTTLS this must be false: bytes the server sent before the TLS handshake must not be read
  // as if they came through TLS (RFC 3207 §6; the CVE-2011-0411 / CVE-2021-38371 class).
  bool HasPendingInput() const;

  bool failed() const { return !error_.ok(); }

  // Forgets everything, including a failure (after the STARTTLS handshake).
  void Reset();

 private:
  void ParseLine(std::string_view line);
  void Fail(std::string message);

  std::string partial_;         // an incomplete line from the end of the last Feed()
  Reply pending_;               // a multi-line reply whose last line has not arrived yet
  std::deque<Reply> complete_;  // replies parsed but not yet taken
  Status error_;
};

}  // namespace herald::smtp
