#include "mime/composer.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "core/text.h"
#include "mime/internal/base64.h"
#include "mime/internal/header_writer.h"
#include "mime/internal/html_to_text.h"
#include "mime/internal/media_types.h"
#include "mime/internal/quoted_printable.h"

namespace herald {
namespace {

using mime_internal::AppendMailboxField;
using mime_internal::AppendUnstructuredField;
using mime_internal::HeaderLine;
using mime_internal::HeaderValueProblem;
using mime_internal::QpEncoder;
using mime_internal::QpLiteral;

constexpr std::string_view kTextPartHeaders =
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";
constexpr std::string_view kHtmlPartHeaders =
    "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";

// Fields herald writes itself, or that must not be in a message it submits: Bcc would show the
// blind copies to every recipient, Return-Path is the final MTA's (RFC 5321 §4.4). Content-*
// fields are refused by prefix.
constexpr std::string_view kReservedFieldNames[] = {"Date",    "From",       "Reply-To",     "To",
                                                    "Subject", "Message-ID", "MIME-Version", "Sensitivity",
                                                    "Bcc",     "Return-Path"};

// A template rendered into a header, with the name its errors use ("subject", "to name").
struct HeaderTemplate {
  std::string origin;
  Template value;
};

struct BodySegment {
  QpLiteral literal;
  std::size_t field = Template::kNoField;
  std::string default_value;  // already HTML-escaped for the HTML body
};

struct Body {
  std::string origin;  // "text body", "html body"
  Escaping escaping = Escaping::kNone;
  std::vector<BodySegment> segments;
};

struct ExtraHeader {
  std::string name;
  HeaderTemplate value;
  std::string constant_field;  // the whole field when the value has no placeholders
};

// Per-thread buffers reused by every Compose() call on the thread, so composing allocates only
// while they grow to the largest message seen.
struct Scratch {
  std::vector<std::string_view> values;
  std::string recipient;
  std::string subject;
  std::string rendered;  // a header value
  std::string escaped;   // an HTML-escaped body value
  std::string message;   // the message's own bytes
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Renders a header template into `out`, checking every value on the way so the error names the
// placeholder: "subject: value of {%firstname%} contains a line break (LF)". Literal text and
// defaults were checked by Create().
Status RenderHeaderValue(const HeaderTemplate& header, const FieldSet& fields, FieldValues values,
                         std::string& out) {
  out.clear();
  for (const Template::Segment& segment : header.value.segments()) {
    out.append(segment.literal);
    if (segment.field == Template::kNoField) continue;
    std::string_view value = values[segment.field];
    if (value.empty()) {
      value = segment.default_value;
    } else if (std::string_view problem = HeaderValueProblem(value); !problem.empty()) {
      return InvalidArgument(fmt::format("{}: value of {{%{}%}} {}", header.origin, fields.name(segment.field), problem));
    }
    out.append(value);
  }
  return Status::Ok();
}

// Checks a header template's own text (literals and defaults) for what the header writer refuses.
Status CheckHeaderTemplate(const HeaderTemplate& header, const FieldSet& fields) {
  for (const Template::Segment& segment : header.value.segments()) {
    if (std::string_view problem = HeaderValueProblem(segment.literal); !problem.empty()) {
      return InvalidArgument(fmt::format("{}: the text '{}' {}", header.origin, Printable(segment.literal), problem));
    }
    if (std::string_view problem = HeaderValueProblem(segment.default_value); !problem.empty()) {
      return InvalidArgument(fmt::format("{}: the default of {{%{}%}} {}", header.origin, fields.name(segment.field),
                                         problem));
    }
  }
  return Status::Ok();
}

Result<Body> PrepareBody(const Template& text, std::string origin, Escaping escaping, const FieldSet& fields) {
  Body body;
  body.origin = std::move(origin);
  body.escaping = escaping;
  const auto& segments = text.segments();
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const Template::Segment& segment = segments[i];
    if (std::size_t bad = FindInvalidUtf8(segment.literal); bad != std::string_view::npos) {
      return InvalidArgument(fmt::format("{}: not valid UTF-8 at '{}'", body.origin,
                                         Printable(std::string_view(segment.literal).substr(bad), 16)));
    }
    if (!IsValidUtf8(segment.default_value)) {
      return InvalidArgument(
          fmt::format("{}: the default of {{%{}%}} is not valid UTF-8", body.origin, fields.name(segment.field)));
    }
    BodySegment prepared;
    prepared.literal = mime_internal::PrepareQpLiteral(segment.literal, /*starts_body=*/i == 0);
    prepared.field = segment.field;
    if (escaping == Escaping::kHtml) {
      AppendHtmlEscaped(segment.default_value, prepared.default_value);
    } else {
      prepared.default_value = segment.default_value;
    }
    body.segments.push_back(std::move(prepared));
  }
  return body;
}

// While the text part is made from an HTML template, each distinct placeholder stands in the HTML
// as one character of Unicode's private use plane 15 (U+F0000 + its number): text to the HTML
// parser wherever it is, in a paragraph or in an href, and never split or changed by it.
constexpr char32_t kFirstPlaceholderMark = 0xF0000;
constexpr std::size_t kMaxPlaceholderMarks = 0xFFFFD - kFirstPlaceholderMark + 1;

// Plane 15 in UTF-8: F3, then B0 to BF, then two continuation bytes.
bool IsPlaceholderMarkAt(std::string_view text, std::size_t i) {
  return i + 3 < text.size() && static_cast<unsigned char>(text[i]) == 0xF3 &&
         (static_cast<unsigned char>(text[i + 1]) & 0xF0) == 0xB0;
}

void AppendPlaceholderMark(std::size_t number, std::string& out) {
  const char32_t mark = kFirstPlaceholderMark + static_cast<char32_t>(number);
  out += static_cast<char>(0xF0 | (mark >> 18));
  out += static_cast<char>(0x80 | ((mark >> 12) & 0x3F));
  out += static_cast<char>(0x80 | ((mark >> 6) & 0x3F));
  out += static_cast<char>(0x80 | (mark & 0x3F));
}

std::size_t PlaceholderMarkNumber(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) {
    return static_cast<char32_t>(static_cast<unsigned char>(text[i + k]) & 0x3F);
  };
  const char32_t mark = (char32_t{3} << 18) | (byte(1) << 12) | (byte(2) << 6) | byte(3);
  return mark - kFirstPlaceholderMark;
}

// The text body of a task that gives only an HTML body: the HTML template with its placeholders
// marked is written as text once, and the marks become placeholders again, with their defaults
// as written (the text part does not escape them).
Result<Template> TextBodyFromHtml(const Template& html) {
  std::vector<Template::Segment> placeholders;  // distinct field and default, by mark number
  std::string marked;
  for (const Template::Segment& segment : html.segments()) {
    for (std::size_t i = 0; i < segment.literal.size(); ++i) {
      if (IsPlaceholderMarkAt(segment.literal, i)) {
        return InvalidArgument(fmt::format(
            "html body: holds U+{:X}, a character of Unicode's private use plane 15, which herald uses to make the "
            "text part of an HTML body; give a text body too (text or text_file)",
            static_cast<std::uint32_t>(kFirstPlaceholderMark + PlaceholderMarkNumber(segment.literal, i))));
      }
    }
    marked += segment.literal;
    if (segment.field == Template::kNoField) continue;
    std::size_t number = 0;
    while (number < placeholders.size() && (placeholders[number].field != segment.field ||
                                            placeholders[number].default_value != segment.default_value)) {
      ++number;
    }
    if (number == placeholders.size()) {
      if (number == kMaxPlaceholderMarks) {
        return InvalidArgument("html body: too many different placeholders to make its text part; give a text body");
      }
      placeholders.push_back(Template::Segment{{}, segment.field, segment.default_value});
    }
    AppendPlaceholderMark(number, marked);
  }
  const std::string text = mime_internal::HtmlToText(marked);
  std::vector<Template::Segment> segments(1);
  for (std::size_t i = 0; i < text.size(); ++i) {
    // A mark beyond the placeholders' can only come from a numeric character reference: text.
    if (IsPlaceholderMarkAt(text, i) && PlaceholderMarkNumber(text, i) < placeholders.size()) {
      const Template::Segment& placeholder = placeholders[PlaceholderMarkNumber(text, i)];
      segments.back().field = placeholder.field;
      segments.back().default_value = placeholder.default_value;
      segments.emplace_back();
      i += 3;
      continue;
    }
    segments.back().literal += text[i];
  }
  return Template::FromSegments(std::move(segments));
}

// Appends the quoted-printable body; returns the encoder's final column.
Result<std::size_t> RenderBody(const Body& body, const FieldSet& fields, FieldValues values, Scratch& scratch) {
  QpEncoder encoder(scratch.message);
  for (const BodySegment& segment : body.segments) {
    encoder.AddLiteral(segment.literal);
    if (segment.field == Template::kNoField) continue;
    std::string_view value = values[segment.field];
    if (value.empty()) {
      encoder.Add(segment.default_value);
      continue;
    }
    if (!IsValidUtf8(value)) {
      return InvalidArgument(
          fmt::format("{}: value of {{%{}%}} is not valid UTF-8", body.origin, fields.name(segment.field)));
    }
    if (body.escaping == Escaping::kHtml) {
      scratch.escaped.clear();
      AppendHtmlEscaped(value, scratch.escaped);
      encoder.Add(scratch.escaped);
    } else {
      encoder.Add(value);
    }
  }
  encoder.Finish();
  return encoder.column();
}

Result<std::string> ReadAttachment(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return IoError(fmt::format("attachment '{}': cannot open: {}", path, std::strerror(errno)));
  }
  std::string data;
  char buffer[1 << 16];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) data.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int error = errno;
  std::fclose(file);
  if (failed) return IoError(fmt::format("attachment '{}': cannot read: {}", path, std::strerror(error)));
  return data;
}

