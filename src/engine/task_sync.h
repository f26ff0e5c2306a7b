// Bringing the store up to date with a sending task before a run: the task found under its id (or
// created on its first run) and checked to be the same mailing, its recipient list imported when it
// is new or changed since the last import, the run recorded, and the recipients on the task's
// blacklists marked. Start-up work of the engine (task_runner.h); one thread.
//
// The task's identity. A store is shared by every task sending through the same accounts, and a
// task file's id may name a task stored by another mailing — another folder's task file with the
// same id, or last month's task file edited for this month. The store keeps, per task, the
// fingerprint of its mailing (mailing_fingerprint.h), the task file it ran from, and when it first
// and last ran: a task file whose mailing differs from the one stored under its id is refused
// before anything is sent, unless the changes are accepted (the stored mailing goes on with the
// new content; recipients already sent are not sent again).
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

// The id under which `store` keeps `task`: task.id — or, for a task file that sets no id and whose
// task.id is not in the store, the id a herald before version 4 of the store gave it (the file's
// name without extension), when the store has a task of that id that is this file's: one stored
// without a task file (from before; this run adopts it), or one this same file ran. Callers set
// task.id to it before RunTask().
Result<std::string> StoredTaskId(const TaskConfig& task, Store& store);

struct SyncedTask {
  TaskRecord record;                   // the task as stored now
  std::optional<ImportReport> import;  // set when the recipient list was (re)imported
};

// Creates the task in `store` on its first run, and imports `task.recipients.file` when its
// digest differs from the one last imported; records the run (title, task file, fingerprint, now).
// `columns` is the list's header, `address_column` indexes it.
// Errors, before anything is written:
//  - kFailedPrecondition when the task stored under task.id is another mailing (its fingerprint
//    differs) and `accept_changes` is false, naming the stored mailing (task file, title, first
//    and last run, recipients sent of all) and what changed, and saying how to go on;
//  - kFailedPrecondition when the task is new, its id is the default one (task.id_given is
//    false), and a stored task of the same mailing ran from a task file that is no longer there:
//    the file was probably moved or renamed, which changes the default id;
//  - kFailedPrecondition when the list's columns differ from those stored;
//  - the import's errors (recipient_import.h); the store's.
Result<SyncedTask> SyncTask(const TaskConfig& task, const std::vector<std::string>& columns,
                            std::size_t address_column, Store& store, const Clock& clock, bool accept_changes);

// Marks the task's unsent and deferred recipients that are on one of its blacklists as
// blacklisted. Returns how many.
Result<std::size_t> MarkBlacklisted(const TaskConfig& task, Store& store, const Clock& clock);

}  // namespace herald
