// A streaming reader for recipient lists in CSV (RFC 4180): quoted fields with embedded
// delimiters, doubled quotes and line breaks; UTF-8 with or without a byte-order mark; CRLF or
// LF line ends; comma, semicolon or tab as delimiter, detected from the header row or set.
// Memory is bounded by the largest record (capped by CsvOptions::max_record_bytes), never by the
// size of the file. One reader is used by one thread.
#pragma once

#include <cstddef>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace herald {

struct CsvOptions {
  // ',', ';' or '\t'; '\0' detects it from the header row (the candidate occurring most often
  // outside quotes; a comma when there is none).
  char delimiter = '\0';
  // A record longer than this is reported as a bad record (and skipped over) instead of read.
  std::size_t max_record_bytes = 1 << 20;
};

struct CsvRecord {
  std::size_t line = 0;             // 1-based line on which the record starts
  std::vector<std::string> fields;  // unquoted values
  // Empty for a good record. Otherwise why the record is bad — wrong number of fields, invalid
  // UTF-8 (with the byte offset), too large — and the record must not be used; reading can go on.
  std::string problem;
};

class CsvReader {
 public:
  // Reads the header row of `path`. Errors name the file: cannot open, empty file, no header,
  // empty or duplicate column names, invalid UTF-8 in the header.
  static Result<std::unique_ptr<CsvReader>> Open(const std::string& path, CsvOptions options = {});
  // The same over any stream; `name` is used in errors.
  static Result<std::unique_ptr<CsvReader>> Open(std::unique_ptr<std::istream> input, std::string name,
                                                 CsvOptions options = {});

  ~CsvReader();

  const std::vector<std::string>& header() const;
  char delimiter() const;
  const std::string& name() const;

  // Reads the next record. Returns false at the end of input. Blank lines are skipped. A bad
  // record is returned with `problem` set. An unterminated quoted field at the end of the file is
  // a bad record. Only a read error of the stream is an error Status.
  Result<bool> Next(CsvRecord& record);

 private:
  struct State;
  explicit CsvReader(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace herald
