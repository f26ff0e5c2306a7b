#include "smtp/mta_sts.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "core/text.h"

namespace herald::mta_sts {
namespace {

constexpr std::uint64_t kMaxAgeLimit = 31'557'600;  // RFC 8461 §3.2: about one year
constexpr std::size_t kMaxHeaderBytes = 16 * 1024;

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsWsp(text.front())) text.remove_prefix(1);
  while (!text.empty() && (IsWsp(text.back()) || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; });
  return out;
}

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// The fields of a TXT record separated by ";" with optional blanks (RFC 8461 §3.1, sts-sep).
std::vector<std::string_view> Fields(std::string_view record) {
  std::vector<std::string_view> fields;
  while (true) {
    std::size_t semicolon = record.find(';');
    fields.push_back(Trim(record.substr(0, semicolon)));
    if (semicolon == std::string_view::npos) break;
    record.remove_prefix(semicolon + 1);
  }
  if (fields.size() > 1 && fields.back().empty()) fields.pop_back();  // the optional last separator
  return fields;
}

// A policy's mx value: a host name, or "*." and a host name (RFC 8461 §3.2, sts-policy-mx-value).
bool IsMxPattern(std::string_view pattern) {
  if (pattern.starts_with("*.")) pattern.remove_prefix(2);
  if (pattern.empty() || pattern.size() > 253) return false;
  std::size_t start = 0;
  while (start <= pattern.size()) {
    std::size_t end = std::min(pattern.find('.', start), pattern.size());
    std::string_view label = pattern.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return IsAlnum(c) || c == '-'; })) return false;
    start = end + 1;
  }
  return true;
}

Status BadPolicy(std::size_t line, std::string_view what) {
  return InvalidArgument(fmt::format("MTA-STS policy, line {}: {}", line, what));
}

Status BadResponse(std::string_view what) { return InvalidArgument(fmt::format("policy response: {}", what)); }

// The value of header `name` in `headers` (lines after the status line), any case; empty if none.
std::string HeaderValue(std::string_view headers, std::string_view name) {
  while (!headers.empty()) {
    std::size_t end = headers.find('\n');
    std::string_view line = headers.substr(0, end);
    headers.remove_prefix(end == std::string_view::npos ? headers.size() : end + 1);
    std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && EqualsIgnoreCase(Trim(line.substr(0, colon)), name)) {
      return std::string(Trim(line.substr(colon + 1)));
    }
  }
  return "";
}

// Decodes a chunked body (RFC 9112 §7.1); nothing while it is not yet whole.
Result<std::optional<std::string>> Dechunk(std::string_view data) {
  std::string body;
  while (true) {
    std::size_t line_end = data.find("\r\n");
    if (line_end == std::string_view::npos) return std::optional<std::string>();
    std::string_view size_text = Trim(data.substr(0, std::min(line_end, data.find(';'))));
    std::size_t size = 0;
    auto [end, error] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
    if (error != std::errc() || end != size_text.data() + size_text.size()) return BadResponse("a malformed chunk size");
    if (size > kMaxPolicyBytes || body.size() + size > kMaxPolicyBytes) {
      return BadResponse(fmt::format("the policy is larger than {} bytes", kMaxPolicyBytes));
    }
    data.remove_prefix(line_end + 2);
    if (size == 0) return std::optional<std::string>(std::move(body));  // trailers are of no interest
    if (data.size() < size + 2) return std::optional<std::string>();
    if (data.substr(size, 2) != "\r\n") return BadResponse("a chunk without its line end");
    body.append(data.substr(0, size));
    data.remove_prefix(size + 2);
  }
}

}  // namespace

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kNone: return "none";
    case Mode::kTesting: return "testing";
    case Mode::kEnforce: return "enforce";
  }
  return "?";
}

std::optional<std::string> RecordId(std::string_view txt) {
  std::vector<std::string_view> fields = Fields(txt);
  if (fields.empty() || fields.front() != "v=STSv1") return std::nullopt;
  std::optional<std::string> id;
  for (std::size_t i = 1; i < fields.size(); ++i) {
    std::string_view field = fields[i];
    std::size_t equals = field.find('=');
    if (equals == std::string_view::npos || equals == 0 || equals + 1 == field.size()) return std::nullopt;
    if (field.substr(0, equals) != "id") continue;  // an extension (sts-extension)
    std::string_view value = field.substr(equals + 1);
    if (id || value.size() > 32 || !std::all_of(value.begin(), value.end(), IsAlnum)) return std::nullopt;
    id = std::string(value);
  }
  return id;
}

std::optional<std::string> AnnouncedId(const std::vector<std::string>& records) {
  std::optional<std::string> found;
  int candidates = 0;
  for (const std::string& record : records) {
    if (!record.starts_with("v=STSv1;")) continue;
    ++candidates;
    found = RecordId(record);
  }
  if (candidates != 1) return std::nullopt;
  return found;
}

