// RAII wrappers over the sqlite3 C API, private to the store module: a connection that turns every
// SQLite error into a Status naming the store file and what was being done, prepared statements
// (owned, or cached per connection and reset when a use ends), and BEGIN IMMEDIATE transactions
// that roll back unless committed. Nothing here throws or aborts.
//
// Threading: like the Store that owns them, used by one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace herald::store_internal {

class Connection;

// One prepared statement. Parameters are 1-based, columns 0-based (as in SQLite).
class Statement {
 public:
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // A failed bind (e.g. a value over SQLite's size limit) is reported by the next Step()/Run().
  void BindInt(int index, std::int64_t value);
  void BindOptionalInt(int index, std::optional<std::int64_t> value);
  void BindText(int index, std::string_view value);
  void BindBlob(int index, std::string_view value);

  // Steps once: true when a row is available, false when the statement is done.
  Result<bool> Step();
  // Steps to completion, ignoring rows, then resets (bindings are kept).
  Status Run();
  // Makes the statement ready to run again and releases what it holds (read snapshot, locks).
  void Reset();

  bool ColumnIsNull(int column) const;
  std::int64_t ColumnInt(int column) const;
  std::optional<std::int64_t> ColumnOptionalInt(int column) const;
  // Valid until the next Step(), Reset() or column access of another type on this column.
  std::string_view ColumnText(int column) const;
  std::string_view ColumnBlob(int column) const;

 private:
  friend class Connection;
  friend class ScopedStatement;
  Statement(Connection* connection, sqlite3_stmt* stmt, std::string what);

  Connection* connection_;
  sqlite3_stmt* stmt_;
  std::string what_;  // what the statement does, for error messages ("importing recipients")
  int bind_error_ = 0;
  bool in_use_ = false;  // leased out by Connection::Cached()
};

// A lease on a cached statement: resets it when the lease ends, so no statement keeps a read
// snapshot open (which would stop WAL checkpoints) between uses.
class ScopedStatement {
 public:
  explicit ScopedStatement(Statement* statement) : statement_(statement) {}
  ScopedStatement(ScopedStatement&& other) noexcept : statement_(other.statement_) { other.statement_ = nullptr; }
  ScopedStatement& operator=(ScopedStatement&&) = delete;
  ~ScopedStatement();

  Statement* operator->() const { return statement_; }
  Statement& operator*() const { return *statement_; }

 private:
  Statement* statement_;
};

class Connection {
 public:
  // Opens the SQLite database at `path` — creating the file when `create` is set and it does not
  // exist; ":memory:" gives a private in-memory database. When another connection holds the
  // lock, statements retry for up to `busy_timeout`; the caller sets pragmas and the schema.
  // Errors: kIo when the file cannot be opened or created (or, without `create`, does not exist).
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, Duration busy_timeout, bool create);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  const std::string& path() const { return path_; }

  // Runs SQL without results (one or more statements: pragmas, schema scripts).
  Status Exec(std::string_view sql, std::string_view what);
  // Runs a query whose first row's first column is wanted (e.g. "PRAGMA user_version").
  Result<std::int64_t> QueryInt(std::string_view sql, std::string_view what);
  Result<std::string> QueryText(std::string_view sql, std::string_view what);

  // A new statement owned by the caller; it must be destroyed before the connection.
  Result<std::unique_ptr<Statement>> Prepare(std::string_view sql, std::string_view what);
  // The statement for `sql`, prepared on first use and kept for the connection's life. The lease
  // must end before the same SQL is asked for again (kInternal otherwise).
  Result<ScopedStatement> Cached(std::string_view sql, std::string_view what);

  // Rows changed by the last completed INSERT, UPDATE or DELETE.
  std::int64_t Changes() const;
  // True inside an explicit transaction (BEGIN ... not yet committed or rolled back).
  bool InTransaction() const;

  // The Status for SQLite result code `rc` (not ok), with the file name, `what` and SQLite's
  // message. Busy/locked becomes kUnavailable saying another process holds the store, and how
  // long the statement waited for it.
  Status Error(int rc, std::string_view what) const;

  // Runs `step` again while it fails with kUnavailable, for up to the busy timeout in all: for
  // work where SQLite returns "busy" at once instead of waiting (its deadlock avoidance), such
  // as switching a file to WAL mode while another process does the same. The error, when the
  // time is up, says how long it waited in all.
  Status RetryWhileBusy(std::string_view what, const std::function<Status()>& step);

 private:
  friend class Statement;
  Connection(sqlite3* db, std::string path, Duration busy_timeout);
  // SQLite's busy handler: retries every millisecond until the busy timeout.
  static int OnBusy(void* connection, int count);
  // Forgets the wait of the previous statement (see busy_waited_).
  void StartStatement() { busy_waited_ = Duration(0); }
  Status Busy(std::string_view what, Duration waited, std::string_view detail) const;

  sqlite3* db_;
  std::string path_;
  Duration busy_timeout_;
  std::chrono::steady_clock::time_point busy_since_;
  Duration busy_waited_{0};  // how long the current statement has waited for a lock
  std::map<std::string, std::unique_ptr<Statement>, std::less<>> cache_;
};

// A write transaction, begun with BEGIN IMMEDIATE so the write lock is taken up front (waiting up
// to the busy timeout) instead of failing with SQLITE_BUSY_SNAPSHOT when a read turns into a write
// after another process has written. Rolled back on destruction unless committed.
class Transaction {
 public:
  // Errors: kFailedPrecondition when a transaction is already open on this connection (an
  // unfinished RecipientImport); kUnavailable when another process holds the write lock for
  // longer than the busy timeout.
  static Result<Transaction> Begin(Connection& connection, std::string_view what);

  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();

  Status Commit();

 private:
  Transaction(Connection* connection, std::string what) : connection_(connection), what_(std::move(what)) {}

  Connection* connection_;  // null once committed, rolled back or moved from
  std::string what_;
};

}  // namespace herald::store_internal
