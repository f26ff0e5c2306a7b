// Reading a composed message back for people (`herald preview`): its header fields unfolded with
// their RFC 2047 encoded words decoded, and the leaf parts of its MIME tree (RFC 2046) with their
// bodies decoded from quoted-printable or base64. It reads what herald writes — UTF-8 and US-ASCII
// text — and leaves an encoded word in any other charset as it is rather than guess. Not a
// general parser of mail from the network. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace herald {

struct HeaderField {
  std::string name;
  std::string value;  // unfolded, encoded words decoded
};

struct MessagePart {
  std::string content_type;       // lowercase, "text/plain"; "text/plain" when none is given
  std::string charset;            // lowercase, empty when none is given
  std::string transfer_encoding;  // lowercase, "7bit" when none is given
  bool attachment = false;        // Content-Disposition: attachment, or a file name given
  std::string file_name;          // from Content-Disposition or Content-Type (RFC 2231 decoded)
  std::string body;               // decoded bytes
  std::size_t encoded_size = 0;   // bytes of the body as sent
};

struct ParsedMessage {
  std::vector<HeaderField> headers;  // of the message itself, in order
  std::vector<MessagePart> parts;    // leaves in order: the whole message when it is not multipart

  // The value of the first field named `name` (ASCII case-insensitive), or empty.
  std::string_view Header(std::string_view name) const;
  // The first part of `content_type` that is not an attachment, or null.
  const MessagePart* Body(std::string_view content_type) const;
};

// Parses `message` (CRLF line ends). Errors: no blank line after the header, a multipart part
// without a boundary or whose closing delimiter is missing, a body that is not valid
// quoted-printable or base64.
Result<ParsedMessage> ParseMessage(std::string_view message);

// An unstructured header value, unfolded, with its encoded words (RFC 2047 §4, "B" and "Q") in
// UTF-8 or US-ASCII decoded; the blanks between two adjacent encoded words are dropped (§6.2).
// Anything malformed is kept as written.
std::string DecodeHeaderText(std::string_view value);

// RFC 2045 §6.7: "=XX" escapes, soft line breaks ("=" at a line's end) removed, CRLF kept.
Result<std::string> DecodeQuotedPrintable(std::string_view body);

// RFC 2045 §6.8: line breaks ignored, padding checked.
Result<std::string> DecodeBase64(std::string_view body);

}  // namespace herald