Result<Policy> ParsePolicy(std::string_view text) {
  Policy policy;
  bool has_version = false, has_mode = false, has_max_age = false;
  std::size_t number = 0;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = Trim(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    ++number;
    if (line.empty()) continue;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return BadPolicy(number, "expected \"key: value\"");
    std::string_view key = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (key == "version") {
      if (value != "STSv1") return BadPolicy(number, "version is not STSv1");
      has_version = true;
    } else if (key == "mode") {
      if (value == "enforce") policy.mode = Mode::kEnforce;
      else if (value == "testing") policy.mode = Mode::kTesting;
      else if (value == "none") policy.mode = Mode::kNone;
      else return BadPolicy(number, "mode is not enforce, testing or none");
      has_mode = true;
    } else if (key == "max_age") {
      std::uint64_t seconds = 0;
      auto [last, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (error != std::errc() || last != value.data() + value.size() || value.size() > 10 || seconds > kMaxAgeLimit) {
        return BadPolicy(number, "max_age is not a number of seconds up to 31557600");
      }
      policy.max_age = std::chrono::seconds(seconds);
      has_max_age = true;
    } else if (key == "mx") {
      if (!IsMxPattern(value)) return BadPolicy(number, "mx is not a host name or \"*.\" and a host name");
      policy.mx.push_back(Lower(value));
    }
  }
  if (!has_version) return BadPolicy(number, "no version");
  if (!has_mode) return BadPolicy(number, "no mode");
  if (!has_max_age) return BadPolicy(number, "no max_age");
  if (policy.mode != Mode::kNone && policy.mx.empty()) return BadPolicy(number, "no mx");
  return policy;
}

bool AllowsMx(const Policy& policy, std::string_view host) {
  std::string name = Lower(host);
  for (const std::string& pattern : policy.mx) {
    if (pattern == name) return true;
    if (pattern.starts_with("*.")) {
      std::size_t dot = name.find('.');
      if (dot != std::string::npos && dot > 0 && std::string_view(name).substr(dot + 1) == std::string_view(pattern).substr(2)) {
        return true;
      }
    }
  }
  return false;
}

Result<HttpBody> ParsePolicyResponse(std::string_view response, bool connection_closed) {
  std::size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string_view::npos) {
    if (response.size() > kMaxHeaderBytes) return BadResponse("the headers are too long");
    if (connection_closed) return BadResponse("the connection ended before the headers did");
    return HttpBody{};
  }
  std::string_view head = response.substr(0, header_end);
  std::string_view status_line = head.substr(0, head.find("\r\n"));
  std::string_view headers = head.substr(std::min(head.size(), status_line.size() + 2));
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
    return BadResponse(fmt::format("not an HTTP/1.x response: \"{}\"", Printable(status_line.substr(0, 80))));
  }
  std::string_view code = status_line.substr(9, 3);
  if (code.front() == '3') {
    return BadResponse(fmt::format("a redirect ({}), which must not be followed (RFC 8461 §3.3)", code));
  }
  if (code != "200") return BadResponse(fmt::format("HTTP status {}", Printable(status_line.substr(9, 60))));
  std::string type = HeaderValue(headers, "Content-Type");
  std::string media = Lower(Trim(std::string_view(type).substr(0, type.find(';'))));
  if (media != "text/plain") {
    return BadResponse(fmt::format("media type \"{}\", not text/plain (RFC 8461 §3.2)", Printable(media)));
  }
  std::string_view data = response.substr(header_end + 4);
  if (EqualsIgnoreCase(HeaderValue(headers, "Transfer-Encoding"), "chunked")) {
    Result<std::optional<std::string>> body = Dechunk(data);
    if (!body.ok()) return body.status();
    if (!body->has_value()) {
      if (connection_closed) return BadResponse("the connection ended inside the body");
      return HttpBody{};
    }
    return HttpBody{true, std::move(**body)};
  }
  std::string length_text = HeaderValue(headers, "Content-Length");
  if (!length_text.empty()) {
    std::size_t length = 0;
    auto [end, error] = std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
    if (error != std::errc() || end != length_text.data() + length_text.size()) {
      return BadResponse("a malformed Content-Length");
    }
    if (length > kMaxPolicyBytes) return BadResponse(fmt::format("the policy is larger than {} bytes", kMaxPolicyBytes));
    if (data.size() < length) {
      if (connection_closed) return BadResponse("the connection ended inside the body");
      return HttpBody{};
    }
    return HttpBody{true, std::string(data.substr(0, length))};
  }
  if (data.size() > kMaxPolicyBytes) return BadResponse(fmt::format("the policy is larger than {} bytes", kMaxPolicyBytes));
  if (!connection_closed) return HttpBody{};
  return HttpBody{true, std::string(data)};
}

}  // namespace herald::mta_sts
