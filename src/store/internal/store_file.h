// The store file's life before SQLite opens it: found, created whole, or refused when empty.
//
// A new store is never created in place. It is built — schema, herald's identity, WAL mode —
// under a temporary name in the store's folder ("herald.db.creating-PID-RANDOM") and linked to
// its name in one step (link(2), which fails when the name exists). No process ever sees a store
// half made, and when several create the same store at the same moment, the first link wins and
// every process uses that store; the others' files are removed. (A process killed while building
// leaves its temporary file behind, which nothing reads.)
//
// So herald never leaves a store file empty, and an empty (0-byte) file at a store's name was not
// made by herald or lost its content (a file system that lost its data in a crash, a truncation).
// It cannot be told apart from a new store, and taking it for one would send every recipient of
// every task it held again: it is refused, and the user decides (deletes it, or restores it).
//
// Threading: any thread; the functions share no state.
#pragma once

#include <string>

#include "core/clock.h"
#include "core/status.h"

namespace herald::store_internal {

// Makes sure `path` names a store file that can be opened:
//  - missing: with `create`, a new store is created as described above; without it, kNotFound
//    (saying that the store does not exist);
//  - empty (0 bytes): kFailedPrecondition, saying why herald does not take it for a new store
//    and what to do;
//  - anything else: left to SQLite and the schema checks.
// Errors: kIo (naming the file and the system's error) when the folder cannot be read or
// written; the errors of building the store (sqlite.h, schema.h). `busy_timeout` as Connection's.
Status PrepareStoreFile(const std::string& path, bool create, Duration busy_timeout);

}  // namespace herald::store_internal
