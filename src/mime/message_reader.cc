#include "mime/message_reader.h"

#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "core/text.h"

namespace herald {
namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr int kMaxDepth = 16;  // multiparts inside multiparts: herald writes two levels

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// RFC 2047 §4.2: "_" is a space, "=XX" a byte, everything else itself.
std::optional<std::string> DecodeQ(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '_') {
      out += ' ';
    } else if (text[i] == '=') {
      const int high = i + 1 < text.size() ? HexValue(text[i + 1]) : -1;
      const int low = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// The encoded word "=?charset?encoding?text?=" at `start` of `value`: its text and where it ends.
std::optional<std::pair<std::string, std::size_t>> DecodeEncodedWord(std::string_view value, std::size_t start) {
  const std::size_t charset_end = value.find('?', start + 2);
  if (charset_end == std::string_view::npos || charset_end + 2 >= value.size() || value[charset_end + 2] != '?') {
    return std::nullopt;
  }
  const std::size_t text_start = charset_end + 3;
  const std::size_t text_end = value.find("?=", text_start);
  if (text_end == std::string_view::npos) return std::nullopt;
  const std::string_view text = value.substr(text_start, text_end - text_start);
  if (text.find_first_of(" \t?") != std::string_view::npos) return std::nullopt;
  std::string_view charset = value.substr(start + 2, charset_end - start - 2);
  charset = charset.substr(0, charset.find('*'));  // RFC 2231 §5: charset*language
  if (!EqualsIgnoreCase(charset, "utf-8") && !EqualsIgnoreCase(charset, "us-ascii")) return std::nullopt;
  std::optional<std::string> decoded;
  const char encoding = AsciiLower(value[charset_end + 1]);
  if (encoding == 'q') {
    decoded = DecodeQ(text);
  } else if (encoding == 'b') {
    Result<std::string> bytes = DecodeBase64(text);
    if (bytes.ok()) decoded = std::move(*bytes);
  }
  if (!decoded || !IsValidUtf8(*decoded)) return std::nullopt;
  return std::make_pair(std::move(*decoded), text_end + 2);
}

std::vector<HeaderField> ParseHeader(std::string_view header) {
  std::vector<HeaderField> fields;
  std::size_t start = 0;
  while (start < header.size()) {
    std::size_t end = header.find(kCrlf, start);
    if (end == std::string_view::npos) end = header.size();
    std::string_view line = header.substr(start, end - start);
    start = end + kCrlf.size();
    if (!line.empty() && IsBlank(line[0]) && !fields.empty()) {
      fields.back().value += line;  // RFC 5322 §2.2.3: unfolding removes the CRLF only
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    fields.push_back({std::string(line.substr(0, colon)), std::string(TrimBlanks(line.substr(colon + 1)))});
  }
  return fields;
}

std::string_view FindField(const std::vector<HeaderField>& fields, std::string_view name) {
  for (const HeaderField& field : fields) {
    if (EqualsIgnoreCase(field.name, name)) return field.value;
  }
  return {};
}

// A Content-Type or Content-Disposition value: its lowercase first word ("text/plain",
// "attachment") and its parameters (RFC 2045 §5.1), RFC 2231 continuations joined and extended
// values ("name*=UTF-8''%C3%A4") decoded.
struct StructuredValue {
  std::string word;
  std::map<std::string, std::string> parameters;  // lowercase names
};

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 && HexValue(text[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

StructuredValue ParseStructured(std::string_view value) {
  StructuredValue result;
  std::size_t i = value.find(';');
  result.word = AsciiLowercase(TrimBlanks(value.substr(0, i)));
  // Sections of each parameter: number -> (text, extended); a plain parameter is section 0.
  std::map<std::string, std::map<int, std::pair<std::string, bool>>> sections;
  while (i != std::string_view::npos && i < value.size()) {
    ++i;
    while (i < value.size() && IsBlank(value[i])) ++i;
    const std::size_t equals = value.find('=', i);
    if (equals == std::string_view::npos) break;
    std::string name = AsciiLowercase(TrimBlanks(value.substr(i, equals - i)));
    std::string text;
    i = equals + 1;
    if (i < value.size() && value[i] == '"') {
      for (++i; i < value.size() && value[i] != '"'; ++i) {
        if (value[i] == '\\' && i + 1 < value.size()) ++i;
        text += value[i];
      }
      i = value.find(';', i);
    } else {
      const std::size_t end = value.find(';', i);
      text = std::string(TrimBlanks(value.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i)));
      i = end;
    }
    const bool extended = !name.empty() && name.back() == '*';
    if (extended) name.pop_back();
    int section = 0;
    if (const std::size_t star = name.find('*'); star != std::string::npos) {
      section = std::atoi(name.c_str() + star + 1);
      name.resize(star);
    }
    sections[name][section] = {std::move(text), extended};
  }
  for (auto& [name, parts] : sections) {
    std::string joined;
    for (auto& [section, part] : parts) {
      std::string_view text = part.first;
      if (part.second && section == 0) {  // charset'language'text
        const std::size_t first = text.find('\'');
        const std::size_t second = first == std::string_view::npos ? first : text.find('\'', first + 1);
        if (second != std::string_view::npos) text.remove_prefix(second + 1);
      }
      joined += part.second ? PercentDecode(text) : std::string(text);
    }
    result.parameters[name] = std::move(joined);
  }
  return result;
}

Status ParseEntity(std::string_view entity, int depth, std::vector<HeaderField>* top_headers,
                   std::vector<MessagePart>& parts);

// RFC 2046 §5.1.1: the body parts between "--boundary" delimiter lines; the CRLF before a
// delimiter belongs to it.
Status ParseMultipart(std::string_view body, std::string_view boundary, int depth, std::vector<MessagePart>& parts) {
  const std::string delimiter = fmt::format("\r\n--{}", boundary);
  // A delimiter at the very start has no CRLF before it.
  std::size_t at = body.substr(0, delimiter.size() - 2) == std::string_view(delimiter).substr(2)
                       ? 0
                       : body.find(delimiter);
  if (at == std::string_view::npos) return InvalidArgument(fmt::format("no part delimited by \"{}\"", boundary));
  at += at == 0 ? delimiter.size() - 2 : delimiter.size();
  while (true) {
    if (body.substr(at, 2) == "--") return Status::Ok();  // the close delimiter
    const std::size_t line_end = body.find(kCrlf, at);
    if (line_end == std::string_view::npos) break;
    const std::size_t next = body.find(delimiter, line_end);
    if (next == std::string_view::npos) break;
    HERALD_RETURN_IF_ERROR(ParseEntity(body.substr(line_end + 2, next - line_end - 2), depth + 1, nullptr, parts));
    at = next + delimiter.size();
  }
  return InvalidArgument(fmt::format("the multipart delimited by \"{}\" does not end", boundary));
}

Status ParseEntity(std::string_view entity, int depth, std::vector<HeaderField>* top_headers,
                   std::vector<MessagePart>& parts) {
  if (depth > kMaxDepth) return InvalidArgument("multiparts nested too deeply");
  std::string_view header, body;
  if (entity.substr(0, 2) == kCrlf) {
    body = entity.substr(2);
  } else {
    const std::size_t end = entity.find("\r\n\r\n");
    if (end == std::string_view::npos) return InvalidArgument("no blank line ends the header");
    header = entity.substr(0, end);
    body = entity.substr(end + 4);
  }
  std::vector<HeaderField> fields = ParseHeader(header);
  StructuredValue type = ParseStructured(FindField(fields, "Content-Type"));
  if (type.word.empty()) type.word = "text/plain";
  if (type.word.starts_with("multipart/")) {
    auto boundary = type.parameters.find("boundary");
    if (boundary == type.parameters.end() || boundary->second.empty()) {
      return InvalidArgument(fmt::format("{} without a boundary", type.word));
    }
    HERALD_RETURN_IF_ERROR(ParseMultipart(body, boundary->second, depth, parts));
  } else {
    MessagePart part;
    part.content_type = type.word;
    part.charset = AsciiLowercase(type.parameters["charset"]);
    part.transfer_encoding = AsciiLowercase(TrimBlanks(FindField(fields, "Content-Transfer-Encoding")));
    if (part.transfer_encoding.empty()) part.transfer_encoding = "7bit";
    StructuredValue disposition = ParseStructured(FindField(fields, "Content-Disposition"));
    part.file_name = disposition.parameters["filename"];
    if (part.file_name.empty()) part.file_name = type.parameters["name"];
    part.attachment = disposition.word == "attachment" || !part.file_name.empty();
    part.encoded_size = body.size();
    if (part.transfer_encoding == "quoted-printable") {
      Result<std::string> decoded = DecodeQuotedPrintable(body);
      if (!decoded.ok()) return decoded.status().WithContext(part.content_type);
      part.body = std::move(*decoded);
    } else if (part.transfer_encoding == "base64") {
      Result<std::string> decoded = DecodeBase64(body);
      if (!decoded.ok()) return decoded.status().WithContext(part.content_type);
      part.body = std::move(*decoded);
    } else {
      part.body = std::string(body);
    }
    parts.push_back(std::move(part));
  }
  if (top_headers != nullptr) {
    for (HeaderField& field : fields) field.value = DecodeHeaderText(field.value);
    *top_headers = std::move(fields);
  }
  return Status::Ok();
}

}  // namespace

std::string_view ParsedMessage::Header(std::string_view name) const { return FindField(headers, name); }

const MessagePart* ParsedMessage::Body(std::string_view content_type) const {
  for (const MessagePart& part : parts) {
    if (!part.attachment && part.content_type == content_type) return &part;
  }
  return nullptr;
}

Result<ParsedMessage> ParseMessage(std::string_view message) {
  ParsedMessage parsed;
  HERALD_RETURN_IF_ERROR(ParseEntity(message, 0, &parsed.headers, parsed.parts));
  return parsed;
}

std::string DecodeHeaderText(std::string_view value) {
  std::string out;
  std::size_t after_word = std::string::npos;  // out's size after the last encoded word, while only blanks follow it
  for (std::size_t i = 0; i < value.size();) {
    if (value.substr(i, 2) == "=?") {
      if (auto word = DecodeEncodedWord(value, i)) {
        if (after_word != std::string::npos) out.resize(after_word);  // RFC 2047 §6.2
        out += word->first;
        after_word = out.size();
        i = word->second;
        continue;
      }
    }
    if (!IsBlank(value[i])) after_word = std::string::npos;
    out += value[i++];
  }
  return out;
}

Result<std::string> DecodeQuotedPrintable(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '=') {
      out += body[i];
      continue;
    }
    if (body.substr(i + 1, 2) == kCrlf) {  // a soft line break
      i += 2;
      continue;
    }
    const int high = i + 1 < body.size() ? HexValue(body[i + 1]) : -1;
    const int low = i + 2 < body.size() ? HexValue(body[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return InvalidArgument(fmt::format("quoted-printable: \"=\" not followed by two hex digits or a line end at "
                                         "byte {}",
                                         i));
    }
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

Result<std::string> DecodeBase64(std::string_view body) {
  std::string out;
  out.reserve(body.size() / 4 * 3);
  unsigned bits = 0;
  int count = 0, padding = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\r' || c == '\n' || c == ' ' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      ++count;
      bits <<= 6;
    } else {
      const int value = Base64Value(c);
      if (value < 0 || padding > 0) {
        return InvalidArgument(fmt::format("base64: unexpected \"{}\" at byte {}", Printable(body.substr(i, 1)), i));
      }
      bits = (bits << 6) | static_cast<unsigned>(value);
      ++count;
    }
    if (count == 4) {
      if (padding > 2) return InvalidArgument("base64: too much padding");
      out += static_cast<char>((bits >> 16) & 0xFF);
      if (padding < 2) out += static_cast<char>((bits >> 8) & 0xFF);
      if (padding < 1) out += static_cast<char>(bits & 0xFF);
      bits = 0;
      count = 0;
    }
  }
  if (count != 0) return InvalidArgument("base64: the length is not a multiple of 4");
  return out;
}

}  // namespace herald
