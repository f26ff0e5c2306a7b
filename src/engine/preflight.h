// Preflight: everything a sending task is checked for before its first message, in one place, so
// that `herald check` refuses exactly what `herald send` would: the recipient list's header, the
// task compiled against it (PrepareTask: templates, attachments, backup), the task's accounts
// (CheckTaskAccounts), a transport for every account the task can reach — its accounts and their
// secondaries — (an account kind this build cannot send through yet, an unreadable secret), turbo
// mode through a pickup account, and the attachments against every account's max_message_size.
// Nothing is stored, connected to or sent. Not thread-safe; call from one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/account_config.h"
#include "config/task_config.h"
#include "core/status.h"
#include "engine/prepared_task.h"
#include "engine/transport_factory.h"
#include "transport/transport.h"

namespace herald {

struct ReadyAccount {
  const AccountConfig* config = nullptr;
  std::unique_ptr<Transport> transport;
};

struct Preflight {
  std::vector<std::string> columns;  // the recipient list's header
  PreparedTask prepared;
  // The task's accounts in order (sending.accounts, or every account), then the secondaries
  // they reach.
  std::vector<ReadyAccount> accounts;
  // What does not stop the task but the user should know (certificate verification turned
  // off, attachments over some accounts' max_message_size).
  std::vector<std::string> warnings;
};

// Errors name the file, setting or account and say what was expected; they are the errors
// RunTask() gives before sending.
Result<Preflight> PreflightTask(const TaskConfig& task, const AccountSet& accounts, TransportFactory& transports);

}  // namespace herald
