#include "engine/blacklist.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "temp_dir.h"

namespace herald {
namespace {

TEST(BlacklistTest, MatchesAddressesWildcardsAndDomains) {
  TempDir dir;
  std::string first = dir.Write("a.txt", "\xEF\xBB\xBF# unsubscribed\r\nAnna@Example.com\r\n\r\n*@spam.example\r\n");
  std::string second = dir.Write("b.txt", "  bücher.example  \n# comment\nbob@example.org\n");
  Result<Blacklist> list = Blacklist::Load({first, second});
  ASSERT_TRUE(list.ok()) << list.status().message();
  EXPECT_EQ(list->size(), 4u);
  struct Case {
    const char* address;
    bool want;
  };
  const Case cases[] = {
      {"anna@example.com", true},        {"ANNA@EXAMPLE.COM", true},  {"anna2@example.com", false},
      {"x@spam.example", true},          {"x@sub.spam.example", false}, {"y@xn--bcher-kva.example", true},
      {"y@bücher.example", true},        {"bob@example.org", true},   {"carla@example.org", false},
  };
  for (const Case& c : cases) EXPECT_EQ(list->Matches(*ParseAddress(c.address)), c.want) << c.address;
}

TEST(BlacklistTest, BadEntryNamesFileAndLine) {
  TempDir dir;
  std::string file = dir.Write("bad.txt", "ok@example.com\nnot an entry@@\n");
  Result<Blacklist> list = Blacklist::Load({file});
  ASSERT_FALSE(list.ok());
  EXPECT_THAT(list.status().message(), ::testing::HasSubstr("bad.txt:2:"));
  EXPECT_FALSE(Blacklist::Load({dir.Path("missing.txt")}).ok());
}

}  // namespace
}  // namespace herald
