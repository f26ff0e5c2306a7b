// The composer: turns a sending task's message settings into one RFC 5322 / MIME message per
// recipient (RFC 2045-2049). Everything invariant is prepared once in Create() — attachments read
// and base64-encoded, static body text quoted-printable-encoded, constant headers encoded and
// folded — so Compose() only renders what is personal.
//
// Create() may be slow (reads files); Compose() is const and may run on many threads at once,
// each with its own MessageData. Compose() does not allocate once the thread's scratch buffers
// and the MessageData have grown to the message's size.
//
// Every header goes through one writer (mime/internal/header_writer.h) that rejects CR, LF, NUL,
// other control characters except tab, and invalid UTF-8, and encodes (RFC 2047) and folds the
// rest; leading and trailing blanks of header values are not written. Bodies are UTF-8,
// quoted-printable, with line breaks normalised to CRLF and no line starting with "." or "F".
// A task with an HTML body alone gets a text part too, made once by Create() from the HTML
// template (mime/internal/html_to_text.h) and rendered per recipient like a text template: values
// go into it as they are, not HTML-escaped.
// Multipart boundaries are derived from the task's content, so the same task and recipient
// always compose the same bytes.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "address/address.h"
#include "core/clock.h"
#include "core/status.h"
#include "merge/field_set.h"
#include "merge/template.h"
#include "mime/message_data.h"

namespace herald {

// RFC 2156 Sensitivity header values (Outlook's "sensitivity"). kNormal writes no header.
enum class Sensitivity { kNormal, kPersonal, kPrivate, kCompanyConfidential };

struct AttachmentSpec {
  std::string path;          // file to attach, read once by Create()
  std::string file_name;     // name shown to the recipient; empty: the file's own name
  std::string content_type;  // empty: from the file name's extension (application/octet-stream if unknown)
};

struct HeaderSpec {
  std::string name;  // validated by Create(): RFC 5322 field name, not one herald writes itself
  Template value;
};

struct ComposerSpec {
  std::string task_title;  // value of {%task_title%}
  Address from_address;
  std::optional<Template> from_name;  // display name of From
  std::optional<Mailbox> reply_to;
  std::optional<Template> to_name;    // display name of To; none: the bare address
  Template subject;                   // may not use {%subject%}
  std::optional<Template> text_body;  // at least one of text_body and html_body; none: made from the HTML
  std::optional<Template> html_body;  // values are HTML-escaped here
  std::vector<AttachmentSpec> attachments;
  std::vector<HeaderSpec> extra_headers;
  Sensitivity sensitivity = Sensitivity::kNormal;
};

// What the account chosen for a recipient changes in its message (docs/settings.md, per account).
struct AccountOverrides {
  std::optional<Mailbox> default_reply_to;  // used when the task sets no Reply-To
  // Used when the task sets no From display name, or it renders empty for a recipient.
  std::string default_sender_name;
  // Replaces the From address, except for messages with Sensitivity: Private.
  std::optional<Address> fixed_sender;
};

// What varies per recipient.
struct RecipientParts {
  // Values of the CSV columns, one per FieldSet column: column_count() values, or size() values
  // whose built-in entries are ignored (built-ins are filled in by Compose()).
  FieldValues column_values;
  const Address* to = nullptr;
  // Message-ID without angle brackets ("id@domain"); the engine keeps it stable across retries.
  std::string_view message_id;
  TimePoint date;
  const AccountOverrides* account = nullptr;  // none: the task's settings as they are
};

class MessageComposer {
 public:
  // Prepares the invariant parts. `fields` is the task's FieldSet (the templates in `spec` were
  // compiled against it). Errors: an attachment that cannot be read (names the file), or whose
  // file name or content type is unusable; an invalid extra header name (RFC 5322 ftext, at most
  // 50 characters) or one herald writes itself (Date, From, Reply-To, To, Subject, Message-ID,
  // MIME-Version, Sensitivity, Content-*) or never sends (Bcc, Return-Path); header template
  // text or defaults the header writer would reject; a body template that is not UTF-8; no body
  // at all; {%subject%} used in the subject; an HTML body alone that holds characters of Unicode's
  // private use plane 15 (which stand for placeholders while its text part is made).
  //
  // A message/rfc822 attachment (.eml) that is 7bit goes as 7bit with CRLF line ends (RFC 2046
  // §5.2.1 forbids base64 there); any other is sent as application/octet-stream.
  static Result<std::shared_ptr<const MessageComposer>> Create(ComposerSpec spec, FieldSet fields);

  ~MessageComposer();

  // Writes one recipient's message into `out` (cleared first; left empty on error). Fails for
  // this recipient only — with a message naming the field and placeholder, e.g. "subject: value
  // of {%firstname%} contains a line break (LF)" — when a value would put CR, LF, NUL or another
  // control character into a header, a header or body value is not valid UTF-8, an address is
  // unusable, or the message-id is not of the form left@right.
  Status Compose(const RecipientParts& recipient, MessageData& out) const;

  // The bytes every message of the task carries whatever the recipient: its attachments, encoded,
  // with their MIME headers. No message is smaller (a size limit below it fails them all).
  std::size_t attachments_size() const;

 private:
  struct Impl;
  explicit MessageComposer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace herald
