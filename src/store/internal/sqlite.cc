#include "store/internal/sqlite.h"

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <thread>
#include <utility>

#include "core/units.h"
#include "store/internal/wal_batching_vfs.h"

namespace herald::store_internal {
namespace {

std::string Quoted(std::string_view path) {
  std::string out = "store file '";
  out += path;
  out += "'";
  return out;
}

int ClampInt(std::size_t size) {
  return size > static_cast<std::size_t>(std::numeric_limits<int>::max()) ? std::numeric_limits<int>::max()
                                                                          : static_cast<int>(size);
}

}  // namespace

// --- Statement

Statement::Statement(Connection* connection, sqlite3_stmt* stmt, std::string what)
    : connection_(connection), stmt_(stmt), what_(std::move(what)) {}

Statement::~Statement() { sqlite3_finalize(stmt_); }

void Statement::BindInt(int index, std::int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
}

void Statement::BindOptionalInt(int index, std::optional<std::int64_t> value) {
  const int rc = value ? sqlite3_bind_int64(stmt_, index, *value) : sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
}

void Statement::BindText(int index, std::string_view value) {
  // Sizes over INT_MAX are beyond SQLite's limits anyway; clamping makes the bind fail with
  // SQLITE_TOOBIG instead of wrapping around.
  const int rc = value.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())
                     ? SQLITE_TOOBIG
                     : sqlite3_bind_text(stmt_, index, value.data(), ClampInt(value.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
}

void Statement::BindBlob(int index, std::string_view value) {
  // A zero-length blob bound with a null pointer would be stored as NULL: give it a valid pointer.
  static const char kEmpty = 0;
  const char* data = value.empty() ? &kEmpty : value.data();
  const int rc = value.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())
                     ? SQLITE_TOOBIG
                     : sqlite3_bind_blob(stmt_, index, data, ClampInt(value.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
}

Result<bool> Statement::Step() {
  if (bind_error_ != 0) {
    const int rc = std::exchange(bind_error_, 0);
    return connection_->Error(rc, what_);
  }
  connection_->StartStatement();
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Status status = connection_->Error(rc, what_);
  sqlite3_reset(stmt_);
  return status;
}

Status Statement::Run() {
  Status status;
  while (true) {
    Result<bool> row = Step();
    if (!row.ok()) {
      status = row.status();
      break;
    }
    if (!*row) break;
  }
  sqlite3_reset(stmt_);
  return status;
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = 0;
}

bool Statement::ColumnIsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

std::int64_t Statement::ColumnInt(int column) const { return sqlite3_column_int64(stmt_, column); }

std::optional<std::int64_t> Statement::ColumnOptionalInt(int column) const {
  if (ColumnIsNull(column)) return std::nullopt;
  return ColumnInt(column);
}

std::string_view Statement::ColumnText(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (text == nullptr) return {};
  return std::string_view(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::string_view Statement::ColumnBlob(int column) const {
  const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  if (data == nullptr) return {};
  return std::string_view(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

ScopedStatement::~ScopedStatement() {
  if (statement_ != nullptr) {
    statement_->Reset();
    statement_->in_use_ = false;
  }
}

// --- Connection

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path, Duration busy_timeout, bool create) {
  if (path.empty()) return InvalidArgument("the store file name is empty");
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (create) flags |= SQLITE_OPEN_CREATE;
#ifdef SQLITE_OPEN_EXRESCODE
  flags |= SQLITE_OPEN_EXRESCODE;
#endif
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, WalBatchingVfs());
  if (rc != SQLITE_OK) {
    std::string message = "cannot open " + Quoted(path) + ": ";
    message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return (rc & 0xff) == SQLITE_NOMEM ? Status(StatusCode::kResourceExhausted, std::move(message))
                                       : IoError(std::move(message));
  }
  sqlite3_extended_result_codes(db, 1);
  std::unique_ptr<Connection> connection(new Connection(db, path, busy_timeout));
  sqlite3_busy_handler(db, &Connection::OnBusy, connection.get());
  return connection;
}

int Connection::OnBusy(void* connection, int count) {
  // SQLite's own busy timeout sleeps up to 100 ms between tries. A process that writes in a loop
  // (an import commits a batch and begins the next at once) leaves the lock free only for short
  // moments, which such coarse retries keep missing until they time out; trying every
  // millisecond catches them (RecipientImport also pauses between batches for this).
  auto* self = static_cast<Connection*>(connection);
  const auto now = std::chrono::steady_clock::now();
  if (count == 0) self->busy_since_ = now;
  self->busy_waited_ = std::chrono::duration_cast<Duration>(now - self->busy_since_);
  if (now - self->busy_since_ >= self->busy_timeout_) return 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return 1;
}

Connection::Connection(sqlite3* db, std::string path, Duration busy_timeout)
    : db_(db), path_(std::move(path)), busy_timeout_(busy_timeout) {}

Connection::~Connection() {
  cache_.clear();  // statements are finalized before the connection closes
  if (InTransaction()) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close_v2(db_);
}

Status Connection::Exec(std::string_view sql, std::string_view what) {
  const std::string text(sql);
  StartStatement();
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  sqlite3_free(error);  // the same message is available from sqlite3_errmsg()
  if (rc != SQLITE_OK) return Error(rc, what);
  return Status::Ok();
}

Result<std::int64_t> Connection::QueryInt(std::string_view sql, std::string_view what) {
  Result<std::unique_ptr<Statement>> statement = Prepare(sql, what);
  if (!statement.ok()) return statement.status();
  Result<bool> row = (*statement)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Internal(Quoted(path_) + ": " + std::string(what) + ": the query returned no row");
  return (*statement)->ColumnInt(0);
}

Result<std::string> Connection::QueryText(std::string_view sql, std::string_view what) {
  Result<std::unique_ptr<Statement>> statement = Prepare(sql, what);
  if (!statement.ok()) return statement.status();
  Result<bool> row = (*statement)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Internal(Quoted(path_) + ": " + std::string(what) + ": the query returned no row");
  return std::string((*statement)->ColumnText(0));
}

Result<std::unique_ptr<Statement>> Connection::Prepare(std::string_view sql, std::string_view what) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), ClampInt(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return Error(rc, what);
  }
  if (stmt == nullptr) return Internal(Quoted(path_) + ": " + std::string(what) + ": empty SQL statement");
  return std::unique_ptr<Statement>(new Statement(this, stmt, std::string(what)));
}

Result<ScopedStatement> Connection::Cached(std::string_view sql, std::string_view what) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    Result<std::unique_ptr<Statement>> statement = Prepare(sql, what);
    if (!statement.ok()) return statement.status();
    it = cache_.emplace(std::string(sql), std::move(*statement)).first;
  }
  Statement* statement = it->second.get();
  if (statement->in_use_) {
    return Internal(Quoted(path_) + ": " + std::string(what) + ": statement used again while still in use");
  }
  statement->in_use_ = true;
  statement->what_.assign(what);
  return ScopedStatement(statement);
}

std::int64_t Connection::Changes() const {
#if SQLITE_VERSION_NUMBER >= 3037000
  return sqlite3_changes64(db_);
#else
  return sqlite3_changes(db_);
#endif
}

bool Connection::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

Status Connection::Error(int rc, std::string_view what) const {
  const char* detail = sqlite3_extended_errcode(db_) == rc ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  std::string context = Quoted(path_);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Busy(what, busy_waited_, detail);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
      return Status(StatusCode::kFailedPrecondition,
                    context + " is damaged or is not a herald store (" + detail + ") while " + std::string(what));
    default:
      break;
  }
  std::string message = context + ": " + std::string(what) + ": " + detail;
  // SQLite's "disk I/O error" hides the cause; the system's error says it (a full disk shows as
  // an I/O error when the shared-memory file cannot grow).
  const int system_error = sqlite3_system_errno(db_);
  const int primary = rc & 0xff;
  if (system_error != 0 && (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_FULL)) {
    message += std::string(" (") + std::strerror(system_error) + ")";
    if (system_error == ENOSPC || system_error == EDQUOT) {
      return Status(StatusCode::kResourceExhausted, std::move(message));
    }
  }
  switch (primary) {
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return Status(StatusCode::kResourceExhausted, std::move(message));
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
      return IoError(std::move(message));
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return Status(StatusCode::kPermissionDenied, std::move(message));
    case SQLITE_TOOBIG:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
      return InvalidArgument(std::move(message));
    case SQLITE_INTERRUPT:
      return Status(StatusCode::kCancelled, std::move(message));
    default:
      return Internal(std::move(message));
  }
}

