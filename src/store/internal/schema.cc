#include "store/internal/schema.h"

#include <array>
#include <memory>
#include <cassert>
#include <string>
#include <string_view>

namespace herald::store_internal {
namespace {

// Never edit a migration that has shipped: add a new one.
constexpr std::array<std::string_view, 4> kMigrations = {
    // 0 -> 1: tasks, recipients, send counters.
    //
    // Tasks get an integer key that recipients refer to, so the recipient indexes carry 8 bytes
    // per row rather than the task's text id. `columns` and `fields` use field_codec.h.
    // Statuses are RecipientStatus values; timestamps are Unix milliseconds.
    //
    // One recipient per (task, dedup_key): RecipientImport, the only writer of new recipients,
    // checks and inserts in one statement inside its write transaction, through an index on
    // DedupHash(dedup_key) (dedup_hash.h) and a comparison of the key itself. A UNIQUE index on
    // the text key would be 2-3 times bigger, and since keys arrive in random order every import
    // batch rewrites most of its pages: measured on 1,000,000 recipients with a 16 MiB page
    // cache, that import took 2-3 times as long.
    R"sql(
CREATE TABLE tasks (
  key INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  columns BLOB NOT NULL,
  submitted_at INTEGER NOT NULL,
  source_digest TEXT NOT NULL,
  nonce TEXT NOT NULL
);

CREATE TABLE recipients (
  id INTEGER PRIMARY KEY,
  task INTEGER NOT NULL REFERENCES tasks(key),
  dedup_key TEXT NOT NULL,
  dedup_hash INTEGER NOT NULL,
  address TEXT NOT NULL,
  fields BLOB NOT NULL,
  line INTEGER NOT NULL,
  status INTEGER NOT NULL CHECK (status BETWEEN 0 AND 6),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  last_code INTEGER NOT NULL DEFAULT 0,
  last_enhanced TEXT NOT NULL DEFAULT '',
  last_text TEXT NOT NULL DEFAULT '',
  account TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL,
  possible_duplicate INTEGER NOT NULL DEFAULT 0
);

-- Import: finding a task's recipient by dedup key.
CREATE INDEX recipients_dedup ON recipients (task, dedup_hash);
CREATE INDEX recipients_by_status ON recipients (task, status);
-- NextAttemptAt.
CREATE INDEX recipients_deferred ON recipients (task, next_attempt_at) WHERE status = 4;
-- CountByStatus's possible duplicates (rare rows, so a small index).
CREATE INDEX recipients_possible_duplicates ON recipients (task) WHERE possible_duplicate = 1;

-- Messages sent per account and minute (Unix milliseconds / 60000), for the sending limits.
CREATE TABLE send_counts (
  account TEXT NOT NULL,
  minute INTEGER NOT NULL,
  messages INTEGER NOT NULL,
  PRIMARY KEY (account, minute)
) WITHOUT ROWID;
)sql",

    // 1 -> 2: coarser send counters, so that a sending limit is checked on at most a window's
    // worth of rows (send_limits.h): day and week windows on hours, month windows on days.
    // send_counts stays the finest level. Every message put in flight is added to the bucket of
    // its time on all three levels, in one transaction. An hour or a day of Unix time is a whole
    // number of minutes, so the existing minutes are summed into their hours and days (floor
    // division, also right before 1970 where SQLite's `/` would round towards zero).
    R"sql(
CREATE TABLE send_counts_hourly (
  account TEXT NOT NULL,
  hour INTEGER NOT NULL,
  messages INTEGER NOT NULL,
  PRIMARY KEY (account, hour)
) WITHOUT ROWID;

CREATE TABLE send_counts_daily (
  account TEXT NOT NULL,
  day INTEGER NOT NULL,
  messages INTEGER NOT NULL,
  PRIMARY KEY (account, day)
) WITHOUT ROWID;

INSERT INTO send_counts_hourly (account, hour, messages)
  SELECT account, (minute - ((minute % 60) + 60) % 60) / 60 AS h, sum(messages)
  FROM send_counts GROUP BY account, h;

INSERT INTO send_counts_daily (account, day, messages)
  SELECT account, (minute - ((minute % 1440) + 1440) % 1440) / 1440 AS d, sum(messages)
  FROM send_counts GROUP BY account, d;
)sql",

    // 2 -> 3: destinations of direct accounts that failed as a whole (no mail exchanger could
    // be used), so that later runs wait for them instead of trying each recipient (store.h,
    // "Destination backoff"). A row lives until the destination takes a connection again.
    R"sql(
CREATE TABLE destination_backoff (
  account TEXT NOT NULL,
  destination TEXT NOT NULL,
  failures INTEGER NOT NULL,
  retry_at INTEGER NOT NULL,
  last_code INTEGER NOT NULL,
  last_enhanced TEXT NOT NULL,
  last_text TEXT NOT NULL,
  PRIMARY KEY (account, destination)
) WITHOUT ROWID;
)sql",

    // 3 -> 4: rows of a recipient list that cannot be recipients are kept as recipients with
    // status 7 (rejected), so the recipients table is rebuilt for its CHECK (SQLite cannot alter
    // one): same columns, same ids, same indexes. Their dedup_key is '' (a real key never is),
    // so they never count as duplicates. (Copying the rows takes about 10 s per million
    // recipients, once; the old table's pages are reused.) And what identifies a task's mailing
    // (store.h, TaskRecord): the task file it last ran from, the fingerprint of its content, its
    // last run; empty for the tasks stored before, until their next run.
    R"sql(
