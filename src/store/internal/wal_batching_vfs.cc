#include "store/internal/wal_batching_vfs.h"

#include <sqlite3.h>

#include <cstddef>
#include <new>
#include <string>

namespace herald::store_internal {
namespace {

// A bigger transaction (an import batch) is written in pieces of at most this size: SQLite's
// unix VFS writes at most 128 KiB - 1 bytes per call (seekAndWrite masks the length).
constexpr std::size_t kMaxPending = 64 * 1024;
constexpr int kWalFrameHeaderBytes = 24;

// The object SQLite allocates for each open file (szOsFile bytes): our part, then the default
// VFS's file object. Only database files and their WAL files are wrapped; every other file
// (temporary files, rollback journals) is the default VFS's object as it is.
struct File {
  sqlite3_file base;  // pMethods: kDatabaseMethods or kWalMethods
  sqlite3_file* real;
  File* database;     // a WAL file's database file (null once that is closed)
  File* wal;          // a database file's open WAL file, if any
  std::string* pending;  // WAL file: writes not yet handed on, contiguous from pending_offset
  sqlite3_int64 pending_offset;
  bool commit_frame;     // WAL file: the last write was the header of a transaction's last frame
};

sqlite3_vfs* g_default = nullptr;
sqlite3_vfs g_vfs;

File* Self(sqlite3_file* file) { return reinterpret_cast<File*>(file); }

// Hands the buffered writes of a WAL file on, as one write.
int WriteOut(File* wal) {
  if (wal == nullptr || wal->pending == nullptr || wal->pending->empty()) return SQLITE_OK;
  const int rc = wal->real->pMethods->xWrite(wal->real, wal->pending->data(), static_cast<int>(wal->pending->size()),
                                             wal->pending_offset);
  wal->pending->clear();
  return rc;
}

// Before an operation on a database file: its WAL file's writes are in the file.
int WriteOutWal(sqlite3_file* database) { return WriteOut(Self(database)->wal); }

// --- WAL files

int WalClose(sqlite3_file* file) {
  File* self = Self(file);
  const int written = WriteOut(self);
  if (self->database != nullptr) self->database->wal = nullptr;
  delete self->pending;
  const int rc = self->real->pMethods->xClose(self->real);
  return written != SQLITE_OK ? written : rc;
}

int WalRead(sqlite3_file* file, void* buffer, int amount, sqlite3_int64 offset) {
  if (int rc = WriteOut(Self(file)); rc != SQLITE_OK) return rc;
  return Self(file)->real->pMethods->xRead(Self(file)->real, buffer, amount, offset);
}

// Whether a write is the header of a commit frame, the last frame of a transaction: 24 bytes
// whose second big-endian word, the database size after the commit, is not 0 (it is 0 in every
// other frame). https://www.sqlite.org/fileformat.html#wal_file_format
bool IsCommitFrameHeader(const void* data, int amount) {
  if (amount != kWalFrameHeaderBytes) return false;
  const auto* bytes = static_cast<const unsigned char*>(data);
  return (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
}

int WalWrite(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  File* self = Self(file);
  std::string& pending = *self->pending;
  if (!pending.empty() && (offset != self->pending_offset + static_cast<sqlite3_int64>(pending.size()) ||
                           pending.size() + static_cast<std::size_t>(amount) > kMaxPending)) {
    if (int rc = WriteOut(self); rc != SQLITE_OK) return rc;
  }
  // SQLite writes a frame as its header, then its page. The page after a commit frame's header
  // ends the transaction's frames: they are written out with it, inside this call, so that a
  // failure (a full disk) fails the commit as it would without this VFS. (With synchronous=FULL
  // SQLite may split that page's write at a sync point; the sync that follows writes the rest.)
  const bool ends_transaction = self->commit_frame;
  self->commit_frame = IsCommitFrameHeader(data, amount);
  if (pending.empty()) self->pending_offset = offset;
  try {
    pending.append(static_cast<const char*>(data), static_cast<std::size_t>(amount));
  } catch (const std::bad_alloc&) {
    if (int rc = WriteOut(self); rc != SQLITE_OK) return rc;
    return self->real->pMethods->xWrite(self->real, data, amount, offset);
  }
  if (ends_transaction) return WriteOut(self);
  return SQLITE_OK;
}

int WalTruncate(sqlite3_file* file, sqlite3_int64 size) {
  if (int rc = WriteOut(Self(file)); rc != SQLITE_OK) return rc;
  return Self(file)->real->pMethods->xTruncate(Self(file)->real, size);
}

int WalSync(sqlite3_file* file, int flags) {
  if (int rc = WriteOut(Self(file)); rc != SQLITE_OK) return rc;
  return Self(file)->real->pMethods->xSync(Self(file)->real, flags);
}

int WalFileSize(sqlite3_file* file, sqlite3_int64* size) {
  if (int rc = WriteOut(Self(file)); rc != SQLITE_OK) return rc;
  return Self(file)->real->pMethods->xFileSize(Self(file)->real, size);
}

int WalLock(sqlite3_file* file, int level) {
  if (int rc = WriteOut(Self(file)); rc != SQLITE_OK) return rc;
  return Self(file)->real->pMethods->xLock(Self(file)->real, level);
}

int WalUnlock(sqlite3_file* file, int level) {
  if (int rc = WriteOut(Self(file)); rc != SQLITE_OK) return rc;
  return Self(file)->real->pMethods->xUnlock(Self(file)->real, level);
}

int WalCheckReservedLock(sqlite3_file* file, int* out) {
  return Self(file)->real->pMethods->xCheckReservedLock(Self(file)->real, out);
}

int WalFileControl(sqlite3_file* file, int op, void* arg) {
  if (int rc = WriteOut(Self(file)); rc != SQLITE_OK) return rc;
  return Self(file)->real->pMethods->xFileControl(Self(file)->real, op, arg);
}

int WalSectorSize(sqlite3_file* file) { return Self(file)->real->pMethods->xSectorSize(Self(file)->real); }

int WalDeviceCharacteristics(sqlite3_file* file) {
  return Self(file)->real->pMethods->xDeviceCharacteristics(Self(file)->real);
}

// Version 1: SQLite neither maps nor shares memory through a WAL file.
const sqlite3_io_methods kWalMethods = {
    1,           WalClose,      WalRead,       WalWrite,      WalTruncate,          WalSync,
    WalFileSize, WalLock,       WalUnlock,     WalCheckReservedLock, WalFileControl, WalSectorSize,
    WalDeviceCharacteristics,
    nullptr,     nullptr,       nullptr,       nullptr,       nullptr,              nullptr,
};

// --- database files: everything goes to the default VFS's file, after the WAL's writes.

const sqlite3_io_methods* RealMethods(sqlite3_file* file) { return Self(file)->real->pMethods; }

int DatabaseClose(sqlite3_file* file) {
  File* self = Self(file);
  const int written = WriteOutWal(file);
  if (self->wal != nullptr) self->wal->database = nullptr;
  const int rc = RealMethods(file)->xClose(self->real);
  return written != SQLITE_OK ? written : rc;
}

int DatabaseRead(sqlite3_file* file, void* buffer, int amount, sqlite3_int64 offset) {
  if (int rc = WriteOutWal(file); rc != SQLITE_OK) return rc;
  return RealMethods(file)->xRead(Self(file)->real, buffer, amount, offset);
}

int DatabaseWrite(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  if (int rc = WriteOutWal(file); rc != SQLITE_OK) return rc;
  return RealMethods(file)->xWrite(Self(file)->real, data, amount, offset);
}

int DatabaseTruncate(sqlite3_file* file, sqlite3_int64 size) {
  if (int rc = WriteOutWal(file); rc != SQLITE_OK) return rc;
  return RealMethods(file)->xTruncate(Self(file)->real, size);
}

int DatabaseSync(sqlite3_file* file, int flags) {
  if (int rc = WriteOutWal(file); rc != SQLITE_OK) return rc;
  return RealMethods(file)->xSync(Self(file)->real, flags);
}

int DatabaseFileSize(sqlite3_file* file, sqlite3_int64* size) {
  return RealMethods(file)->xFileSize(Self(file)->real, size);
}

int DatabaseLock(sqlite3_file* file, int level) {
  if (int rc = WriteOutWal(file); rc != SQLITE_OK) return rc;
  return RealMethods(file)->xLock(Self(file)->real, level);
}

int DatabaseUnlock(sqlite3_file* file, int level) {
  if (int rc = WriteOutWal(file); rc != SQLITE_OK) return rc;
  return RealMethods(file)->xUnlock(Self(file)->real, level);
}

int DatabaseCheckReservedLock(sqlite3_file* file, int* out) {
  return RealMethods(file)->xCheckReservedLock(Self(file)->real, out);
}

int DatabaseFileControl(sqlite3_file* file, int op, void* arg) {
  if (int rc = WriteOutWal(file); rc != SQLITE_OK) return rc;
  return RealMethods(file)->xFileControl(Self(file)->real, op, arg);
}

int DatabaseSectorSize(sqlite3_file* file) { return RealMethods(file)->xSectorSize(Self(file)->real); }

int DatabaseDeviceCharacteristics(sqlite3_file* file) {
  return RealMethods(file)->xDeviceCharacteristics(Self(file)->real);
}

int DatabaseShmMap(sqlite3_file* file, int page, int page_size, int extend, void volatile** out) {
  return RealMethods(file)->xShmMap(Self(file)->real, page, page_size, extend, out);
}

// The wal-index header is written between two barriers and locks are taken and released around
// every transaction: the WAL's frames reach the file before anyone can see them.
int DatabaseShmLock(sqlite3_file* file, int offset, int n, int flags) {
  if (int rc = WriteOutWal(file); rc != SQLITE_OK) return rc;
  return RealMethods(file)->xShmLock(Self(file)->real, offset, n, flags);
}

void DatabaseShmBarrier(sqlite3_file* file) {
  // Nothing is pending here in practice (a transaction's frames are written out with its last
  // one, see WalWrite); this keeps the rule "in the file before visible" without relying on it.
  (void)WriteOutWal(file);
  RealMethods(file)->xShmBarrier(Self(file)->real);
}

int DatabaseShmUnmap(sqlite3_file* file, int delete_flag) {
  if (int rc = WriteOutWal(file); rc != SQLITE_OK) return rc;
  return RealMethods(file)->xShmUnmap(Self(file)->real, delete_flag);
}

int DatabaseFetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  return RealMethods(file)->xFetch(Self(file)->real, offset, amount, out);
}

int DatabaseUnfetch(sqlite3_file* file, sqlite3_int64 offset, void* page) {
  return RealMethods(file)->xUnfetch(Self(file)->real, offset, page);
}

const sqlite3_io_methods kDatabaseMethods = {
    3,
    DatabaseClose,
    DatabaseRead,
    DatabaseWrite,
    DatabaseTruncate,
    DatabaseSync,
    DatabaseFileSize,
    DatabaseLock,
    DatabaseUnlock,
    DatabaseCheckReservedLock,
    DatabaseFileControl,
    DatabaseSectorSize,
    DatabaseDeviceCharacteristics,
    DatabaseShmMap,
    DatabaseShmLock,
    DatabaseShmBarrier,
    DatabaseShmUnmap,
    DatabaseFetch,
    DatabaseUnfetch,
};

// --- the VFS

sqlite3_file* RealFile(sqlite3_file* file) {
  auto* bytes = reinterpret_cast<unsigned char*>(file) + ((sizeof(File) + 7) & ~std::size_t{7});
  return reinterpret_cast<sqlite3_file*>(bytes);
}

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  const bool database = (flags & SQLITE_OPEN_MAIN_DB) != 0;
  const bool wal = (flags & SQLITE_OPEN_WAL) != 0;
  if (!database && !wal) return g_default->xOpen(g_default, name, file, flags, out_flags);

