#include "store/sqlite_store.h"

#include <algorithm>
#include <array>
#include <limits>
#include <thread>
#include <utility>

#include "store/internal/dedup_hash.h"
#include "store/internal/field_codec.h"
#include "store/internal/schema.h"
#include "store/internal/send_limits.h"
#include "store/internal/store_file.h"
#include "store/internal/sqlite.h"

namespace herald {

using store_internal::BucketCount;
using store_internal::Connection;
using store_internal::CountLevel;
using store_internal::DecodeStrings;
using store_internal::EncodeStrings;
using store_internal::LimitCheck;
using store_internal::ScopedStatement;
using store_internal::Statement;
using store_internal::Transaction;

namespace {

constexpr std::int64_t kMillisPerMinute = 60'000;
// Rows per read transaction in ForEachRecipient.
constexpr std::size_t kExportChunkRows = 256;
// Page cache per connection, in KiB. SQLite's own default is 2 MiB; a little more keeps the
// dedup index of a large import in memory, and the cap keeps a 1,000,000-row import bounded.
constexpr int kCacheKib = 16 * 1024;
// The WAL is copied into the database file once it holds this many pages (SQLite's default is
// 1000). A checkpoint copies the latest version of each page once, so fewer, larger checkpoints
// write less when the same pages change again and again, as they do in an import.
constexpr int kWalAutocheckpointPages = 8192;
// After a checkpoint the WAL file is truncated to at most this, so a big import does not leave
// a big -wal file behind.
constexpr std::int64_t kWalSizeLimitBytes = 64 * 1024 * 1024;
// A pause after each committed import batch, in which other processes waiting for the write
// lock (polling every millisecond, see Connection) get it; without it a long import can keep
// them out past their busy timeout.
constexpr Duration kImportPauseBetweenBatches = std::chrono::milliseconds(2);

// The recipient queries select the columns ReadRecipient() reads, in its order.
// ?1 task key, ?2 after id, ?3 limit, ?4 now. The index recipients_by_status is ordered by
// (task, status, id), so each of these is a range scan that stops after ?3 rows.
constexpr std::string_view kFetchUnsentSql =
    "SELECT id, address, fields, line, status, attempts, next_attempt_at, last_code, last_enhanced, last_text, "
    "account, updated_at, possible_duplicate FROM recipients INDEXED BY recipients_by_status "
    "WHERE task = ?1 AND status = 0 AND id > ?2 ORDER BY id LIMIT ?3";
// Walks the deferred rows in id order and skips those not yet due: over a pass through the task
// (after_id growing) every deferred row is looked at once. Ordering by next_attempt_at instead
// would sort every due row on every call.
constexpr std::string_view kFetchDeferredSql =
    "SELECT id, address, fields, line, status, attempts, next_attempt_at, last_code, last_enhanced, last_text, "
    "account, updated_at, possible_duplicate FROM recipients INDEXED BY recipients_by_status "
    "WHERE task = ?1 AND status = 4 AND id > ?2 AND next_attempt_at <= ?4 ORDER BY id LIMIT ?3";
// A rowid range scan: no index orders a task's rows by id across statuses, and sorting a whole
// task per chunk would be quadratic.
constexpr std::string_view kExportSql =
    "SELECT id, address, fields, line, status, attempts, next_attempt_at, last_code, last_enhanced, last_text, "
    "account, updated_at, possible_duplicate FROM recipients NOT INDEXED "
    "WHERE task = ?1 AND id > ?2 ORDER BY id LIMIT ?3";

// The task queries select the columns ReadTask() reads, in its order.
constexpr std::string_view kFindTaskSql =
    "SELECT id, title, columns, submitted_at, source_digest, nonce, task_file, fingerprint, last_run_at "
    "FROM tasks WHERE id = ?1";
constexpr std::string_view kListTasksSql =
    "SELECT id, title, columns, submitted_at, source_digest, nonce, task_file, fingerprint, last_run_at "
    "FROM tasks ORDER BY key";

// Inserts unless the task has a recipient with the same dedup key (see the schema's comment);
// sqlite3_changes() then says which. ?7 is DedupHash(?2).
constexpr std::string_view kInsertRecipientSql =
    "INSERT INTO recipients (task, dedup_key, dedup_hash, address, fields, line, status, updated_at) "
    "SELECT ?1, ?2, ?7, ?3, ?4, ?5, 0, ?6 "
    "WHERE NOT EXISTS (SELECT 1 FROM recipients WHERE task = ?1 AND dedup_hash = ?7 AND dedup_key = ?2)";

// The send counters of each CountLevel (schema.cc), finest first. Reads are range scans of the
// tables' primary keys (account, bucket), at most a window's worth of rows (send_limits.h).
constexpr std::array<std::string_view, store_internal::kCountLevelCount> kReadSendCountsSql = {
    "SELECT minute, messages FROM send_counts WHERE account = ?1 AND minute >= ?2 ORDER BY minute",
    "SELECT hour, messages FROM send_counts_hourly WHERE account = ?1 AND hour >= ?2 ORDER BY hour",
    "SELECT day, messages FROM send_counts_daily WHERE account = ?1 AND day >= ?2 ORDER BY day",
};
constexpr std::array<std::string_view, store_internal::kCountLevelCount> kAddSendCountsSql = {
    "INSERT INTO send_counts (account, minute, messages) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (account, minute) DO UPDATE SET messages = messages + excluded.messages",
    "INSERT INTO send_counts_hourly (account, hour, messages) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (account, hour) DO UPDATE SET messages = messages + excluded.messages",
    "INSERT INTO send_counts_daily (account, day, messages) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (account, day) DO UPDATE SET messages = messages + excluded.messages",
};

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if (a % b != 0 && (a < 0) != (b < 0)) --q;
  return q;
}

std::int64_t CeilDiv(std::int64_t a, std::int64_t b) { return -FloorDiv(-a, b); }

std::int64_t ClampLimit(std::size_t limit) {
  return limit > static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())
             ? std::numeric_limits<std::int64_t>::max()
             : static_cast<std::int64_t>(limit);
}

