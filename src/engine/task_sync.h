// Bringing the store up to date with a sending task before a run: the task created on its first
// run, its recipient list imported when it is new or changed since the last import, and the
// recipients on the task's blacklists marked. Start-up work of the engine (task_runner.h); one
// thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "config/task_config.h"
#include "core/clock.h"
#include "core/status.h"
#include "engine/recipient_import.h"
#include "store/store.h"

namespace herald {

struct SyncedTask {
  TaskRecord record;                   // the task as stored now
  std::optional<ImportReport> import;  // set when the recipient list was (re)imported
};

// Creates the task in `store` on its first run, and imports `task.recipients.file` when its
// digest differs from the one last imported. `columns` is the list's header, `address_column`
// indexes it. Errors: kFailedPrecondition when the list's columns differ from those stored;
// the import's errors (recipient_import.h); the store's.
Result<SyncedTask> SyncTask(const TaskConfig& task, const std::vector<std::string>& columns,
                            std::size_t address_column, Store& store, const Clock& clock);

// Marks the task's unsent and deferred recipients that are on one of its blacklists as
// blacklisted. Returns how many.
Result<std::size_t> MarkBlacklisted(const TaskConfig& task, Store& store, const Clock& clock);

}  // namespace herald
