#include "engine/router.h"

#include <algorithm>

#include <fmt/format.h>

namespace herald {
namespace {

bool AnyMatches(const std::vector<AddressPattern>& patterns, const Address& address) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const AddressPattern& pattern) { return pattern.Matches(address); });
}

}  // namespace

Router::Router(const AccountSet& accounts, const std::vector<std::string>& task_accounts) : accounts_(accounts) {
  if (task_accounts.empty()) {
    for (const AccountConfig& account : accounts.accounts()) candidates_.push_back(&account);
  } else {
    for (const std::string& name : task_accounts) {
      if (const AccountConfig* account = accounts.Find(name)) candidates_.push_back(account);
    }
  }
}

bool Router::Accepts(const AccountConfig& account, const Address& recipient) {
  return !AnyMatches(account.excluded_domains, recipient);
}

const AccountConfig* Router::NextAccount(const AccountConfig& account, const Address& recipient,
                                         const std::vector<const AccountConfig*>& unusable) const {
  // The configuration has no loops (LoadAccounts checks), so following secondaries ends.
  const AccountConfig* next = account.secondary.empty() ? nullptr : accounts_.Find(account.secondary);
  while (next != nullptr) {
    bool skip = !Accepts(*next, recipient) || std::find(unusable.begin(), unusable.end(), next) != unusable.end();
    if (!skip) return next;
    next = next->secondary.empty() ? nullptr : accounts_.Find(next->secondary);
  }
  return nullptr;
}

Result<const AccountConfig*> Router::Route(const Address& sender, const Address& recipient) const {
  for (const AccountConfig* account : candidates_) {
    if (!account->only_senders.empty() && !AnyMatches(account->only_senders, sender)) continue;
    if (!account->only_recipients.empty() && !AnyMatches(account->only_recipients, recipient)) continue;
    if (Accepts(*account, recipient)) return account;
    if (const AccountConfig* secondary = NextAccount(*account, recipient)) return secondary;
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("the domain {} is excluded from account \"{}\" and no secondary account takes it",
                              recipient.domain, account->name));
  }
  return Status(StatusCode::kFailedPrecondition,
                fmt::format("no account takes mail from {} to {} (check only_senders and only_recipients)",
                            sender.ToString(), recipient.ToString()));
}

}  // namespace herald