std::optional<std::int64_t> OptionalMillis(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return ToUnixMillis(*t);
}

Status Damaged(const std::string& file, std::string what) {
  return Status(StatusCode::kFailedPrecondition, file + " is damaged: " + std::move(what));
}

std::string Quote(std::string_view text) {
  std::string out = "'";
  out += text;
  out += "'";
  return out;
}

// Reads the current row of a query selecting id, address, fields, line, status, attempts,
// next_attempt_at, last_code, last_enhanced, last_text, account, updated_at, possible_duplicate.
Status ReadRecipient(const Statement& row, const std::string& file, RecipientRecord& out) {
  out.id = row.ColumnInt(0);
  out.address = row.ColumnText(1);
  Result<std::vector<std::string>> fields = DecodeStrings(row.ColumnBlob(2));
  if (!fields.ok()) return Damaged(file, "recipient " + std::to_string(out.id) + ": " + fields.status().message());
  out.fields = std::move(*fields);
  out.line = static_cast<std::size_t>(row.ColumnInt(3));
  const std::int64_t status = row.ColumnInt(4);
  if (status < 0 || status >= static_cast<std::int64_t>(kRecipientStatusCount)) {
    return Damaged(file, "recipient " + std::to_string(out.id) + " has unknown status " + std::to_string(status));
  }
  out.status = static_cast<RecipientStatus>(status);
  out.attempts = static_cast<int>(row.ColumnInt(5));
  const std::optional<std::int64_t> next = row.ColumnOptionalInt(6);
  out.next_attempt_at = next ? std::optional<TimePoint>(FromUnixMillis(*next)) : std::nullopt;
  out.last_error.reply_code = static_cast<int>(row.ColumnInt(7));
  out.last_error.enhanced_status = row.ColumnText(8);
  out.last_error.text = row.ColumnText(9);
  out.account = row.ColumnText(10);
  out.updated_at = FromUnixMillis(row.ColumnInt(11));
  out.possible_duplicate = row.ColumnInt(12) != 0;
  return Status::Ok();
}

// Reads the current row of a query selecting id, title, columns, submitted_at, source_digest, nonce,
// task_file, fingerprint, last_run_at.
Status ReadTask(const Statement& row, const std::string& file, TaskRecord& out) {
  out.id = row.ColumnText(0);
  out.title = row.ColumnText(1);
  Result<std::vector<std::string>> columns = DecodeStrings(row.ColumnBlob(2));
  if (!columns.ok()) return Damaged(file, "columns of task " + Quote(out.id) + ": " + columns.status().message());
  out.columns = std::move(*columns);
  out.submitted_at = FromUnixMillis(row.ColumnInt(3));
  out.source_digest = row.ColumnText(4);
  out.nonce = row.ColumnText(5);
  out.task_file = row.ColumnText(6);
  out.fingerprint = row.ColumnText(7);
  const std::optional<std::int64_t> last_run = row.ColumnOptionalInt(8);
  out.last_run_at = last_run ? std::optional<TimePoint>(FromUnixMillis(*last_run)) : std::nullopt;
  return Status::Ok();
}

bool IsResultStatus(RecipientStatus status) {
  switch (status) {
    case RecipientStatus::kSent:
    case RecipientStatus::kFailed:
    case RecipientStatus::kDeferred:
    case RecipientStatus::kBlacklisted:
    case RecipientStatus::kUnsent:
      return true;
    case RecipientStatus::kInFlight:
    case RecipientStatus::kCancelled:
    case RecipientStatus::kRejected:
      return false;
  }
  return false;
}

bool IsValidStatus(RecipientStatus status) {
  return static_cast<std::size_t>(status) < kRecipientStatusCount;
}

class SqliteRecipientImport final : public RecipientImport {
 public:
  SqliteRecipientImport(Connection* connection, std::unique_ptr<Statement> insert, std::int64_t task_key,
                        std::string task_id, std::size_t column_count, TimePoint now, std::size_t batch_rows)
      : connection_(connection),
        insert_(std::move(insert)),
        task_key_(task_key),
        task_id_(std::move(task_id)),
        column_count_(column_count),
        now_ms_(ToUnixMillis(now)),
        batch_rows_(std::max<std::size_t>(batch_rows, 1)),
        what_("importing recipients into task " + Quote(task_id_)) {}

  Result<bool> Add(const NewRecipient& recipient) override {
    HERALD_RETURN_IF_ERROR(CheckOpen());
    if (recipient.fields.size() != column_count_) {
      return InvalidArgument("recipient on line " + std::to_string(recipient.line) + " has " +
                             std::to_string(recipient.fields.size()) + " fields, but task " + Quote(task_id_) +
                             " has " + std::to_string(column_count_) + " columns");
    }
    if (recipient.dedup_key.empty()) {
      return InvalidArgument("recipient on line " + std::to_string(recipient.line) + " has an empty dedup key");
    }
    if (Status status = BeginBatch(); !status.ok()) return Fail(status);
    EncodeStrings(recipient.fields, encoded_);
    insert_->BindInt(1, task_key_);
    insert_->BindText(2, recipient.dedup_key);
    insert_->BindText(3, recipient.address);
    insert_->BindBlob(4, encoded_);
    insert_->BindInt(5, static_cast<std::int64_t>(recipient.line));
    insert_->BindInt(6, now_ms_);
    insert_->BindInt(7, store_internal::DedupHash(recipient.dedup_key));
    if (Status status = insert_->Run(); !status.ok()) return Fail(status);
    const bool added = connection_->Changes() == 1;
    HERALD_RETURN_IF_ERROR(EndRow());
    return added;
  }

