// The SQLite store's schema and its migrations. The version lives in PRAGMA user_version and the
// file is marked as herald's with PRAGMA application_id; migration i takes version i to i + 1, so a
// store of any older version (0 = new, empty file) is brought up to date on open.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"
#include "store/internal/sqlite.h"

namespace herald::store_internal {

// The schema version this build writes; stores of higher versions are refused.
int SchemaVersion();

// The SQL that takes a store from `from_version` to from_version + 1; 0 <= from_version <
// SchemaVersion(). For tests that build a store file of an older version.
std::string_view MigrationScript(int from_version);

// "HRLD": PRAGMA application_id of a herald store.
inline constexpr std::int32_t kApplicationId = 0x48524C44;

// Checks, without writing anything, that the file is a herald store of a version this build knows
// or an empty database, and returns its schema version (0: empty). Everything is read in one
// statement, so a process creating or migrating the store at the same moment is seen before or
// after, never halfway. Run it before anything that changes the file (such as switching it to WAL).
// Errors: kFailedPrecondition for a store from a newer herald (naming the file and both versions)
// or an SQLite database that is not a herald store; SQLite errors as Connection::Error (a file
// that is not an SQLite database is reported here).
Result<int> CheckSchema(Connection& connection);

// Migrates a store that passed CheckSchema() to SchemaVersion() in one transaction, safe against
// other processes opening the same file at the same time. Takes the write lock only when there is
// something to migrate.
Status MigrateSchema(Connection& connection);

}  // namespace herald::store_internal
