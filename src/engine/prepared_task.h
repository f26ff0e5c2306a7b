// PreparedTask: a sending task made ready to send — every template compiled against the
// recipient list's columns, the composer built (attachments read and encoded once), the backup
// writer set up. Everything that can be wrong with a task's settings is found here, before the
// first message. Immutable after PrepareTask(); shared by the engine's coroutines.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/account_config.h"
#include "config/task_config.h"
#include "core/status.h"
#include "merge/field_set.h"
#include "merge/template.h"
#include "mime/composer.h"
#include "transport/backup_writer.h"

namespace herald {

struct PreparedTask {
  FieldSet fields;
  std::size_t address_column = 0;
  Template subject;  // also rendered for {%subject%} in backup file names
  std::shared_ptr<const MessageComposer> composer;
  std::optional<BackupWriter> backup;
};

// The envelope sender (MAIL FROM) of the task's messages through `account`: the account's fixed
// sender, except for messages marked Sensitivity: Private (DESIGN.md), or else the task's From.
const Address& EnvelopeSender(const TaskConfig& task, const AccountConfig& account);

// What `account` changes in the messages it carries: default Reply-To and sender name, fixed sender.
AccountOverrides OverridesOf(const AccountConfig& account);

// The Message-ID of a recipient's message, without angle brackets: "<nonce>.<recipient id>@<the
// From domain>" — stable across retries, unique across tasks (the task's random nonce in the
// store) and recipients (the recipient's id there).
std::string MessageIdOf(std::string_view nonce, std::int64_t recipient_id, const TaskConfig& task);

// Finds the column named `name` (ASCII case-insensitive). The error lists the columns there are.
Result<std::size_t> FindColumn(const std::vector<std::string>& columns, std::string_view name,
                               std::string_view file);

// Compiles the task against `columns` (the recipient list's header). Errors name the setting or
// file and the position of the problem.
Result<PreparedTask> PrepareTask(const TaskConfig& task, const std::vector<std::string>& columns);

}  // namespace herald
