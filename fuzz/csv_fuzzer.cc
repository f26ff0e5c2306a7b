// Fuzz target: the CSV reader (merge/csv_reader.h) over a recipient list. The input is the file;
// its last bytes also pick the options (delimiter, max_record_bytes, encoding) and whether the
// stream fails.
//
// Properties, beyond "no crash, leak or undefined behaviour":
// - Header names are trimmed, non-empty, without CR, LF or NUL, distinct ignoring ASCII case.
// - A good record has one value per column, all valid UTF-8; line numbers never go back; after the
//   end, Next() stays at the end, and after a read error it keeps returning the error.
// - The reader's 64 KiB blocks do not show: the file read with a blank line in front that moves
//   every byte across a block boundary gives the same header and records.
// - Writing the header and the good records back as CSV (every value quoted) and reading that
//   gives them back unchanged, in UTF-8 and in UTF-16 LE with a byte-order mark.
#include <fuzzer/FuzzedDataProvider.h>
#include <iconv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

#include "core/text.h"
#include "fuzz_check.h"
#include "merge/csv_reader.h"

namespace herald {
namespace {

using fuzz::Escaped;

// A stream buffer over `text` that hands out a few bytes per call and, when `fail_at` is inside
// the text, fails there as a disk read error would (the istream sets badbit).
class FlakyBuffer : public std::streambuf {
 public:
  FlakyBuffer(std::string text, std::size_t fail_at) : text_(std::move(text)), fail_at_(fail_at) {}

 protected:
  int_type underflow() override {
    if (pos_ >= fail_at_) throw std::runtime_error("injected read error");
    if (pos_ >= text_.size()) return traits_type::eof();
    const std::size_t n = std::min<std::size_t>({7, text_.size() - pos_, fail_at_ - pos_});
    char* begin = text_.data() + pos_;
    setg(begin, begin, begin + n);
    pos_ += n;
    return traits_type::to_int_type(*begin);
  }

 private:
  std::string text_;
  std::size_t fail_at_;
  std::size_t pos_ = 0;
};

class FlakyStream : public std::istream {
 public:
  FlakyStream(std::string text, std::size_t fail_at) : std::istream(nullptr), buffer_(std::move(text), fail_at) {
    rdbuf(&buffer_);
  }

