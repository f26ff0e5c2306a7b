#include "address/internal/idna.h"

#include <idn2.h>

#include <cstdlib>
#include <memory>

namespace herald::address_internal {
namespace {

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

// libidn2's reasons, reworded where its own text would puzzle someone fixing a recipient list.
std::string Reason(int rc) {
  switch (rc) {
    case IDN2_PUNYCODE_BIG_OUTPUT:
    case IDN2_TOO_BIG_LABEL:
      return "as an A-label it would be longer than 63 bytes";
    case IDN2_TOO_BIG_DOMAIN:
      return "as A-labels it would be longer than 255 bytes";
    case IDN2_2HYPHEN:
      return "'--' in the third and fourth positions is reserved by IDNA (RFC 5891 §4.2.3.1)";
    case IDN2_DISALLOWED:
      return "it has a character IDNA2008 does not allow in domain names, such as a symbol or emoji";
    case IDN2_BIDI:
      return "it mixes right-to-left and left-to-right text in a way RFC 5893 forbids";
    default:
      return idn2_strerror(rc);
  }
}

}  // namespace

Result<std::string> ToALabels(std::string_view labels) {
  // libidn2 takes a NUL-terminated string; the caller has ruled out NUL bytes.
  const std::string input(labels);
  char* raw = nullptr;
  // IDN2_NONTRANSITIONAL: UTS #46 mapping (lowercases, maps full-width forms) while keeping ß and ς
  // as IDNA2008 defines them. IDN2_NFC_INPUT: input typed on macOS often arrives decomposed (NFD).
  const int rc = idn2_to_ascii_8z(input.c_str(), &raw, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  std::unique_ptr<char, FreeDeleter> output(raw);
  if (rc != IDN2_OK) return InvalidArgument(Reason(rc));
  if (output == nullptr) return Internal("libidn2 returned success without output");
  return std::string(output.get());
}

}  // namespace herald::address_internal
