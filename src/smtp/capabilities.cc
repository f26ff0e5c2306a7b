#include "smtp/capabilities.h"

#include <algorithm>
#include <limits>

#include "core/text.h"

namespace herald::smtp {
namespace {

// Splits off the first word (up to a space or tab) of `text`; leading blanks are skipped.
std::string_view NextWord(std::string_view& text) {
  text = TrimBlanks(text);
  std::size_t end = text.find_first_of(" \t");
  std::string_view word = text.substr(0, end);
  text.remove_prefix(end == std::string_view::npos ? text.size() : end);
  return word;
}

// RFC 1870 §4: "SIZE" [SP size-value], size-value = 1*20DIGIT. Returns 0 (no declared limit) for a
// missing, malformed or out-of-range number.
std::uint64_t ParseSizeValue(std::string_view text) {
  if (text.empty() || text.size() > 20) return 0;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return 0;
    value = value * 10 + digit;
  }
  return value;
}

void AddMechanisms(std::string_view rest, std::vector<std::string>& out) {
  for (std::string_view word = NextWord(rest); !word.empty(); word = NextWord(rest)) {
    std::string name(word);
    for (char& c : name) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - ('a' - 'A'));
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  }
}

}  // namespace

bool Capabilities::OffersAuth(std::string_view mechanism) const {
  return std::any_of(auth_mechanisms.begin(), auth_mechanisms.end(),
                     [&](const std::string& m) { return EqualsIgnoreCase(m, mechanism); });
}

Capabilities ParseCapabilities(const Reply& ehlo_reply) {
  Capabilities caps;
  if (!ehlo_reply.positive_completion() || ehlo_reply.lines.empty()) return caps;
  std::string_view first = ehlo_reply.lines.front();
  caps.server_name = std::string(NextWord(first));
  for (std::size_t i = 1; i < ehlo_reply.lines.size(); ++i) {
    std::string_view rest = ehlo_reply.lines[i];
    std::string_view keyword = NextWord(rest);
    // The pre-standard form "AUTH=PLAIN LOGIN" (sent by old Microsoft clients' servers).
    if (keyword.size() > 5 && EqualsIgnoreCase(keyword.substr(0, 5), "AUTH=")) {
      AddMechanisms(keyword.substr(5), caps.auth_mechanisms);
      AddMechanisms(rest, caps.auth_mechanisms);
      continue;
    }
    if (EqualsIgnoreCase(keyword, "PIPELINING")) {
      caps.pipelining = true;
    } else if (EqualsIgnoreCase(keyword, "SIZE")) {
      caps.size = true;
      caps.max_size = ParseSizeValue(NextWord(rest));
    } else if (EqualsIgnoreCase(keyword, "8BITMIME")) {
      caps.eight_bit_mime = true;
    } else if (EqualsIgnoreCase(keyword, "SMTPUTF8")) {
      caps.smtputf8 = true;
    } else if (EqualsIgnoreCase(keyword, "ENHANCEDSTATUSCODES")) {
      caps.enhanced_status_codes = true;
    } else if (EqualsIgnoreCase(keyword, "STARTTLS")) {
      caps.starttls = true;
    } else if (EqualsIgnoreCase(keyword, "CHUNKING")) {
      caps.chunking = true;
    } else if (EqualsIgnoreCase(keyword, "DSN")) {
      caps.dsn = true;
    } else if (EqualsIgnoreCase(keyword, "AUTH")) {
      AddMechanisms(rest, caps.auth_mechanisms);
    }
  }
  return caps;
}

}  // namespace herald::smtp