  Status Reject(const RejectedRow& row) override {
    HERALD_RETURN_IF_ERROR(CheckOpen());
    if (!row.fields.empty() && row.fields.size() != column_count_) {
      return InvalidArgument("rejected row on line " + std::to_string(row.line) + " has " +
                             std::to_string(row.fields.size()) + " fields, but task " + Quote(task_id_) + " has " +
                             std::to_string(column_count_) + " columns");
    }
    if (Status status = BeginBatch(); !status.ok()) return Fail(status);
    EncodeStrings(row.fields, encoded_);
    Result<ScopedStatement> insert = connection_->Cached(
        "INSERT INTO recipients (task, dedup_key, dedup_hash, address, fields, line, status, last_text, updated_at) "
        "VALUES (?1, '', 0, ?2, ?3, ?4, 7, ?5, ?6)",
        what_);
    if (!insert.ok()) return Fail(insert.status());
    (*insert)->BindInt(1, task_key_);
    (*insert)->BindText(2, row.address);
    (*insert)->BindBlob(3, encoded_);
    (*insert)->BindInt(4, static_cast<std::int64_t>(row.line));
    (*insert)->BindText(5, row.reason);
    (*insert)->BindInt(6, now_ms_);
    if (Status status = (*insert)->Run(); !status.ok()) return Fail(status);
    return EndRow();
  }

  Status Finish() override {
    if (!failure_.ok()) return failure_;
    finished_ = true;
    // An import without rows still replaces the earlier rejected rows.
    if (Status status = BeginBatch(); !status.ok()) return Fail(status);
    if (Status status = CommitBatch(); !status.ok()) return Fail(status);
    return Status::Ok();
  }

 private:
  Status CheckOpen() const {
    if (!failure_.ok()) return failure_;
    if (finished_) return Status(StatusCode::kFailedPrecondition, "adding a row to a finished import");
    return Status::Ok();
  }

  // Opens the batch's transaction unless it is open; the import's first also deletes the rows
  // rejected by the task's earlier imports.
  Status BeginBatch() {
    if (transaction_) return Status::Ok();
    Result<Transaction> transaction = Transaction::Begin(*connection_, what_);
    if (!transaction.ok()) return transaction.status();
    transaction_.emplace(std::move(*transaction));
    if (rejected_replaced_) return Status::Ok();
    Result<ScopedStatement> remove =
        connection_->Cached("DELETE FROM recipients WHERE task = ?1 AND status = 7", what_);
    if (!remove.ok()) return remove.status();
    (*remove)->BindInt(1, task_key_);
    HERALD_RETURN_IF_ERROR((*remove)->Run());
    rejected_replaced_ = true;
    return Status::Ok();
  }

  // Commits the batch when it is full.
  Status EndRow() {
    if (++rows_in_batch_ < batch_rows_) return Status::Ok();
    if (Status status = CommitBatch(); !status.ok()) return Fail(status);
    std::this_thread::sleep_for(kImportPauseBetweenBatches);
    return Status::Ok();
  }

  Status CommitBatch() {
    rows_in_batch_ = 0;
    if (!transaction_) return Status::Ok();
    Status status = transaction_->Commit();
    transaction_.reset();
    return status;
  }

  Status Fail(Status status) {
    transaction_.reset();  // rolls the unfinished batch back
    failure_ = std::move(status);
    return failure_;
  }

  Connection* connection_;
  std::unique_ptr<Statement> insert_;
  std::int64_t task_key_;
  std::string task_id_;
  std::size_t column_count_;
  std::int64_t now_ms_;
  std::size_t batch_rows_;
  std::string what_;
  std::optional<Transaction> transaction_;
  std::size_t rows_in_batch_ = 0;
  std::string encoded_;
  bool rejected_replaced_ = false;
  bool finished_ = false;
  Status failure_;
};

}  // namespace

// --- opening

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) { return Open(path, Options()); }

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path, const Options& options) {
  if (path.empty()) return InvalidArgument("the store file name is empty");
  const bool in_memory = path == ":memory:";
  if (!in_memory) {
    HERALD_RETURN_IF_ERROR(store_internal::PrepareStoreFile(path, options.create_if_missing, options.busy_timeout));
  }
  Result<std::unique_ptr<Connection>> opened = Connection::Open(path, options.busy_timeout, /*create=*/in_memory);
  if (!opened.ok()) return opened.status();
  Connection& connection = **opened;

  // The first read of the file, where a non-SQLite or foreign file is reported before anything
  // in it is changed.
  Result<int> version = store_internal::CheckSchema(connection);
  if (!version.ok()) return version.status();
  if (*version == 0 && !options.create_if_missing && !in_memory) {
    return NotFound("store file '" + path + "' is an empty SQLite database, not yet a herald store");
  }
  // WAL: readers never block the writer nor each other, so several processes can share the file.
  // (A store herald created is in WAL mode already; this is for files in another mode.)
  std::string mode;
  HERALD_RETURN_IF_ERROR(connection.RetryWhileBusy("switching to WAL mode", [&]() -> Status {
    Result<std::string> switched = connection.QueryText("PRAGMA journal_mode = WAL", "switching to WAL mode");
    if (!switched.ok()) return switched.status();
    mode = std::move(*switched);
    return Status::Ok();
  }));
  if (mode != "wal" && !(in_memory && mode == "memory")) {
    return Status(StatusCode::kFailedPrecondition,
                  "store file '" + path + "' cannot be used in WAL mode (journal mode stays '" + mode +
                      "'); put it on a local file system");
  }
  // synchronous=NORMAL in WAL mode: a commit is written to the WAL file (in the operating system's
  // cache) without an fsync; the WAL is synced at checkpoints. A committed transaction therefore
  // survives the death of the process at any point (crash, kill -9), which is what the delivery
  // guarantees need: `in-flight` recorded before MAIL FROM is still there when the next run
  // recovers. Only a power loss or kernel crash can lose the last commits (never corrupt the
  // file) — then a recipient may be sent again without being marked a possible duplicate. FULL
  // would close that gap at the price of an fsync per batch.
  HERALD_RETURN_IF_ERROR(connection.Exec("PRAGMA synchronous = NORMAL", "setting synchronous mode"));
  HERALD_RETURN_IF_ERROR(connection.Exec("PRAGMA foreign_keys = ON", "enabling foreign keys"));
  HERALD_RETURN_IF_ERROR(connection.Exec("PRAGMA cache_size = -" + std::to_string(kCacheKib), "sizing the page cache"));
  HERALD_RETURN_IF_ERROR(connection.Exec("PRAGMA wal_autocheckpoint = " + std::to_string(kWalAutocheckpointPages),
                                         "setting the checkpoint interval"));
  HERALD_RETURN_IF_ERROR(connection.Exec("PRAGMA journal_size_limit = " + std::to_string(kWalSizeLimitBytes),
                                         "limiting the WAL size"));
  HERALD_RETURN_IF_ERROR(store_internal::MigrateSchema(connection));
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(*opened), options));
}

