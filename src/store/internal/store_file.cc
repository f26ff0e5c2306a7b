#include "store/internal/store_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include "store/internal/schema.h"
#include "store/internal/sqlite.h"

namespace herald::store_internal {
namespace {

std::string Quoted(const std::string& path) { return "store file '" + path + "'"; }

Status SystemError(std::string what, int error) {
  what += ": ";
  what += std::strerror(error);
  return error == ENOSPC || error == EDQUOT ? Status(StatusCode::kResourceExhausted, std::move(what))
                                            : IoError(std::move(what));
}

std::string TemporaryName(const std::string& path) {
  std::random_device device;
  char random[9];
  std::snprintf(random, sizeof random, "%08x", static_cast<unsigned>(device()));
  return path + ".creating-" + std::to_string(::getpid()) + "-" + random;
}

// Builds a complete new store in the file `temporary`: schema and identity in one transaction,
// then WAL mode. The switch to WAL is the last write, made in rollback mode, so when the
// connection closes everything is in the file itself (no -wal file holds any of it).
Status BuildStore(const std::string& temporary, const std::string& path, Duration busy_timeout) {
  Result<std::unique_ptr<Connection>> connection = Connection::Open(temporary, busy_timeout, /*create=*/true);
  if (!connection.ok()) return connection.status();
  HERALD_RETURN_IF_ERROR(MigrateSchema(**connection));
  Result<std::string> mode = (*connection)->QueryText("PRAGMA journal_mode = WAL", "switching to WAL mode");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") {
    return Status(StatusCode::kFailedPrecondition,
                  Quoted(path) + " cannot be used in WAL mode (journal mode stays '" + *mode +
                      "'); put it on a local file system");
  }
  return Status::Ok();
}

void RemoveTemporary(const std::string& temporary) {
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) ::unlink((temporary + suffix).c_str());
}

// Makes a new name in `folder` survive a crash of the machine (the file's content is synced by
// SQLite's commits).
Status SyncFolder(const std::string& path) {
  std::string folder = std::filesystem::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return SystemError("cannot open the folder of " + Quoted(path), errno);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return SystemError("cannot sync the folder of " + Quoted(path), error);
  return Status::Ok();
}

Status Create(const std::string& path, Duration busy_timeout) {
  const std::string temporary = TemporaryName(path);
  Status status = BuildStore(temporary, path, busy_timeout);
  // link() fails with EEXIST when another process created the store first: theirs is used.
  if (status.ok() && ::link(temporary.c_str(), path.c_str()) != 0 && errno != EEXIST) {
    status = SystemError("cannot create " + Quoted(path), errno);
  }
  RemoveTemporary(temporary);
  if (!status.ok()) return status.WithContext("creating " + Quoted(path));
  return SyncFolder(path);
}

}  // namespace

Status PrepareStoreFile(const std::string& path, bool create, Duration busy_timeout) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    if (errno != ENOENT) return SystemError("cannot open " + Quoted(path), errno);
    if (!create) return NotFound(Quoted(path) + " does not exist");
    return Create(path, busy_timeout);
  }
  if (S_ISREG(info.st_mode) && info.st_size == 0) {
    return Status(StatusCode::kFailedPrecondition,
                  Quoted(path) +
                      " is empty (0 bytes). herald creates a store whole, never empty, so this file was made by "
                      "something else or lost its content (a crash, a truncation); taken for a new store, it "
                      "would have every recipient of every task it held sent again. If no mailing was ever sent "
                      "with it, delete it and a new store is created; otherwise restore it from a backup");
  }
  return Status::Ok();
}

}  // namespace herald::store_internal
