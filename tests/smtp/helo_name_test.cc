// HeloNameWarning: a relay account that would greet with a bare machine name is warned about,
// naming the account, the name and the setting; everything else is not.
#include "smtp/helo_name.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace herald {
namespace {

using ::testing::HasSubstr;

AccountConfig Account(AccountKind kind, std::string helo_name = "") {
  AccountConfig account;
  account.name = "relay";
  account.kind = kind;
  account.origin = "accounts.toml:3";
  account.helo_name = std::move(helo_name);
  return account;
}

TEST(HeloNameWarningTest, WarnsOnlyARelayAccountThatGreetsWithABareName) {
  struct Case {
    const char* name;
    AccountConfig account;
    const char* local_host_name;
    bool want;
  };
  const Case cases[] = {
      {"smtp, bare machine name", Account(AccountKind::kSmtp), "vm", true},
      {"gmail, bare machine name", Account(AccountKind::kGmail), "laptop", true},
      {"smtp, fully qualified machine name", Account(AccountKind::kSmtp), "host.example.org", false},
      {"smtp, helo_name set", Account(AccountKind::kSmtp, "mail.example.org"), "vm", false},
      {"direct: checked by the direct transport", Account(AccountKind::kDirect), "vm", false},
      {"pickup: no EHLO", Account(AccountKind::kPickup), "vm", false},
  };
  for (const Case& c : cases) {
    std::optional<std::string> warning = HeloNameWarning(c.account, c.local_host_name);
    EXPECT_EQ(warning.has_value(), c.want) << c.name << ": " << warning.value_or("");
  }
}

TEST(HeloNameWarningTest, NamesTheAccountTheNameAndTheSetting) {
  std::optional<std::string> warning = HeloNameWarning(Account(AccountKind::kSmtp), "vm");
  ASSERT_TRUE(warning.has_value());
  EXPECT_THAT(*warning, HasSubstr("accounts.toml:3: account \"relay\""));
  EXPECT_THAT(*warning, HasSubstr("\"EHLO vm\""));
  EXPECT_THAT(*warning, HasSubstr("many servers refuse a bare name"));
  EXPECT_THAT(*warning, HasSubstr("helo_name = \"mail.example.org\""));
}

TEST(HeloNameWarningTest, ThisMachinesNameIsLookedUpOnlyForAnAccountThatUsesIt) {
  EXPECT_FALSE(HeloNameWarningForThisMachine(Account(AccountKind::kSmtp, "mail.example.org")).has_value());
  EXPECT_FALSE(HeloNameWarningForThisMachine(Account(AccountKind::kPickup)).has_value());
  EXPECT_EQ(HeloNameWarningForThisMachine(Account(AccountKind::kSmtp)),
            HeloNameWarning(Account(AccountKind::kSmtp), LocalHostName()));
}

}  // namespace
}  // namespace herald