SqliteStore::SqliteStore(std::unique_ptr<Connection> connection, const Options& options)
    : connection_(std::move(connection)), options_(options) {}

SqliteStore::~SqliteStore() = default;

TimePoint SqliteStore::Now() const {
  static const SystemClock kSystemClock;
  return (options_.clock != nullptr ? options_.clock : &kSystemClock)->Now();
}

std::string SqliteStore::FileName() const { return "store file '" + connection_->path() + "'"; }

Result<std::int64_t> SqliteStore::TaskKey(std::string_view task_id, std::string_view what) {
  if (auto it = task_keys_.find(task_id); it != task_keys_.end()) return it->second;
  Result<ScopedStatement> query = connection_->Cached("SELECT key FROM tasks WHERE id = ?1", what);
  if (!query.ok()) return query.status();
  (*query)->BindText(1, task_id);
  Result<bool> row = (*query)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return NotFound("no task " + Quote(task_id) + " in " + FileName());
  const std::int64_t key = (*query)->ColumnInt(0);
  task_keys_.emplace(std::string(task_id), key);
  return key;
}

// --- tasks

Result<std::optional<TaskRecord>> SqliteStore::FindTask(std::string_view task_id) {
  Result<ScopedStatement> query =
      connection_->Cached(kFindTaskSql, "finding a task");
  if (!query.ok()) return query.status();
  (*query)->BindText(1, task_id);
  Result<bool> row = (*query)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<TaskRecord>();
  TaskRecord task;
  HERALD_RETURN_IF_ERROR(ReadTask(**query, FileName(), task));
  return std::optional<TaskRecord>(std::move(task));
}

Result<std::vector<TaskRecord>> SqliteStore::ListTasks() {
  Result<ScopedStatement> query = connection_->Cached(
      kListTasksSql, "listing tasks");
  if (!query.ok()) return query.status();
  std::vector<TaskRecord> tasks;
  while (true) {
    Result<bool> row = (*query)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    HERALD_RETURN_IF_ERROR(ReadTask(**query, FileName(), tasks.emplace_back()));
  }
  return tasks;
}

Status SqliteStore::CreateTask(const TaskRecord& task) {
  if (task.id.empty()) return InvalidArgument("a task id must not be empty");
  const std::string what = "creating task " + Quote(task.id);
  std::string columns;
  EncodeStrings(task.columns, columns);
  Result<Transaction> transaction = Transaction::Begin(*connection_, what);
  if (!transaction.ok()) return transaction.status();
  Result<ScopedStatement> insert = connection_->Cached(
      "INSERT INTO tasks (id, title, columns, submitted_at, source_digest, nonce, task_file, fingerprint, last_run_at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
      "ON CONFLICT (id) DO NOTHING",
      what);
  if (!insert.ok()) return insert.status();
  (*insert)->BindText(1, task.id);
  (*insert)->BindText(2, task.title);
  (*insert)->BindBlob(3, columns);
  (*insert)->BindInt(4, ToUnixMillis(task.submitted_at));
  (*insert)->BindText(5, task.source_digest);
  (*insert)->BindText(6, task.nonce);
  (*insert)->BindText(7, task.task_file);
  (*insert)->BindText(8, task.fingerprint);
  (*insert)->BindOptionalInt(9, OptionalMillis(task.last_run_at));
  HERALD_RETURN_IF_ERROR((*insert)->Run());
  if (connection_->Changes() == 0) {
    return Status(StatusCode::kAlreadyExists, "task " + Quote(task.id) + " already exists in " + FileName());
  }
  return transaction->Commit();
}

Status SqliteStore::SetTaskSourceDigest(std::string_view task_id, std::string_view digest) {
  const std::string what = "setting the source digest of task " + Quote(task_id);
  Result<Transaction> transaction = Transaction::Begin(*connection_, what);
  if (!transaction.ok()) return transaction.status();
  Result<ScopedStatement> update = connection_->Cached("UPDATE tasks SET source_digest = ?2 WHERE id = ?1", what);
  if (!update.ok()) return update.status();
  (*update)->BindText(1, task_id);
  (*update)->BindText(2, digest);
  HERALD_RETURN_IF_ERROR((*update)->Run());
  if (connection_->Changes() == 0) return NotFound("no task " + Quote(task_id) + " in " + FileName());
  return transaction->Commit();
}

Status SqliteStore::RecordTaskRun(std::string_view task_id, const TaskRun& run) {
  const std::string what = "recording a run of task " + Quote(task_id);
  Result<Transaction> transaction = Transaction::Begin(*connection_, what);
  if (!transaction.ok()) return transaction.status();
  Result<ScopedStatement> update = connection_->Cached(
      "UPDATE tasks SET title = ?2, task_file = ?3, fingerprint = ?4, last_run_at = ?5 WHERE id = ?1", what);
  if (!update.ok()) return update.status();
  (*update)->BindText(1, task_id);
  (*update)->BindText(2, run.title);
  (*update)->BindText(3, run.task_file);
  (*update)->BindText(4, run.fingerprint);
  (*update)->BindInt(5, ToUnixMillis(run.at));
  HERALD_RETURN_IF_ERROR((*update)->Run());
  if (connection_->Changes() == 0) return NotFound("no task " + Quote(task_id) + " in " + FileName());
  return transaction->Commit();
}

