// BackupWriter: the file backup of a sending task — a copy of every sent message under a folder,
// its path and file name built from placeholders ("{%task_title%}/{%recipient%}.eml"). Values
// from the recipient list are sanitised so that no CSV value can leave the backup folder: path
// separators inside values are replaced, "." and ".." components dropped, control characters and
// characters Windows forbids replaced. Two messages that render the same name get "-2", "-3"...
// Below the folder no symbolic link is followed (transport/internal/atomic_file.h): a link planted
// at "<folder>/<task title>" fails the backup instead of redirecting it; the folder itself may be
// a link. Thread-safe (const after construction).
#pragma once

#include <string>

#include "core/status.h"
#include "merge/template.h"
#include "mime/message_data.h"

namespace herald {

class BackupWriter {
 public:
  // `file_name` is compiled against the task's FieldSet; `folder` need not exist yet.
  BackupWriter(std::string folder, Template file_name);

  // The path (relative to the folder) a message with these field values is saved under, before
  // numbering. Never empty, never absolute, never containing "." or ".." components.
  std::string RelativePath(FieldValues values) const;

  // Saves `message`; returns the path written. Errors name the path (kResourceExhausted when the
  // disk is full, kPermissionDenied for a symbolic link below the folder).
  Result<std::string> Save(FieldValues values, const MessageData& message) const;

 private:
  std::string folder_;
  Template file_name_;
};

}  // namespace herald
