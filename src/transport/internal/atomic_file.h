// Writing a message file so that it appears whole or not at all: write a hidden temporary file
// in the same folder, fsync it, rename it into place, fsync the folder. A reader polling the
// folder (an Exchange pickup service) never sees half a message, and once the call returns the
// file survives a crash. Thread-safe (no shared state).
#pragma once

#include <string>

#include "core/status.h"
#include "mime/message_data.h"

namespace herald::transport_internal {

enum class IfExists {
  kReplace,    // the new file replaces an existing one of that name
  kAddNumber,  // "name.eml" becomes "name-2.eml", "name-3.eml", ... ; the final name is returned
};

// Writes `message` as `folder`/`name`. Returns the path written. Errors: kResourceExhausted for a
// full disk or quota, kIo otherwise, both naming the path and the system's reason.
Result<std::string> WriteMessageFile(const std::string& folder, const std::string& name, const MessageData& message,
                                     IfExists if_exists);

}  // namespace herald::transport_internal
