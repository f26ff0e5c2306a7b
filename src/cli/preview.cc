#include "cli/preview.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "cli/console_observer.h"
#include "core/text.h"
#include "engine/prepared_task.h"
#include "engine/recipient_import.h"
#include "engine/router.h"
#include "merge/csv_reader.h"
#include "mime/message_reader.h"

namespace herald {
namespace {

// The recipient the preview is for, as read from the list.
struct ListRow {
  std::size_t row = 0;   // 1-based data row
  std::size_t line = 0;  // where it starts in the file
  std::vector<std::string> fields;
  Address address;
};

std::string DescribeRow(const TaskConfig& task, std::size_t row, std::size_t line) {
  return fmt::format("row {} of {} (line {})", row, task.recipients.file, line);
}

Result<ListRow> FindRow(const TaskConfig& task, const std::vector<std::string>& columns, std::size_t address_column,
                        const PreviewOptions& options) {
  Result<std::unique_ptr<CsvReader>> reader = OpenRecipientList(task.recipients);
  if (!reader.ok()) return reader.status();
  CsvRecord record;
  std::size_t row = 0;
  while (true) {
    Result<bool> more = (*reader)->Next(record);
    if (!more.ok()) return more.status();
    if (!*more) break;
    ++row;
    if (!options.to && row != options.row) continue;
    Result<Address> address = InvalidArgument(record.problem);
    if (record.problem.empty()) {
      address = ParseAddress(TrimBlanks(record.fields[address_column]));
      if (!address.ok()) {
        address = address.status().WithContext(fmt::format("column \"{}\"", columns[address_column]));
      }
    }
    if (options.to) {
      if (!address.ok() || !EqualsIgnoreCase(address->ToString(), options.to->ToString())) continue;
    } else if (!address.ok()) {
      return InvalidArgument(fmt::format("{} cannot be sent to: {}", DescribeRow(task, row, record.line),
                                         address.status().message()));
    }
    return ListRow{row, record.line, std::move(record.fields), std::move(*address)};
  }
  if (options.to) {
    return NotFound(fmt::format("no row of {} has the address {} in column \"{}\"", task.recipients.file,
                                options.to->ToString(), columns[address_column]));
  }
  return NotFound(fmt::format("there is no row {} in {}: it has {} data row(s)", options.row, task.recipients.file,
                              GroupDigits(row)));
}

// `text` for a terminal: CRLF as a line break, each line indented; control characters (C0 but
// tab and line feed, DEL, C1) and bytes that are not UTF-8 written as escapes, so nothing in a
// message can move the cursor or change the terminal.
std::string ForTerminal(std::string_view text, std::string_view indent) {
  std::string out(indent);
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      ++i;
      continue;
    }
    if (c == '\n') {
      out += '\n';
      if (i + 1 < text.size()) out += indent;
      ++i;
      continue;
    }
    std::size_t length = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (length == 0 || i + length > text.size() || !IsValidUtf8(text.substr(i, length))) {
      out += fmt::format("\\x{:02X}", c);
      ++i;
      continue;
    }
    const bool c1 = length == 2 && c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0;
    if ((length == 1 && ((c < 0x20 && c != '\t') || c == 0x7F)) || c1) {
      out += fmt::format("\\x{:02X}", c1 ? static_cast<unsigned char>(text[i + 1]) : c);
    } else {
      out.append(text.substr(i, length));
    }
    i += length;
  }
  return out;
}

// The UTF-8 bytes of `code` (at most U+10FFFF, not a surrogate).
std::string Utf8Of(char32_t code) {
  std::string out;
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
  return out;
}

