#include "store/internal/field_codec.h"

#include <gtest/gtest.h>

namespace herald::store_internal {
namespace {

using Strings = std::vector<std::string>;

TEST(FieldCodecTest, RoundTrips) {
  const std::string with_nul("a\0b\0", 4);
  const Strings cases[] = {
      {},
      {""},
      {"", ""},
      {"alice@example.com", "Alice", "", "Zürich"},
      {with_nul, std::string(1, '\0')},
      {std::string(127, 'x'), std::string(128, 'y'), std::string(16'383, 'z'), std::string(16'384, 'w')},
      {std::string(100 * 1024, 'v'), "tail"},
  };
  for (const Strings& values : cases) {
    std::string blob = "left over from an earlier use";
    EncodeStrings(values, blob);
    Result<Strings> got = DecodeStrings(blob);
    ASSERT_TRUE(got.ok()) << values.size() << " values: " << got.status().ToString();
    EXPECT_EQ(*got, values) << values.size() << " values";
  }
}

TEST(FieldCodecTest, EncodingIsLengthPrefixed) {
  struct Case {
    Strings values;
    std::string want;
  };
  const Case cases[] = {
      {{}, ""},
      {{""}, std::string(1, '\0')},
      {{"ab", ""}, std::string("\x02" "ab\0", 4)},
      {{std::string(128, 'x')}, "\x80\x01" + std::string(128, 'x')},
      {{std::string(300, 'x')}, "\xac\x02" + std::string(300, 'x')},
  };
  for (const Case& c : cases) {
    std::string got;
    EncodeStrings(c.values, got);
    EXPECT_EQ(got, c.want) << c.values.size() << " values, first of size "
                           << (c.values.empty() ? 0 : c.values[0].size());
  }
}

TEST(FieldCodecTest, RejectsDamagedBlobs) {
  struct Case {
    std::string blob;
    std::string_view want_in_message;
  };
  const Case cases[] = {
      {"\x05" "ab", "claims 5 bytes but 2 remain"},
      {"\x02" "ab\x01", "value 2 claims 1 bytes but 0 remain"},
      {"\x80", "truncated"},
      {"\x02" "ab\x80\x80", "truncated"},
      {std::string(11, '\xff'), "too long"},
      {"\xff\xff\xff\xff\xff\xff\xff\xff\x7f", "claims"},
  };
  for (const Case& c : cases) {
    Result<Strings> got = DecodeStrings(c.blob);
    ASSERT_FALSE(got.ok()) << "accepted a blob of " << c.blob.size() << " bytes";
    EXPECT_EQ(got.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(got.status().message().find(c.want_in_message), std::string::npos)
        << "got: " << got.status().message() << "\nwant it to contain: " << c.want_in_message;
  }
}

}  // namespace
}  // namespace herald::store_internal
