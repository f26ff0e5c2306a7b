#include "transport/internal/atomic_file.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace herald::transport_internal {
namespace {

Status FileError(std::string_view what, const std::string& path, int error) {
  std::string message = fmt::format("{} {}: {}", what, path, std::strerror(error));
  if (error == ENOSPC || error == EDQUOT) return Status(StatusCode::kResourceExhausted, std::move(message));
  return IoError(std::move(message));
}

// Writes all pieces with writev, resuming after short writes.
Status WriteAll(int fd, const MessageData& message, const std::string& path) {
  std::vector<iovec> pieces;
  message.ForEachPiece([&](std::string_view piece) {
    pieces.push_back(iovec{const_cast<char*>(piece.data()), piece.size()});
  });
  std::size_t next = 0;
  while (next < pieces.size()) {
    int count = static_cast<int>(std::min<std::size_t>(pieces.size() - next, IOV_MAX));
    ssize_t written = ::writev(fd, &pieces[next], count);
    if (written < 0) {
      if (errno == EINTR) continue;
      return FileError("cannot write", path, errno);
    }
    std::size_t left = static_cast<std::size_t>(written);
    while (next < pieces.size() && left >= pieces[next].iov_len) {
      left -= pieces[next].iov_len;
      ++next;
    }
    if (left > 0) {
      pieces[next].iov_base = static_cast<char*>(pieces[next].iov_base) + left;
      pieces[next].iov_len -= left;
    }
  }
  return Status::Ok();
}

std::string NumberedName(const std::string& name, int number) {
  if (number == 1) return name;
  std::size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return fmt::format("{}-{}", name, number);
  return fmt::format("{}-{}{}", name.substr(0, dot), number, name.substr(dot));
}

}  // namespace

Result<std::string> WriteMessageFile(const std::string& folder, const std::string& name, const MessageData& message,
                                     IfExists if_exists) {
  static std::atomic<unsigned long> counter{0};
  std::string temp = fmt::format("{}/.{}.{}.{}.tmp", folder, name, ::getpid(), counter++);
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return FileError("cannot create", temp, errno);
  Status written = WriteAll(fd, message, temp);
  if (written.ok() && ::fsync(fd) != 0) written = FileError("cannot flush", temp, errno);
  if (::close(fd) != 0 && written.ok()) written = FileError("cannot close", temp, errno);
  if (!written.ok()) {
    ::unlink(temp.c_str());
    return written;
  }

  std::string path;
  if (if_exists == IfExists::kReplace) {
    path = folder + "/" + name;
    if (::rename(temp.c_str(), path.c_str()) != 0) {
      int error = errno;
      ::unlink(temp.c_str());
      return FileError("cannot rename into place", path, error);
    }
  } else {
    // link() fails with EEXIST instead of replacing, which makes the numbering race-free.
    for (int number = 1;; ++number) {
      path = folder + "/" + NumberedName(name, number);
      if (::link(temp.c_str(), path.c_str()) == 0) break;
      if (errno != EEXIST || number >= 10000) {
        int error = errno;
        ::unlink(temp.c_str());
        return FileError("cannot create", path, error);
      }
    }
    ::unlink(temp.c_str());
  }

  int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return FileError("cannot open folder", folder, errno);
  int synced = ::fsync(dir);
  int error = errno;
  ::close(dir);
  if (synced != 0) return FileError("cannot flush folder", folder, error);
  return path;
}

}  // namespace herald::transport_internal