// The text of an HTML body, roughly as a mail program shows it: no tags, comments, scripts or
// styles; a line break for each block element; the common entities and numeric references decoded;
// runs of blanks as one space.
std::string HtmlText(std::string_view html) {
  std::string text;
  auto lower_starts = [&](std::size_t at, std::string_view word) {
    return at + word.size() <= html.size() && EqualsIgnoreCase(html.substr(at, word.size()), word);
  };
  auto add_blank = [&text](char blank) {
    if (blank == '\n') {
      while (!text.empty() && text.back() == ' ') text.pop_back();
      if (!text.empty() && !text.ends_with("\n\n")) text += '\n';
    } else if (!text.empty() && text.back() != ' ' && text.back() != '\n') {
      text += ' ';
    }
  };
  for (std::size_t i = 0; i < html.size();) {
    const char c = html[i];
    if (c == '<') {
      std::string_view skip_to;
      if (lower_starts(i, "<!--")) skip_to = "-->";
      else if (lower_starts(i, "<script")) skip_to = "</script>";
      else if (lower_starts(i, "<style")) skip_to = "</style>";
      else if (lower_starts(i, "<head")) skip_to = "</head>";
      if (!skip_to.empty()) {
        std::size_t end = i;
        while (end < html.size() && !lower_starts(end, skip_to)) ++end;
        i = end + skip_to.size();
        continue;
      }
      const std::size_t end = html.find('>', i);
      std::string_view tag = html.substr(i + 1, (end == std::string_view::npos ? html.size() : end) - i - 1);
      if (!tag.empty() && tag[0] == '/') tag.remove_prefix(1);
      std::string name = AsciiLowercase(tag.substr(0, tag.find_first_of(" \t\r\n/")));
      static constexpr std::string_view kBlocks[] = {"br", "p",  "div", "tr", "li", "h1", "h2", "h3", "h4",
                                                     "h5", "h6", "table", "ul", "ol", "hr", "blockquote"};
      add_blank(std::find(std::begin(kBlocks), std::end(kBlocks), name) != std::end(kBlocks) ? '\n' : ' ');
      i = end == std::string_view::npos ? html.size() : end + 1;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      add_blank(' ');
      ++i;
    } else if (c == '&') {
      const std::size_t semicolon = html.find(';', i);
      std::string_view entity =
          semicolon == std::string_view::npos || semicolon - i > 10 ? "" : html.substr(i + 1, semicolon - i - 1);
      static constexpr std::pair<std::string_view, std::string_view> kEntities[] = {
          {"amp", "&"},       {"lt", "<"},        {"gt", ">"},      {"quot", "\""},    {"apos", "'"},
          {"nbsp", " "},      {"laquo", "«"},     {"raquo", "»"},   {"ldquo", "“"},    {"rdquo", "”"},
          {"bdquo", "„"},     {"lsquo", "‘"},     {"rsquo", "’"},   {"ndash", "–"},    {"mdash", "—"},
          {"hellip", "…"},    {"bull", "•"},      {"middot", "·"},  {"copy", "©"},     {"reg", "®"},
          {"trade", "™"},     {"euro", "€"},      {"pound", "£"},   {"times", "×"},    {"deg", "°"}};
      std::string decoded;
      for (const auto& [name, value] : kEntities) {
        if (entity == name) decoded = value;
      }
      if (decoded.empty() && entity.size() > 1 && entity[0] == '#') {
        const bool hex = entity[1] == 'x' || entity[1] == 'X';
        const std::string digits(entity.substr(hex ? 2 : 1));
        char* end = nullptr;
        const unsigned long code = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
        if (!digits.empty() && *end == '\0' && code > 0 && code <= 0x10FFFF && (code < 0xD800 || code > 0xDFFF)) {
          decoded = Utf8Of(static_cast<char32_t>(code));
        }
      }
      if (decoded.empty()) {
        text += '&';
        ++i;
      } else {
        text += decoded;
        i = semicolon + 1;
      }
    } else {
      text += c;
      ++i;
    }
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n')) text.pop_back();
  return text;
}

Status WriteFile(const std::string& path, const MessageData& message) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  message.ForEachPiece([&out](std::string_view piece) { out.write(piece.data(), static_cast<std::streamsize>(piece.size())); });
  out.close();
  if (!out) return IoError(fmt::format("cannot write the preview to {}", path));
  return Status::Ok();
}

