#include "merge/csv_reader.h"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "core/text.h"

namespace herald {
namespace {

// Bytes asked of the stream per read. Large enough that the per-read cost vanishes, small
// enough to stay in the L2 cache.
constexpr std::size_t kBlockBytes = 64 * 1024;
constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

bool AllBlank(const char* begin, const char* end) {
  for (const char* p = begin; p < end; ++p) {
    if (!IsBlank(*p)) return false;
  }
  return true;
}

std::string DelimiterName(char delimiter) {
  switch (delimiter) {
    case ',': return "comma";
    case ';': return "semicolon";
    case '\t': return "tab";
    default: return fmt::format("'{}'", Printable(std::string_view(&delimiter, 1)));
  }
}

}  // namespace

struct CsvReader::State {
  enum class Parsed { kRecord, kBlank, kEnd };

  State(std::unique_ptr<std::istream> input_stream, std::string input_name, CsvOptions csv_options)
      : input(std::move(input_stream)), name(std::move(input_name)), options(csv_options) {}

  // Reads the first block and decides how the input is decoded (see csv_reader.h).
  Status ChooseEncoding();
  // Counts the UTF-8 of the whole input into `census`, then seeks back to where parsing starts.
  // Returns false when the stream cannot seek (the census then holds only the first block).
  Result<bool> CountWholeInput(std::istream::pos_type start, Utf8Census& census);
  // Reads up to kBlockBytes of the input into `out` (resized to what was read).
  Status ReadBlock(std::string& out);
  Status ReadHeader();
  Result<char> DetectDelimiter();
  void SetDelimiter(char d);
  // Makes more input available after `end`, keeping [pos, end). False at the end of the input.
  Result<bool> Fill();
  // Parses one record (or a blank line) starting at `pos`.
  Result<Parsed> ParseRecord(CsvRecord& record);
  // Begins field number `count` (0-based) of `record`; nullptr when its value is not kept.
  std::string* BeginField(CsvRecord& record, std::size_t count, bool overflow) const;
  // The byte before buf[index], looking behind the start of the buffer.
  char ByteBefore(std::size_t index) const { return index > 0 ? buf[index - 1] : byte_before_buf; }
  std::uint64_t Offset() const { return consumed + pos; }
  void CheckUtf8(CsvRecord& record) const;
  Status ReadError() const { return IoError(fmt::format("{}: read error after byte {}", name, bytes_read)); }

  std::unique_ptr<std::istream> input;
  std::string name;
  CsvOptions options;
  char delimiter = ',';
  std::string encoding;  // how the file is read, for messages
  // Null: the input is UTF-8 and parsed as it is read. Otherwise it is decoded into `buf`.
  std::unique_ptr<CharsetDecoder> decoder;
  // Read as UTF-8 by auto mode although some of its bytes are not: the rows holding them are bad.
  bool damaged_utf8 = false;
  // The census found the whole input well-formed UTF-8, so the values cut from it at ASCII
  // delimiters are too: no record needs checking again.
  bool checked_utf8 = false;
  std::string first_block;  // read by ChooseEncoding, parsed first
  std::string raw;          // a block of input before decoding
  std::string decoded;      // its UTF-8
  std::uint64_t bytes_read = 0;
  std::vector<std::string> header;
  // Fields a data record must have; kNoLimit while reading the header (any number is kept).
  std::size_t expected_fields = kNoLimit;

  std::vector<char> buf;
  std::size_t pos = 0;             // next byte to parse
  std::size_t end = 0;             // end of the bytes read into buf
  std::uint64_t consumed = 0;      // bytes of the input before buf[0]
  char byte_before_buf = '\0';     // the input byte just before buf[0]
  bool eof = false;
  std::size_t line = 1;            // physical line of buf[pos]; CRLF, LF and lone CR each end one
  Status failed;                   // sticky read error

