#include "engine/task_sync.h"

#include <filesystem>
#include <random>

#include <fmt/format.h>

#include "address/address.h"
#include "config/task_file.h"
#include "engine/blacklist.h"
#include "engine/mailing_fingerprint.h"

namespace herald {
namespace {

std::string RandomNonce() {
  std::random_device device;
  std::uniform_int_distribution<std::uint32_t> bits;
  return fmt::format("{:08x}{:08x}", bits(device), bits(device));
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// "\"Spring news\" from /m/spring/task.toml, first run ... UTC, last run ... UTC, 120 of 130
// recipient(s) sent"
Result<std::string> DescribeStored(const TaskRecord& stored, const std::string& store_file, Store& store) {
  Result<StatusCounts> counts = store.CountByStatus(stored.id);
  if (!counts.ok()) return counts.status();
  const std::string file = stored.task_file.empty() ? std::string("a task file not recorded")
                                                     : TaskFileFromStore(stored.task_file, store_file);
  std::string text =
      fmt::format("\"{}\" from {}, first run {}", stored.title, file, FormatLocalTime(stored.submitted_at));
  if (stored.last_run_at) text += fmt::format(", last run {}", FormatLocalTime(*stored.last_run_at));
  return text + fmt::format(", {} of {} recipient(s) sent", (*counts)[RecipientStatus::kSent], counts->total());
}

Status AnotherMailing(const TaskConfig& task, const TaskRecord& stored, const std::string& fingerprint,
                      Store& store) {
  Result<std::string> described = DescribeStored(stored, task.store_file, store);
  if (!described.ok()) return described.status();
  return Status(StatusCode::kFailedPrecondition,
                fmt::format("{} describes another mailing than the one stored as task \"{}\" in {}; nothing was "
                            "sent.\n  stored: {}\n  changed: {}\n"
                            "  To send this as a mailing of its own, give it an id of its own (id = \"...\" in the "
                            "task file).\n  To go on with the stored mailing with the new content (recipients "
                            "already sent are not sent again): herald send {} --accept-changes",
                            task.path, task.id, task.store_file, *described,
                            JoinNames(MailingChanges(stored.fingerprint, fingerprint)), task.path));
}

// A new task whose id is the default (from the task file's place) while a stored task of the same
// mailing ran from a task file that is gone: moving or renaming a task file or its folder changes
// its default id, and taking it for a new task would send every recipient again.
Status CheckNotMoved(const TaskConfig& task, const TaskRun& run, Store& store) {
  Result<std::vector<TaskRecord>> tasks = store.ListTasks();
  if (!tasks.ok()) return tasks.status();
  for (const TaskRecord& stored : *tasks) {
    if (stored.fingerprint != run.fingerprint || stored.task_file.empty() || stored.task_file == run.task_file) {
      continue;
    }
    std::error_code error;
    if (std::filesystem::exists(TaskFileFromStore(stored.task_file, task.store_file), error) || error) continue;
    Result<std::string> described = DescribeStored(stored, task.store_file, store);
    if (!described.ok()) return described.status();
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("{} is new here, but the same mailing is stored as task \"{}\" in {}, and the task "
                              "file it ran from is no longer there; nothing was sent.\n  stored: {}\n"
                              "  If you moved or renamed the task file or its folder, go on with that task: set "
                              "id = \"{}\" in the task file.\n  To send this as a mailing of its own, give it an id "
                              "of its own (id = \"...\").",
                              task.path, stored.id, task.store_file, *described, stored.id));
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> StoredTaskId(const TaskConfig& task, Store& store) {
  Result<std::optional<TaskRecord>> found = store.FindTask(task.id);
  if (!found.ok()) return found.status();
  const std::string legacy_id = std::filesystem::path(task.path).stem().string();
  if (found->has_value() || task.id_given || legacy_id == task.id) return task.id;
  Result<std::optional<TaskRecord>> legacy = store.FindTask(legacy_id);
  if (!legacy.ok()) return legacy.status();
  if (legacy->has_value() && ((*legacy)->task_file.empty() ||
                              (*legacy)->task_file == TaskFileInStore(task.path, task.store_file))) {
    return legacy_id;
  }
  return task.id;
}

Result<SyncedTask> SyncTask(const TaskConfig& task, const std::vector<std::string>& columns,
                            std::size_t address_column, Store& store, const Clock& clock, bool accept_changes) {
  Result<std::string> fingerprint = MailingFingerprint(task);
  if (!fingerprint.ok()) return fingerprint.status();
  const TaskRun run{task.title, TaskFileInStore(task.path, task.store_file), *fingerprint, clock.Now()};
  Result<std::optional<TaskRecord>> found = store.FindTask(task.id);
  if (!found.ok()) return found.status();
  SyncedTask synced;
  TaskRecord& record = synced.record;
  if (found->has_value()) {
    record = std::move(**found);
    // A task stored without a fingerprint (by a herald before version 4 of the store) is this
    // mailing's from now on.
    if (!record.fingerprint.empty() && record.fingerprint != *fingerprint && !accept_changes) {
      return AnotherMailing(task, record, *fingerprint, store);
    }
    if (record.columns != columns) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("{}: the columns changed since task \"{}\" was first run (then: {}; now: {}); "
                                "give the task a new id to send the new list",
                                task.recipients.file, task.id, JoinNames(record.columns), JoinNames(columns)));
    }
  } else {
    if (!task.id_given) HERALD_RETURN_IF_ERROR(CheckNotMoved(task, run, store));
    record = TaskRecord{task.id, task.title, columns, run.at, "", RandomNonce(), run.task_file, run.fingerprint,
                        run.at};
    HERALD_RETURN_IF_ERROR(store.CreateTask(record));
  }
  Result<std::string> digest = FileDigest(task.recipients.file);
  if (!digest.ok()) return digest.status();
  if (*digest != record.source_digest) {
    Result<ImportReport> imported = ImportRecipients(task.recipients, address_column, task.id, store);
    if (!imported.ok()) return imported.status();
    HERALD_RETURN_IF_ERROR(store.SetTaskSourceDigest(task.id, *digest));
    record.source_digest = *digest;
    synced.import = std::move(*imported);
  }
  HERALD_RETURN_IF_ERROR(store.RecordTaskRun(task.id, run));
  record.title = run.title;
  record.task_file = run.task_file;
  record.fingerprint = run.fingerprint;
  record.last_run_at = run.at;
  return synced;
}

Result<std::size_t> MarkBlacklisted(const TaskConfig& task, Store& store, const Clock& clock) {
  if (task.recipients.blacklists.empty()) return std::size_t{0};
  Result<Blacklist> blacklist = Blacklist::Load(task.recipients.blacklists);
  if (!blacklist.ok()) return blacklist.status();
  StoreBatch batch;
  Status visited = store.ForEachRecipient(task.id, [&](const RecipientRecord& recipient) {
    if (recipient.status != RecipientStatus::kUnsent && recipient.status != RecipientStatus::kDeferred) {
      return Status::Ok();
    }
    Result<Address> address = ParseAddress(recipient.address);
    if (address.ok() && blacklist->Matches(*address)) {
      AttemptResult result;
      result.recipient_id = recipient.id;
      result.status = RecipientStatus::kBlacklisted;
      result.error.text = "on a blacklist";
      batch.results.push_back(std::move(result));
    }
    return Status::Ok();
  });
  HERALD_RETURN_IF_ERROR(visited);
  std::size_t marked = batch.results.size();
  if (marked > 0) {
    Result<ApplyReport> applied = store.Apply(batch, clock.Now());
    if (!applied.ok()) return applied.status();
  }
  return marked;
}

}  // namespace herald
