#include "store/internal/field_codec.h"

#include <cstdint>

namespace herald::store_internal {

void EncodeStrings(std::span<const std::string> values, std::string& out) {
  out.clear();
  for (const std::string& value : values) {
    std::uint64_t length = value.size();
    while (length >= 0x80) {
      out.push_back(static_cast<char>((length & 0x7f) | 0x80));
      length >>= 7;
    }
    out.push_back(static_cast<char>(length));
    out += value;
  }
}

Result<std::vector<std::string>> DecodeStrings(std::string_view blob) {
  std::vector<std::string> values;
  std::size_t pos = 0;
  while (pos < blob.size()) {
    std::uint64_t length = 0;
    int shift = 0;
    while (true) {
      if (pos >= blob.size()) {
        return Status(StatusCode::kFailedPrecondition,
                      "damaged string list: length of value " + std::to_string(values.size() + 1) + " is truncated");
      }
      // 10 groups of 7 bits cover 64 bits; a longer varint is not one this encoder writes.
      if (shift > 63) {
        return Status(StatusCode::kFailedPrecondition,
                      "damaged string list: length of value " + std::to_string(values.size() + 1) + " is too long");
      }
      const auto byte = static_cast<unsigned char>(blob[pos++]);
      length |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      shift += 7;
      if ((byte & 0x80) == 0) break;
    }
    if (length > blob.size() - pos) {
      return Status(StatusCode::kFailedPrecondition,
                    "damaged string list: value " + std::to_string(values.size() + 1) + " claims " +
                        std::to_string(length) + " bytes but " + std::to_string(blob.size() - pos) + " remain");
    }
    values.emplace_back(blob.substr(pos, static_cast<std::size_t>(length)));
    pos += static_cast<std::size_t>(length);
  }
  return values;
}

}  // namespace herald::store_internal
