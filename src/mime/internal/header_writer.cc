#include "mime/internal/header_writer.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <cstdint>

#include <fmt/format.h>

#include "core/text.h"
#include "mime/internal/base64.h"

namespace herald::mime_internal {
namespace {

constexpr std::string_view kQPrefix = "=?UTF-8?Q?";
constexpr std::string_view kBPrefix = "=?UTF-8?B?";
constexpr std::size_t kEncodedWordOverhead = 12;  // "=?UTF-8?Q?" and "?="
// A plain word longer than this is encoded: with a field name of at most 50 characters or at
// most kMaxPlainBlanks blanks before it, its line stays far below 998.
constexpr std::size_t kMaxPlainWord = 900;
// A longer run of blanks between words goes inside an encoded word (a fold cannot split it).
constexpr std::size_t kMaxPlainBlanks = 32;
// RFC 2231 §7: the charset part of an extended value.
constexpr std::string_view kExtendedPrefix = "UTF-8''";

constexpr char kHex[] = "0123456789ABCDEF";

// RFC 2047 §5(3): the characters a "Q" encoded word in a phrase may hold as themselves (upper and
// lower case letters, digits, "!", "*", "+", "-", "/"); a space is written as "_" (§4.2 (2)).
constexpr std::array<bool, 256> MakeQLiteral() {
  std::array<bool, 256> literal{};
  for (int c = 0; c < 256; ++c) {
    literal[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '!' ||
                 c == '*' || c == '+' || c == '-' || c == '/';
  }
  return literal;
}
constexpr std::array<bool, 256> kQLiteral = MakeQLiteral();

std::size_t QCost(unsigned char c) { return (kQLiteral[c] || c == ' ') ? 1 : 3; }

// RFC 5322 §3.2.3 atext.
bool IsAtext(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) != std::string_view::npos;
}

// RFC 2231 §7 attribute-char, the characters an extended value holds without %-encoding
// (any CHAR except SPACE, CTLs, "*", "'", "%" and tspecials); a conservative subset.
bool IsAttributeChar(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$&+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// The length of the UTF-8 sequence led by `lead` (the text is valid UTF-8).
std::size_t Utf8Length(unsigned char lead) { return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

// Text a decoder could take for an encoded word ("=?charset?q?...?="), even inside a word
// (some decoders, Python's among them, find encoded words inside atoms and quoted strings).
bool LooksLikeEncodedWord(std::string_view text) { return text.find("=?") != std::string_view::npos; }

bool WordNeedsEncoding(std::string_view word) {
  if (word.size() > kMaxPlainWord) return true;
  for (unsigned char c : word) {
    if (c < 0x21 || c > 0x7E) return true;
  }
  return LooksLikeEncodedWord(word);
}

std::size_t SkipBlanks(std::string_view text, std::size_t pos) {
  while (pos < text.size() && IsBlank(text[pos])) ++pos;
  return pos;
}

std::size_t FindBlank(std::string_view text, std::size_t pos) {
  while (pos < text.size() && !IsBlank(text[pos])) ++pos;
  return pos;
}

std::size_t QuotedSize(std::string_view text) {
  std::size_t size = 2;
  for (char c : text) size += (c == '"' || c == '\\') ? 2 : 1;
  return size;
}

// RFC 5322 §3.2.4 quoted-string: DQUOTE, text with "\" before "\"" and "\\", DQUOTE.
void AppendQuoted(std::string_view text, std::string& out) {
  out.push_back('"');
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

std::size_t PercentSize(std::string_view text) {
  std::size_t size = 0;
  for (unsigned char c : text) size += IsAttributeChar(c) ? 1 : 3;
  return size;
}

void AppendPercentEncoded(std::string_view text, std::string& out) {
  for (unsigned char c : text) {
    if (IsAttributeChar(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      char escaped[3] = {'%', kHex[c >> 4], kHex[c & 15]};
      out.append(escaped, 3);
    }
  }
}

// The display name of a mailbox (RFC 5322 §3.2.5 phrase): atoms when it is words of atext
// separated by single spaces, a quoted-string when it is other printable ASCII, encoded words
// (RFC 2047 §5(3)) otherwise. `name` is trimmed, non-empty and valid UTF-8.
void AddPhrase(std::string_view name, HeaderLine& line, std::string& out) {
  bool encode = LooksLikeEncodedWord(name);
  bool atoms = true;
  bool previous_space = false;
  std::size_t longest_word = 0;
  std::size_t word = 0;
  for (unsigned char c : name) {
    if (c >= 0x7F || c < 0x20) {
      encode = true;
      break;
    }
    if (c == ' ') {
      if (previous_space) atoms = false;
      previous_space = true;
      word = 0;
    } else {
      previous_space = false;
      if (!IsAtext(c)) atoms = false;
      longest_word = std::max(longest_word, ++word);
    }
  }
  if (!encode && atoms && longest_word + 1 <= kPreferredLineLength) {
    for (std::size_t pos = 0; pos < name.size();) {
      std::size_t end = FindBlank(name, pos);
      line.AddPlain(" ", name.substr(pos, end - pos));
      pos = SkipBlanks(name, end);
    }
    return;
  }
  if (!encode && QuotedSize(name) + 1 <= kPreferredLineLength) {
    line.BeginToken(" ", QuotedSize(name));
    AppendQuoted(name, out);
    return;
  }
  line.AddEncoded(" ", name);
}

Status AddressProblem(const Address& address) {
  for (std::string_view part : {std::string_view(address.local_part), std::string_view(address.domain)}) {
    if (std::string_view problem = HeaderValueProblem(part); !problem.empty()) {
      return InvalidArgument(fmt::format("address {}", problem));
    }
    for (unsigned char c : part) {
      if (c < 0x20 || c == 0x7F) return InvalidArgument("address contains a control character");
    }
  }
  if (address.local_part.empty() || address.domain.empty()) {
    return InvalidArgument(fmt::format("address '{}' has an empty local part or domain",
                                       Printable(address.local_part + "@" + address.domain)));
  }
  return Status::Ok();
}

}  // namespace

std::string_view HeaderValueProblem(std::string_view value) {
  // One table pass: 1 for bytes no header may hold, 2 for 8-bit bytes (UTF-8 checked after).
  static constexpr std::array<std::uint8_t, 256> kKinds = [] {
    std::array<std::uint8_t, 256> kinds{};
    for (int c = 0; c < 0x20; ++c) kinds[c] = c == '\t' ? 0 : 1;
    kinds[0x7F] = 1;
    for (int c = 0x80; c < 0x100; ++c) kinds[c] = 2;
    return kinds;
  }();
  std::uint8_t seen = 0;
  for (unsigned char c : value) seen |= kKinds[c];
  if (seen & 1) {
    for (unsigned char c : value) {
      if (c == '\r') return "contains a line break (CR)";
      if (c == '\n') return "contains a line break (LF)";
      if (c == 0) return "contains a NUL byte";
    }
    return "contains a control character";
  }
  if ((seen & 2) && !IsValidUtf8(value)) return "is not valid UTF-8";
  return {};
}

bool IsValidFieldName(std::string_view name) {
  if (name.empty() || name.size() > kMaxFieldNameLength) return false;
  for (char c : name) {
    if (c < 33 || c > 126 || c == ':') return false;
  }
  return true;
}

HeaderLine::HeaderLine(std::string& out, std::string_view name) : out_(&out), line_start_(out.size()) {
  assert(IsValidFieldName(name));
  out.append(name);
  out.push_back(':');
}

void HeaderLine::Fold() {
  out_->append("\r\n", 2);
  line_start_ = out_->size();
  line_has_encoded_word_ = false;
}

void HeaderLine::BeginToken(std::string_view blanks, std::size_t size) {
  assert(!blanks.empty());
  const std::size_t limit = line_has_encoded_word_ ? kEncodedWordLineLength : kPreferredLineLength;
  if (!at_field_start_ && column() + blanks.size() + size > limit) Fold();
  at_field_start_ = false;
  out_->append(blanks);
}

void HeaderLine::AddPlain(std::string_view blanks, std::string_view token) {
  BeginToken(blanks, token.size());
  out_->append(token);
}

void HeaderLine::AddEncoded(std::string_view blank, std::string_view text) {
  std::size_t q_size = 0;
  for (unsigned char c : text) q_size += QCost(c);
  // B when it is clearly shorter (mostly non-Latin text); Q keeps mostly-Latin text readable.
  const bool base64 = Base64Length(text.size()) * 4 < q_size * 3;
  std::size_t pos = 0;
  bool first = true;
  while (pos < text.size()) {
    std::string_view separator = first ? blank : std::string_view(" ");
    const std::size_t used = column() + separator.size() + kEncodedWordOverhead;
    const std::size_t budget =
        used < kEncodedWordLineLength
            ? std::min(kEncodedWordLineLength - used, kMaxEncodedWordLength - kEncodedWordOverhead)
            : 0;
    // Whole UTF-8 characters only: RFC 2047 §5 (each encoded word must hold complete characters).
    std::size_t n = 0;
    std::size_t size = 0;
    while (pos + n < text.size()) {
      std::size_t length = std::min(Utf8Length(static_cast<unsigned char>(text[pos + n])), text.size() - pos - n);
      std::size_t next_size;
      if (base64) {
        next_size = Base64Length(n + length);
      } else {
        next_size = size;
        for (std::size_t k = 0; k < length; ++k) next_size += QCost(static_cast<unsigned char>(text[pos + n + k]));
      }
      if (next_size > budget) break;
      n += length;
      size = next_size;
    }
    // Where the text goes on, end the word before a blank in its second half, so the blank
    // begins the next word: decoders that wrongly keep the folding blank between encoded words
    // (CPython gh-128110, some webmail) then show an extra space, not a split word.
    if (pos + n < text.size() && !IsBlank(text[pos + n])) {
      for (std::size_t k = n; k > n / 2 && k > 1; --k) {
        if (IsBlank(text[pos + k - 1])) {
          n = k - 1;
          break;
        }
      }
    }
    if (n == 0) {
      // Not one character fits on this line. A fresh line always has room (63 characters of
      // encoded text), and the first line too for field names of at most kMaxFieldNameLength.
      assert(!at_field_start_);
      Fold();
      continue;
    }
    at_field_start_ = false;
    out_->append(separator);
    out_->append(base64 ? kBPrefix : kQPrefix);
    std::string_view chunk = text.substr(pos, n);
    if (base64) {
      AppendBase64(chunk, *out_);
    } else {
      char word[kMaxEncodedWordLength];  // the Q text is at most 63 characters
      std::size_t length = 0;
      for (unsigned char c : chunk) {
        if (kQLiteral[c]) {
          word[length++] = static_cast<char>(c);
        } else if (c == ' ') {
          word[length++] = '_';
        } else {
          word[length++] = '=';
          word[length++] = kHex[c >> 4];
          word[length++] = kHex[c & 15];
        }
      }
      out_->append(word, length);
    }
    out_->append("?=", 2);
    line_has_encoded_word_ = true;
    pos += n;
    first = false;
  }
}

void HeaderLine::AddParameter(std::string_view attribute, std::string_view value) {
  out_->push_back(';');
  at_field_start_ = false;
  bool printable = !LooksLikeEncodedWord(value);
  for (unsigned char c : value) {
    if (c < 0x20 || c > 0x7E) printable = false;
  }
  // Room on a fresh line for " attribute*NN*=" and a closing ";".
  const std::size_t segment_budget = kPreferredLineLength - std::min<std::size_t>(attribute.size() + 8, 40);
  if (printable) {
    std::size_t quoted = QuotedSize(value);
    if (1 + attribute.size() + 1 + quoted + 1 <= kPreferredLineLength) {
      BeginToken(" ", attribute.size() + 1 + quoted);
      out_->append(attribute);
      out_->push_back('=');
      AppendQuoted(value, *out_);
      return;
    }
    // RFC 2231 §3: parameter value continuations, name*0="..."; name*1="..."
    std::size_t pos = 0;
    for (int index = 0; pos < value.size(); ++index) {
      std::size_t n = 0;
      std::size_t size = 2;
      while (pos + n < value.size()) {
        std::size_t cost = (value[pos + n] == '"' || value[pos + n] == '\\') ? 2 : 1;
        if (size + cost > segment_budget) break;
        size += cost;
        ++n;
      }
      std::string head = fmt::format("{}*{}=", attribute, index);
      if (index > 0) out_->push_back(';');
      BeginToken(" ", head.size() + size);
      out_->append(head);
      AppendQuoted(value.substr(pos, n), *out_);
      pos += n;
    }
    return;
  }
  // RFC 2231 §4: extended value, charset and %-encoded octets.
  const std::size_t encoded = kExtendedPrefix.size() + PercentSize(value);
  if (1 + attribute.size() + 2 + encoded + 1 <= kPreferredLineLength) {
    BeginToken(" ", attribute.size() + 2 + encoded);
    out_->append(attribute);
    out_->append("*=");
    out_->append(kExtendedPrefix);
    AppendPercentEncoded(value, *out_);
    return;
  }
  // RFC 2231 §4.1: continuations of an extended value, name*0*=UTF-8''...; name*1*=...
  // Segments end at character boundaries, so each decodes on its own too.
  std::size_t pos = 0;
  for (int index = 0; pos < value.size(); ++index) {
    std::size_t size = index == 0 ? kExtendedPrefix.size() : 0;
    std::size_t n = 0;
    while (pos + n < value.size()) {
      std::size_t length = std::min(Utf8Length(static_cast<unsigned char>(value[pos + n])), value.size() - pos - n);
      std::size_t cost = PercentSize(value.substr(pos + n, length));
      if (n > 0 && size + cost > segment_budget) break;
      size += cost;
      n += length;
    }
    std::string head = fmt::format("{}*{}*=", attribute, index);
    if (index > 0) out_->push_back(';');
    BeginToken(" ", head.size() + size);
    out_->append(head);
    if (index == 0) out_->append(kExtendedPrefix);
    AppendPercentEncoded(value.substr(pos, n), *out_);
    pos += n;
  }
}

void HeaderLine::Finish() { out_->append("\r\n", 2); }

Status AppendUnstructuredField(std::string_view name, std::string_view value, std::string& out) {
  if (std::string_view problem = HeaderValueProblem(value); !problem.empty()) {
    return InvalidArgument(std::string(problem));
  }
  value = TrimBlanks(value);
  HeaderLine line(out, name);
  std::string_view blanks = " ";  // after the colon
  std::size_t pos = 0;
  while (pos < value.size()) {
    std::size_t end = FindBlank(value, pos);
    if (!WordNeedsEncoding(value.substr(pos, end - pos)) && blanks.size() <= kMaxPlainBlanks) {
      line.AddPlain(blanks, value.substr(pos, end - pos));
    } else {
      // One run of encoded words over this word and the following ones that need encoding; the
      // blanks between them are encoded too (decoders drop blanks between encoded words), and
      // so are the blanks before the run beyond the one that separates it.
      const std::size_t run_begin = pos - (blanks.size() - 1);
      while (end < value.size()) {
        std::size_t next = SkipBlanks(value, end);
        std::size_t next_end = FindBlank(value, next);
        if (!WordNeedsEncoding(value.substr(next, next_end - next)) && next - end <= kMaxPlainBlanks) break;
        end = next_end;
      }
      line.AddEncoded(blanks.substr(0, 1), value.substr(run_begin, end - run_begin));
    }
    std::size_t next = SkipBlanks(value, end);
    blanks = value.substr(end, next - end);
    pos = next;
  }
  line.Finish();
  return Status::Ok();
}

Status AppendMailboxField(std::string_view name, std::string_view display_name, const Address& address,
                          std::string& out) {
  if (std::string_view problem = HeaderValueProblem(display_name); !problem.empty()) {
    return InvalidArgument(fmt::format("display name {}", problem));
  }
  HERALD_RETURN_IF_ERROR(AddressProblem(address));
  HeaderLine line(out, name);
  display_name = TrimBlanks(display_name);
  const std::size_t address_size = address.local_part.size() + 1 + address.domain.size();
  if (display_name.empty()) {
    line.BeginToken(" ", address_size);
  } else {
    AddPhrase(display_name, line, out);
    line.BeginToken(" ", address_size + 2);
    out.push_back('<');
  }
  out.append(address.local_part);
  out.push_back('@');
  out.append(address.domain);
  if (!display_name.empty()) out.push_back('>');
  line.Finish();
  return Status::Ok();
}

Status AppendMessageIdField(std::string_view id, std::string& out) {
  constexpr std::size_t kMaxMessageId = 900;
  static constexpr std::array<bool, 256> kAllowed = [] {
    std::array<bool, 256> allowed{};
    for (int c = 0x21; c < 0x7F; ++c) allowed[c] = c != '<' && c != '>' && c != '"' && c != '\\';
    return allowed;
  }();
  for (unsigned char c : id) {
    if (!kAllowed[c]) {
      return InvalidArgument(fmt::format(
          "message-id '{}' may hold only printable ASCII without blanks, '<', '>', '\"' and '\\'", Printable(id)));
    }
  }
  std::size_t at = id.find('@');
  if (id.empty() || id.size() > kMaxMessageId || at == std::string_view::npos || at == 0 || at + 1 == id.size() ||
      id.find('@', at + 1) != std::string_view::npos) {
    return InvalidArgument(
        fmt::format("message-id '{}' is not of the form left@right (at most {} characters)", Printable(id), kMaxMessageId));
  }
  out.append("Message-ID: <");
  out.append(id);
  out.append(">\r\n");
  return Status::Ok();
}

void AppendDateField(TimePoint date, std::string& out) {
  using namespace std::chrono;
  static constexpr std::string_view kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto seconds = floor<std::chrono::seconds>(date);
  const auto day = floor<days>(seconds);
  const year_month_day ymd{day};
  const hh_mm_ss time{seconds - day};
  const int year = static_cast<int>(ymd.year());
  char text[40];
  char* p = text;
  auto two = [&p](unsigned v) {
    *p++ = static_cast<char>('0' + v / 10 % 10);
    *p++ = static_cast<char>('0' + v % 10);
  };
  for (char c : kDays[weekday(day).c_encoding()]) *p++ = c;
  *p++ = ',';
  *p++ = ' ';
  two(static_cast<unsigned>(ymd.day()));
  *p++ = ' ';
  for (char c : kMonths[static_cast<unsigned>(ymd.month()) - 1]) *p++ = c;
  *p++ = ' ';
  // RFC 5322 §3.3: year = 4*DIGIT; herald's clock never leaves 1000..9999.
  two(static_cast<unsigned>(year / 100));
  two(static_cast<unsigned>(year % 100));
  *p++ = ' ';
  two(static_cast<unsigned>(time.hours().count()));
  *p++ = ':';
  two(static_cast<unsigned>(time.minutes().count()));
  *p++ = ':';
  two(static_cast<unsigned>(time.seconds().count()));
  out.append("Date: ");
  out.append(text, p - text);
  out.append(" +0000\r\n");
}

}  // namespace herald::mime_internal
