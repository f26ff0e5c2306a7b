#include "smtp/reply.h"

#include <cstring>

#include <fmt/format.h>

#include "core/text.h"

namespace herald::smtp {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Length of a run of 1..3 digits at `pos`, or 0.
std::size_t DigitRun(std::string_view text, std::size_t pos) {
  std::size_t n = 0;
  while (pos + n < text.size() && n < 4 && IsDigit(text[pos + n])) ++n;
  return n >= 1 && n <= 3 ? n : 0;
}

// The length of an RFC 3463 status code "c.sss.ddd" of class `reply_class` at the start of `text`
// when it is followed by a space or the end of the text; 0 otherwise.
std::size_t EnhancedStatusLength(std::string_view text, int reply_class) {
  if (reply_class != 2 && reply_class != 4 && reply_class != 5) return 0;
  if (text.size() < 5 || text[0] != static_cast<char>('0' + reply_class) || text[1] != '.') return 0;
  std::size_t pos = 2;
  std::size_t subject = DigitRun(text, pos);
  if (subject == 0) return 0;
  pos += subject;
  if (pos >= text.size() || text[pos] != '.') return 0;
  ++pos;
  std::size_t detail = DigitRun(text, pos);
  if (detail == 0) return 0;
  pos += detail;
  if (pos < text.size() && text[pos] != ' ') return 0;
  return pos;
}

}  // namespace

std::string Reply::Text() const {
  std::string out;
  for (const std::string& line : lines) {
    if (line.empty()) continue;
    if (!out.empty()) out += ' ';
    out += line;
  }
  return out;
}

std::string Reply::ToString() const {
  std::string out = std::to_string(code);
  if (!enhanced_status.empty()) {
    out += ' ';
    out += enhanced_status;
  }
  std::string text = Text();
  if (!text.empty()) {
    out += ' ';
    out += text;
  }
  return out;
}

void ReplyParser::Feed(std::string_view bytes) {
  while (!bytes.empty() && !failed()) {
    const void* found = std::memchr(bytes.data(), '\n', bytes.size());
    if (found == nullptr) {
      // One more octet than the limit is allowed for a CR that may precede the coming LF.
      if (partial_.size() + bytes.size() > kMaxLineLength + 1) {
        Fail(fmt::format("overlong reply line (more than {} octets): '{}'", kMaxLineLength,
                         Printable(partial_.empty() ? bytes : std::string_view(partial_), 40)));
        return;
      }
      partial_.append(bytes);
      return;
    }
    const std::size_t lf = static_cast<const char*>(found) - bytes.data();
    std::string_view line;
    if (partial_.empty()) {
      line = bytes.substr(0, lf);  // the common case: no copy
    } else {
      if (partial_.size() + lf > kMaxLineLength + 1) {
        Fail(fmt::format("overlong reply line (more than {} octets): '{}'", kMaxLineLength,
                         Printable(partial_, 40)));
        return;
      }
      partial_.append(bytes.substr(0, lf));
      line = partial_;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ParseLine(line);
    partial_.clear();
    bytes.remove_prefix(lf + 1);
  }
}

void ReplyParser::ParseLine(std::string_view line) {
  if (line.size() > kMaxLineLength) {
    Fail(fmt::format("overlong reply line ({} octets, at most {}): '{}'", line.size(), kMaxLineLength,
                     Printable(line, 40)));
    return;
  }
  if (std::memchr(line.data(), '\0', line.size()) != nullptr) {
    Fail(fmt::format("NUL byte in reply line '{}'", Printable(line)));
    return;
  }
  if (std::memchr(line.data(), '\r', line.size()) != nullptr) {
    Fail(fmt::format("CR inside reply line '{}'", Printable(line)));
    return;
  }
  if (line.size() < 3 || !IsDigit(line[0]) || !IsDigit(line[1]) || !IsDigit(line[2])) {
    Fail(fmt::format("reply line does not start with a three-digit code: '{}'", Printable(line)));
    return;
  }
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (code < 200 || code > 599) {
    Fail(fmt::format("reply code {} is outside 200..599: '{}'", code, Printable(line)));
    return;
  }
  bool last = true;
  std::string_view text;
  if (line.size() > 3) {
    if (line[3] == '-') {
      last = false;
    } else if (line[3] != ' ') {
      Fail(fmt::format("expected ' ' or '-' after the reply code: '{}'", Printable(line)));
      return;
    }
    text = line.substr(4);
  }
  if (pending_.lines.empty()) {
    pending_.code = code;
  } else if (code != pending_.code) {
    Fail(fmt::format("inconsistent codes in a multi-line reply: {} after {}: '{}'", code,
                     pending_.code, Printable(line)));
    return;
  }
  if (pending_.lines.size() >= kMaxLines) {
    Fail(fmt::format("reply has more than {} lines", kMaxLines));
    return;
  }
  if (std::size_t n = EnhancedStatusLength(text, code / 100); n > 0) {
    if (pending_.enhanced_status.empty()) pending_.enhanced_status.assign(text.substr(0, n));
    text.remove_prefix(n < text.size() ? n + 1 : n);
  }
  pending_.lines.emplace_back(text);
  if (last) {
    complete_.push_back(std::move(pending_));
    pending_ = Reply();
  }
}

void ReplyParser::Fail(std::string message) {
  error_ = InvalidArgument("malformed SMTP reply: " + message);
  partial_.clear();
  partial_.shrink_to_fit();
  pending_ = Reply();
}

Result<std::optional<Reply>> ReplyParser::Next() {
  if (!complete_.empty()) {
    Reply reply = std::move(complete_.front());
    complete_.pop_front();
    return std::optional<Reply>(std::move(reply));
  }
  if (failed()) return error_;
  return std::optional<Reply>();
}

bool ReplyParser::HasPendingInput() const {
  return failed() || !complete_.empty() || !pending_.lines.empty() || !partial_.empty();
}

void ReplyParser::Reset() {
  partial_.clear();
  pending_ = Reply();
  complete_.clear();
  error_ = Status();
}

}  // namespace herald::smtp
