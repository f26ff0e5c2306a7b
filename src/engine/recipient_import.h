// Importing a task's recipient list into the store: every CSV record checked (well-formed row,
// one strict address grammar), duplicates dropped and counted, bad rows reported with their line
// and kept in the store as rejected recipients (never sent; the list's next import replaces
// them) — or, with `bad_rows = "fail"`, the whole import refused before anything is stored.
// Streams the file: memory does not grow with it. Start-up work; one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/task_config.h"
#include "core/status.h"
#include "merge/csv_reader.h"
#include "store/store.h"

namespace herald {

struct BadRow {
  std::size_t line = 0;
  std::string reason;
};

struct ImportReport {
  std::size_t rows = 0;        // data records read
  std::size_t imported = 0;    // recipients added to the task
  std::size_t duplicates = 0;  // records whose address the task already had
  std::size_t bad = 0;         // records that cannot be recipients, stored as rejected
  std::vector<BadRow> bad_rows;  // the first kListedBadRows of them

  static constexpr std::size_t kListedBadRows = 100;
};

// The recipient list, opened as the task says (its delimiter, or detected), at its header row.
Result<std::unique_ptr<CsvReader>> OpenRecipientList(const RecipientsConfig& config);

// The header row of the recipient list.
Result<std::vector<std::string>> ReadRecipientColumns(const RecipientsConfig& config);

// SHA-256 of the file, hex; tells whether a recipient list changed since it was imported.
Result<std::string> FileDigest(const std::string& path);

// Adds the recipients of `config.file` to task `task_id` (which must exist in `store`), and its
// bad rows as rejected recipients (RecipientImport::Reject: with the line, the reason and the
// address as given), in place of the task's earlier rejected rows. `address_column` indexes the
// header. With BadRows::kFail, a bad row fails the import and nothing is added; the error lists
// the first bad rows with their lines.
Result<ImportReport> ImportRecipients(const RecipientsConfig& config, std::size_t address_column,
                                      std::string_view task_id, Store& store);

}  // namespace herald