  std::array<bool, 256> unquoted_special{};  // bytes that end a run of an unquoted field
  std::array<bool, 256> quoted_special{};    // bytes that end a run of a quoted field
};

Status CsvReader::State::ReadBlock(std::string& out) {
  out.resize(kBlockBytes);
  input->read(out.data(), static_cast<std::streamsize>(kBlockBytes));
  const auto got = static_cast<std::size_t>(input->gcount());
  out.resize(got);
  bytes_read += got;
  if (input->bad()) return ReadError();
  return Status::Ok();
}

Result<bool> CsvReader::State::Fill() {
  if (eof) return false;
  if (pos > 0) {
    byte_before_buf = buf[pos - 1];
    std::memmove(buf.data(), buf.data() + pos, end - pos);
    consumed += pos;
    end -= pos;
    pos = 0;
  }
  std::size_t got = 0;
  if (!first_block.empty()) {
    std::swap(raw, first_block);
    first_block.clear();
    if (decoder == nullptr) {
      if (buf.size() < end + raw.size()) buf.resize(end + raw.size());
      std::memcpy(buf.data() + end, raw.data(), raw.size());
      got = raw.size();
    }
  } else if (decoder == nullptr) {
    // UTF-8: straight into the buffer.
    if (buf.size() < end + kBlockBytes) buf.resize(end + kBlockBytes);
    input->read(buf.data() + end, static_cast<std::streamsize>(kBlockBytes));
    got = static_cast<std::size_t>(input->gcount());
    bytes_read += got;
    if (input->bad()) return ReadError();
  } else {
    HERALD_RETURN_IF_ERROR(ReadBlock(raw));
  }
  if (decoder != nullptr) {
    // Until a block gives at least one character, or the input ends.
    decoded.clear();
    for (;;) {
      decoder->Decode(raw, /*last=*/raw.empty(), decoded);
      if (!decoded.empty() || raw.empty()) break;
      HERALD_RETURN_IF_ERROR(ReadBlock(raw));
    }
    got = decoded.size();
    if (got > 0) {
      if (buf.size() < end + got) buf.resize(end + got);
      std::memcpy(buf.data() + end, decoded.data(), got);
    }
  }
  if (got == 0) {
    eof = true;
    return false;
  }
  end += got;
  return true;
}

Result<bool> CsvReader::State::CountWholeInput(std::istream::pos_type start, Utf8Census& census) {
  if (start == std::istream::pos_type(-1)) {
    // A character cut by the end of the block is not counted.
    census.Add(first_block, /*last=*/first_block.size() < kBlockBytes);
    return false;
  }
  std::string block = first_block;
  std::string next;
  bool last = first_block.size() < kBlockBytes;
  for (;;) {
    const std::size_t counted = census.Add(block, last);
    if (last) break;
    HERALD_RETURN_IF_ERROR(ReadBlock(next));
    last = next.size() < kBlockBytes;
    block.erase(0, counted);  // a sequence cut at the end of the block goes on in the next
    block += next;
  }
  input->clear();
  input->seekg(start + static_cast<std::streamoff>(first_block.size()));
  if (input->fail()) return IoError(fmt::format("{}: cannot go back to the start after reading it once", name));
  bytes_read = first_block.size();
  return true;
}

Status CsvReader::State::ChooseEncoding() {
  const std::istream::pos_type start = input->tellg();
  input->clear();  // tellg() of a stream that cannot seek sets failbit
  HERALD_RETURN_IF_ERROR(ReadBlock(first_block));
  const TextEncoding& wanted = options.encoding;
  std::string charset;
  if (wanted.name != kAutoEncoding) {
    charset = wanted.name;
    encoding = fmt::format("{} (recipients.encoding)", charset);
  } else if (std::optional<std::string_view> marked = CharsetOfByteOrderMark(first_block)) {
    charset = *marked;
    encoding = fmt::format("{} (byte-order mark)", charset);
  } else {
    Utf8Census census;
    Result<bool> whole = CountWholeInput(start, census);
    if (!whole.ok()) return whole.status();
    const std::string_view scope = *whole ? "the file" : "the first 64 KiB of the input";
    if (census.LooksLikeUtf8()) {
      charset = "UTF-8";
      encoding = "UTF-8";
      damaged_utf8 = census.invalid > 0;
      checked_utf8 = *whole && census.invalid == 0;
    } else {
      charset = wanted.fallback;
      encoding = fmt::format("{} ({} is not UTF-8; recipients.fallback_encoding)", charset, scope);
    }
  }
  if (IsUtf8Name(charset)) return Status::Ok();
  Result<std::unique_ptr<CharsetDecoder>> opened = CharsetDecoder::Open(charset);
  if (!opened.ok()) return opened.status().WithContext(fmt::format("{}: {}", name, encoding));
  decoder = std::move(*opened);
  return Status::Ok();
}

void CsvReader::State::SetDelimiter(char d) {
  delimiter = d;
  unquoted_special.fill(false);
  quoted_special.fill(false);
  for (unsigned char c : {static_cast<unsigned char>(d), static_cast<unsigned char>('"'),
                          static_cast<unsigned char>('\r'), static_cast<unsigned char>('\n')}) {
    unquoted_special[c] = true;
  }
  for (unsigned char c : {'"', '\r', '\n'}) quoted_special[c] = true;
}

// Counts ',', ';' and tabs outside quotes in the first line that is not blank (a quoted line
// break continues the line). Reads ahead without consuming; stops after max_record_bytes.
Result<char> CsvReader::State::DetectDelimiter() {
  constexpr char kCandidates[] = {',', ';', '\t'};
  std::size_t counts[3] = {0, 0, 0};
  bool in_quotes = false;
  bool content = false;
  for (std::size_t ahead = 0; ahead <= options.max_record_bytes; ++ahead) {
    if (pos + ahead == end) {
      Result<bool> more = Fill();
      if (!more.ok()) return more.status();
      if (!*more) break;
    }
    const char c = buf[pos + ahead];
    if (c == '"') {
      in_quotes = !in_quotes;
      content = true;
    } else if (in_quotes) {
      continue;
    } else if (c == '\r' || c == '\n') {
      if (content) break;
      counts[0] = counts[1] = counts[2] = 0;  // a blank line: its tabs are no evidence
    } else if (c == ',') {
      ++counts[0];
      content = true;
    } else if (c == ';') {
      ++counts[1];
      content = true;
    } else if (c == '\t') {
      ++counts[2];
    } else if (c != ' ') {
      content = true;
    }
  }
  std::size_t best = 0;
  for (std::size_t i = 1; i < 3; ++i) {
    if (counts[i] > counts[best]) best = i;
  }
  return kCandidates[best];
}

Status CsvReader::State::ReadHeader() {
  while (end - pos < 3) {
    Result<bool> more = Fill();
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  const std::string_view start(buf.data() + pos, end - pos);
  if (start.starts_with("\xEF\xBB\xBF")) {
    pos += 3;  // a byte-order mark: Excel's "CSV UTF-8", or decoded from UTF-16
  } else if (start.starts_with("\xFF\xFE") || start.starts_with("\xFE\xFF")) {
    return InvalidArgument(fmt::format(
        "{}: the file is UTF-16 (it starts with a UTF-16 byte-order mark) but is read as {}; set "
        "recipients.encoding to \"auto\" or \"utf-16\"",
        name, encoding));
  }
  if (pos == end) {
    return InvalidArgument(fmt::format(
        "{}: the file is empty; expected a header row with column names, like \"email,firstname\"", name));
  }

  if (options.delimiter != '\0') {
    SetDelimiter(options.delimiter);
  } else {
    Result<char> detected = DetectDelimiter();
    if (!detected.ok()) return detected.status();
    SetDelimiter(*detected);
  }

  CsvRecord record;
  Parsed parsed;
  do {
    Result<Parsed> got = ParseRecord(record);
    if (!got.ok()) return got.status();
    parsed = *got;
  } while (parsed == Parsed::kBlank);
  if (parsed == Parsed::kEnd) {
    return InvalidArgument(fmt::format(
        "{}: no header row: the file holds only blank lines; expected column names, like \"email,firstname\"",
        name));
  }
  const std::string where = fmt::format("{}:{}: header row", name, record.line);
  if (!record.problem.empty()) return InvalidArgument(fmt::format("{}: {}", where, record.problem));

  header.reserve(record.fields.size());
  std::unordered_map<std::string, std::size_t> column_by_folded_name;  // a header may be long
  for (std::size_t i = 0; i < record.fields.size(); ++i) {
    std::string column(TrimBlanks(record.fields[i]));
    if (column.empty()) {
      return InvalidArgument(fmt::format(
          "{}: column {} has an empty name; every column needs a name (columns are separated by {})", where,
          i + 1, DelimiterName(delimiter)));
    }
    if (HasLineBreakOrNul(column)) {
      return InvalidArgument(fmt::format("{}: the name of column {} (\"{}\") holds a line break or NUL", where,
                                         i + 1, Printable(column)));
    }
    if (auto [seen, added] = column_by_folded_name.try_emplace(AsciiLowercase(column), i); !added) {
      const std::size_t j = seen->second;
      return InvalidArgument(fmt::format(
          "{}: columns {} (\"{}\") and {} (\"{}\") have the same name; names are compared ignoring case, "
          "as placeholders are",
          where, j + 1, Printable(header[j]), i + 1, Printable(column)));
    }
    header.push_back(std::move(column));
  }
  expected_fields = header.size();
  return Status::Ok();
}

std::string* CsvReader::State::BeginField(CsvRecord& record, std::size_t count, bool overflow) const {
  if (overflow || count >= expected_fields) return nullptr;
  if (count < record.fields.size()) {
    record.fields[count].clear();
  } else {
    record.fields.emplace_back();
  }
  return &record.fields[count];
}

// Parsing is a small state machine over runs of bytes: a run of an unquoted or quoted field is
// found with a table lookup per byte and appended with one copy. A field is copied straight into
// the caller's strings, so the buffer never holds more than one block plus what is unparsed.
Result<CsvReader::State::Parsed> CsvReader::State::ParseRecord(CsvRecord& record) {
  enum class Mode {
    kUnquoted,       // in an unquoted field (or at the start of a field)
    kQuoted,         // inside quotes
    kQuoteInQuoted,  // just after a quote inside quotes: a doubled quote or the closing one
    kAfterQuoted,    // after the closing quote, skipping blanks up to the delimiter
  };
  record.problem.clear();
  record.line = line;
  const std::uint64_t record_start = Offset();
  const std::size_t max_bytes = options.max_record_bytes;
  bool overflow = false;
  std::size_t count = 0;  // fields begun, minus one
  std::string* field = BeginField(record, 0, false);
  Mode mode = Mode::kUnquoted;
  bool blank = true;                  // the current field is unquoted and holds only blanks so far
  std::size_t quote_line = 0;         // where the current quoted field opened
  std::size_t multiline_quote = 0;    // where the first quoted field holding a line break opened
  std::uint64_t content_end = 0;      // offset of the line end (or the end of the input)
  bool at_eof = false;

  for (;;) {
    if (pos == end) {
      Result<bool> more = Fill();
      if (!more.ok()) return more.status();
      if (!*more) {
        if (Offset() == record_start) return Parsed::kEnd;
        at_eof = true;
        content_end = Offset();
        break;
      }
    }
    if (!overflow && Offset() - record_start > max_bytes) {
      overflow = true;
      field = nullptr;
    }
    const char* const data = buf.data();
    const char* p = data + pos;
    const char* const e = data + end;
    if (mode == Mode::kUnquoted) {
      const char* const run = p;
      while (p < e && !unquoted_special[static_cast<unsigned char>(*p)]) ++p;
      if (blank && run < p) blank = AllBlank(run, p);
      if (field != nullptr) field->append(run, static_cast<std::size_t>(p - run));
      pos = static_cast<std::size_t>(p - data);
      if (p == e) continue;
      const char c = *p;
      if (c == delimiter) {
        ++pos;
        field = BeginField(record, ++count, overflow);
        blank = true;
      } else if (c == '"') {
        ++pos;
        if (blank) {
          // A quote after nothing but blanks opens a quoted field; the blanks are dropped, so
          // `a, "b, c"` (a space after the delimiter, as people type) reads as two fields.
          if (field != nullptr) field->clear();
          mode = Mode::kQuoted;
          quote_line = line;
          blank = false;
        } else if (field != nullptr) {
          field->push_back('"');  // a stray quote inside an unquoted field is kept as written
        }
      } else {
        content_end = Offset();
        break;  // CR or LF: the end of the record
      }
    } else if (mode == Mode::kQuoted) {
      const char* const run = p;
      while (p < e && !quoted_special[static_cast<unsigned char>(*p)]) ++p;
      if (field != nullptr) field->append(run, static_cast<std::size_t>(p - run));
      pos = static_cast<std::size_t>(p - data);
      if (p == e) continue;
      const char c = *p;
      if (c == '"') {
        mode = Mode::kQuoteInQuoted;
      } else {
        // A line break inside quotes is part of the value; it still ends a physical line.
        if (c == '\r' || ByteBefore(pos) != '\r') ++line;
        if (multiline_quote == 0) multiline_quote = quote_line;
        if (field != nullptr) field->push_back(c);
      }
      ++pos;
    } else {
      const char c = *p;
      if (mode == Mode::kQuoteInQuoted && c == '"') {
        if (field != nullptr) field->push_back('"');  // RFC 4180 §2.7: "" is one quote
        mode = Mode::kQuoted;
        ++pos;
      } else if (c == delimiter) {
        ++pos;
        field = BeginField(record, ++count, overflow);
        mode = Mode::kUnquoted;
        blank = true;
      } else if (c == '\r' || c == '\n') {
        content_end = Offset();
        break;
      } else if (IsBlank(c)) {
        mode = Mode::kAfterQuoted;
        ++pos;
      } else {
        // `"ab"c`: most often an undoubled quote inside a quoted value. Guessing what was meant
        // could mail the wrong text, so the record is bad; the rest is read as unquoted text to
        // find where the record ends.
        if (record.problem.empty()) {
          record.problem = fmt::format(
              "field {}: unexpected '{}' after the closing quote on line {}; a quote inside a quoted field "
              "must be doubled (\"\")",
              count + 1, Printable(std::string_view(p, 1)), line);
        }
        mode = Mode::kUnquoted;
      }
    }
  }

  if (!at_eof) {
    // RFC 4180 §2.1 ends records with CRLF; LF and a lone CR (old Mac exports) are accepted too.
    const char c = buf[pos++];
    if (c == '\r') {
      ++line;
      if (pos < end && buf[pos] == '\n') ++pos;
    } else if (ByteBefore(pos - 1) != '\r') {
      ++line;  // an LF right after a CR ending the previous block's last record was counted with it
    }
  }
  if (content_end - record_start > max_bytes) overflow = true;

  const std::size_t fields = count + 1;
  if (overflow) {
    record.fields.clear();
    record.problem = fmt::format("the record is larger than {} bytes (max_record_bytes); skipped it up to line {}",
                                 max_bytes, at_eof ? line : line - 1);
    if (at_eof && mode == Mode::kQuoted) {
      record.problem += fmt::format(
          "; the file ends inside the quoted field opened on line {}: is a closing quote missing?", quote_line);
    } else if (multiline_quote != 0) {
      record.problem += fmt::format(
          "; the quoted field opened on line {} runs over several lines: is a closing quote missing?",
          multiline_quote);
    }
    return Parsed::kRecord;
  }
  if (fields < record.fields.size()) record.fields.resize(fields);
  if (fields == 1 && mode == Mode::kUnquoted && blank && record.problem.empty()) return Parsed::kBlank;
  if (record.problem.empty() && at_eof && mode == Mode::kQuoted) {
    record.problem = fmt::format(
        "field {}: the quoted field opened on line {} is not closed before the end of the file; is a closing "
        "quote missing?",
        fields, quote_line);
  }
  if (record.problem.empty() && expected_fields != kNoLimit && fields != expected_fields) {
    record.problem = fmt::format("expected {} fields as in the header row, got {} (fields are separated by {})",
                                 expected_fields, fields, DelimiterName(delimiter));
  }
  if (record.problem.empty() && !checked_utf8) CheckUtf8(record);
  return Parsed::kRecord;
}

void CsvReader::State::CheckUtf8(CsvRecord& record) const {
  for (std::size_t i = 0; i < record.fields.size(); ++i) {
    const std::string& value = record.fields[i];
    const std::size_t bad = FindInvalidUtf8(value);
    if (bad == std::string_view::npos) continue;
    const std::string what =
        expected_fields == kNoLimit
            ? fmt::format("the name of column {}", i + 1)
            : fmt::format("field {}{}", i + 1, i < header.size() ? fmt::format(" (\"{}\")", Printable(header[i])) : "");
    if (decoder != nullptr) {
      record.problem = fmt::format(
          "{} holds a byte that is not a character of {} (shown as \\xFF at byte {} of the value: \"{}\"); set "
          "recipients.encoding to the file's encoding",
          what, encoding, bad + 1, Printable(value, 60));
    } else if (damaged_utf8) {
      record.problem = fmt::format(
          "{} is not valid UTF-8 at byte {} of the value (\"{}\"), though the rest of the file is UTF-8; repair "
          "this row, or set recipients.encoding if the file is in another encoding",
          what, bad + 1, Printable(value, 60));
    } else {
      record.problem = fmt::format(
          "{} is not valid UTF-8 at byte {} of the value (\"{}\"); the file is read as {}: set "
          "recipients.encoding to the file's encoding, such as \"windows-1252\"",
          what, bad + 1, Printable(value, 60), encoding);
    }
    return;
  }
}

CsvReader::CsvReader(std::unique_ptr<State> state) : state_(std::move(state)) {}
CsvReader::~CsvReader() = default;

Result<std::unique_ptr<CsvReader>> CsvReader::Open(const std::string& path, CsvOptions options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return InvalidArgument(fmt::format("{}: is a directory, not a CSV file", path));
  }
  auto file = std::make_unique<std::ifstream>();
  errno = 0;
  file->open(path, std::ios::binary);
  if (!file->is_open()) {
    const int error = errno;
    const std::string reason = error != 0 ? std::strerror(error) : "cannot open";
    if (error == ENOENT) return NotFound(fmt::format("{}: cannot open the recipient list: {}", path, reason));
    if (error == EACCES) {
      return Status(StatusCode::kPermissionDenied,
                    fmt::format("{}: cannot open the recipient list: {}", path, reason));
    }
    return IoError(fmt::format("{}: cannot open the recipient list: {}", path, reason));
  }
  return Open(std::move(file), path, options);
}

Result<std::unique_ptr<CsvReader>> CsvReader::Open(std::unique_ptr<std::istream> input, std::string name,
                                                   CsvOptions options) {
  if (input == nullptr) return InvalidArgument(fmt::format("{}: no input stream", name));
  if (options.delimiter != '\0' && options.delimiter != ',' && options.delimiter != ';' &&
      options.delimiter != '\t') {
    return InvalidArgument(fmt::format("{}: delimiter {} is not supported; use comma, semicolon or tab", name,
                                       DelimiterName(options.delimiter)));
  }
  if (options.max_record_bytes == 0) {
    return InvalidArgument(fmt::format("{}: max_record_bytes must be at least 1", name));
  }
  if (options.encoding.name != kAutoEncoding) {
    HERALD_RETURN_IF_ERROR(CheckCharset(options.encoding.name).WithContext(fmt::format("{}: encoding", name)));
  } else {
    HERALD_RETURN_IF_ERROR(
        CheckCharset(options.encoding.fallback).WithContext(fmt::format("{}: fallback encoding", name)));
  }
  auto state = std::make_unique<State>(std::move(input), std::move(name), options);
  HERALD_RETURN_IF_ERROR(state->ChooseEncoding());
  HERALD_RETURN_IF_ERROR(state->ReadHeader());
  return std::unique_ptr<CsvReader>(new CsvReader(std::move(state)));
}

const std::vector<std::string>& CsvReader::header() const { return state_->header; }
char CsvReader::delimiter() const { return state_->delimiter; }
const std::string& CsvReader::name() const { return state_->name; }
const std::string& CsvReader::encoding() const { return state_->encoding; }

Result<bool> CsvReader::Next(CsvRecord& record) {
  State& state = *state_;
  if (!state.failed.ok()) return state.failed;
  for (;;) {
    Result<State::Parsed> parsed = state.ParseRecord(record);
    if (!parsed.ok()) {
      state.failed = parsed.status();
      return state.failed;
    }
    if (*parsed == State::Parsed::kBlank) continue;
    if (*parsed == State::Parsed::kEnd) {
      record.fields.clear();
      record.problem.clear();
      return false;
    }
    return true;
  }
}

}  // namespace herald
