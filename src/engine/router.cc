#include "engine/router.h"

#include <algorithm>

#include <fmt/format.h>

namespace herald {
namespace {

bool AnyMatches(const std::vector<AddressPattern>& patterns, const Address& address) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const AddressPattern& pattern) { return pattern.Matches(address); });
}

std::string Patterns(const std::vector<AddressPattern>& patterns) {
  std::string out;
  for (const AddressPattern& pattern : patterns) out += (out.empty() ? "" : ", ") + pattern.text();
  return out;
}

// Only the sender and recipient rules: whether the account is one for this message at all.
std::optional<std::string> AddressRefusal(const AccountConfig& account, const Address& sender,
                                          const Address& recipient) {
  if (!account.only_senders.empty() && !AnyMatches(account.only_senders, sender)) {
    return fmt::format("account \"{}\" takes only the senders {}", account.name, Patterns(account.only_senders));
  }
  if (!account.only_recipients.empty() && !AnyMatches(account.only_recipients, recipient)) {
    return fmt::format("account \"{}\" takes only the recipients {}", account.name,
                       Patterns(account.only_recipients));
  }
  return std::nullopt;
}

std::string NoAccount(const Address& sender, const Address& recipient, const std::vector<std::string>& reasons) {
  std::string text = fmt::format("no account takes mail from {} to {}", sender.ToString(), recipient.ToString());
  for (std::size_t i = 0; i < reasons.size(); ++i) text += (i == 0 ? ": " : "; ") + reasons[i];
  return text;
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

std::optional<std::string> Router::Refusal(const AccountConfig& account, const Address& sender,
                                           const Address& recipient) {
  if (std::optional<std::string> refused = AddressRefusal(account, sender, recipient)) return refused;
  if (AnyMatches(account.excluded_domains, recipient)) {
    return fmt::format("the domain {} is excluded from account \"{}\"", recipient.domain, account.name);
  }
  return std::nullopt;
}

const AccountConfig* Router::Secondary(const AccountConfig& account) const {
  return account.secondary.empty() ? nullptr : accounts_.Find(account.secondary);
}

const AccountConfig* Router::NextAccount(const AccountConfig& account, const Address& sender, const Address& recipient,
                                         const std::vector<const AccountConfig*>& unusable) const {
  // The configuration has no loops (LoadAccounts checks), so following secondaries ends.
  for (const AccountConfig* next = Secondary(account); next != nullptr; next = Secondary(*next)) {
    bool usable = std::find(unusable.begin(), unusable.end(), next) == unusable.end();
    if (usable && !Refusal(*next, sender, recipient)) return next;
  }
  return nullptr;
}

Result<const AccountConfig*> Router::Route(const Address& sender, const Address& recipient) const {
  std::vector<std::string> reasons;
  for (const AccountConfig* account : candidates_) {
    if (std::optional<std::string> refused = AddressRefusal(*account, sender, recipient)) {
      reasons.push_back(std::move(*refused));
      continue;
    }
    // The first account for the sender and recipient decides; its domain exclusions send the
    // message down its chain of secondaries.
    for (const AccountConfig* chain = account; chain != nullptr; chain = Secondary(*chain)) {
      std::optional<std::string> refused = Refusal(*chain, sender, recipient);
      if (!refused) return chain;
      reasons.push_back(chain == account ? std::move(*refused) : fmt::format("its secondary: {}", *refused));
    }
    if (account->secondary.empty()) reasons.back() += " (it has no secondary)";
    return Status(StatusCode::kFailedPrecondition, NoAccount(sender, recipient, reasons));
  }
  return Status(StatusCode::kFailedPrecondition, NoAccount(sender, recipient, reasons));
}

}  // namespace herald
