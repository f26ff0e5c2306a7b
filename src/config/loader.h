// Loading and validating the two configuration files: accounts (LoadAccounts) and a sending task
// (LoadTask). Every setting of DESIGN.md is read and checked here, including those whose
// behaviour later modules implement, so the file format is designed once. Errors are
// kInvalidArgument listing every problem as "file:line:column: key: what is wrong, what was
// expected"; unknown keys are errors. Secrets are referenced, not read (config/secret.h).
// Start-up code; not for the delivery path. Thread-compatible.
#pragma once

#include <string>

#include "config/account_config.h"
#include "config/task_config.h"
#include "core/status.h"

namespace herald {

// Reads an accounts file: one [[account]] table per account. Paths are resolved against the
// file's folder. Checks names are unique and secondary accounts exist without forming a loop.
Result<AccountSet> LoadAccounts(const std::string& path);

// Reads a task file. Body files are read (and checked to be UTF-8) and attachments, the
// recipient list and blacklists checked to exist; paths are resolved against the file's folder.
Result<TaskConfig> LoadTask(const std::string& path);

// Checks that the task's account names exist in `accounts`.
Status CheckTaskAccounts(const TaskConfig& task, const AccountSet& accounts);

}  // namespace herald
