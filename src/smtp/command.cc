#include "smtp/command.h"

#include <fmt/format.h>

#include "core/text.h"

namespace herald::smtp {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNonAscii(char c) { return static_cast<unsigned char>(c) >= 0x80; }

// RFC 5322 §3.2.3 atext, the characters of a dot-string atom (RFC 5321 §4.1.2).
bool IsAtext(char c) {
  if (IsAlpha(c) || IsDigit(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

std::string DescribeChar(char c) {
  if (c == ' ') return "a space";
  if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return fmt::format("control character \\x{:02X}", static_cast<unsigned char>(c));
  return fmt::format("'{}'", c);
}

// Checks a Domain (RFC 5321 §4.1.2: dot-separated labels of letters, digits and '-', starting and
// ending with a letter or digit) or an address literal "[...]" (§4.1.3, dcontent). With
// `allow_utf8`, non-ASCII octets count as letters (RFC 6531 U-labels). Returns what is wrong, or
// an empty string.
std::string DomainProblem(std::string_view domain, bool allow_utf8) {
  if (domain.empty()) return "the domain is empty";
  if (domain.size() > 255) return fmt::format("the domain is {} octets, at most 255", domain.size());
  if (domain.front() == '[') {
    if (domain.size() < 3 || domain.back() != ']') return "an address literal must be '[...]'";
    for (char c : domain.substr(1, domain.size() - 2)) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 33 || u > 126 || c == '[' || c == ']' || c == '\\') {
        return fmt::format("{} in the address literal", DescribeChar(c));
      }
    }
    return {};
  }
  std::size_t label_start = 0;
  for (std::size_t i = 0; i <= domain.size(); ++i) {
    if (i == domain.size() || domain[i] == '.') {
      std::string_view label = domain.substr(label_start, i - label_start);
      if (label.empty()) return "the domain has an empty label";
      if (label.size() > 63) return fmt::format("the domain label '{}' is longer than 63 octets", Printable(label, 20));
      if (label.front() == '-' || label.back() == '-') {
        return fmt::format("the domain label '{}' starts or ends with '-'", Printable(label));
      }
      label_start = i + 1;
      continue;
    }
    const char c = domain[i];
    if (IsAlpha(c) || IsDigit(c) || c == '-') continue;
    if (IsNonAscii(c) && allow_utf8) continue;
    if (IsNonAscii(c)) return "the domain has non-ASCII characters (use A-labels, \"xn--\")";
    return fmt::format("{} in the domain; expected letters, digits, '-' and '.'", DescribeChar(c));
  }
  return {};
}

// Checks an address for a MAIL FROM or RCPT TO path (RFC 5321 §4.1.2, RFC 6531 §3.3). Returns what
// is wrong, or an empty string.
std::string PathProblem(std::string_view path, bool smtputf8) {
  if (HasLineBreakOrNul(path)) return "it contains CR, LF or NUL";
  if (path.size() > kMaxPathLength - 2) {
    return fmt::format("it is {} octets; a path holds at most {} (RFC 5321 §4.5.3.1.3)", path.size(),
                       kMaxPathLength - 2);
  }
  if (!IsAscii(path)) {
    if (!smtputf8) return "it has non-ASCII characters, which need SMTPUTF8 (RFC 6531)";
    if (!IsValidUtf8(path)) return "it is not valid UTF-8";
  }
  std::size_t at;
  if (!path.empty() && path.front() == '"') {
    // Quoted-string: qtextSMTP (%d32-33 / %d35-91 / %d93-126, UTF-8 with SMTPUTF8) and
    // quoted-pairSMTP ('\' then %d32-126).
    std::size_t i = 1;
    for (;; ++i) {
      if (i >= path.size()) return "the quoted local part has no closing '\"'";
      const char c = path[i];
      if (c == '"') break;
      if (c == '\\') {
        ++i;
        if (i >= path.size()) return "the quoted local part ends in '\\'";
        const auto u = static_cast<unsigned char>(path[i]);
        if (u < 32 || u > 126) return fmt::format("{} after '\\' in the quoted local part", DescribeChar(path[i]));
        continue;
      }
      const auto u = static_cast<unsigned char>(c);
      if ((u < 32 || u == 127) && !IsNonAscii(c)) {
        return fmt::format("{} in the quoted local part", DescribeChar(c));
      }
    }
    at = i + 1;
    if (at >= path.size() || path[at] != '@') return "expected '@' after the quoted local part";
    if (at == 2) return "the local part is empty";
  } else {
    // Dot-string: atoms of atext (and UTF-8 with SMTPUTF8) separated by single dots.
    std::size_t i = 0;
    for (; i < path.size() && path[i] != '@'; ++i) {
      const char c = path[i];
      if (c == '.') {
        if (i == 0 || path[i - 1] == '.' || i + 1 == path.size() || path[i + 1] == '@') {
          return "the local part has a leading, trailing or doubled '.' (quote it)";
        }
        continue;
      }
      if (IsAtext(c) || IsNonAscii(c)) continue;
      return fmt::format("{} in the local part outside quotes", DescribeChar(c));
    }
    if (i == path.size()) return "it has no '@'";
    if (i == 0) return "the local part is empty";
    at = i;
  }
  if (at > 64) return fmt::format("the local part is {} octets, at most 64 (RFC 5321 §4.5.3.1.1)", at);
  std::string problem = DomainProblem(path.substr(at + 1), smtputf8);
  if (!problem.empty()) return problem;
  return {};
}

Status ArgumentError(std::string_view argument, std::string_view value, std::string_view problem) {
  return InvalidArgument(fmt::format("{} '{}': {}", argument, Printable(value), problem));
}

Result<std::string> CheckedLine(std::string line, std::string_view command, std::size_t limit) {
  if (line.size() > limit) {
    return InvalidArgument(fmt::format("{} command line is {} octets; at most {} are allowed", command,
                                       line.size(), limit));
  }
  return line;
}

Result<std::string> HelloCommand(std::string_view verb, std::string_view domain) {
  std::string_view argument = verb == "EHLO" ? "EHLO domain" : "HELO domain";
  if (HasLineBreakOrNul(domain)) return ArgumentError(argument, domain, "contains CR, LF or NUL");
  std::string problem = DomainProblem(domain, /*allow_utf8=*/false);
  if (!problem.empty()) return ArgumentError(argument, domain, problem);
  std::string line;
  line.reserve(verb.size() + domain.size() + 3);
  line.append(verb).append(" ").append(domain).append("\r\n");
  return CheckedLine(std::move(line), verb, kMaxCommandLine);
}

bool IsBase64Text(std::string_view text) {
  std::size_t padding = 0;
  for (char c : text) {
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) return false;  // '=' only at the end
    if (!IsAlpha(c) && !IsDigit(c) && c != '+' && c != '/') return false;
  }
  return padding <= 2;
}

}  // namespace