 private:
  FlakyBuffer buffer_;
};

struct Read {
  bool ok = false;            // the header was read
  bool read_error = false;    // Next() returned an error
  char delimiter = '\0';
  std::vector<std::string> header;
  std::vector<CsvRecord> records;  // good and bad ones, in order
};

Read ReadAll(std::unique_ptr<std::istream> input, CsvOptions options) {
  Read read;
  Result<std::unique_ptr<CsvReader>> reader = CsvReader::Open(std::move(input), "fuzz.csv", options);
  if (!reader.ok()) {
    FUZZ_CHECK(!reader.status().message().empty(), "an error without a message");
    return read;
  }
  read.ok = true;
  read.delimiter = (*reader)->delimiter();
  read.header = (*reader)->header();
  CsvRecord record;
  std::size_t last_line = 0;
  for (;;) {
    Result<bool> more = (*reader)->Next(record);
    if (!more.ok()) {
      read.read_error = true;
      FUZZ_CHECK(!(*reader)->Next(record).ok(), "a read error was forgotten");
      break;
    }
    if (!*more) {
      Result<bool> again = (*reader)->Next(record);
      FUZZ_CHECK(again.ok() && !*again, "Next() went on after the end");
      break;
    }
    FUZZ_CHECK(record.line >= 1 && record.line >= last_line, "line numbers went back");
    last_line = record.line;
    read.records.push_back(record);
  }
  return read;
}

void CheckHeaderAndRecords(const Read& read) {
  FUZZ_CHECK(!read.header.empty(), "a header without columns");
  for (std::size_t i = 0; i < read.header.size(); ++i) {
    const std::string& name = read.header[i];
    FUZZ_CHECK(!name.empty() && TrimBlanks(name) == name, "column name not trimmed: " + Escaped(name));
    FUZZ_CHECK(!HasLineBreakOrNul(name) && IsValidUtf8(name), "bad column name: " + Escaped(name));
    for (std::size_t j = 0; j < i; ++j) {
      FUZZ_CHECK(!EqualsIgnoreCase(read.header[j], name), "duplicate column name: " + Escaped(name));
    }
  }
  for (const CsvRecord& record : read.records) {
    if (!record.problem.empty()) continue;
    FUZZ_CHECK(record.fields.size() == read.header.size(), "a good record with a wrong number of fields");
    for (const std::string& value : record.fields) {
      FUZZ_CHECK(IsValidUtf8(value), "a good record with invalid UTF-8: " + Escaped(value));
    }
  }
}

void AppendQuoted(std::string_view value, std::string& out) {
  out += '"';
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

std::string WriteBack(const Read& read) {
  std::string out;
  auto write_row = [&](const std::vector<std::string>& values) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out += read.delimiter;
      AppendQuoted(values[i], out);
    }
    out += "\r\n";
  };
  write_row(read.header);
  for (const CsvRecord& record : read.records) {
    if (record.problem.empty()) write_row(record.fields);
  }
  return out;
}

// `utf8` as UTF-16 LE with a byte-order mark (iconv's encoder; the reader uses its decoder).
std::string Utf16WithBom(const std::string& utf8) {
  iconv_t encoder = iconv_open("UTF-16LE", "UTF-8");
  FUZZ_CHECK(encoder != reinterpret_cast<iconv_t>(-1), "no UTF-16LE encoder");
  std::string out(2 + utf8.size() * 4, '\0');
  out[0] = '\xFF';
  out[1] = '\xFE';
  char* in = const_cast<char*>(utf8.data());
  std::size_t in_left = utf8.size();
  char* out_ptr = out.data() + 2;
  std::size_t out_left = out.size() - 2;
  const std::size_t result = iconv(encoder, &in, &in_left, &out_ptr, &out_left);
  iconv_close(encoder);
  FUZZ_CHECK(result != static_cast<std::size_t>(-1), "good records that are not UTF-8: " + Escaped(utf8));
  out.resize(out.size() - out_left);
  return out;
}

std::vector<std::vector<std::string>> GoodRecords(const Read& read) {
  std::vector<std::vector<std::string>> good;
  for (const CsvRecord& record : read.records) {
    if (record.problem.empty()) good.push_back(record.fields);
  }
  return good;
}

}  // namespace
}  // namespace herald

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  static constexpr char kDelimiters[] = {'\0', ',', ';', '\t'};
  static constexpr std::size_t kMaxRecordBytes[] = {1, 7, 64, 1 << 20};
  static const TextEncoding kEncodings[] = {
      {}, {.fallback = "windows-1250"}, {.name = "utf-16le"}, {.name = "iso-8859-2"}, {.name = "utf-8"}};

  FuzzedDataProvider provider(data, size);
  CsvOptions options;
  options.delimiter = provider.PickValueInArray(kDelimiters);
  options.max_record_bytes = provider.PickValueInArray(kMaxRecordBytes);
  options.encoding = provider.PickValueInArray(kEncodings);
  const bool fail = provider.ConsumeBool();
  // Where the flaky stream fails; otherwise whether and how far the text is moved (below).
  const std::size_t number = provider.ConsumeIntegral<std::uint16_t>();
  const std::string text = provider.ConsumeRemainingBytesAsString();

  if (fail) {
    // Only robustness: records before the failure, then the error for good.
    ReadAll(std::make_unique<FlakyStream>(text, number), options);
    return 0;
  }
  const Read read = ReadAll(std::make_unique<std::istringstream>(text), options);
  if (!read.ok) return 0;
  CheckHeaderAndRecords(read);

  // Across a block boundary (the reader asks for 64 KiB at a time): a blank line that ends just
  // before it, a little after the start of the text. Without a byte-order mark, which counts only
  // at the very start, in an encoding where the blank line is ASCII, and with records that the
  // blank line cannot make too large. In one run of four: reading 64 KiB more costs more than all
  // the rest.
  const bool ascii_blank_line = !CharsetOfByteOrderMark(text) && options.encoding.name != "utf-16le";
  if (ascii_blank_line && options.max_record_bytes == (1 << 20) && number % 4 == 0) {
    std::string moved(65536 - 1 - number / 4 % 64, ' ');
    moved += '\n';
    moved += text;
    const Read shifted = ReadAll(std::make_unique<std::istringstream>(moved), options);
    FUZZ_CHECK(shifted.ok && shifted.header == read.header && shifted.delimiter == read.delimiter,
               "the header depends on where the blocks end");
    FUZZ_CHECK(shifted.records.size() == read.records.size(), "the record count depends on where the blocks end");
    for (std::size_t i = 0; i < read.records.size(); ++i) {
      const CsvRecord& a = read.records[i];
      const CsvRecord& b = shifted.records[i];
      FUZZ_CHECK(b.line == a.line + 1 && a.problem.empty() == b.problem.empty() &&
                     (!a.problem.empty() || a.fields == b.fields),
                 "record " + std::to_string(i) + " depends on where the blocks end");
    }
  }

  CsvOptions same_delimiter;
  same_delimiter.delimiter = read.delimiter;
  const std::string written = WriteBack(read);
  const Read again = ReadAll(std::make_unique<std::istringstream>(written), same_delimiter);
  FUZZ_CHECK(again.ok && again.header == read.header, "the header does not read back: " + Escaped(written));
  FUZZ_CHECK(again.records.size() == GoodRecords(read).size() && GoodRecords(again) == GoodRecords(read),
             "the good records do not read back: " + Escaped(written));

  const std::string utf16 = Utf16WithBom(written);
  const Read wide = ReadAll(std::make_unique<std::istringstream>(utf16), same_delimiter);
  FUZZ_CHECK(wide.ok && wide.header == read.header, "the header does not read back from UTF-16: " + Escaped(utf16));
  FUZZ_CHECK(wide.records.size() == GoodRecords(read).size() && GoodRecords(wide) == GoodRecords(read),
             "the good records do not read back from UTF-16: " + Escaped(utf16));
  return 0;
}