// A message/rfc822 attachment may not be base64-encoded (RFC 2046 §5.2.1): it goes as 7bit when
// it is ASCII without NUL and with lines of at most 998 octets. Returns it with CRLF line ends
// (its canonical form), or nothing when it is not 7bit.
std::optional<std::string> AsSevenBitMessage(std::string_view data) {
  std::string normalised;
  normalised.reserve(data.size() + data.size() / 32);
  std::size_t line = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(data[i]);
    if (c == 0 || c >= 0x80) return std::nullopt;
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
      normalised.append("\r\n");
      line = 0;
      continue;
    }
    if (++line > mime_internal::kMaxLineLength) return std::nullopt;
    normalised.push_back(static_cast<char>(c));
  }
  return normalised;
}

struct PreparedAttachment {
  std::string file_name;
  std::string content_type;
  std::string data;  // base64 text, or the 7bit message
  bool seven_bit = false;
};

// FNV-1a, for boundaries derived from the task's content (deterministic, so a task's messages can
// be compared byte for byte across runs).
std::uint64_t Fnv1a(std::string_view bytes, std::uint64_t hash) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

void AddContentType(std::string_view type, std::string_view boundary, std::string& out) {
  HeaderLine line(out, "Content-Type");
  line.AddPlain(" ", type);
  line.AddParameter("boundary", boundary);
  line.Finish();
}

}  // namespace

