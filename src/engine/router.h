// Router: which account a message goes through (docs/settings.md, per account: "use this account only
// for certain sender and/or recipient addresses", "domains never to send to through this
// account", "secondary account"). An account takes a message when its rules do: the sender is
// one of its only_senders, the recipient one of its only_recipients (each when set), and the
// recipient's domain is not one of its excluded_domains. The first of the task's accounts whose
// sender and recipient rules accept the message is chosen; if the recipient's domain is excluded
// from it, the first account down its chain of secondaries that takes the message does. At run
// time an account that cannot deliver a message hands it down its chain the same way
// (NextAccount()), again to the first account whose rules take it.
// Immutable after construction; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "address/address.h"
#include "config/account_config.h"
#include "core/status.h"

namespace herald {

class Router {
 public:
  // `accounts` must outlive the router. `task_accounts` are the names the task may use, in order
  // (empty: every account, in file order); they must exist (CheckTaskAccounts).
  Router(const AccountSet& accounts, const std::vector<std::string>& task_accounts);

  // The account for a message from `sender` to `recipient`. Errors (kFailedPrecondition) say
  // that no account takes it, naming each account tried and why it does not.
  Result<const AccountConfig*> Route(const Address& sender, const Address& recipient) const;

  // The account that takes over from `account` for a message from `sender` to `recipient`: the
  // first down its chain of secondaries whose rules take the message and that is not in
  // `unusable`; nullptr when none is left.
  const AccountConfig* NextAccount(const AccountConfig& account, const Address& sender, const Address& recipient,
                                   const std::vector<const AccountConfig*>& unusable = {}) const;

  // Why `account` does not take a message from `sender` to `recipient` ("account \"b\" takes
  // only the senders *@example.com"), or nothing when it takes it.
  static std::optional<std::string> Refusal(const AccountConfig& account, const Address& sender,
                                            const Address& recipient);

 private:
  const AccountConfig* Secondary(const AccountConfig& account) const;

  const AccountSet& accounts_;
  std::vector<const AccountConfig*> candidates_;
};

}  // namespace herald
