// Fuzz target: the header writer (mime/internal/header_writer.h), the one chokepoint through
// which every header field is written. The input is a value from a task file, a template or a
// CSV cell: a Subject or extra header (unstructured), a display name (From, To) or an attachment's
// file name (an RFC 2231 parameter); the input's last bytes pick which, and the field name.
//
// Properties:
// - The writer refuses exactly the values with CR, LF, NUL, other C0 controls but tab, DEL or
//   invalid UTF-8 (checked by a validator written here).
// - Round trip: what it writes, read back by the strict reader in rfc2047_decoder.h (written
//   from RFC 5322, 2047 and 2231, not from herald's code), gives the value back — trimmed of
//   blanks for unstructured fields and display names, exactly for parameters.
// - Every line is at most 998 octets, at most 76 when it holds an encoded word, and at most 78
//   unless it holds a single word too long to fold.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "mime/internal/header_writer.h"
#include "rfc2047_decoder.h"

namespace herald {
namespace {

using fuzz::Escaped;

// What the header writer must refuse: RFC 5322 §2.2 allows no CR or LF in a field body but as
// folding, §3.2.5 unstructured text no other controls but WSP; RFC 6532 admits UTF-8 only.
bool Writable(std::string_view value) {
  for (unsigned char c : value) {
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  }
  return fuzz::IsStrictUtf8(value);
}

std::string_view TrimWsp(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The unfolded value of `field`, after the line checks.
std::string Unfold(const std::string& field, std::string_view name) {
  std::string value;
  std::string error;
  FUZZ_CHECK(fuzz::UnfoldField(field, name, mime_internal::kPreferredLineLength, value, error),
             error + " in " + Escaped(field));
  return value;
}

void Unstructured(std::string_view name, std::string_view value) {
  std::string field;
  const Status status = mime_internal::AppendUnstructuredField(name, value, field);
  FUZZ_CHECK(status.ok() == Writable(value), "the writer " + std::string(status.ok() ? "accepts " : "refuses ") +
                                                 Escaped(value) + " " + status.message());
  if (!status.ok()) {
    FUZZ_CHECK(field.empty(), "output left behind by a refused value");
    return;
  }
  std::string text;
  std::string error;
  FUZZ_CHECK(fuzz::DecodeUnstructured(Unfold(field, name), text, error), error + " in " + Escaped(field));
  FUZZ_CHECK(text == TrimWsp(value), "decoded " + Escaped(text) + "\nfrom " + Escaped(field) + "\nwritten for " +
                                         Escaped(value));
}

void DisplayName(std::string_view name, std::string_view display_name) {
  const Address address{.local_part = "anna.berg", .domain = "example.org", .needs_smtputf8 = false};
  std::string field;
  const Status status = mime_internal::AppendMailboxField(name, display_name, address, field);
  FUZZ_CHECK(status.ok() == Writable(display_name), "the writer " + std::string(status.ok() ? "accepts " : "refuses ") +
                                                        Escaped(display_name) + " " + status.message());
  if (!status.ok()) return;
  std::string decoded;
  std::string error;
  FUZZ_CHECK(fuzz::DecodeMailbox(Unfold(field, name), address.ToString(), decoded, error),
             error + " in " + Escaped(field));
  FUZZ_CHECK(decoded == TrimWsp(display_name), "decoded " + Escaped(decoded) + "\nfrom " + Escaped(field) +
                                                   "\nwritten for " + Escaped(display_name));
}

void Parameter(std::string_view name, std::string_view first_token, std::string_view attribute,
               std::string_view value) {
  if (!Writable(value)) return;  // a precondition of AddParameter: values are checked before
  std::string field;
  mime_internal::HeaderLine line(field, name);
  line.AddPlain(" ", first_token);
  line.AddParameter(attribute, value);
  line.Finish();
  std::string decoded;
  std::string error;
  FUZZ_CHECK(fuzz::DecodeParameter(Unfold(field, name), first_token, attribute, decoded, error),
             error + " in " + Escaped(field));
  FUZZ_CHECK(decoded == value, "decoded " + Escaped(decoded) + "\nfrom " + Escaped(field) + "\nwritten for " +
                                   Escaped(value));
}

}  // namespace
}  // namespace herald

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  FuzzedDataProvider provider(data, size);
  const int kind = provider.ConsumeIntegralInRange(0, 2);
  // Field names from the shortest to the longest the writer takes (kMaxFieldNameLength).
  const std::size_t name_length =
      provider.ConsumeIntegralInRange<std::size_t>(2, mime_internal::kMaxFieldNameLength);
  const std::string value = provider.ConsumeRemainingBytesAsString();
  switch (kind) {
    case 0:
      Unstructured(name_length <= 7 ? std::string("Subject") : "X-" + std::string(name_length - 2, 'h'), value);
      break;
    case 1:
      DisplayName(name_length % 2 == 0 ? "From" : "Reply-To", value);
      break;
    default:
      if (name_length % 2 == 0) {
        Parameter("Content-Disposition", "attachment", "filename", value);
      } else {
        Parameter("Content-Type", "application/pdf", "name", value);
      }
      break;
  }
  return 0;
}
