#include "mime/internal/base64.h"

#include <algorithm>

namespace herald::mime_internal {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Writes the base64 of `size` bytes at `in` to `dst` (Base64Length(size) characters).
void EncodeBlock(const unsigned char* in, std::size_t size, char* dst) {
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    unsigned v = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8) | in[i + 2];
    *dst++ = kAlphabet[v >> 18];
    *dst++ = kAlphabet[(v >> 12) & 63];
    *dst++ = kAlphabet[(v >> 6) & 63];
    *dst++ = kAlphabet[v & 63];
  }
  if (std::size_t rest = size - i; rest > 0) {
    unsigned v = unsigned{in[i]} << 16;
    if (rest == 2) v |= unsigned{in[i + 1]} << 8;
    *dst++ = kAlphabet[v >> 18];
    *dst++ = kAlphabet[(v >> 12) & 63];
    *dst++ = rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    *dst++ = '=';
  }
}

}  // namespace

void AppendBase64(std::string_view data, std::string& out) {
  std::size_t start = out.size();
  out.resize(start + Base64Length(data.size()));
  EncodeBlock(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data() + start);
}

void AppendBase64Lines(std::string_view data, std::string& out) {
  constexpr std::size_t kBytesPerLine = 57;  // 57 bytes -> 76 characters
  const std::size_t lines = (data.size() + kBytesPerLine - 1) / kBytesPerLine;
  const std::size_t start = out.size();
  out.resize(start + Base64Length(data.size()) + (lines > 0 ? (lines - 1) * 2 : 0));
  char* dst = out.data() + start;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  for (std::size_t offset = 0; offset < data.size(); offset += kBytesPerLine) {
    if (offset > 0) {
      *dst++ = '\r';
      *dst++ = '\n';
    }
    std::size_t n = std::min(kBytesPerLine, data.size() - offset);
    EncodeBlock(in + offset, n, dst);
    dst += Base64Length(n);
  }
}

}  // namespace herald::mime_internal