struct MessageComposer::Impl {
  FieldSet fields;
  std::string task_title;
  Sensitivity sensitivity = Sensitivity::kNormal;
  Address from_address;
  std::optional<HeaderTemplate> from_name;
  bool from_name_constant_nonempty = false;
  std::string from_field;      // From for messages without account overrides, if constant
  std::string reply_to_field;  // the task's Reply-To, if any
  std::optional<HeaderTemplate> to_name;
  HeaderTemplate subject;
  std::string constant_subject;  // when the subject has no placeholders
  std::string subject_field;     // likewise
  std::string mime_fields;       // MIME-Version and Sensitivity
  std::vector<ExtraHeader> extra_headers;
  std::optional<Body> text;
  std::optional<Body> html;
  // Structure: content_head, text body, between_bodies, HTML body, content_end, attachments.
  std::string content_head;
  std::string between_bodies;
  std::string content_end;
  bool single_part = false;
  std::shared_ptr<const std::string> attachments;
};

MessageComposer::MessageComposer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MessageComposer::~MessageComposer() = default;

std::size_t MessageComposer::attachments_size() const {
  return impl_->attachments == nullptr ? 0 : impl_->attachments->size();
}

Result<std::shared_ptr<const MessageComposer>> MessageComposer::Create(ComposerSpec spec, FieldSet fields) {
  auto impl = std::make_unique<Impl>(Impl{.fields = std::move(fields)});
  Impl& m = *impl;
  const FieldSet& names = m.fields;
  if (!spec.text_body && !spec.html_body) {
    return InvalidArgument("the message has no body; set a text body, an HTML body or both");
  }
  if (spec.subject.UsesField(names.subject_index())) {
    return InvalidArgument("subject: {%subject%} cannot be used in the subject itself");
  }
  if (!IsValidUtf8(spec.task_title)) return InvalidArgument("task title: not valid UTF-8");
  m.task_title = std::move(spec.task_title);
  m.sensitivity = spec.sensitivity;
  m.from_address = std::move(spec.from_address);

  std::vector<const HeaderTemplate*> header_templates;
  m.subject = HeaderTemplate{"subject", std::move(spec.subject)};
  header_templates.push_back(&m.subject);
  if (spec.from_name) {
    m.from_name = HeaderTemplate{"from name", std::move(*spec.from_name)};
    header_templates.push_back(&*m.from_name);
  }
  if (spec.to_name) {
    m.to_name = HeaderTemplate{"to name", std::move(*spec.to_name)};
    header_templates.push_back(&*m.to_name);
  }
  m.extra_headers.reserve(spec.extra_headers.size());
  for (HeaderSpec& header : spec.extra_headers) {
    if (!mime_internal::IsValidFieldName(header.name)) {
      return InvalidArgument(fmt::format(
          "extra header '{}': not a valid field name; expected 1 to {} printable ASCII characters without ':' or blanks",
          Printable(header.name), mime_internal::kMaxFieldNameLength));
    }
    bool reserved = header.name.size() >= 8 && EqualsIgnoreCase(std::string_view(header.name).substr(0, 8), "Content-");
    for (std::string_view name : kReservedFieldNames) reserved = reserved || EqualsIgnoreCase(name, header.name);
    if (reserved) {
      return InvalidArgument(fmt::format("extra header '{}': herald writes this field itself or never sends it; "
                                         "set it through the task's own settings",
                                         header.name));
    }
    m.extra_headers.push_back(
        ExtraHeader{header.name, HeaderTemplate{fmt::format("header {}", header.name), std::move(header.value)}, {}});
  }
  for (const ExtraHeader& header : m.extra_headers) header_templates.push_back(&header.value);
  for (const HeaderTemplate* header : header_templates) {
    HERALD_RETURN_IF_ERROR(CheckHeaderTemplate(*header, names));
    if (header->value.UsesField(names.task_title_index())) {
      if (std::string_view problem = HeaderValueProblem(m.task_title); !problem.empty()) {
        return InvalidArgument(fmt::format("{}: the task title used in it {}", header->origin, problem));
      }
    }
  }

  // Constant header fields, written once.
  const std::vector<std::string_view> no_values(names.size());
  if (m.subject.value.IsConstant()) {
    m.constant_subject = m.subject.value.segments()[0].literal;
    HERALD_RETURN_IF_ERROR(AppendUnstructuredField("Subject", m.constant_subject, m.subject_field).WithContext("subject"));
  }
  if (!m.from_name || m.from_name->value.IsConstant()) {
    std::string_view name = m.from_name ? std::string_view(m.from_name->value.segments()[0].literal) : "";
    m.from_name_constant_nonempty = !TrimBlanks(name).empty();
    HERALD_RETURN_IF_ERROR(AppendMailboxField("From", name, m.from_address, m.from_field).WithContext("from"));
  }
  if (spec.reply_to) {
    HERALD_RETURN_IF_ERROR(AppendMailboxField("Reply-To", spec.reply_to->display_name, spec.reply_to->address,
                                              m.reply_to_field)
                               .WithContext("reply-to"));
  }
  for (ExtraHeader& header : m.extra_headers) {
    if (!header.value.value.IsConstant()) continue;
    HERALD_RETURN_IF_ERROR(
        AppendUnstructuredField(header.name, header.value.value.segments()[0].literal, header.constant_field)
            .WithContext(header.value.origin));
  }
  m.mime_fields = "MIME-Version: 1.0\r\n";
  switch (m.sensitivity) {
    case Sensitivity::kNormal: break;
    case Sensitivity::kPersonal: m.mime_fields += "Sensitivity: Personal\r\n"; break;
    case Sensitivity::kPrivate: m.mime_fields += "Sensitivity: Private\r\n"; break;
    case Sensitivity::kCompanyConfidential: m.mime_fields += "Sensitivity: Company-Confidential\r\n"; break;
  }

  // Bodies.
  if (!spec.text_body) {
    Result<Template> made = TextBodyFromHtml(*spec.html_body);
    if (!made.ok()) return made.status();
    Result<Body> body = PrepareBody(*made, "text body (made from the HTML body)", Escaping::kNone, names);
    if (!body.ok()) return body.status();
    m.text = std::move(*body);
  } else {
    Result<Body> body = PrepareBody(*spec.text_body, "text body", Escaping::kNone, names);
    if (!body.ok()) return body.status();
    m.text = std::move(*body);
  }
  if (spec.html_body) {
    Result<Body> body = PrepareBody(*spec.html_body, "html body", Escaping::kHtml, names);
    if (!body.ok()) return body.status();
    m.html = std::move(*body);
  }

  // Attachments, read and encoded once.
  std::vector<PreparedAttachment> attachments;
  for (const AttachmentSpec& spec_attachment : spec.attachments) {
    PreparedAttachment attachment;
    attachment.file_name = spec_attachment.file_name.empty()
                               ? std::filesystem::path(spec_attachment.path).filename().string()
                               : spec_attachment.file_name;
    std::string_view name = TrimBlanks(attachment.file_name);
    if (name.empty()) {
      return InvalidArgument(fmt::format("attachment '{}': no file name to show", spec_attachment.path));
    }
    if (std::string_view problem = HeaderValueProblem(name); !problem.empty()) {
      return InvalidArgument(fmt::format("attachment '{}': the file name {}", spec_attachment.path, problem));
    }
    attachment.file_name = std::string(name);
    if (spec_attachment.content_type.empty()) {
      attachment.content_type = mime_internal::MediaTypeForFileName(attachment.file_name);
    } else if (!mime_internal::IsValidMediaType(spec_attachment.content_type)) {
      return InvalidArgument(fmt::format("attachment '{}': content type '{}' is not of the form type/subtype",
                                         spec_attachment.path, Printable(spec_attachment.content_type)));
    } else {
      attachment.content_type = AsciiLowercase(spec_attachment.content_type);
    }
    if (attachment.content_type.starts_with("multipart/")) {
      return InvalidArgument(fmt::format("attachment '{}': content type '{}' cannot be attached; "
                                         "use application/octet-stream",
                                         spec_attachment.path, attachment.content_type));
    }
    Result<std::string> data = ReadAttachment(spec_attachment.path);
    if (!data.ok()) return data.status();
    if (attachment.content_type.starts_with("message/")) {
      // RFC 2046 §5.2: message/* entities are never base64-encoded; one that is not 7bit goes as
      // opaque data instead.
      if (std::optional<std::string> message = AsSevenBitMessage(*data)) {
        attachment.data = std::move(*message);
        attachment.seven_bit = true;
      } else {
        attachment.content_type = mime_internal::kOctetStream;
      }
    }
    if (!attachment.seven_bit) mime_internal::AppendBase64Lines(*data, attachment.data);
    attachments.push_back(std::move(attachment));
  }

  // Boundaries: "=_" cannot occur in quoted-printable or base64 text; a 7bit message is checked.
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const HeaderTemplate* header : header_templates) {
    for (const Template::Segment& segment : header->value.segments()) hash = Fnv1a(segment.literal, hash);
  }
  for (const std::optional<Body>* body : {&m.text, &m.html}) {
    if (!*body) continue;
    for (const BodySegment& segment : (*body)->segments) {
      hash = Fnv1a(segment.literal.head, Fnv1a(segment.literal.encoded, Fnv1a(segment.literal.tail, hash)));
    }
  }
  for (const PreparedAttachment& attachment : attachments) {
    hash = Fnv1a(attachment.data, Fnv1a(attachment.file_name, hash));
  }
  std::string mixed;
  std::string alternative;
  for (int attempt = 0;; ++attempt) {
    mixed = fmt::format("=_mix_{:016x}", hash);
    alternative = fmt::format("=_alt_{:016x}", hash);
    bool clash = false;
    for (const PreparedAttachment& attachment : attachments) {
      if (attachment.seven_bit && (attachment.data.find(mixed) != std::string::npos ||
                                   attachment.data.find(alternative) != std::string::npos)) {
        clash = true;
      }
    }
    if (!clash) break;
    hash = Fnv1a(std::string_view(reinterpret_cast<const char*>(&attempt), sizeof attempt), hash);
  }

  // The message's structure (RFC 2046 §5.1): the CRLF before each delimiter belongs to it.
  const bool both = m.text && m.html;
  std::string_view first_part = m.text ? kTextPartHeaders : kHtmlPartHeaders;
  if (!attachments.empty()) {
    AddContentType("multipart/mixed", mixed, m.content_head);
    m.content_head += fmt::format("\r\n--{}\r\n", mixed);
  }
  if (both) {
    AddContentType("multipart/alternative", alternative, m.content_head);
    m.content_head += fmt::format("\r\n--{}\r\n", alternative);
    m.between_bodies = fmt::format("\r\n--{}\r\n{}", alternative, kHtmlPartHeaders);
    m.content_end = fmt::format("\r\n--{}--", alternative);
    if (attachments.empty()) m.content_end += "\r\n";
  }
  m.content_head += first_part;
  m.single_part = !both && attachments.empty();
  if (!attachments.empty()) {
    // Each attachment's data is moved into the shared tail and let go at once: a large one is held
    // twice only while it is copied, never three times (reallocations of a growing tail).
    std::string tail;
    std::size_t size = 0;
    for (const PreparedAttachment& attachment : attachments) size += attachment.data.size() + 1024;
    tail.reserve(size);
    for (PreparedAttachment& attachment : attachments) {
      tail += fmt::format("\r\n--{}\r\n", mixed);
      HeaderLine type(tail, "Content-Type");
      type.AddPlain(" ", attachment.content_type);
      type.AddParameter("name", attachment.file_name);
      type.Finish();
      HeaderLine disposition(tail, "Content-Disposition");
      disposition.AddPlain(" ", "attachment");
      disposition.AddParameter("filename", attachment.file_name);
      disposition.Finish();
      tail += attachment.seven_bit ? "Content-Transfer-Encoding: 7bit\r\n\r\n"
                                   : "Content-Transfer-Encoding: base64\r\n\r\n";
      tail += attachment.data;
      std::string().swap(attachment.data);
    }
    tail += fmt::format("\r\n--{}--\r\n", mixed);
    m.attachments = std::make_shared<const std::string>(std::move(tail));
  }
  return std::shared_ptr<const MessageComposer>(new MessageComposer(std::move(impl)));
}

