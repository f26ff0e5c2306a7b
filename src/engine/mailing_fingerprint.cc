#include "engine/mailing_fingerprint.h"

#include <openssl/evp.h>

#include <array>
#include <filesystem>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "engine/recipient_import.h"

namespace herald {
namespace {

constexpr std::string_view kVersion = "mailing/1";
// Hex digits kept of each part's SHA-256: 64 bits tell a change apart well enough.
constexpr std::size_t kPartDigits = 16;

struct Part {
  std::string_view key;    // in the fingerprint
  std::string_view words;  // in messages
};
constexpr std::array<Part, 11> kParts = {{
    {"from", "sender"},
    {"from_name", "sender's name"},
    {"reply_to", "Reply-To"},
    {"to_name", "recipient's name"},
    {"subject", "subject"},
    {"text", "text body"},
    {"html", "HTML body"},
    {"attachments", "attachments"},
    {"headers", "extra headers"},
    {"sensitivity", "sensitivity"},
    {"recipients", "recipient list file"},
}};

// Each value with its length before it, so that no two different lists of values read the same.
void Append(std::string& out, std::string_view value) {
  out += std::to_string(value.size());
  out += ':';
  out += value;
}

std::string ShortSha256(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < size && hex.size() < kPartDigits; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::string MailboxText(const Mailbox& mailbox) {
  std::string out;
  Append(out, mailbox.address.ToString());
  Append(out, mailbox.display_name);
  return out;
}

Result<std::string> AttachmentsText(const std::vector<AttachmentSpec>& attachments) {
  std::string out;
  for (const AttachmentSpec& attachment : attachments) {
    Result<std::string> digest = FileDigest(attachment.path);
    if (!digest.ok()) return digest.status();
    Append(out, *digest);
    Append(out, attachment.file_name.empty() ? std::filesystem::path(attachment.path).filename().string()
                                             : attachment.file_name);
    Append(out, attachment.content_type);
  }
  return out;
}

// key -> digest of a fingerprint; empty when it is not one of this kind.
std::map<std::string, std::string, std::less<>> Parse(std::string_view fingerprint) {
  std::map<std::string, std::string, std::less<>> parts;
  std::size_t start = 0;
  bool first = true;
  while (start <= fingerprint.size()) {
    std::size_t end = fingerprint.find(' ', start);
    if (end == std::string_view::npos) end = fingerprint.size();
    std::string_view word = fingerprint.substr(start, end - start);
    if (first) {
      if (word != kVersion) return {};
      first = false;
    } else {
      const std::size_t equals = word.find('=');
      if (equals == std::string_view::npos) return {};
      parts.emplace(std::string(word.substr(0, equals)), std::string(word.substr(equals + 1)));
    }
    start = end + 1;
  }
  return parts;
}

}  // namespace

Result<std::string> MailingFingerprint(const TaskConfig& task) {
  const MessageConfig& message = task.message;
  Result<std::string> attachments = AttachmentsText(message.attachments);
  if (!attachments.ok()) return attachments.status();
  std::string headers;
  for (const auto& [name, value] : message.headers) {
    Append(headers, name);
    Append(headers, value);
  }
  const std::string list = std::filesystem::path(task.recipients.file)
                               .lexically_relative(std::filesystem::path(task.path).parent_path())
                               .generic_string();
  const std::array<std::string, kParts.size()> values = {
      MailboxText(message.from),
      message.from_name,
      message.reply_to ? MailboxText(*message.reply_to) : std::string(),
      message.to_name,
      message.subject,
      message.text_body,
      message.html_body,
      *attachments,
      headers,
      std::to_string(static_cast<int>(message.sensitivity)),
      list,
  };
  std::string fingerprint(kVersion);
  for (std::size_t i = 0; i < kParts.size(); ++i) {
    fingerprint += fmt::format(" {}={}", kParts[i].key, ShortSha256(values[i]));
  }
  return fingerprint;
}

std::vector<std::string> MailingChanges(std::string_view stored, std::string_view current) {
  const auto before = Parse(stored);
  const auto now = Parse(current);
  std::vector<std::string> changes;
  for (const Part& part : kParts) {
    auto was = before.find(part.key);
    auto is = now.find(part.key);
    if (was == before.end() || is == now.end() || was->second != is->second) changes.emplace_back(part.words);
  }
  return changes;
}

}  // namespace herald
