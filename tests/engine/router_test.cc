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
              HasSubstr("no account takes mail from news@example.com to x@aol.com: the domain aol.com is excluded "
                        "from account \"x\" (it has no secondary)"));
}

TEST_F(RouterTest, NextAccountFollowsSecondariesSkippingUnusableOnes) {
  Router router(accounts_, {});
  const AccountConfig& relay = *accounts_.Find("relay");
  const Address from = A("news@example.com");
  EXPECT_EQ(router.NextAccount(relay, from, A("x@example.org"))->name, "backup");
  EXPECT_EQ(router.NextAccount(relay, from, A("x@excluded.example"))->name, "last");
  EXPECT_EQ(router.NextAccount(relay, from, A("x@example.org"), {accounts_.Find("backup")})->name, "last");
  EXPECT_EQ(router.NextAccount(*accounts_.Find("last"), from, A("x@example.org")), nullptr);
}

// Secondaries restricted to other senders or recipients: the chain is walked down to the first
// account whose own rules take the message, for excluded domains and for failover alike.
class RestrictedSecondariesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<AccountSet> accounts = LoadAccounts(dir_.Write("accounts.toml", R"(
[[account]]
name = "main"
kind = "pickup"
folder = "a"
excluded_domains = ["aol.com"]
secondary = "sales-only"

[[account]]
name = "sales-only"
kind = "pickup"
folder = "b"
only_senders = ["*@sales.example.com"]
secondary = "partners-only"

[[account]]
name = "partners-only"
kind = "pickup"
folder = "c"
only_recipients = ["*@partner.example", "*@aol.com"]
secondary = "fallback"

[[account]]
name = "fallback"
kind = "pickup"
folder = "d"
excluded_domains = ["aol.com", "gmx.example"]
)"));
    ASSERT_TRUE(accounts.ok()) << accounts.status().message();
    accounts_ = std::move(*accounts);
  }

  std::string Next(std::string_view from, std::string_view to, std::vector<std::string> unusable = {}) {
    Router router(accounts_, {"main"});
    std::vector<const AccountConfig*> skip;
    for (const std::string& name : unusable) skip.push_back(accounts_.Find(name));
    const AccountConfig* next = router.NextAccount(*accounts_.Find("main"), A(from), A(to), skip);
    return next == nullptr ? "none" : next->name;
  }

  TempDir dir_;
  AccountSet accounts_;
};

TEST_F(RestrictedSecondariesTest, AnExcludedDomainGoesToTheFirstSecondaryWhoseRulesTakeTheMessage) {
  Router router(accounts_, {"main"});
  struct Case {
    const char* from;
    const char* to;
    const char* want;
  };
  const Case cases[] = {
      {"news@example.com", "x@example.org", "main"},
      {"anna@sales.example.com", "x@aol.com", "sales-only"},  // its sender
      {"news@example.com", "x@aol.com", "partners-only"},     // not sales-only's sender
  };
  for (const Case& c : cases) {
    Result<const AccountConfig*> account = router.Route(A(c.from), A(c.to));
    ASSERT_TRUE(account.ok()) << c.from << " -> " << c.to << ": " << account.status().message();
    EXPECT_EQ((*account)->name, c.want) << c.from << " -> " << c.to;
  }
}

TEST_F(RestrictedSecondariesTest, NoAccountInTheChainTakesItNamesEachAccountAndWhy) {
  Result<AccountSet> accounts = LoadAccounts(dir_.Write("chain.toml", R"(
[[account]]
name = "main"
kind = "pickup"
folder = "a"
excluded_domains = ["aol.com"]
secondary = "sales-only"

[[account]]
name = "sales-only"
kind = "pickup"
folder = "b"
only_senders = ["*@sales.example.com"]
secondary = "partners-only"

[[account]]
name = "partners-only"
kind = "pickup"
folder = "c"
only_recipients = ["*@partner.example"]
)"));
  ASSERT_TRUE(accounts.ok()) << accounts.status().message();
  Router router(*accounts, {});
  Result<const AccountConfig*> account = router.Route(A("news@example.com"), A("x@aol.com"));
  ASSERT_FALSE(account.ok()) << "went through " << (*account)->name;
  EXPECT_EQ(account.status().message(),
            "no account takes mail from news@example.com to x@aol.com: the domain aol.com is excluded from account "
            "\"main\"; its secondary: account \"sales-only\" takes only the senders *@sales.example.com; its "
            "secondary: account \"partners-only\" takes only the recipients *@partner.example");
}

TEST_F(RestrictedSecondariesTest, FailoverSkipsSecondariesWhoseRulesDoNotTakeTheMessage) {
  EXPECT_EQ(Next("news@example.com", "x@example.org"), "fallback");
  EXPECT_EQ(Next("anna@sales.example.com", "x@example.org"), "sales-only");
  EXPECT_EQ(Next("news@example.com", "x@partner.example"), "partners-only");
  EXPECT_EQ(Next("news@example.com", "x@partner.example", {"partners-only"}), "fallback");
  EXPECT_EQ(Next("news@example.com", "x@gmx.example"), "none") << "fallback excludes the domain";
  EXPECT_EQ(Next("news@example.com", "x@aol.com", {"partners-only"}), "none");
}

}  // namespace
}  // namespace herald
