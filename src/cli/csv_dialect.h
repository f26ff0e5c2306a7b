// The CSV that `herald export` writes: RFC 4180 fields and lines (CRLF), with the delimiter of the
// recipient list or, for a spreadsheet, of the user's locale — Excel and LibreOffice open a CSV
// by double-click only when its delimiter is the locale's list separator, which is ';' where the
// decimal separator is a comma. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace herald {

// The list separator a spreadsheet expects in the locale of the environment: LC_ALL, else
// LC_NUMERIC, else LANG (POSIX precedence), like "de_DE.UTF-8": ';' for a language or country
// that writes decimals with a comma (de_DE, fr_FR, it_IT, es_ES, nl_NL, pl_PL, pt_BR, ru_RU, ...),
// ',' for the others and for an unset, "C" or "POSIX" locale.
char SpreadsheetDelimiter();

// The same for the locale name `locale` ("de_DE.UTF-8", "fr_CA", "es_MX@euro").
char SpreadsheetDelimiterOf(std::string_view locale);

// Appends `value` as one field: quoted (quotes doubled) when it holds the delimiter, a quote, CR
// or LF, or starts or ends with a space, so that any CSV reader gets it back exactly.
void AppendCsvField(std::string& line, std::string_view value, char delimiter);

}  // namespace herald