Status MessageComposer::Compose(const RecipientParts& recipient, MessageData& out) const {
  const Impl& m = *impl_;
  const FieldSet& names = m.fields;
  Scratch& scratch = ThreadScratch();
  out.Clear();
  if (recipient.to == nullptr) return InvalidArgument("to: no recipient address");
  const std::size_t given = recipient.column_values.size();
  if (given != names.column_count() && given != names.size()) {
    return InvalidArgument(fmt::format("{} values for {} columns", given, names.column_count()));
  }

  // Values, with the built-ins filled in.
  scratch.values.assign(recipient.column_values.begin(), recipient.column_values.end());
  scratch.values.resize(names.size());
  scratch.recipient.clear();
  scratch.recipient.append(recipient.to->local_part);
  scratch.recipient.push_back('@');
  scratch.recipient.append(recipient.to->domain);
  scratch.values[names.task_title_index()] = m.task_title;
  scratch.values[names.recipient_index()] = scratch.recipient;
  std::string_view subject = m.constant_subject;
  if (m.subject_field.empty()) {
    HERALD_RETURN_IF_ERROR(RenderHeaderValue(m.subject, names, scratch.values, scratch.subject));
    subject = scratch.subject;
  }
  scratch.values[names.subject_index()] = subject;
  const FieldValues values = scratch.values;

  std::string& message = scratch.message;
  message.clear();
  mime_internal::AppendDateField(recipient.date, message);

  // From: the account's fixed sender replaces the address except for private messages; its
  // default sender name stands in when the task gives none.
  const AccountOverrides* account = recipient.account;
  const bool fixed_sender =
      account != nullptr && account->fixed_sender && m.sensitivity != Sensitivity::kPrivate;
  const bool default_name =
      account != nullptr && !account->default_sender_name.empty() && !m.from_name_constant_nonempty;
  if (!m.from_field.empty() && !fixed_sender && !default_name) {
    message += m.from_field;
  } else {
    std::string_view name;
    if (m.from_name) {
      HERALD_RETURN_IF_ERROR(RenderHeaderValue(*m.from_name, names, values, scratch.rendered));
      name = scratch.rendered;
    }
    if (TrimBlanks(name).empty() && account != nullptr) name = account->default_sender_name;
    HERALD_RETURN_IF_ERROR(
        AppendMailboxField("From", name, fixed_sender ? *account->fixed_sender : m.from_address, message)
            .WithContext("from"));
  }
  if (!m.reply_to_field.empty()) {
    message += m.reply_to_field;
  } else if (account != nullptr && account->default_reply_to) {
    HERALD_RETURN_IF_ERROR(AppendMailboxField("Reply-To", account->default_reply_to->display_name,
                                              account->default_reply_to->address, message)
                               .WithContext("reply-to"));
  }
  std::string_view to_name;
  if (m.to_name) {
    HERALD_RETURN_IF_ERROR(RenderHeaderValue(*m.to_name, names, values, scratch.rendered));
    to_name = scratch.rendered;
  }
  HERALD_RETURN_IF_ERROR(AppendMailboxField("To", to_name, *recipient.to, message).WithContext("to"));
  if (!m.subject_field.empty()) {
    message += m.subject_field;
  } else {
    HERALD_RETURN_IF_ERROR(AppendUnstructuredField("Subject", subject, message).WithContext("subject"));
  }
  HERALD_RETURN_IF_ERROR(mime_internal::AppendMessageIdField(recipient.message_id, message));
  message += m.mime_fields;
  for (const ExtraHeader& header : m.extra_headers) {
    if (!header.constant_field.empty()) {
      message += header.constant_field;
      continue;
    }
    HERALD_RETURN_IF_ERROR(RenderHeaderValue(header.value, names, values, scratch.rendered));
    HERALD_RETURN_IF_ERROR(
        AppendUnstructuredField(header.name, scratch.rendered, message).WithContext(header.value.origin));
  }

  message += m.content_head;
  std::size_t column = 0;
  if (m.text) {
    Result<std::size_t> end = RenderBody(*m.text, names, values, scratch);
    if (!end.ok()) return end.status();
    column = *end;
  }
  if (m.html) {
    message += m.between_bodies;
    Result<std::size_t> end = RenderBody(*m.html, names, values, scratch);
    if (!end.ok()) return end.status();
    column = *end;
  }
  // A message ends with CRLF (RFC 5321 §4.1.1.4); a body that does not gets a soft line break,
  // which decodes to nothing.
  if (m.single_part && column != 0) message += "=\r\n";
  message += m.content_end;
  out.Append(message);
  if (m.attachments) out.AppendShared(m.attachments);
  return Status::Ok();
}

}  // namespace herald
