// Router: which account a message goes through (docs/settings.md, per account: "use this account only
// for certain sender and/or recipient addresses", "domains never to send to through this
// account", "secondary account"). The first of the task's accounts whose sender and recipient
// rules accept the message is chosen; if the recipient's domain is excluded from it, its
// secondary takes the message (and that one's secondary, and so on). At run time an account that
// failed as a whole hands its messages to its secondary the same way (NextAccount()).
// Immutable after construction; thread-safe.
#pragma once

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

  // The account for a message from `sender` to `recipient`. Errors (kFailedPrecondition) say why
  // no account takes it: no account's rules accept it, or its domain is excluded and there is no
  // secondary.
  Result<const AccountConfig*> Route(const Address& sender, const Address& recipient) const;

  // The account that takes over from `account` for `recipient` — its secondary, skipping those
  // that exclude the recipient's domain and those in `unusable` — or nullptr when none is left.
  const AccountConfig* NextAccount(const AccountConfig& account, const Address& recipient,
                                   const std::vector<const AccountConfig*>& unusable = {}) const;

  // True when `account` may carry mail to `recipient` (its domain is not excluded).
  static bool Accepts(const AccountConfig& account, const Address& recipient);

 private:
  const AccountSet& accounts_;
  std::vector<const AccountConfig*> candidates_;
};

}  // namespace herald
