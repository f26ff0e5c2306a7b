#include "engine/prepared_task.h"

#include <fmt/format.h>

#include "core/text.h"

namespace herald {
namespace {

// Compiles a template from the task file, naming it "<task file>: <key>" in errors.
Result<Template> CompileSetting(const TaskConfig& task, std::string_view key, std::string_view text,
                                const FieldSet& fields) {
  return Template::Compile(text, fields, fmt::format("{}: {}", task.path, key));
}

// Turbo mode sends one message to many recipients: nothing in it may differ per recipient.
Status CheckNotPersonal(const TaskConfig& task, std::string_view setting, const Template& compiled,
                        const FieldSet& fields) {
  for (const Template::Segment& segment : compiled.segments()) {
    if (segment.field == Template::kNoField || segment.field == fields.task_title_index() ||
        segment.field == fields.subject_index()) {
      continue;
    }
    return InvalidArgument(fmt::format("{}: {} uses {{%{}%}}, but sending.mode = \"turbo\" sends one message to "
                                       "many recipients; use personalised mode or remove the placeholder",
                                       task.path, setting, fields.name(segment.field)));
  }
  return Status::Ok();
}

}  // namespace

const Address& EnvelopeSender(const TaskConfig& task, const AccountConfig& account) {
  if (account.fixed_sender && task.message.sensitivity != Sensitivity::kPrivate) return *account.fixed_sender;
  return task.message.from.address;
}

AccountOverrides OverridesOf(const AccountConfig& account) {
  return AccountOverrides{.default_reply_to = account.default_reply_to,
                          .default_sender_name = account.default_sender_name,
                          .fixed_sender = account.fixed_sender};
}

std::string MessageIdOf(std::string_view nonce, std::int64_t recipient_id, const TaskConfig& task) {
  return fmt::format("{}.{}@{}", nonce, recipient_id, task.message.from.address.domain);
}

Result<std::size_t> FindColumn(const std::vector<std::string>& columns, std::string_view name,
                               std::string_view file) {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (EqualsIgnoreCase(columns[i], name)) return i;
  }
  std::string names;
  for (const std::string& column : columns) names += (names.empty() ? "" : ", ") + column;
  return InvalidArgument(fmt::format("{}: no column \"{}\" holds the addresses (recipients.address_column); "
                                     "the columns are: {}",
                                     file, name, names));
}

Result<PreparedTask> PrepareTask(const TaskConfig& task, const std::vector<std::string>& columns) {
  FieldSet fields(columns);
  Result<std::size_t> address_column = FindColumn(columns, task.recipients.address_column, task.recipients.file);
  if (!address_column.ok()) return address_column.status();

  const MessageConfig& message = task.message;
  Result<Template> subject = CompileSetting(task, "message.subject", message.subject, fields);
  if (!subject.ok()) return subject.status();
  if (subject->UsesField(fields.subject_index())) {
    return InvalidArgument(fmt::format("{}: message.subject: the subject cannot contain {{%subject%}}", task.path));
  }

  ComposerSpec spec{.task_title = task.title,
                    .from_address = message.from.address,
                    .from_name = std::nullopt,
                    .reply_to = message.reply_to,
                    .to_name = std::nullopt,
                    .subject = *subject,
                    .text_body = std::nullopt,
                    .html_body = std::nullopt,
                    .attachments = message.attachments,
                    .extra_headers = {},
                    .sensitivity = message.sensitivity};
  std::string from_name = message.from_name.empty() ? message.from.display_name : message.from_name;
  if (!from_name.empty()) {
    Result<Template> compiled = CompileSetting(task, "message.from_name", from_name, fields);
    if (!compiled.ok()) return compiled.status();
    spec.from_name = std::move(*compiled);
  }
  if (!message.to_name.empty()) {
    Result<Template> compiled = CompileSetting(task, "message.to_name", message.to_name, fields);
    if (!compiled.ok()) return compiled.status();
    spec.to_name = std::move(*compiled);
  }
  if (!message.text_body.empty()) {
    Result<Template> compiled = Template::Compile(message.text_body, fields, message.text_body_origin);
    if (!compiled.ok()) return compiled.status();
    spec.text_body = std::move(*compiled);
  }
  if (!message.html_body.empty()) {
    Result<Template> compiled = Template::Compile(message.html_body, fields, message.html_body_origin);
    if (!compiled.ok()) return compiled.status();
    spec.html_body = std::move(*compiled);
  }
  for (const auto& [name, value] : message.headers) {
    Result<Template> compiled = CompileSetting(task, "message.headers." + name, value, fields);
    if (!compiled.ok()) return compiled.status();
    spec.extra_headers.push_back(HeaderSpec{name, std::move(*compiled)});
  }

  std::optional<BackupWriter> backup;
  if (!task.backup.folder.empty()) {
    Result<Template> file_name = CompileSetting(task, "backup.file_name", task.backup.file_name, fields);
    if (!file_name.ok()) return file_name.status();
    backup.emplace(task.backup.folder, std::move(*file_name));
  }

  if (task.sending.mode == SendMode::kTurbo) {
    HERALD_RETURN_IF_ERROR(CheckNotPersonal(task, "message.subject", spec.subject, fields));
    if (spec.from_name) HERALD_RETURN_IF_ERROR(CheckNotPersonal(task, "message.from_name", *spec.from_name, fields));
    if (spec.to_name) HERALD_RETURN_IF_ERROR(CheckNotPersonal(task, "message.to_name", *spec.to_name, fields));
    if (spec.text_body) HERALD_RETURN_IF_ERROR(CheckNotPersonal(task, "message.text", *spec.text_body, fields));
    if (spec.html_body) HERALD_RETURN_IF_ERROR(CheckNotPersonal(task, "message.html", *spec.html_body, fields));
    for (const HeaderSpec& header : spec.extra_headers) {
      HERALD_RETURN_IF_ERROR(CheckNotPersonal(task, "message.headers." + header.name, header.value, fields));
    }
  }
  Result<std::shared_ptr<const MessageComposer>> composer = MessageComposer::Create(std::move(spec), fields);
  if (!composer.ok()) return composer.status();
  return PreparedTask{std::move(fields), *address_column, std::move(*subject), std::move(*composer), std::move(backup)};
}

}  // namespace herald
