// PreparedTask: a sending task made ready to send — every template compiled against the
// recipient list's columns, the composer built (attachments read and encoded once), the backup
// writer set up. Everything that can be wrong with a task's settings is found here, before the
// first message. Immutable after PrepareTask(); shared by the engine's coroutines.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

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

// Finds the column named `name` (ASCII case-insensitive). The error lists the columns there are.
Result<std::size_t> FindColumn(const std::vector<std::string>& columns, std::string_view name,
                               std::string_view file);

// Compiles the task against `columns` (the recipient list's header). Errors name the setting or
// file and the position of the problem.
Result<PreparedTask> PrepareTask(const TaskConfig& task, const std::vector<std::string>& columns);

}  // namespace herald
