#include "engine/router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.h"
#include "temp_dir.h"

namespace herald {
namespace {

using ::testing::HasSubstr;

Address A(std::string_view text) { return *ParseAddress(text); }

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<AccountSet> accounts = LoadAccounts(dir_.Write("accounts.toml", R"(
[[account]]
name = "sales"
kind = "pickup"
folder = "a"
only_senders = ["*@sales.example.com"]
secondary = "relay"

[[account]]
name = "vip"
kind = "pickup"
folder = "b"
only_recipients = ["boss@example.net", "*@partner.example"]

[[account]]
name = "relay"
kind = "pickup"
folder = "c"
excluded_domains = ["aol.com", "excluded.example"]
secondary = "backup"

[[account]]
name = "backup"
kind = "pickup"
folder = "d"
excluded_domains = ["excluded.example"]
secondary = "last"

[[account]]
name = "last"
kind = "pickup"
folder = "e"
)"));
    ASSERT_TRUE(accounts.ok()) << accounts.status().message();
    accounts_ = std::move(*accounts);
  }

  std::string RouteName(const Router& router, std::string_view from, std::string_view to) {
    Result<const AccountConfig*> account = router.Route(A(from), A(to));
    return account.ok() ? (*account)->name : "error: " + account.status().message();
  }

  TempDir dir_;
  AccountSet accounts_;
};

TEST_F(RouterTest, FirstAccountWhoseRulesAcceptTheMessage) {
  Router router(accounts_, {});
  struct Case {
    const char* from;
    const char* to;
    const char* want;
  };
  const Case cases[] = {
      {"anna@sales.example.com", "x@example.org", "sales"},
      {"news@example.com", "boss@example.net", "vip"},
      {"news@example.com", "BOSS@Example.NET", "vip"},
      {"news@example.com", "anyone@partner.example", "vip"},
      {"news@example.com", "other@example.net", "relay"},
      {"news@example.com", "someone@aol.com", "backup"},        // excluded from relay -> its secondary
      {"news@example.com", "someone@excluded.example", "last"},  // excluded from relay and backup
      {"anna@sales.example.com", "someone@aol.com", "sales"},    // sales excludes nothing
  };
  for (const Case& c : cases) EXPECT_EQ(RouteName(router, c.from, c.to), c.want) << c.from << " -> " << c.to;
}

TEST_F(RouterTest, TaskAccountsLimitTheCandidates) {
  Router router(accounts_, {"vip"});
  EXPECT_EQ(RouteName(router, "news@example.com", "boss@example.net"), "vip");
  EXPECT_THAT(RouteName(router, "news@example.com", "other@example.net"),
              HasSubstr("no account takes mail from news@example.com to other@example.net"));
}

TEST_F(RouterTest, ExcludedDomainWithoutSecondaryFailsWithTheReason) {
  Router router(accounts_, {"last", "relay"});
  EXPECT_EQ(RouteName(router, "news@example.com", "x@aol.com"), "last");
  Router only_backup(accounts_, {"backup"});
  EXPECT_EQ(RouteName(only_backup, "news@example.com", "x@excluded.example"), "last");
  Result<AccountSet> lone = LoadAccounts(dir_.Write(
      "lone.toml", "[[account]]\nname = \"x\"\nkind = \"pickup\"\nfolder = \"f\"\nexcluded_domains = [\"aol.com\"]\n"));
  ASSERT_TRUE(lone.ok());
  Router router2(*lone, {});
  EXPECT_THAT(RouteName(router2, "news@example.com", "x@aol.com"),
              HasSubstr("the domain aol.com is excluded from account \"x\" and no secondary account takes it"));
}

TEST_F(RouterTest, NextAccountFollowsSecondariesSkippingUnusableOnes) {
  Router router(accounts_, {});
  const AccountConfig& relay = *accounts_.Find("relay");
  EXPECT_EQ(router.NextAccount(relay, A("x@example.org"))->name, "backup");
  EXPECT_EQ(router.NextAccount(relay, A("x@excluded.example"))->name, "last");
  EXPECT_EQ(router.NextAccount(relay, A("x@example.org"), {accounts_.Find("backup")})->name, "last");
  EXPECT_EQ(router.NextAccount(*accounts_.Find("last"), A("x@example.org")), nullptr);
}

}  // namespace
}  // namespace herald