CREATE TABLE recipients_v4 (
  id INTEGER PRIMARY KEY,
  task INTEGER NOT NULL REFERENCES tasks(key),
  dedup_key TEXT NOT NULL,
  dedup_hash INTEGER NOT NULL,
  address TEXT NOT NULL,
  fields BLOB NOT NULL,
  line INTEGER NOT NULL,
  status INTEGER NOT NULL CHECK (status BETWEEN 0 AND 7),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  last_code INTEGER NOT NULL DEFAULT 0,
  last_enhanced TEXT NOT NULL DEFAULT '',
  last_text TEXT NOT NULL DEFAULT '',
  account TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL,
  possible_duplicate INTEGER NOT NULL DEFAULT 0
);
INSERT INTO recipients_v4 (id, task, dedup_key, dedup_hash, address, fields, line, status, attempts, next_attempt_at,
                           last_code, last_enhanced, last_text, account, updated_at, possible_duplicate)
  SELECT id, task, dedup_key, dedup_hash, address, fields, line, status, attempts, next_attempt_at,
         last_code, last_enhanced, last_text, account, updated_at, possible_duplicate
  FROM recipients ORDER BY id;
DROP TABLE recipients;
ALTER TABLE recipients_v4 RENAME TO recipients;
CREATE INDEX recipients_dedup ON recipients (task, dedup_hash);
CREATE INDEX recipients_by_status ON recipients (task, status);
CREATE INDEX recipients_deferred ON recipients (task, next_attempt_at) WHERE status = 4;
CREATE INDEX recipients_possible_duplicates ON recipients (task) WHERE possible_duplicate = 1;

ALTER TABLE tasks ADD COLUMN task_file TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN last_run_at INTEGER;
)sql",
};

std::string FileName(const Connection& connection) { return "store file '" + connection.path() + "'"; }

// What identifies the file, read in one statement so that all of it comes from one snapshot: a
// process creating or migrating the store at the same moment is seen before or after, never half.
struct Identity {
  std::int64_t application_id = 0;
  std::int64_t version = 0;
  std::int64_t objects = 0;  // tables, indexes, ... in sqlite_master
};

Result<Identity> ReadIdentity(Connection& connection) {
  Result<std::unique_ptr<Statement>> query = connection.Prepare(
      "SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM pragma_user_version), "
      "(SELECT count(*) FROM sqlite_master)",
      "reading the store's kind and schema version");
  if (!query.ok()) return query.status();
  Result<bool> row = (*query)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Internal(FileName(connection) + ": reading the store's kind and schema version: no row");
  return Identity{(*query)->ColumnInt(0), (*query)->ColumnInt(1), (*query)->ColumnInt(2)};
}

Status CheckIdentity(Connection& connection, const Identity& identity) {
  const std::int64_t application_id = identity.application_id;
  const std::int64_t version = identity.version;
  if (application_id != 0 && application_id != kApplicationId) {
    return Status(StatusCode::kFailedPrecondition,
                  FileName(connection) + " is an SQLite database of another application (application_id " +
                      std::to_string(application_id) + "), not a herald store");
  }
  if (version > SchemaVersion()) {
    return Status(StatusCode::kFailedPrecondition,
                  FileName(connection) + " has schema version " + std::to_string(version) +
                      ", newer than version " + std::to_string(SchemaVersion()) +
                      " that this herald knows; it was written by a newer herald, use that one");
  }
  if (version < 0) {
    return Status(StatusCode::kFailedPrecondition,
                  FileName(connection) + " has an invalid schema version " + std::to_string(version));
  }
  if (version > 0 && application_id != kApplicationId) {
    return Status(StatusCode::kFailedPrecondition,
                  FileName(connection) + " is an SQLite database that is not a herald store (user_version " +
                      std::to_string(version) + " without herald's application_id)");
  }
  if (version == 0 && identity.objects != 0) {
    return Status(StatusCode::kFailedPrecondition,
                  FileName(connection) + " is an SQLite database that is not a herald store (it holds " +
                      std::to_string(identity.objects) + " tables or indexes of its own)");
  }
  return Status::Ok();
}

}  // namespace

int SchemaVersion() { return static_cast<int>(kMigrations.size()); }

std::string_view MigrationScript(int from_version) {
  assert(from_version >= 0 && from_version < SchemaVersion());
  return kMigrations[static_cast<std::size_t>(from_version)];
}

Result<int> CheckSchema(Connection& connection) {
  Result<Identity> identity = ReadIdentity(connection);
  if (!identity.ok()) return identity.status();
  HERALD_RETURN_IF_ERROR(CheckIdentity(connection, *identity));
  return static_cast<int>(identity->version);
}

Status MigrateSchema(Connection& connection) {
  // Reading the header first keeps the common case (an up-to-date store) free of the write lock.
  Result<int> version = CheckSchema(connection);
  if (!version.ok()) return version.status();
  if (*version == SchemaVersion()) return Status::Ok();

  Result<Transaction> transaction = Transaction::Begin(connection, "migrating the schema");
  if (!transaction.ok()) return transaction.status();
  // Another process may have migrated (or worse) between the check and the write lock.
  version = CheckSchema(connection);
  if (!version.ok()) return version.status();
  if (*version == SchemaVersion()) return Status::Ok();
  for (int v = *version; v < SchemaVersion(); ++v) {
    HERALD_RETURN_IF_ERROR(connection.Exec(kMigrations[static_cast<std::size_t>(v)],
                                           "migrating the schema to version " + std::to_string(v + 1)));
  }
  // PRAGMA takes no bound parameters; both values are integers of our own.
  HERALD_RETURN_IF_ERROR(connection.Exec("PRAGMA user_version = " + std::to_string(SchemaVersion()) +
                                             "; PRAGMA application_id = " + std::to_string(kApplicationId),
                                         "recording the schema version"));
  return transaction->Commit();
}

}  // namespace herald::store_internal
