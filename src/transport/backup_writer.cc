#include "transport/backup_writer.h"

#include <filesystem>

#include <fmt/format.h>

#include "core/text.h"
#include "transport/internal/atomic_file.h"

namespace herald {
namespace {

constexpr std::size_t kMaxComponentBytes = 200;

// Replaces what no file name should hold: control characters and \ / : * ? " < > | (the set
// Windows forbids, since backups are often read from Windows shares).
void AppendSafe(std::string_view text, bool keep_slash, std::string& out) {
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    bool bad = u < 0x20 || u == 0x7F || c == '\\' || c == ':' || c == '*' || c == '?' || c == '"' || c == '<' ||
               c == '>' || c == '|' || (c == '/' && !keep_slash);
    out += bad ? '_' : c;
  }
}

// Cuts `component` to at most kMaxComponentBytes without splitting a UTF-8 character, and strips
// leading dots and blanks (no hidden files, no "..") and trailing dots and blanks.
std::string CleanComponent(std::string_view component) {
  std::size_t begin = component.find_first_not_of(". ");
  if (begin == std::string_view::npos) return {};
  component.remove_prefix(begin);
  std::size_t end = component.find_last_not_of(". ");
  component = component.substr(0, end + 1);
  if (component.size() > kMaxComponentBytes) {
    std::size_t cut = kMaxComponentBytes;
    while (cut > 0 && (static_cast<unsigned char>(component[cut]) & 0xC0) == 0x80) --cut;
    component = component.substr(0, cut);
  }
  return std::string(component);
}

}  // namespace

BackupWriter::BackupWriter(std::string folder, Template file_name)
    : folder_(std::move(folder)), file_name_(std::move(file_name)) {}

std::string BackupWriter::RelativePath(FieldValues values) const {
  std::string rendered;
  for (const Template::Segment& segment : file_name_.segments()) {
    AppendSafe(segment.literal, /*keep_slash=*/true, rendered);
    if (segment.field == Template::kNoField) continue;
    std::string_view value = values[segment.field];
    if (value.empty()) value = segment.default_value;
    AppendSafe(value, /*keep_slash=*/false, rendered);
  }
  std::string path;
  std::size_t start = 0;
  while (start <= rendered.size()) {
    std::size_t slash = rendered.find('/', start);
    if (slash == std::string::npos) slash = rendered.size();
    std::string component = CleanComponent(std::string_view(rendered).substr(start, slash - start));
    if (!component.empty()) {
      if (!path.empty()) path += '/';
      path += component;
    }
    start = slash + 1;
  }
  if (path.empty() || path.back() == '/') path += "message.eml";
  return path;
}

Result<std::string> BackupWriter::Save(FieldValues values, const MessageData& message) const {
  std::filesystem::path relative(RelativePath(values));
  // The configured folder as the user wrote it (links followed); below it, atomic_file.h's rules.
  std::error_code ec;
  std::filesystem::create_directories(folder_, ec);
  if (ec) {
    return Status(ec == std::errc::no_space_on_device ? StatusCode::kResourceExhausted : StatusCode::kIo,
                  fmt::format("cannot create the backup folder {}: {}", folder_, ec.message()));
  }
  return transport_internal::WriteMessageFile(folder_, relative.parent_path().string(), relative.filename().string(),
                                              message, transport_internal::IfExists::kAddNumber);
}

}  // namespace herald