Result<std::unique_ptr<RecipientImport>> SqliteStore::BeginImport(std::string_view task_id) {
  const std::string what = "importing recipients into task " + Quote(task_id);
  Result<std::optional<TaskRecord>> task = FindTask(task_id);
  if (!task.ok()) return task.status();
  if (!*task) return NotFound("no task " + Quote(task_id) + " in " + FileName());
  Result<std::int64_t> key = TaskKey(task_id, what);
  if (!key.ok()) return key.status();
  Result<std::unique_ptr<Statement>> insert = connection_->Prepare(kInsertRecipientSql, what);
  if (!insert.ok()) return insert.status();
  return std::unique_ptr<RecipientImport>(
      new SqliteRecipientImport(connection_.get(), std::move(*insert), *key, std::string(task_id),
                                (*task)->columns.size(), Now(), options_.import_batch_rows));
}

// --- delivery

Status SqliteStore::ReadRecipients(std::string_view sql, std::int64_t task_key, std::int64_t after_id,
                                   std::size_t limit, std::optional<std::int64_t> now_ms, std::string_view what,
                                   std::vector<RecipientRecord>& out) {
  Result<ScopedStatement> query = connection_->Cached(sql, what);
  if (!query.ok()) return query.status();
  (*query)->BindInt(1, task_key);
  (*query)->BindInt(2, after_id);
  (*query)->BindInt(3, ClampLimit(limit));
  if (now_ms) (*query)->BindInt(4, *now_ms);
  const std::string file = FileName();
  while (true) {
    Result<bool> row = (*query)->Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
    HERALD_RETURN_IF_ERROR(ReadRecipient(**query, file, out.emplace_back()));
  }
}

Result<std::vector<RecipientRecord>> SqliteStore::FetchDue(std::string_view task_id, TimePoint now,
                                                           std::int64_t after_id, std::size_t limit) {
  const std::string what = "fetching due recipients of task " + Quote(task_id);
  Result<std::int64_t> key = TaskKey(task_id, what);
  if (!key.ok()) return key.status();
  if (limit == 0) return std::vector<RecipientRecord>();
  std::vector<RecipientRecord> unsent;
  std::vector<RecipientRecord> deferred;
  HERALD_RETURN_IF_ERROR(ReadRecipients(kFetchUnsentSql, *key, after_id, limit, std::nullopt, what, unsent));
  HERALD_RETURN_IF_ERROR(ReadRecipients(kFetchDeferredSql, *key, after_id, limit, ToUnixMillis(now), what, deferred));
  // Merge the two id-ordered lists. They are two reads, so a row another process moved from
  // unsent to deferred in between can be in both: keep it once.
  std::vector<RecipientRecord> due;
  due.reserve(std::min(limit, unsent.size() + deferred.size()));
  auto u = unsent.begin();
  auto d = deferred.begin();
  while (due.size() < limit && (u != unsent.end() || d != deferred.end())) {
    if (d == deferred.end() || (u != unsent.end() && u->id < d->id)) {
      due.push_back(std::move(*u++));
    } else if (u == unsent.end() || d->id < u->id) {
      due.push_back(std::move(*d++));
    } else {
      due.push_back(std::move(*d++));
      ++u;
    }
  }
  return due;
}

Status SqliteStore::ApplyResult(const AttemptResult& result, std::int64_t now_ms) {
  // A postponed recipient was never put in flight: it changes only while still due (as FetchDue
  // says: not given a result or a later attempt time by another process meanwhile).
  // A withdrawn attempt is taken back only while the recipient is still in flight.
  const char* sql =
      result.postponed ? "UPDATE recipients SET status = ?2, next_attempt_at = ?3, last_code = ?4, last_enhanced = ?5, "
                         "last_text = ?6, account = ?7, updated_at = ?8, "
                         "possible_duplicate = (possible_duplicate OR ?9) "
                         "WHERE id = ?1 AND (status = 0 OR (status = 4 AND next_attempt_at <= ?8))"
      : result.withdrawn ? "UPDATE recipients SET status = ?2, next_attempt_at = ?3, last_code = ?4, last_enhanced = ?5, "
                           "last_text = ?6, account = ?7, updated_at = ?8, attempts = attempts - 1, "
                           "possible_duplicate = (possible_duplicate OR ?9) WHERE id = ?1 AND status = 1"
                         : "UPDATE recipients SET status = ?2, next_attempt_at = ?3, last_code = ?4, last_enhanced = ?5, "
                           "last_text = ?6, account = ?7, updated_at = ?8, "
                           "possible_duplicate = (possible_duplicate OR ?9) WHERE id = ?1";
  Result<ScopedStatement> update = connection_->Cached(sql, "recording a delivery result");
  if (!update.ok()) return update.status();
  (*update)->BindInt(1, result.recipient_id);
  (*update)->BindInt(2, static_cast<std::int64_t>(result.status));
  (*update)->BindOptionalInt(
      3, result.status == RecipientStatus::kDeferred ? OptionalMillis(result.next_attempt_at) : std::nullopt);
  (*update)->BindInt(4, result.error.reply_code);
  (*update)->BindText(5, result.error.enhanced_status);
  (*update)->BindText(6, result.error.text);
  (*update)->BindText(7, result.account);
  (*update)->BindInt(8, now_ms);
  (*update)->BindInt(9, result.possible_duplicate ? 1 : 0);
  HERALD_RETURN_IF_ERROR((*update)->Run());
  if (connection_->Changes() == 0 && !result.postponed && !result.withdrawn) {
    return NotFound(FileName() + ": recording a delivery result: recipient " + std::to_string(result.recipient_id) +
                    " does not exist");
  }
  return Status::Ok();
}

