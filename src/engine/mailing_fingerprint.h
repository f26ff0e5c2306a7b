// The fingerprint of a task's mailing: what makes its messages, so that a task file that describes
// another mailing than the one stored under its id is told apart before anything is sent.
//
// Its parts: the sender, the sender's and the recipient's name templates, Reply-To, the subject,
// the text and HTML bodies, the attachments (content digests, names shown, content types), the
// extra headers, Sensitivity, and the recipient list's file (its path relative to the task file:
// rows added to the same list are the same mailing). Not in it: the title, the id, where the task
// file is, and how it is sent ([sending], accounts, backup). Each part is a digest of its own, so
// the parts that changed can be named. Start-up work; pure but for reading the attachments.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/task_config.h"
#include "core/status.h"

namespace herald {

// The fingerprint as text ("mailing/1 from=... subject=..."): equal texts, the same mailing.
// Errors: kNotFound or kIo when an attachment cannot be read.
Result<std::string> MailingFingerprint(const TaskConfig& task);

// The parts of the mailing that differ between two fingerprints, in words ("subject", "text
// body", ...), in the fingerprint's order; every part when one of them is not a fingerprint of
// this kind.
std::vector<std::string> MailingChanges(std::string_view stored, std::string_view current);

}  // namespace herald