void PrintSummary(std::FILE* out, const ParsedMessage& parsed, std::size_t size, const AccountConfig& account) {
  fmt::print(out, "headers:\n");
  for (const HeaderField& field : parsed.headers) {
    fmt::print(out, "{}\n", ForTerminal(fmt::format("{}: {}", field.name, field.value), "  "));
  }
  if (const MessagePart* text = parsed.Body("text/plain")) {
    std::string_view body = text->body;
    while (body.ends_with("\r\n")) body.remove_suffix(2);
    fmt::print(out, "text part ({} bytes, {} as sent):\n{}\n", GroupDigits(text->body.size()),
               text->transfer_encoding, ForTerminal(body, "  | "));
  }
  if (const MessagePart* html = parsed.Body("text/html")) {
    fmt::print(out, "html part ({} bytes, {} as sent), its text:\n{}\n", GroupDigits(html->body.size()),
               html->transfer_encoding, ForTerminal(HtmlText(html->body), "  | "));
  }
  for (const MessagePart& part : parsed.parts) {
    if (!part.attachment) continue;
    fmt::print(out, "attachment: {} ({}, {} bytes)\n", ForTerminal(part.file_name, ""), part.content_type,
               GroupDigits(part.body.size()));
  }
  if (account.max_message_size > 0 && size > account.max_message_size) {
    fmt::print(out, "this message would fail: it is {} bytes, over the max_message_size of {} of account \"{}\"\n",
               GroupDigits(size), GroupDigits(account.max_message_size), account.name);
  }
}

}  // namespace

Status WritePreview(const TaskConfig& task, const AccountSet& accounts, const PreviewOptions& options,
                    const Clock& clock, std::FILE* summary) {
  Result<std::vector<std::string>> columns = ReadRecipientColumns(task.recipients);
  if (!columns.ok()) return columns.status();
  Result<PreparedTask> prepared = PrepareTask(task, *columns);
  if (!prepared.ok()) return prepared.status();
  Result<ListRow> row = FindRow(task, *columns, prepared->address_column, options);
  if (!row.ok()) return row.status();
  const std::string where = DescribeRow(task, row->row, row->line);

  Router router(accounts, task.sending.accounts);
  Result<const AccountConfig*> routed = router.Route(task.message.from.address, row->address);
  if (!routed.ok()) return routed.status().WithContext(fmt::format("{}, {}", where, row->address.ToString()));
  const AccountConfig& account = **routed;

  // As the engine composes (engine/task_runner.cc, Compose): in turbo mode one message for many
  // recipients, addressed to the sender, without their columns.
  const bool turbo = task.sending.mode == SendMode::kTurbo;
  std::vector<std::string_view> values(prepared->fields.column_count());
  if (!turbo) values.assign(row->fields.begin(), row->fields.end());
  const AccountOverrides overrides = OverridesOf(account);
  const std::string message_id = MessageIdOf("preview", static_cast<std::int64_t>(row->row), task);
  const Address& to = turbo ? task.message.from.address : row->address;
  MessageData message;
  Status composed = prepared->composer->Compose(RecipientParts{values, &to, message_id, clock.Now(), &overrides}, message);
  if (!composed.ok()) {
    return composed.WithContext(fmt::format("{}: the message to {} cannot be composed", where, row->address.ToString()));
  }
  Result<ParsedMessage> parsed = ParseMessage(message.ToString());
  if (!parsed.ok()) return Status(StatusCode::kInternal, fmt::format("the composed message: {}", parsed.status().message()));

  std::string written_to;
  if (options.output == "-") {
    message.ForEachPiece([](std::string_view piece) { std::fwrite(piece.data(), 1, piece.size(), stdout); });
    std::fflush(stdout);
    written_to = "standard output";
  } else {
    written_to = options.output.empty() ? task.id + "-preview.eml" : options.output;
    HERALD_RETURN_IF_ERROR(WriteFile(written_to, message));
  }

  const Address& sender = EnvelopeSender(task, account);
  fmt::print(summary, "preview of task {}, {}: written to {} ({} bytes); nothing was sent\n", task.id, where,
             written_to, GroupDigits(message.size()));
  fmt::print(summary, "envelope:\n  account:   {} ({}, {})\n  MAIL FROM: <{}>\n  RCPT TO:   <{}>{}\n", account.name,
             AccountKindName(account.kind), account.Where(), sender.ToString(), row->address.ToString(),
             sender.needs_smtputf8 || row->address.needs_smtputf8 ? "\n  (SMTPUTF8: the addresses need it)" : "");
  if (turbo) {
    fmt::print(summary, "  (turbo mode: one message for many recipients, addressed to the sender; this recipient "
                        "is one of its RCPT TO)\n");
  }
  PrintSummary(summary, *parsed, message.size(), account);
  return Status::Ok();
}

}  // namespace herald