Result<std::optional<RefusedInFlight>> SqliteStore::ApplyInFlight(const InFlight& entry, std::int64_t now_ms,
                                                                   LimitCheck& limits) {
  const std::string_view what = "putting a recipient in flight";
  std::optional<LimitCheck::Refusal> over;
  bool over_destination = false;  // the refusal is the destination's
  const bool destination_counted = !entry.account.empty() && !entry.destination.empty();
  const std::string destination_counter =
      destination_counted ? DestinationCounter(entry.account, entry.destination) : std::string();
  if (!entry.account.empty()) {
    Result<std::optional<LimitCheck::Refusal>> checked = limits.Check(entry.account, entry.limits);
    if (!checked.ok()) return checked.status();
    over = *checked;
  }
  if (destination_counted) {
    Result<std::optional<LimitCheck::Refusal>> checked = limits.Check(destination_counter, entry.destination_limits);
    if (!checked.ok()) return checked.status();
    // The later of the two: at that time one more message fits both.
    if (*checked && (!over || (*checked)->retry_at > over->retry_at)) {
      over = *checked;
      over_destination = true;
    }
  }
  if (!over) {
    Result<ScopedStatement> update = connection_->Cached(
        "UPDATE recipients SET status = 1, attempts = attempts + 1, next_attempt_at = NULL, updated_at = ?2 "
        "WHERE id = ?1 AND (status = 0 OR (status = 4 AND next_attempt_at <= ?2))",
        what);
    if (!update.ok()) return update.status();
    (*update)->BindInt(1, entry.recipient_id);
    (*update)->BindInt(2, now_ms);
    HERALD_RETURN_IF_ERROR((*update)->Run());
    if (connection_->Changes() == 1) {
      if (!entry.account.empty()) limits.Count(entry.account);
      if (destination_counted) limits.Count(destination_counter);
      return std::optional<RefusedInFlight>();
    }
  }
  // Refused: not due (which the engine must know even when a limit is reached too), or over a limit.
  Result<ScopedStatement> query = connection_->Cached(
      "SELECT status = 0 OR (status = 4 AND next_attempt_at <= ?2) FROM recipients WHERE id = ?1", what);
  if (!query.ok()) return query.status();
  (*query)->BindInt(1, entry.recipient_id);
  (*query)->BindInt(2, now_ms);
  Result<bool> row = (*query)->Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return NotFound(FileName() + ": " + std::string(what) + ": recipient " + std::to_string(entry.recipient_id) +
                    " does not exist");
  }
  const bool due = (*query)->ColumnInt(0) != 0;
  RefusedInFlight refused;
  refused.recipient_id = entry.recipient_id;
  if (!due) {
    refused.reason = RefusedInFlight::Reason::kNotDue;
    return std::optional<RefusedInFlight>(std::move(refused));
  }
  if (!over) {
    return Internal(FileName() + ": " + std::string(what) + ": recipient " + std::to_string(entry.recipient_id) +
                    " is due but was not updated");
  }
  refused.reason = RefusedInFlight::Reason::kLimit;
  refused.retry_at = over->retry_at;
  refused.limit = over->limit;
  if (over_destination) refused.destination = entry.destination;
  return std::optional<RefusedInFlight>(std::move(refused));
}

Status SqliteStore::ReadSendCounts(std::string_view account, CountLevel level, std::int64_t first,
                                   std::vector<BucketCount>& out) {
  Result<ScopedStatement> query =
      connection_->Cached(kReadSendCountsSql[static_cast<std::size_t>(level)], "checking sending limits");
  if (!query.ok()) return query.status();
  (*query)->BindText(1, account);
  (*query)->BindInt(2, first);
  while (true) {
    Result<bool> row = (*query)->Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
    const std::int64_t messages = (*query)->ColumnInt(1);
    if (messages < 0) {
      return Damaged(FileName(), "send counter of account " + Quote(account) + " is negative");
    }
    out.push_back(BucketCount{(*query)->ColumnInt(0), static_cast<std::uint64_t>(messages)});
  }
}

Status SqliteStore::AddSendCounts(const std::string& account, std::uint64_t messages, TimePoint at) {
  for (const CountLevel level : store_internal::kCountLevels) {
    Result<ScopedStatement> add =
        connection_->Cached(kAddSendCountsSql[static_cast<std::size_t>(level)], "counting sent messages");
    if (!add.ok()) return add.status();
    (*add)->BindText(1, account);
    (*add)->BindInt(2, store_internal::BucketOf(level, at));
    (*add)->BindInt(3, static_cast<std::int64_t>(messages));
    HERALD_RETURN_IF_ERROR((*add)->Run());
  }
  return Status::Ok();
}

Result<ApplyReport> SqliteStore::Apply(const StoreBatch& batch, TimePoint now) {
  ApplyReport report;
  if (batch.empty()) return report;
  for (const AttemptResult& result : batch.results) {
    if (!IsValidStatus(result.status) || !IsResultStatus(result.status)) {
      return InvalidArgument("recipient " + std::to_string(result.recipient_id) + ": " +
                             std::string(RecipientStatusName(result.status)) + " is not the result of an attempt");
    }
    if (result.postponed && result.status != RecipientStatus::kDeferred) {
      return InvalidArgument("recipient " + std::to_string(result.recipient_id) + ": only a deferral can be postponed");
    }
    if (result.withdrawn && (result.status != RecipientStatus::kDeferred || result.postponed)) {
      return InvalidArgument("recipient " + std::to_string(result.recipient_id) +
                             ": only a deferral of a recipient in flight can withdraw its attempt");
    }
    if (result.status == RecipientStatus::kDeferred && !result.next_attempt_at) {
      return InvalidArgument("recipient " + std::to_string(result.recipient_id) +
                             ": deferred without a next attempt time");
    }
  }
  for (const InFlight& entry : batch.in_flight) {
    std::vector<SendingLimit> every = entry.limits;
    every.insert(every.end(), entry.destination_limits.begin(), entry.destination_limits.end());
    for (const SendingLimit& limit : every) {
      const auto window = static_cast<int>(limit.window);
      if (window < static_cast<int>(LimitWindow::kMinute) || window > static_cast<int>(LimitWindow::kMonth)) {
        return InvalidArgument("recipient " + std::to_string(entry.recipient_id) + ": sending limit " +
                               std::to_string(limit.count) + " of account " + Quote(entry.account) +
                               " has an unknown window (" + std::to_string(window) + ")");
      }
      if (limit.count == 0) {
        return InvalidArgument("recipient " + std::to_string(entry.recipient_id) + ": sending limit " +
                               limit.ToString() + " of account " + Quote(entry.account) + " allows no message");
      }
    }
  }

  const std::int64_t now_ms = ToUnixMillis(now);
  // BEGIN IMMEDIATE: the write lock is held from here, so the counters read below cannot change
  // before this transaction's own increments are committed.
  Result<Transaction> transaction = Transaction::Begin(*connection_, "applying a batch");
  if (!transaction.ok()) return transaction.status();
  // Results first: a recipient may be put back (or deferred earlier) and put in flight again in
  // one batch, never the other way round (in flight must be written before the attempt).
  for (const AttemptResult& result : batch.results) {
    HERALD_RETURN_IF_ERROR(ApplyResult(result, now_ms));
  }
  LimitCheck limits(now, [this](std::string_view account, CountLevel level, std::int64_t first,
                                std::vector<BucketCount>& out) { return ReadSendCounts(account, level, first, out); });
  for (const InFlight& entry : batch.in_flight) {
    Result<std::optional<RefusedInFlight>> refused = ApplyInFlight(entry, now_ms, limits);
    if (!refused.ok()) return refused.status();
    if (*refused) report.refused.push_back(std::move(**refused));
  }
  Status counted = Status::Ok();
  limits.ForEachCounted([&](const std::string& account, std::uint64_t messages) {
    if (counted.ok()) counted = AddSendCounts(account, messages, now);
  });
  HERALD_RETURN_IF_ERROR(counted);
  HERALD_RETURN_IF_ERROR(transaction->Commit());
  return report;
}

