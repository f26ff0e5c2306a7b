// Writing a message file so that it appears whole or not at all: write a hidden temporary file
// in the same folder, fsync it, rename it into place, fsync the folder. A reader polling the
// folder (an Exchange pickup service) never sees half a message, and once the call returns the
// file survives a crash.
//
// Every path is resolved beneath the configured folder without following a symbolic link: herald
// often runs as root, and a link planted below the backup or pickup folder ("sent/<task title>"
// pointing to /etc) must not redirect what it writes. The configured folder itself is opened as
// the user wrote it, links included: it is the user's own configuration (a backup folder on a
// mounted share is often reached through one); only what lies below it is never a link. Where the
// kernel has openat2 (Linux 5.6), paths are opened with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; on
// older kernels (ENOSYS, or EPERM from a sandbox's seccomp filter) one component at a time with
// O_NOFOLLOW | O_DIRECTORY. Missing folders
// are created with mkdirat in the folder opened last; the temporary file is created with O_EXCL
// | O_NOFOLLOW in it and renamed within it, so nothing is looked up again by name from the top.
//
// Thread-safe (no shared state but the flag that remembers a kernel without openat2).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"
#include "mime/message_data.h"

namespace herald::transport_internal {

enum class IfExists {
  kReplace,    // the new file replaces an existing one of that name
  kAddNumber,  // "name.eml" becomes "name-2.eml", "name-3.eml", ... ; the final name is returned
};

// How paths below the folder are resolved; every way follows no link.
enum class Resolution {
  kAuto,           // openat2 until the kernel says it has none (ENOSYS, EPERM), then the component walk
  kOpenat2,        // openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (fails on a kernel without it)
  kComponentWalk,  // openat with O_NOFOLLOW | O_DIRECTORY, one component at a time
};

// Writes `message` as `folder`/`subfolders`/`name` and returns the path written. `subfolders` is
// relative ("a/b", or empty), its folders are created as needed; `name` is one file name. Errors
// name the path: kPermissionDenied for a path that would leave `folder` — a symbolic link below
// it (a folder or the file name itself), a ".." or "." component, a name with "/" —,
// kResourceExhausted for a full disk or quota, kIo otherwise, with the system's reason.
// With IfExists::kReplace an existing entry of that name is replaced, a link by the file (rename
// never follows it); with kAddNumber an existing link is an error, not a reason to number.
Result<std::string> WriteMessageFile(const std::string& folder, std::string_view subfolders, const std::string& name,
                                     const MessageData& message, IfExists if_exists,
                                     Resolution resolution = Resolution::kAuto);

}  // namespace herald::transport_internal
