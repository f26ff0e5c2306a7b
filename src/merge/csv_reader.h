// A streaming reader for recipient lists in CSV (RFC 4180): quoted fields with embedded
// delimiters, doubled quotes and line breaks; CRLF or LF line ends; comma, semicolon or tab as
// delimiter, detected from the header row or set. Any encoding iconv reads (merge/text_encoding.h):
// UTF-8 with or without a byte-order mark, UTF-16 with one (Excel's "Unicode text"), a code page;
// records and values are UTF-8. The input is read in 64 KiB blocks; memory is bounded by about
// CsvOptions::max_record_bytes plus a few blocks, never by the size of the file. One reader is
// used by one thread.
//
// Encoding "auto" decides once per file, before the first record: a byte-order mark names it;
// otherwise the whole input is scanned once (a fast UTF-8 census, then the stream is sought back)
// and read as UTF-8 if it is UTF-8 (Utf8Census::LooksLikeUtf8), else in the fallback code page.
// A stream that cannot seek is decided on its first 64 KiB. UTF-8 is parsed as it is read, with
// no conversion; other encodings are converted block by block. Values are checked for UTF-8 once:
// by the census when it found the whole file well-formed, else record by record.
//
// How the reader treats what RFC 4180 leaves open or forbids:
// - Record ends: CRLF, LF and a lone CR (old Mac exports) each end a record and count as one
//   line. Inside quotes they are kept in the value exactly as written.
// - Values are kept as written: `a, b` gives "a" and " b"; nothing is trimmed. Header names are
//   trimmed of spaces and tabs, because placeholders (`{% city %}`) are.
// - Blanks before an opening quote or after a closing one are dropped: `a, "b, c" ` gives "a"
//   and "b, c".
// - A quote inside an unquoted field is kept as a character: `5" screen` gives `5" screen`.
// - Anything but blanks between a closing quote and the delimiter (`"ab"c`, often an undoubled
//   quote inside a quoted value) makes the record bad.
// - Lines holding nothing or only spaces (and tabs, unless tab is the delimiter) are skipped.
//   `,,` is a record of empty values.
// - A byte-order mark is stripped. A UTF-16 one in a file read as UTF-8 or a code page (an
//   encoding set by name) is an error of Open.
#pragma once

#include <cstddef>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "merge/text_encoding.h"

namespace herald {

struct CsvOptions {
  // ',', ';' or '\t'; '\0' detects it from the header row (the candidate occurring most often
  // outside quotes; a comma when there is none).
  char delimiter = '\0';
  // A record whose text (quotes and delimiters included, line end excluded) is longer than this
  // is reported as a bad record and skipped over without being stored. Must be at least 1.
  std::size_t max_record_bytes = 1 << 20;
  // "auto" (see above) or a character set used as is. The names are checked by Open.
  TextEncoding encoding;
};

// Pass the same CsvRecord to every Next() call: its strings are reused, so reading a file of
// records of similar shape allocates nothing after the first records.
struct CsvRecord {
  // 1-based physical line on which the record starts, counting line breaks inside quoted fields,
  // as an editor shows it.
  std::size_t line = 0;
  std::vector<std::string> fields;  // unquoted values; one per header column in a good record
  // Empty for a good record. Otherwise why the record is bad — wrong number of fields (expected N,
  // got M), invalid UTF-8 or a byte that is no character of the file's encoding (field and byte),
  // too large, an unterminated quote at the end of the
  // file, text after a closing quote — and `fields` are incomplete and must not be used; reading
  // can go on with the next record.
  std::string problem;
};

class CsvReader {
 public:
  // Reads the header row of `path` (blank lines before it are skipped). Errors name the file:
  // cannot open (kNotFound when it does not exist), empty file, no header, a UTF-16 byte-order
  // mark in a file read as something else, empty or duplicate column names (compared ignoring
  // ASCII case, as placeholders are), invalid UTF-8 or undecodable bytes in the header, an
  // unsupported delimiter or unknown encoding in `options`. A header without records is valid.
  static Result<std::unique_ptr<CsvReader>> Open(const std::string& path, CsvOptions options = {});
  // The same over any stream; `name` is used in errors.
  static Result<std::unique_ptr<CsvReader>> Open(std::unique_ptr<std::istream> input, std::string name,
                                                 CsvOptions options = {});

  ~CsvReader();

  const std::vector<std::string>& header() const;  // column names, trimmed
  char delimiter() const;                           // as set or detected
  const std::string& name() const;
  // How the file is read, for messages: "UTF-8", "UTF-16LE (byte-order mark)",
  // "windows-1252 (the file is not UTF-8; recipients.fallback_encoding)".
  const std::string& encoding() const;

  // Reads the next record. Returns false at the end of input. Blank lines are skipped. A bad
  // record is returned with `problem` set. An unterminated quoted field at the end of the file is
  // a bad record. Only a read error of the stream is an error Status; it is returned again by
  // every later call.
  Result<bool> Next(CsvRecord& record);

 private:
  struct State;
  explicit CsvReader(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace herald
