// `herald preview`: one recipient's message exactly as `herald send` would send it — the same
// composer, headers and Message-ID scheme, with the overrides of the account the router picks for
// that recipient (fixed sender, default Reply-To and sender name) — written as an .eml file, and a
// summary for people: the envelope, the headers decoded, the text part decoded, the HTML part's
// size and text, the attachments. It reads the recipient list itself: it creates no store and
// sends nothing. One thread.
#pragma once

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>

#include "address/address.h"
#include "config/account_config.h"
#include "config/task_config.h"
#include "core/clock.h"
#include "core/status.h"

namespace herald {

struct PreviewOptions {
  std::size_t row = 1;        // the row-th data row of the recipient list (1 is the first after the header)
  std::optional<Address> to;  // instead of `row`: the first row with this address
  // Where the .eml goes: a file, or "-" for standard output (the summary then goes to `summary`
  // alone, which should be standard error). Empty: "<task id>-preview.eml" in the current folder.
  std::string output;
};

// Writes the preview of `task` (its accounts checked against `accounts`, CheckTaskAccounts) and
// prints the summary to `summary`. The Message-ID is "preview.<row>@<From domain>" (a sent message
// has the task's nonce and the recipient's id in the store there) and the Date `clock`'s now.
// Errors, for the user: no such row or address, a row that cannot be used (with its line), no
// account takes the recipient, the message cannot be composed, the output cannot be written.
Status WritePreview(const TaskConfig& task, const AccountSet& accounts, const PreviewOptions& options,
                    const Clock& clock, std::FILE* summary);

}  // namespace herald
