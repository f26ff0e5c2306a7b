#include "cli/csv_dialect.h"

#include <algorithm>
#include <cstdlib>

namespace herald {
namespace {

// Languages that write decimals with a comma (CLDR), and countries of other languages' locales
// that write them with a point. Covers the locales glibc ships.
constexpr std::string_view kDecimalCommaLanguages[] = {
    "af", "az", "be", "bg", "bs", "ca", "cs", "da", "de", "el", "es", "et", "eu", "fi", "fo", "fr", "fy", "gl",
    "hr", "hu", "hy", "id", "is", "it", "ka", "kk", "ky", "lb", "lt", "lv", "mk", "mn", "nb", "nl", "nn", "no",
    "oc", "pl", "pt", "ro", "ru", "sk", "sl", "sq", "sr", "sv", "tk", "tr", "uk", "uz", "vi"};
constexpr std::string_view kDecimalPointLocales[] = {"de_CH", "de_LI", "it_CH", "es_DO", "es_GT", "es_HN", "es_MX",
                                                     "es_NI", "es_PA", "es_PE", "es_PR", "es_SV", "es_US"};

}  // namespace

char SpreadsheetDelimiterOf(std::string_view locale) {
  std::string_view name = locale.substr(0, locale.find_first_of(".@"));
  std::string_view language = name.substr(0, name.find('_'));
  if (std::find(std::begin(kDecimalPointLocales), std::end(kDecimalPointLocales), name) !=
      std::end(kDecimalPointLocales)) {
    return ',';
  }
  bool comma = std::find(std::begin(kDecimalCommaLanguages), std::end(kDecimalCommaLanguages), language) !=
               std::end(kDecimalCommaLanguages);
  return comma ? ';' : ',';
}

char SpreadsheetDelimiter() {
  for (const char* variable : {"LC_ALL", "LC_NUMERIC", "LANG"}) {
    const char* value = std::getenv(variable);
    if (value != nullptr && *value != '\0') return SpreadsheetDelimiterOf(value);
  }
  return ',';
}

void AppendCsvField(std::string& line, std::string_view value, char delimiter) {
  const bool quote = value.find_first_of("\"\r\n") != std::string_view::npos ||
                     value.find(delimiter) != std::string_view::npos ||
                     (!value.empty() && (value.front() == ' ' || value.back() == ' '));
  if (!quote) {
    line += value;
    return;
  }
  line += '"';
  for (char c : value) {
    if (c == '"') line += '"';
    line += c;
  }
  line += '"';
}

}  // namespace herald
