#include "engine/task_sync.h"

#include <random>

#include <fmt/format.h>

#include "address/address.h"
#include "engine/blacklist.h"

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

}  // namespace

Result<SyncedTask> SyncTask(const TaskConfig& task, const std::vector<std::string>& columns,
                            std::size_t address_column, Store& store, const Clock& clock) {
  Result<std::optional<TaskRecord>> found = store.FindTask(task.id);
  if (!found.ok()) return found.status();
  SyncedTask synced;
  TaskRecord& record = synced.record;
  if (found->has_value()) {
    record = std::move(**found);
    if (record.columns != columns) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("{}: the columns changed since task \"{}\" was first run (then: {}; now: {}); "
                                "give the task a new id to send the new list",
                                task.recipients.file, task.id, JoinNames(record.columns), JoinNames(columns)));
    }
  } else {
    record = TaskRecord{task.id, task.title, columns, clock.Now(), "", RandomNonce()};
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
