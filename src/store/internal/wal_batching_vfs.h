// A VFS over SQLite's default one that writes each transaction's WAL frames with one write
// instead of two per page. SQLite appends a WAL frame as two writes, its 24-byte header and
// then the page; a commit that changes six pages costs twelve pwrite() calls, the largest part
// of a small commit's cost where system calls are dear (virtual machines). This VFS keeps
// contiguous writes to a WAL file in a buffer and hands them to the file as one write:
//
//   - with the transaction's last frame: the page write that follows a commit frame's header
//     writes everything out within that call, so a failure (a full disk) fails the commit just
//     as it would without this VFS, and the frames are in the file before COMMIT returns (a
//     committed transaction survives the death of the process, as before);
//   - before any other operation on that WAL file (read, sync, truncate, size, close, ...), and
//     before a write that does not continue the buffer: the file sees the same writes in the
//     same order, only fewer of them;
//   - before the database file's shared-memory barriers and locks. SQLite makes frames visible
//     to other connections and processes only by writing the wal-index header in shared memory,
//     between barriers, under the WAL write lock: nothing can be pending by then (see the first
//     point), and this rule keeps "in the file before visible" true without relying on it;
//   - when the buffer would pass 64 KiB (a large transaction, an import batch).
//
// Everything else goes to the default VFS unchanged. Durability, locking and the file format
// are SQLite's own. A WAL file belongs to one connection (SQLite links it to its database file,
// sqlite3_database_file_object()), and a connection is used by one thread at a time.
//
// Measured with bench/smtp_bench (one commit per message at one connection): 8.6 pwrite() calls
// per message became 1.1, herald's CPU per message fell by about 16%.
#pragma once

namespace herald::store_internal {

// The VFS's name for sqlite3_open_v2(), registered (not as the default) on the first call.
// Thread-safe. Null when SQLite has no default VFS to build on (then open with the default).
const char* WalBatchingVfs();

}  // namespace herald::store_internal
