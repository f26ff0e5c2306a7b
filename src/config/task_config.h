// A sending task (docs/settings.md, "The task file") as read from a task file by LoadTask()
// (config/loader.h): the message, the recipient list, how to send it, and the file backup.
// Templates are kept as text here; they are compiled against the recipient list's columns when
// the task is prepared (engine/). Paths are absolute (resolved against the task file's folder).
// Immutable after loading.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "address/address.h"
#include "core/clock.h"
#include "merge/text_encoding.h"
#include "mime/composer.h"

namespace herald {

struct MessageConfig {
  Mailbox from;                     // address and constant display name
  std::string from_name;            // template for the display name; overrides from's
  std::optional<Mailbox> reply_to;
  std::string to_name;              // template for the To display name; empty: bare address
  std::string subject;              // template
  std::string text_body;            // template; empty: no text part
  std::string text_body_origin;     // "body.txt" or "task.toml:text", for template errors
  std::string text_body_encoding;   // how text_file was read ("UTF-8"; TextEncoding); empty for text
  std::string html_body;            // template; empty: no HTML part
  std::string html_body_origin;
  std::string html_body_encoding;
  std::vector<AttachmentSpec> attachments;
  std::vector<std::pair<std::string, std::string>> headers;  // name, value template
  Sensitivity sensitivity = Sensitivity::kNormal;
};

enum class BadRows { kSkip, kFail };

struct RecipientsConfig {
  std::string file;
  std::string address_column = "email";  // compared case-insensitively
  char delimiter = '\0';                  // '\0': detect
  TextEncoding encoding;                  // of the file (and its fallback code page)
  BadRows bad_rows = BadRows::kSkip;
  std::vector<std::string> blacklists;    // files of addresses, *@domain and domains
};

enum class SendMode { kPersonalised, kTurbo };
enum class OnLimit { kWait, kStop };

struct SendingConfig {
  SendMode mode = SendMode::kPersonalised;
  std::vector<std::string> accounts;  // names to use, in order; empty: all, in file order
  std::uint32_t concurrency = 1;      // 1: sequential; up to 256 sends at once
  std::uint64_t limit = 0;            // stop after this many messages in a run; 0: no limit
  std::uint64_t block_size = 0;       // messages per block; 0: no blocks
  Duration block_pause{0};
  Duration pending_delay{0};
  std::uint32_t retries = 3;          // further attempts after a temporary failure
  Duration retry_delay = std::chrono::hours(1);
  double retry_backoff = 1.0;         // each retry waits this many times longer than the last
  OnLimit on_limit = OnLimit::kWait;  // when an account's sending limit is reached
  bool reset_before = false;          // set every recipient to unsent before starting
  bool reset_errors_after = false;    // set failed recipients to unsent after the run
};

struct BackupConfig {
  std::string folder;                        // empty: no backup
  std::string file_name = "{%recipient%}.eml";  // template; sanitised per path component
};

struct TaskConfig {
  std::string path;      // the task file
  std::string id;        // default: DefaultTaskId() (config/task_file.h), from the file's place
  bool id_given = false; // the task file sets `id`
  std::string title;
  std::string accounts_file;
  std::string store_file;
  MessageConfig message;
  RecipientsConfig recipients;
  SendingConfig sending;
  BackupConfig backup;
};

}  // namespace herald
