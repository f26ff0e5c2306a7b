// Loading and validating the two configuration files: accounts (LoadAccounts) and a sending task
// (LoadTask). Every setting of docs/settings.md is read and checked here, including those whose
// behaviour later modules implement, so the file format is designed once. Errors are
// kInvalidArgument listing every problem as "file:line:column: key: what is wrong, what was
// expected"; unknown keys are errors. Secrets are referenced, not read (config/secret.h).
// Start-up code; not for the delivery path. Thread-compatible.
#pragma once

#include <set>
#include <string>

#include "config/account_config.h"
#include "config/task_config.h"
#include "core/status.h"

namespace herald {

// Reads an accounts file: one [[account]] table per account. Paths are resolved against the
// file's folder. Checks names are unique and secondary accounts exist without forming a loop.
// `settings_read`, when given, receives the name of every setting looked for in the file, set or
// not ("limits", "account.pop_before_smtp.host"; array indexes left out); the settings
// reference's completeness test uses it.
Result<AccountSet> LoadAccounts(const std::string& path, std::set<std::string>* settings_read = nullptr);

// Reads a task file. Body files are read (and checked to be UTF-8) and attachments, the
// recipient list and blacklists checked to exist; paths are resolved against the file's folder.
// `settings_read` as for LoadAccounts ("sending.retries", "message.attachments.name").
Result<TaskConfig> LoadTask(const std::string& path, std::set<std::string>* settings_read = nullptr);

// Checks that the task's account names exist in `accounts`.
Status CheckTaskAccounts(const TaskConfig& task, const AccountSet& accounts);

}  // namespace herald
