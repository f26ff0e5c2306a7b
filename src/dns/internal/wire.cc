#include "dns/internal/wire.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

namespace herald::dns_internal {
namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr std::uint16_t kTypeSoa = 6;
constexpr std::size_t kMaxLabel = 63;
constexpr std::size_t kMaxName = 255;  // octets in wire form (RFC 1035 §2.3.4)

Status Malformed(std::string_view what) { return InvalidArgument(fmt::format("malformed DNS data: {}", what)); }

std::uint16_t Read16(Bytes bytes, std::size_t at) {
  return static_cast<std::uint16_t>((bytes[at] << 8) | bytes[at + 1]);
}

std::uint32_t Read32(Bytes bytes, std::size_t at) {
  return (static_cast<std::uint32_t>(Read16(bytes, at)) << 16) | Read16(bytes, at + 2);
}

// RFC 2181 §8: a TTL with the most significant bit set is treated as zero.
Duration TtlValue(std::uint32_t ttl) {
  return (ttl & 0x8000'0000U) != 0 ? Duration(0) : Duration(std::chrono::seconds(ttl));
}

bool IsNameOctet(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Skips a possibly compressed name in a packet (RFC 1035 §4.1.4): returns the offset after it.
std::optional<std::size_t> SkipName(Bytes packet, std::size_t at) {
  for (std::size_t labels = 0; labels <= 128; ++labels) {
    if (at >= packet.size()) return std::nullopt;
    unsigned char length = packet[at];
    if (length == 0) return at + 1;
    if ((length & 0xC0) == 0xC0) return at + 2 <= packet.size() ? std::optional(at + 2) : std::nullopt;
    if ((length & 0xC0) != 0) return std::nullopt;  // the reserved 01 and 10 label types
    at += 1 + length;
  }
  return std::nullopt;
}

}  // namespace

Result<std::string> ReadName(Bytes bytes, std::size_t* length) {
  std::string name;
  std::size_t at = 0;
  while (true) {
    if (at >= bytes.size()) return Malformed("a name runs past the end of its record");
    unsigned char label = bytes[at];
    if (label == 0) break;
    if ((label & 0xC0) != 0) return Malformed("a compressed or extended label inside record data");
    if (label > kMaxLabel) return Malformed("a label longer than 63 octets");
    if (at + 1 + label > bytes.size()) return Malformed("a label runs past the end of its record");
    if (!name.empty()) name += '.';
    for (std::size_t i = at + 1; i <= at + label; ++i) {
      unsigned char c = bytes[i];
      if (IsNameOctet(c)) {
        name += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      } else {
        name += fmt::format("\\{:03d}", c);
      }
    }
    at += 1 + label;
    if (at + 1 > kMaxName) return Malformed("a name longer than 255 octets");
  }
  *length = at + 1;
  return name.empty() ? std::string(".") : name;
}

Result<dns::MxRecord> ParseMx(Bytes rdata) {
  if (rdata.size() < 3) return Malformed("an MX record shorter than 3 octets");
  dns::MxRecord record;
  record.preference = Read16(rdata, 0);
  std::size_t length = 0;
  Result<std::string> exchange = ReadName(rdata.subspan(2), &length);
  if (!exchange.ok()) return exchange.status();
  if (2 + length != rdata.size()) return Malformed("octets after the exchange of an MX record");
  record.exchange = std::move(*exchange);
  return record;
}

Result<std::string> ParseAddress(dns::RecordType type, Bytes rdata) {
  char text[INET6_ADDRSTRLEN] = {};
  if (type == dns::RecordType::kA && rdata.size() == 4) {
    inet_ntop(AF_INET, rdata.data(), text, sizeof text);
  } else if (type == dns::RecordType::kAaaa && rdata.size() == 16) {
    inet_ntop(AF_INET6, rdata.data(), text, sizeof text);
  } else {
    return Malformed(fmt::format("an {} record of {} octets", dns::RecordTypeName(type), rdata.size()));
  }
  return std::string(text);
}

Result<std::string> ParseTxt(Bytes rdata) {
  std::string text;
  std::size_t at = 0;
  while (at < rdata.size()) {
    std::size_t length = rdata[at];
    if (at + 1 + length > rdata.size()) return Malformed("a TXT string runs past the end of its record");
    text.append(reinterpret_cast<const char*>(rdata.data() + at + 1), length);
    at += 1 + length;
  }
  return text;
}

std::optional<Duration> NegativeTtl(Bytes packet) {
  if (packet.size() < kHeaderSize) return std::nullopt;
  std::size_t questions = Read16(packet, 4);
  std::size_t answers = Read16(packet, 6);
  std::size_t authorities = Read16(packet, 8);
  std::size_t at = kHeaderSize;
  for (std::size_t i = 0; i < questions; ++i) {
    std::optional<std::size_t> next = SkipName(packet, at);
    if (!next || *next + 4 > packet.size()) return std::nullopt;
    at = *next + 4;
  }
  for (std::size_t i = 0; i < answers + authorities; ++i) {
    std::optional<std::size_t> next = SkipName(packet, at);
    if (!next || *next + 10 > packet.size()) return std::nullopt;
    std::uint16_t type = Read16(packet, *next);
    std::uint32_t ttl = Read32(packet, *next + 4);
    std::size_t rdata_length = Read16(packet, *next + 8);
    std::size_t rdata = *next + 10;
    if (rdata + rdata_length > packet.size()) return std::nullopt;
    // The SOA's MINIMUM is the last of its fields (RFC 1035 §3.3.13); two names and four other
    // 32-bit fields come first.
    if (i >= answers && type == kTypeSoa && rdata_length >= 22) {
      return std::min(TtlValue(ttl), TtlValue(Read32(packet, rdata + rdata_length - 4)));
    }
    at = rdata + rdata_length;
  }
  return std::nullopt;
}

}  // namespace herald::dns_internal