  File* self = Self(file);
  self->base.pMethods = nullptr;
  self->real = RealFile(file);
  self->database = nullptr;
  self->wal = nullptr;
  self->pending = nullptr;
  self->pending_offset = 0;
  self->commit_frame = false;
  if (wal) {
    self->pending = new (std::nothrow) std::string();
    if (self->pending == nullptr) return SQLITE_NOMEM;
  }
  const int rc = g_default->xOpen(g_default, name, self->real, flags, out_flags);
  if (rc != SQLITE_OK || self->real->pMethods == nullptr ||
      (database && self->real->pMethods->iVersion < 3)) {
    if (rc == SQLITE_OK && self->real->pMethods != nullptr) self->real->pMethods->xClose(self->real);
    delete self->pending;
    self->pending = nullptr;
    return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
  }
  if (wal) {
    // The database file this WAL belongs to (SQLite names it from the WAL's name).
    sqlite3_file* owner = name != nullptr ? sqlite3_database_file_object(name) : nullptr;
    if (owner != nullptr && owner->pMethods == &kDatabaseMethods) {
      self->database = Self(owner);
      Self(owner)->wal = self;
    }
    self->base.pMethods = &kWalMethods;
  } else {
    self->base.pMethods = &kDatabaseMethods;
  }
  return SQLITE_OK;
}

int Delete(sqlite3_vfs*, const char* name, int sync_dir) { return g_default->xDelete(g_default, name, sync_dir); }
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_default->xAccess(g_default, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int size, char* out) {
  return g_default->xFullPathname(g_default, name, size, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) { return g_default->xDlOpen(g_default, name); }
void DlError(sqlite3_vfs*, int size, char* out) { g_default->xDlError(g_default, size, out); }
void (*DlSym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return g_default->xDlSym(g_default, handle, symbol);
}
void DlClose(sqlite3_vfs*, void* handle) { g_default->xDlClose(g_default, handle); }
int Randomness(sqlite3_vfs*, int size, char* out) { return g_default->xRandomness(g_default, size, out); }
int Sleep(sqlite3_vfs*, int micros) { return g_default->xSleep(g_default, micros); }
int CurrentTime(sqlite3_vfs*, double* out) { return g_default->xCurrentTime(g_default, out); }
int GetLastError(sqlite3_vfs*, int size, char* out) { return g_default->xGetLastError(g_default, size, out); }
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) { return g_default->xCurrentTimeInt64(g_default, out); }

bool Register() {
  // sqlite3_database_file_object() exists from 3.32.
  if (sqlite3_libversion_number() < 3032000) return false;
  g_default = sqlite3_vfs_find(nullptr);
  if (g_default == nullptr || g_default->iVersion < 2 || g_default->xCurrentTimeInt64 == nullptr) return false;
  g_vfs = sqlite3_vfs{};
  g_vfs.iVersion = 2;
  g_vfs.szOsFile = static_cast<int>(((sizeof(File) + 7) & ~std::size_t{7}) + static_cast<std::size_t>(g_default->szOsFile));
  g_vfs.mxPathname = g_default->mxPathname;
  g_vfs.zName = "herald-wal-batching";
  g_vfs.xOpen = Open;
  g_vfs.xDelete = Delete;
  g_vfs.xAccess = Access;
  g_vfs.xFullPathname = FullPathname;
  g_vfs.xDlOpen = DlOpen;
  g_vfs.xDlError = DlError;
  g_vfs.xDlSym = DlSym;
  g_vfs.xDlClose = DlClose;
  g_vfs.xRandomness = Randomness;
  g_vfs.xSleep = Sleep;
  g_vfs.xCurrentTime = CurrentTime;
  g_vfs.xGetLastError = GetLastError;
  g_vfs.xCurrentTimeInt64 = CurrentTimeInt64;
  return sqlite3_vfs_register(&g_vfs, 0) == SQLITE_OK;
}

}  // namespace

const char* WalBatchingVfs() {
  static const bool registered = Register();
  return registered ? g_vfs.zName : nullptr;
}

}  // namespace herald::store_internal