Status Connection::Busy(std::string_view what, Duration waited, std::string_view detail) const {
  std::string message = Quoted(path_) + " is in use by another process (";
  message += waited >= std::chrono::milliseconds(1) ? "still locked after " + FormatDuration(waited) : "locked";
  message += ") while " + std::string(what);
  if (!detail.empty()) message += ": " + std::string(detail);
  return Status(StatusCode::kUnavailable, std::move(message));
}

Status Connection::RetryWhileBusy(std::string_view what, const std::function<Status()>& step) {
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    Status status = step();
    if (status.code() != StatusCode::kUnavailable) return status;
    const auto waited = std::chrono::steady_clock::now() - start;
    if (waited >= busy_timeout_) return Busy(what, std::chrono::duration_cast<Duration>(waited), "");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// --- Transaction

Result<Transaction> Transaction::Begin(Connection& connection, std::string_view what) {
  if (connection.InTransaction()) {
    return Status(StatusCode::kFailedPrecondition,
                  "store file '" + connection.path() + "': " + std::string(what) +
                      ": a recipient import on this store object is unfinished; finish it first");
  }
  Result<ScopedStatement> begin = connection.Cached("BEGIN IMMEDIATE", what);
  if (!begin.ok()) return begin.status();
  HERALD_RETURN_IF_ERROR((*begin)->Run());
  return Transaction(&connection, std::string(what));
}

Transaction::Transaction(Transaction&& other) noexcept
    : connection_(std::exchange(other.connection_, nullptr)), what_(std::move(other.what_)) {}

Transaction::~Transaction() {
  // Some errors (disk full, I/O) make SQLite roll back by itself; only roll back what is still open.
  if (connection_ != nullptr && connection_->InTransaction()) {
    // If even ROLLBACK fails the connection is unusable and the next call reports it.
    static_cast<void>(connection_->Exec("ROLLBACK", what_));
  }
}

Status Transaction::Commit() {
  if (connection_ == nullptr) return Internal("committing a transaction that is not open");
  Result<ScopedStatement> commit = connection_->Cached("COMMIT", what_);
  if (!commit.ok()) return commit.status();
  Status status = (*commit)->Run();
  if (status.ok()) connection_ = nullptr;  // on failure the destructor rolls back what is left
  return status;
}

}  // namespace herald::store_internal
