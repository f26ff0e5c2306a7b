// Fuzz target: the SMTP reply parser (smtp/reply.h) and the code that reads its replies (EHLO
// capabilities, outcome classification). The input is what a server sends.
//
// Properties, beyond "no crash, leak or undefined behaviour":
// - The replies and the failure do not depend on how the bytes are split into reads: the input
//   fed whole, one octet at a time and in uneven pieces gives the same result.
// - Every reply has a code in 200..599, 1..kMaxLines lines without CR, LF or NUL, and an
//   enhanced status code that is empty or "c.sss.ddd" of the reply's class.
// - A reply written back in canonical form ("code[-| ]enh text" CRLF per line) parses to the same
//   reply.
// - Outcome texts hold no control characters (a reply must not forge log lines), and cutting a
//   long text never splits a UTF-8 character.
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/text.h"
#include "fuzz_check.h"
#include "smtp/capabilities.h"
#include "smtp/classify.h"
#include "smtp/reply.h"

namespace herald::smtp {
namespace {

using fuzz::Escaped;

struct Parsed {
  std::vector<Reply> replies;
  bool failed = false;
};

// Takes every complete reply out of `parser`; false once it reported an error.
bool Drain(ReplyParser& parser, Parsed& parsed) {
  for (;;) {
    Result<std::optional<Reply>> next = parser.Next();
    if (!next.ok()) {
      FUZZ_CHECK(parser.failed(), "Next() returned an error but the parser is not failed");
      FUZZ_CHECK(parser.HasPendingInput(), "a failed parser must report pending input");
      parsed.failed = true;
      return false;
    }
    if (!next->has_value()) return true;
    parsed.replies.push_back(std::move(**next));
  }
}

// Feeds `input` in pieces whose sizes `piece_size(offset)` gives.
template <typename PieceSize>
Parsed ParseInPieces(std::string_view input, PieceSize piece_size) {
  ReplyParser parser;
  Parsed parsed;
  std::size_t pos = 0;
  while (pos < input.size()) {
    std::size_t n = std::min<std::size_t>(piece_size(pos), input.size() - pos);
    parser.Feed(input.substr(pos, n));
    pos += n;
    if (!Drain(parser, parsed)) return parsed;
  }
  Drain(parser, parsed);
  return parsed;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "c.sss.ddd" (RFC 3463 §2: class 2, 4 or 5; subject and detail of 1..3 digits).
bool IsEnhancedStatus(std::string_view text, int reply_class) {
  if (text.size() < 5 || text[0] != static_cast<char>('0' + reply_class) || text[1] != '.') return false;
  std::size_t pos = 2;
  for (int part = 0; part < 2; ++part) {
    std::size_t digits = 0;
    while (pos < text.size() && IsDigit(text[pos])) ++pos, ++digits;
    if (digits < 1 || digits > 3) return false;
    if (part == 0) {
      if (pos >= text.size() || text[pos] != '.') return false;
      ++pos;
    }
  }
  return pos == text.size();
}

void CheckReply(const Reply& reply) {
  const std::string shown = Escaped(reply.ToString());
  FUZZ_CHECK(reply.code >= 200 && reply.code <= 599, "code out of range: " + shown);
  FUZZ_CHECK(!reply.lines.empty() && reply.lines.size() <= ReplyParser::kMaxLines, "line count: " + shown);
  for (const std::string& line : reply.lines) {
    FUZZ_CHECK(line.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
               "CR, LF or NUL in a line: " + shown);
    FUZZ_CHECK(line.size() <= ReplyParser::kMaxLineLength, "overlong line: " + shown);
  }
  const int reply_class = reply.code / 100;
  FUZZ_CHECK(reply.enhanced_status.empty() ||
                 ((reply_class == 2 || reply_class == 4 || reply_class == 5) &&
                  IsEnhancedStatus(reply.enhanced_status, reply_class)),
             "bad enhanced status: " + shown);
}

// The reply as a server would send it, every line carrying the enhanced status code (the parser
// strips one from each line, so a line's own text keeps whatever followed it).
std::string Canonical(const Reply& reply) {
  std::string out;
  for (std::size_t i = 0; i < reply.lines.size(); ++i) {
    out += std::to_string(reply.code);
    out += i + 1 < reply.lines.size() ? '-' : ' ';
    if (!reply.enhanced_status.empty()) {
      out += reply.enhanced_status;
      out += ' ';
    }
    out += reply.lines[i];
    out += "\r\n";
  }
  return out;
}

void CheckOutcomeText(const Outcome& outcome, const Reply& reply) {
  for (unsigned char c : outcome.text) {
    FUZZ_CHECK(c >= 0x20 && c != 0x7F, "control character in an outcome's text from " + Escaped(reply.ToString()));
  }
  FUZZ_CHECK(outcome.text.size() <= kMaxOutcomeText, "outcome text longer than kMaxOutcomeText");
  FUZZ_CHECK(!IsValidUtf8(reply.Text()) || IsValidUtf8(outcome.text),
             "cutting the outcome text split a UTF-8 character of " + Escaped(reply.Text()));
  FUZZ_CHECK(outcome.reply_code == reply.code, "outcome lost the reply code");
}

void CheckConsumers(const Reply& reply) {
  const Capabilities caps = ParseCapabilities(reply);
  for (std::size_t i = 0; i < caps.auth_mechanisms.size(); ++i) {
    const std::string& mechanism = caps.auth_mechanisms[i];
    FUZZ_CHECK(!mechanism.empty(), "empty AUTH mechanism");
    for (char c : mechanism) FUZZ_CHECK(!(c >= 'a' && c <= 'z'), "AUTH mechanism not uppercase: " + mechanism);
    FUZZ_CHECK(caps.OffersAuth(mechanism), "OffersAuth misses " + mechanism);
    for (std::size_t j = 0; j < i; ++j) FUZZ_CHECK(caps.auth_mechanisms[j] != mechanism, "duplicate " + mechanism);
  }
  for (Stage stage : {Stage::kGreeting, Stage::kHello, Stage::kStartTls, Stage::kAuth, Stage::kMailFrom,
                      Stage::kRcptTo, Stage::kData, Stage::kDataEnd}) {
    CheckOutcomeText(Classify(stage, reply).outcome, reply);
  }
}

}  // namespace
}  // namespace herald::smtp

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald::smtp;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const Parsed whole = ParseInPieces(input, [&](std::size_t) { return input.size(); });
  const Parsed octets = ParseInPieces(input, [](std::size_t) { return std::size_t{1}; });
  // Uneven pieces of 1..13 octets, chosen by the content so that a piece often ends inside a CRLF.
  const Parsed pieces = ParseInPieces(input, [&](std::size_t pos) {
    return 1 + static_cast<unsigned char>(input[pos]) % 13;
  });
  for (const Parsed* other : {&octets, &pieces}) {
    FUZZ_CHECK(other->failed == whole.failed, "the failure depends on how the input is split");
    FUZZ_CHECK(other->replies == whole.replies, "the replies depend on how the input is split");
  }

  for (const Reply& reply : whole.replies) {
    CheckReply(reply);
    CheckConsumers(reply);
    ReplyParser again;
    again.Feed(Canonical(reply));
    herald::Result<std::optional<Reply>> reparsed = again.Next();
    FUZZ_CHECK(reparsed.ok() && reparsed->has_value() && **reparsed == reply,
               "canonical form does not parse back: " + Escaped(Canonical(reply)));
    FUZZ_CHECK(!again.HasPendingInput(), "pending input after one canonical reply");
  }
  return 0;
}