Result<std::string> EhloCommand(std::string_view domain) { return HelloCommand("EHLO", domain); }
Result<std::string> HeloCommand(std::string_view domain) { return HelloCommand("HELO", domain); }

Result<std::string> MailFromCommand(std::string_view reverse_path, const MailParameters& params) {
  if (!reverse_path.empty()) {
    std::string problem = PathProblem(reverse_path, params.smtputf8);
    if (!problem.empty()) return ArgumentError("MAIL FROM address", reverse_path, problem);
  }
  std::string line;
  line.reserve(reverse_path.size() + 64);
  line.append("MAIL FROM:<").append(reverse_path).append(">");
  if (params.size) line.append(" SIZE=").append(std::to_string(*params.size));
  if (params.body_8bitmime) line.append(" BODY=8BITMIME");
  if (params.smtputf8) line.append(" SMTPUTF8");
  line.append("\r\n");
  return CheckedLine(std::move(line), "MAIL FROM", kMaxCommandLine);
}

Result<std::string> RcptToCommand(std::string_view forward_path, bool smtputf8) {
  if (forward_path.empty()) return ArgumentError("RCPT TO address", forward_path, "it is empty");
  // RFC 5321 §4.1.1.3: "Postmaster" without a domain, any case.
  if (!EqualsIgnoreCase(forward_path, "postmaster")) {
    std::string problem = PathProblem(forward_path, smtputf8);
    if (!problem.empty()) return ArgumentError("RCPT TO address", forward_path, problem);
  }
  std::string line;
  line.reserve(forward_path.size() + 12);
  line.append("RCPT TO:<").append(forward_path).append(">\r\n");
  return CheckedLine(std::move(line), "RCPT TO", kMaxCommandLine);
}

Result<std::string> AuthCommand(std::string_view mechanism, std::optional<std::string_view> initial_response) {
  if (HasLineBreakOrNul(mechanism)) return ArgumentError("AUTH mechanism", mechanism, "contains CR, LF or NUL");
  if (mechanism.empty() || mechanism.size() > 20) {
    return ArgumentError("AUTH mechanism", mechanism, "a SASL mechanism name has 1 to 20 characters");
  }
  std::string line = "AUTH ";
  for (char c : mechanism) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - ('a' - 'A'));
    if (!IsAlpha(c) && !IsDigit(c) && c != '-' && c != '_') {
      return ArgumentError("AUTH mechanism", mechanism,
                           fmt::format("{}; expected letters, digits, '-' and '_' (RFC 4422 §3.1)", DescribeChar(c)));
    }
    line.push_back(c);
  }
  if (initial_response) {
    // Never quote the response itself in an error: it carries credentials.
    if (HasLineBreakOrNul(*initial_response)) {
      return InvalidArgument("AUTH initial response: contains CR, LF or NUL");
    }
    if (!IsBase64Text(*initial_response)) return InvalidArgument("AUTH initial response: not base64 text");
    line.push_back(' ');
    // RFC 4954 §4: an empty initial response is sent as a single "=".
    if (initial_response->empty()) {
      line.push_back('=');
    } else {
      line.append(*initial_response);
    }
  }
  line.append("\r\n");
  return CheckedLine(std::move(line), "AUTH", kMaxAuthLine);
}

Result<std::string> AuthResponseLine(std::string_view base64) {
  if (HasLineBreakOrNul(base64)) return InvalidArgument("SASL response: contains CR, LF or NUL");
  if (!IsBase64Text(base64)) return InvalidArgument("SASL response: not base64 text");
  std::string line;
  line.reserve(base64.size() + 2);
  line.append(base64).append("\r\n");
  return CheckedLine(std::move(line), "SASL response", kMaxAuthLine);
}

}  // namespace herald::smtp