Result<std::size_t> SqliteStore::RecoverInFlight(std::string_view task_id) {
  const std::string what = "recovering in-flight recipients of task " + Quote(task_id);
  Result<std::int64_t> key = TaskKey(task_id, what);
  if (!key.ok()) return key.status();
  Result<Transaction> transaction = Transaction::Begin(*connection_, what);
  if (!transaction.ok()) return transaction.status();
  Result<ScopedStatement> update = connection_->Cached(
      "UPDATE recipients SET status = 0, possible_duplicate = 1, updated_at = ?2 WHERE task = ?1 AND status = 1",
      what);
  if (!update.ok()) return update.status();
  (*update)->BindInt(1, *key);
  (*update)->BindInt(2, ToUnixMillis(Now()));
  HERALD_RETURN_IF_ERROR((*update)->Run());
  const auto changed = static_cast<std::size_t>(connection_->Changes());
  HERALD_RETURN_IF_ERROR(transaction->Commit());
  return changed;
}

Result<std::optional<TimePoint>> SqliteStore::NextAttemptAt(std::string_view task_id) {
  const std::string what = "finding the next attempt of task " + Quote(task_id);
  Result<std::int64_t> key = TaskKey(task_id, what);
  if (!key.ok()) return key.status();
  Result<ScopedStatement> query =
      connection_->Cached("SELECT min(next_attempt_at) FROM recipients WHERE task = ?1 AND status = 4", what);
  if (!query.ok()) return query.status();
  (*query)->BindInt(1, *key);
  Result<bool> row = (*query)->Step();
  if (!row.ok()) return row.status();
  if (!*row || (*query)->ColumnIsNull(0)) return std::optional<TimePoint>();
  return std::optional<TimePoint>(FromUnixMillis((*query)->ColumnInt(0)));
}

// --- bulk changes

Result<std::size_t> SqliteStore::ChangeStatus(std::string_view task_id, std::span<const RecipientStatus> from,
                                              RecipientStatus to) {
  if (!IsValidStatus(to) || to == RecipientStatus::kInFlight || to == RecipientStatus::kDeferred) {
    // In flight only through Apply (it counts attempts); deferred needs a next attempt time.
    return InvalidArgument("recipients cannot be set to " + std::string(RecipientStatusName(to)) +
                           " in bulk");
  }
  if (to == RecipientStatus::kRejected) {
    return InvalidArgument("recipients cannot be set to rejected in bulk: only an import rejects a row");
  }
  for (const RecipientStatus status : from) {
    if (!IsValidStatus(status)) return InvalidArgument("unknown recipient status in a bulk change");
    if (status == RecipientStatus::kRejected) {
      return InvalidArgument("rejected recipients cannot be changed in bulk: a rejected row is never sent");
    }
  }
  const std::string what = "changing recipients of task " + Quote(task_id) + " to " +
                           std::string(RecipientStatusName(to));
  Result<std::int64_t> key = TaskKey(task_id, what);
  if (!key.ok()) return key.status();
  Result<Transaction> transaction = Transaction::Begin(*connection_, what);
  if (!transaction.ok()) return transaction.status();
  Result<ScopedStatement> update = connection_->Cached(
      "UPDATE recipients SET status = ?3, next_attempt_at = NULL, updated_at = ?4 WHERE task = ?1 AND status = ?2",
      what);
  if (!update.ok()) return update.status();
  std::array<bool, kRecipientStatusCount> done{};
  std::size_t changed = 0;
  const std::int64_t now_ms = ToUnixMillis(Now());
  for (const RecipientStatus status : from) {
    const auto index = static_cast<std::size_t>(status);
    if (status == to || done[index]) continue;
    done[index] = true;
    (*update)->BindInt(1, *key);
    (*update)->BindInt(2, static_cast<std::int64_t>(status));
    (*update)->BindInt(3, static_cast<std::int64_t>(to));
    (*update)->BindInt(4, now_ms);
    HERALD_RETURN_IF_ERROR((*update)->Run());
    changed += static_cast<std::size_t>(connection_->Changes());
  }
  HERALD_RETURN_IF_ERROR(transaction->Commit());
  return changed;
}

// --- reporting

