#include "store/internal/dedup_hash.h"

#include <gtest/gtest.h>

namespace herald::store_internal {
namespace {

// The hash is stored in every store file: these values must never change.
TEST(DedupHashTest, IsFnv1a64) {
  struct Case {
    std::string_view key;
    std::uint64_t want;
  };
  const Case cases[] = {
      {"", 0xcbf29ce484222325ull},  // FNV-1a 64 test vectors
      {"a", 0xaf63dc4c8601ec8cull},
      {"foobar", 0x85944171f73967e8ull},
      {std::string_view("\0", 1), 0xaf63bd4c8601b7dfull},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(static_cast<std::uint64_t>(DedupHash(c.key)), c.want) << "key of " << c.key.size() << " bytes";
  }
  EXPECT_NE(DedupHash("ann@example.com"), DedupHash("ann@example.org"));
}

}  // namespace
}  // namespace herald::store_internal
