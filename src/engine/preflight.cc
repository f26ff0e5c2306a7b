#include "engine/preflight.h"

#include <algorithm>

#include <fmt/format.h>

#include "config/loader.h"
#include "core/units.h"
#include "engine/recipient_import.h"
#include "smtp/helo_name.h"

namespace herald {
namespace {

// The task's accounts and the secondaries they reach, in that order; each once.
Result<std::vector<const AccountConfig*>> ReachableAccounts(const TaskConfig& task, const AccountSet& accounts) {
  std::vector<const AccountConfig*> chosen;
  if (task.sending.accounts.empty()) {
    for (const AccountConfig& account : accounts.accounts()) chosen.push_back(&account);
  } else {
    for (const std::string& name : task.sending.accounts) chosen.push_back(accounts.Find(name));
  }
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    if (chosen[i] == nullptr) {
      return InvalidArgument(fmt::format("{}: sending.accounts names an unknown account", task.path));
    }
    const AccountConfig* secondary = chosen[i]->secondary.empty() ? nullptr : accounts.Find(chosen[i]->secondary);
    if (secondary != nullptr && std::find(chosen.begin(), chosen.end(), secondary) == chosen.end()) {
      chosen.push_back(secondary);
    }
  }
  if (chosen.empty()) return InvalidArgument(fmt::format("{}: no account to send through", task.accounts_file));
  return chosen;
}

// Every message carries the task's attachments: when they alone are over the max_message_size of
// every account the task can use, no message could go, and the task stops before the first one;
// when only some accounts are too small, a warning (their messages fail one by one).
Status CheckAttachmentsFit(const TaskConfig& task, const PreparedTask& prepared,
                           const std::vector<ReadyAccount>& accounts, std::vector<std::string>& warnings) {
  const std::size_t attachments = prepared.composer->attachments_size();
  std::vector<std::string> too_small;
  for (const ReadyAccount& account : accounts) {
    const std::uint64_t limit = account.config->max_message_size;
    if (limit == 0 || attachments <= limit) continue;
    too_small.push_back(fmt::format("the max_message_size of {} of account \"{}\" ({})", FormatByteSize(limit),
                                    account.config->name, account.config->origin));
  }
  if (too_small.empty()) return Status::Ok();
  std::string over;
  for (const std::string& account : too_small) over += (over.empty() ? "" : ", ") + account;
  std::string what = fmt::format("the attachments make every message at least {} ({} bytes encoded), over {}",
                                 FormatByteSize(attachments), attachments, over);
  if (too_small.size() == accounts.size()) {
    return InvalidArgument(fmt::format(
        "{}: {}; leave out or shrink an attachment, or send a link to it instead", task.path, what));
  }
  warnings.push_back(fmt::format("{}: {}; messages routed there fail", task.path, what));
  return Status::Ok();
}

}  // namespace

Result<Preflight> PreflightTask(const TaskConfig& task, const AccountSet& accounts, TransportFactory& transports) {
  Result<std::vector<std::string>> columns = ReadRecipientColumns(task.recipients);
  if (!columns.ok()) return columns.status();
  Result<PreparedTask> prepared = PrepareTask(task, *columns);
  if (!prepared.ok()) return prepared.status();
  HERALD_RETURN_IF_ERROR(CheckTaskAccounts(task, accounts));
  Preflight preflight{std::move(*columns), std::move(*prepared), {}, {}};

  Result<std::vector<const AccountConfig*>> reachable = ReachableAccounts(task, accounts);
  if (!reachable.ok()) return reachable.status();
  for (const AccountConfig* config : *reachable) {
    if (task.sending.mode == SendMode::kTurbo && config->kind == AccountKind::kPickup) {
      return InvalidArgument(fmt::format(
          "{}: account \"{}\": turbo mode cannot go through a pickup folder (its messages name their recipients "
          "in headers, and turbo recipients are in the envelope only); use personalised mode",
          config->origin, config->name));
    }
    Result<std::unique_ptr<Transport>> transport = transports.Create(*config);
    if (!transport.ok()) return transport.status();
    preflight.accounts.push_back(ReadyAccount{config, std::move(*transport)});
    if (!config->verify_certificate) {
      preflight.warnings.push_back(fmt::format("account \"{}\": certificate verification is turned off "
                                               "(verify_certificate = false); the server is not authenticated",
                                               config->name));
    }
    if (std::optional<std::string> helo = HeloNameWarningForThisMachine(*config)) {
      preflight.warnings.push_back(std::move(*helo));
    }
  }
  HERALD_RETURN_IF_ERROR(CheckAttachmentsFit(task, preflight.prepared, preflight.accounts, preflight.warnings));
  return preflight;
}

}  // namespace herald
