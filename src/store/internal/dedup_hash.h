// The hash of a recipient's dedup key kept next to it in the store (recipients.dedup_hash), so
// that duplicate checks during an import search a small integer index instead of a text one.
// Part of the store's file format: changing it needs a schema migration that rehashes every row.
// Pure function, thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

namespace herald::store_internal {

// 64-bit FNV-1a of the key's bytes, as a signed integer (SQLite's INTEGER). Equal keys give equal
// hashes; different keys may collide, so a match is confirmed by comparing the keys.
std::int64_t DedupHash(std::string_view key);

}  // namespace herald::store_internal
