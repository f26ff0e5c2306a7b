#include "transport/internal/atomic_file.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace herald::transport_internal {
namespace {

// Cleared the first time openat2 answers ENOSYS (a kernel before 5.6, or a sandbox that hides it).
std::atomic<bool> g_kernel_has_openat2{true};

// openat2 is missing: ENOSYS, or EPERM from a seccomp filter that refuses system calls it does
// not know (older container runtimes); opening a folder for reading never fails with EPERM.
bool LacksOpenat2(int error) { return error == ENOSYS || error == EPERM; }

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Status FileError(std::string_view what, const std::string& path, int error) {
  std::string message = fmt::format("{} {}: {}", what, path, std::strerror(error));
  if (error == ENOSPC || error == EDQUOT) return Status(StatusCode::kResourceExhausted, std::move(message));
  return IoError(std::move(message));
}

Status Outside(const std::string& path, std::string_view why, const std::string& folder) {
  return Status(StatusCode::kPermissionDenied,
                fmt::format("{}: {}; herald writes below {} without following links or leaving it", path, why, folder));
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

bool IsSymbolicLink(int dir, const char* name) {
  struct stat info{};
  return ::fstatat(dir, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(info.st_mode);
}

// Opens the folder `path` (relative to `dir`, one or more components) for reading, following no
// link and not leaving `dir`. -1 with errno on failure; ENOSYS when the kernel has no openat2.
int OpenFolderBeneath(int dir, const std::string& path, Resolution resolution) {
  if (resolution == Resolution::kComponentWalk) {
    return ::openat(dir, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  }
  open_how how{};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dir, path.c_str(), &how, sizeof how));
}

// Opens `subfolders` below `root`, creating the missing ones. With openat2 the whole path is
// tried in one call first; a missing folder, or an error to be explained, then goes component by
// component, each relative to the one opened before. Sets `no_openat2` (and fails) when the
// kernel has no openat2.
Result<Fd> OpenSubfolders(int root, std::string_view subfolders, Resolution resolution, const std::string& folder,
                          bool& no_openat2) {
  std::vector<std::string> components;
  std::string shown = folder;
  for (std::size_t start = 0; start < subfolders.size();) {
    std::size_t end = std::min(subfolders.find('/', start), subfolders.size());
    std::string component(subfolders.substr(start, end - start));
    start = end + 1;
    if (component.empty()) continue;
    shown += "/" + component;
    if (component == "." || component == "..") return Outside(shown, "a \".\" or \"..\" component", folder);
    components.push_back(std::move(component));
  }
  if (components.empty()) {
    int fd = ::fcntl(root, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return FileError("cannot open folder", folder, errno);
    return Fd(fd);
  }
  if (resolution == Resolution::kOpenat2) {
    std::string joined;
    for (const std::string& component : components) joined += (joined.empty() ? "" : "/") + component;
    Fd whole(OpenFolderBeneath(root, joined, resolution));
    if (whole.get() >= 0) return whole;
    no_openat2 = LacksOpenat2(errno);
    if (no_openat2) return IoError(fmt::format("cannot open folder {}: the kernel has no openat2", shown));
  }
  Fd current(::fcntl(root, F_DUPFD_CLOEXEC, 0));
  if (current.get() < 0) return FileError("cannot open folder", folder, errno);
  std::string path = folder;
  for (const std::string& component : components) {
    path += "/" + component;
    Fd next(OpenFolderBeneath(current.get(), component, resolution));
    if (next.get() < 0 && errno == ENOENT) {
      if (::mkdirat(current.get(), component.c_str(), 0755) != 0 && errno != EEXIST) {
        return FileError("cannot create the folder", path, errno);
      }
      next = Fd(OpenFolderBeneath(current.get(), component, resolution));
    }
    if (next.get() < 0) {
      const int error = errno;
      no_openat2 = resolution == Resolution::kOpenat2 && LacksOpenat2(error);
      if (no_openat2) return IoError(fmt::format("cannot open folder {}: the kernel has no openat2", path));
      if (IsSymbolicLink(current.get(), component.c_str())) return Outside(path, "a symbolic link", folder);
      if (error == ENOTDIR) return Outside(path, "not a folder", folder);
      if (error == ELOOP || error == EXDEV) return Outside(path, "leads outside", folder);
      return FileError("cannot open folder", path, error);
    }
    current = std::move(next);
  }
  return current;
}

// Writes the temporary file in `dir` and moves it to its name; returns the name.
Result<std::string> WriteInFolder(int dir, const std::string& shown_dir, const std::string& name,
                                  const MessageData& message, IfExists if_exists, const std::string& folder) {
  static std::atomic<unsigned long> counter{0};
  const std::string temp = fmt::format(".{}.{}.{}.tmp", name, ::getpid(), counter++);
  const std::string shown_temp = shown_dir + "/" + temp;
  Fd file(::openat(dir, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (file.get() < 0) return FileError("cannot create", shown_temp, errno);
  Status written = WriteAll(file.get(), message, shown_temp);
  if (written.ok() && ::fsync(file.get()) != 0) written = FileError("cannot flush", shown_temp, errno);
  if (::close(file.release()) != 0 && written.ok()) written = FileError("cannot close", shown_temp, errno);
  if (!written.ok()) {
    ::unlinkat(dir, temp.c_str(), 0);
    return written;
  }

  std::string final_name = name;
  if (if_exists == IfExists::kReplace) {
    // rename() replaces a link of that name by the file; it never writes through it.
    if (::renameat(dir, temp.c_str(), dir, name.c_str()) != 0) {
      const int error = errno;
      ::unlinkat(dir, temp.c_str(), 0);
      return FileError("cannot rename into place", shown_dir + "/" + name, error);
    }
  } else {
    // linkat() fails with EEXIST instead of replacing (or following a link there), which makes
    // the numbering race-free.
    for (int number = 1;; ++number) {
      final_name = NumberedName(name, number);
      if (::linkat(dir, temp.c_str(), dir, final_name.c_str(), 0) == 0) break;
      const int error = errno;
      Status failed;
      if (error == EEXIST && IsSymbolicLink(dir, final_name.c_str())) {
        failed = Outside(shown_dir + "/" + final_name, "a symbolic link", folder);
      } else if (error != EEXIST || number >= 10000) {
        failed = FileError("cannot create", shown_dir + "/" + final_name, error);
      }
      if (!failed.ok()) {
        ::unlinkat(dir, temp.c_str(), 0);
        return failed;
      }
    }
    ::unlinkat(dir, temp.c_str(), 0);
  }
  if (::fsync(dir) != 0) return FileError("cannot flush folder", shown_dir, errno);
  return final_name;
}

}  // namespace

Result<std::string> WriteMessageFile(const std::string& folder, std::string_view subfolders, const std::string& name,
                                     const MessageData& message, IfExists if_exists, Resolution resolution) {
  std::string shown_dir = folder;
  for (std::size_t start = 0; start < subfolders.size();) {
    const std::size_t end = std::min(subfolders.find('/', start), subfolders.size());
    if (end > start) shown_dir += "/" + std::string(subfolders.substr(start, end - start));
    start = end + 1;
  }
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return Outside(shown_dir + "/" + name, "not a file name", folder);
  }
  // The configured folder, links followed (see atomic_file.h).
  Fd root(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return FileError("cannot open folder", folder, errno);

  const bool automatic = resolution == Resolution::kAuto;
  if (automatic) resolution = g_kernel_has_openat2 ? Resolution::kOpenat2 : Resolution::kComponentWalk;
  bool no_openat2 = false;
  Result<Fd> dir = OpenSubfolders(root.get(), subfolders, resolution, folder, no_openat2);
  if (no_openat2 && automatic) {
    g_kernel_has_openat2 = false;
    dir = OpenSubfolders(root.get(), subfolders, Resolution::kComponentWalk, folder, no_openat2);
  }
  if (!dir.ok()) return dir.status();
  Result<std::string> written = WriteInFolder(dir->get(), shown_dir, name, message, if_exists, folder);
  if (!written.ok()) return written.status();
  return shown_dir + "/" + *written;
}

}  // namespace herald::transport_internal
