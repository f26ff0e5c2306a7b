#include "store/internal/dedup_hash.h"

namespace herald::store_internal {

std::int64_t DedupHash(std::string_view key) {
  // FNV-1a, 64 bit: http://www.isthe.com/chongo/tech/comp/fnv/ (offset basis and prime).
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : key) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return static_cast<std::int64_t>(hash);  // two's complement: the same bits
}

}  // namespace herald::store_internal