Result<StatusCounts> SqliteStore::CountByStatus(std::string_view task_id) {
  const std::string what = "counting recipients of task " + Quote(task_id);
  Result<std::int64_t> key = TaskKey(task_id, what);
  if (!key.ok()) return key.status();
  StatusCounts counts;
  {
    Result<ScopedStatement> query =
        connection_->Cached("SELECT status, count(*) FROM recipients WHERE task = ?1 GROUP BY status", what);
    if (!query.ok()) return query.status();
    (*query)->BindInt(1, *key);
    while (true) {
      Result<bool> row = (*query)->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const std::int64_t status = (*query)->ColumnInt(0);
      if (status < 0 || status >= static_cast<std::int64_t>(kRecipientStatusCount)) {
        return Damaged(FileName(), "recipients of task " + Quote(task_id) + " have unknown status " +
                                       std::to_string(status));
      }
      counts.by_status[static_cast<std::size_t>(status)] = static_cast<std::uint64_t>((*query)->ColumnInt(1));
    }
  }
  Result<ScopedStatement> query = connection_->Cached(
      "SELECT count(*) FROM recipients WHERE task = ?1 AND possible_duplicate = 1", what);
  if (!query.ok()) return query.status();
  (*query)->BindInt(1, *key);
  Result<bool> row = (*query)->Step();
  if (!row.ok()) return row.status();
  if (*row) counts.possible_duplicates = static_cast<std::uint64_t>((*query)->ColumnInt(0));
  return counts;
}

Status SqliteStore::ForEachRecipient(std::string_view task_id,
                                     const std::function<Status(const RecipientRecord&)>& visit) {
  const std::string what = "reading recipients of task " + Quote(task_id);
  Result<std::int64_t> key = TaskKey(task_id, what);
  if (!key.ok()) return key.status();
  std::vector<RecipientRecord> chunk;
  std::int64_t after_id = 0;
  while (true) {
    chunk.clear();
    HERALD_RETURN_IF_ERROR(ReadRecipients(kExportSql, *key, after_id, kExportChunkRows, std::nullopt, what, chunk));
    // The statement is reset here, so `visit` runs with no read transaction open.
    for (const RecipientRecord& recipient : chunk) {
      HERALD_RETURN_IF_ERROR(visit(recipient));
    }
    if (chunk.size() < kExportChunkRows) return Status::Ok();
    after_id = chunk.back().id;
  }
}

// --- sending limits

Result<std::uint64_t> SqliteStore::CountSends(std::string_view account, TimePoint from, TimePoint until) {
  if (until <= from) return std::uint64_t{0};
  // Counted per minute: every minute that overlaps [from, until) counts whole, so a window that
  // does not start on a minute may count up to a minute more than was sent in it, never less.
  const std::int64_t first = FloorDiv(ToUnixMillis(from), kMillisPerMinute);
  const std::int64_t end = CeilDiv(ToUnixMillis(until), kMillisPerMinute);
  Result<ScopedStatement> query = connection_->Cached(
      "SELECT coalesce(sum(messages), 0) FROM send_counts WHERE account = ?1 AND minute >= ?2 AND minute < ?3",
      "counting sent messages");
  if (!query.ok()) return query.status();
  (*query)->BindText(1, account);
  (*query)->BindInt(2, first);
  (*query)->BindInt(3, end);
  Result<bool> row = (*query)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::uint64_t{0};
  return static_cast<std::uint64_t>((*query)->ColumnInt(0));
}

// --- destination backoff

Result<std::vector<DestinationBackoff>> SqliteStore::DestinationBackoffs(std::string_view account) {
  const std::string what = "reading the backed-off destinations of " +
                           (account.empty() ? std::string("every account") : "account " + Quote(account));
  Result<ScopedStatement> query = connection_->Cached(
      "SELECT destination, failures, retry_at, last_code, last_enhanced, last_text, account FROM destination_backoff "
      "WHERE ?1 = '' OR account = ?1 ORDER BY account, destination",
      what);
  if (!query.ok()) return query.status();
  (*query)->BindText(1, account);
  std::vector<DestinationBackoff> backoffs;
  while (true) {
    Result<bool> row = (*query)->Step();
    if (!row.ok()) return row.status();
    if (!*row) return backoffs;
    DestinationBackoff backoff;
    backoff.account = (*query)->ColumnText(6);
    backoff.destination = (*query)->ColumnText(0);
    backoff.failures = static_cast<int>((*query)->ColumnInt(1));
    backoff.retry_at = FromUnixMillis((*query)->ColumnInt(2));
    backoff.error.reply_code = static_cast<int>((*query)->ColumnInt(3));
    backoff.error.enhanced_status = (*query)->ColumnText(4);
    backoff.error.text = (*query)->ColumnText(5);
    if (backoff.failures < 1) {
      return Damaged(FileName(), "destination " + Quote(backoff.destination) + " of account " + Quote(backoff.account) +
                                     " has " + std::to_string(backoff.failures) + " failures");
    }
    backoffs.push_back(std::move(backoff));
  }
}

Status SqliteStore::SetDestinationBackoff(const DestinationBackoff& backoff) {
  if (backoff.failures < 1) {
    return InvalidArgument("destination " + Quote(backoff.destination) + ": a backoff needs at least one failure");
  }
  Result<ScopedStatement> insert = connection_->Cached(
      "INSERT OR REPLACE INTO destination_backoff "
      "(account, destination, failures, retry_at, last_code, last_enhanced, last_text) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
      "recording that destination " + Quote(backoff.destination) + " failed");
  if (!insert.ok()) return insert.status();
  (*insert)->BindText(1, backoff.account);
  (*insert)->BindText(2, backoff.destination);
  (*insert)->BindInt(3, backoff.failures);
  (*insert)->BindInt(4, ToUnixMillis(backoff.retry_at));
  (*insert)->BindInt(5, backoff.error.reply_code);
  (*insert)->BindText(6, backoff.error.enhanced_status);
  (*insert)->BindText(7, backoff.error.text);
  return (*insert)->Run();
}

Status SqliteStore::ClearDestinationBackoff(std::string_view account, std::string_view destination) {
  Result<ScopedStatement> remove = connection_->Cached(
      "DELETE FROM destination_backoff WHERE account = ?1 AND destination = ?2",
      "forgetting the failures of destination " + Quote(destination));
  if (!remove.ok()) return remove.status();
  (*remove)->BindText(1, account);
  (*remove)->BindText(2, destination);
  return (*remove)->Run();
}

}  // namespace herald
