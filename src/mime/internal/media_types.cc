#include "mime/internal/media_types.h"

#include <array>
#include <utility>

#include "core/text.h"

namespace herald::mime_internal {
namespace {

// Common attachment types; IANA registrations, or the de-facto type where none is registered.
constexpr std::array<std::pair<std::string_view, std::string_view>, 45> kByExtension = {{
    {"7z", "application/x-7z-compressed"},
    {"bmp", "image/bmp"},
    {"csv", "text/csv"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"eml", "message/rfc822"},
    {"epub", "application/epub+zip"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"heic", "image/heic"},
    {"htm", "text/html"},
    {"html", "text/html"},
    {"ics", "text/calendar"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"json", "application/json"},
    {"md", "text/markdown"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"odg", "application/vnd.oasis.opendocument.graphics"},
    {"odp", "application/vnd.oasis.opendocument.presentation"},
    {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"ogg", "audio/ogg"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"rar", "application/vnd.rar"},
    {"rtf", "application/rtf"},
    {"svg", "image/svg+xml"},
    {"tar", "application/x-tar"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"txt", "text/plain"},
    {"vcf", "text/vcard"},
    {"wav", "audio/wav"},
    {"webm", "video/webm"},
    {"webp", "image/webp"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"xml", "application/xml"},
    {"zip", "application/zip"},
    {"ico", "image/vnd.microsoft.icon"},
    {"avif", "image/avif"},
}};

// RFC 2045 §5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>.
bool IsToken(std::string_view text) {
  constexpr std::string_view kTspecials = "()<>@,;:\\\"/[]?=";
  if (text.empty()) return false;
  for (char c : text) {
    if (c <= 0x20 || c >= 0x7F || kTspecials.find(c) != std::string_view::npos) return false;
  }
  return true;
}

}  // namespace

std::string_view MediaTypeForFileName(std::string_view file_name) {
  std::size_t dot = file_name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == file_name.size()) return kOctetStream;
  std::string_view extension = file_name.substr(dot + 1);
  for (const auto& [known, type] : kByExtension) {
    if (EqualsIgnoreCase(known, extension)) return type;
  }
  return kOctetStream;
}

bool IsValidMediaType(std::string_view text) {
  std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) return false;
  return IsToken(text.substr(0, slash)) && IsToken(text.substr(slash + 1));
}

}  // namespace herald::mime_internal
