#include "merge/csv_reader.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <streambuf>

#include "core/text.h"

namespace herald {
namespace {

// What reading a whole input gave: the Open or Next error, or the header and every record.
struct ReadResult {
  Status status;
  std::vector<std::string> header;
  char delimiter = '\0';
  std::vector<CsvRecord> records;
};

ReadResult ReadReader(CsvReader& reader) {
  ReadResult out;
  out.header = reader.header();
  out.delimiter = reader.delimiter();
  CsvRecord record;
  for (;;) {
    Result<bool> more = reader.Next(record);
    if (!more.ok()) {
      out.status = more.status();
      break;
    }
    if (!*more) break;
    out.records.push_back(record);
  }
  return out;
}

ReadResult ReadAll(std::string content, CsvOptions options = {}) {
  Result<std::unique_ptr<CsvReader>> reader =
      CsvReader::Open(std::make_unique<std::istringstream>(std::move(content)), "list.csv", options);
  if (!reader.ok()) return ReadResult{reader.status()};
  return ReadReader(**reader);
}

std::string Join(const std::vector<std::string>& values) {
  std::string out = "[";
  for (const std::string& value : values) {
    if (out.size() > 1) out += "|";
    out += Printable(value);
  }
  return out + "]";
}

std::string Describe(const std::vector<CsvRecord>& records) {
  std::string out;
  for (const CsvRecord& record : records) {
    out += std::to_string(record.line) + ":" + Join(record.fields);
    if (!record.problem.empty()) out += " problem: " + record.problem;
    out += "\n";
  }
  return out;
}

// A record as expected: a good one with `fields`, or a bad one whose problem contains `problem`.
struct WantRecord {
  std::size_t line;
  std::vector<std::string> fields;
  std::string problem = {};
};

void ExpectRecords(const std::vector<CsvRecord>& got, const std::vector<WantRecord>& want,
                   const std::string& label) {
  ASSERT_EQ(got.size(), want.size()) << label << "\ngot records:\n" << Describe(got);
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].line, want[i].line) << label << " record " << i << "\ngot:\n" << Describe(got);
    if (want[i].problem.empty()) {
      EXPECT_EQ(got[i].problem, "") << label << " record " << i;
      EXPECT_EQ(Join(got[i].fields), Join(want[i].fields)) << label << " record " << i;
    } else {
      EXPECT_NE(got[i].problem.find(want[i].problem), std::string::npos)
          << label << " record " << i << "\n got problem: " << got[i].problem
          << "\nwant it to hold: " << want[i].problem;
    }
  }
}

TEST(CsvReaderTest, ReadsWellFormedAndToleratedInput) {
  struct Case {
    const char* name;
    std::string input;
    std::vector<std::string> header;
    std::vector<WantRecord> records;
    char delimiter = '\0';  // CsvOptions::delimiter
  };
  const Case cases[] = {
      {"LF", "email,name\na@x,Anna\nb@x,Bo\n", {"email", "name"}, {{2, {"a@x", "Anna"}}, {3, {"b@x", "Bo"}}}},
      {"CRLF", "email,name\r\na@x,Anna\r\nb@x,Bo\r\n", {"email", "name"},
       {{2, {"a@x", "Anna"}}, {3, {"b@x", "Bo"}}}},
      {"lone CR", "email,name\ra@x,Anna\rb@x,Bo\r", {"email", "name"}, {{2, {"a@x", "Anna"}}, {3, {"b@x", "Bo"}}}},
      {"mixed line ends", "email,name\r\na@x,Anna\nb@x,Bo\rc@x,Cy", {"email", "name"},
       {{2, {"a@x", "Anna"}}, {3, {"b@x", "Bo"}}, {4, {"c@x", "Cy"}}}},
      {"no line end at the end", "email,name\na@x,Anna", {"email", "name"}, {{2, {"a@x", "Anna"}}}},
      {"trailing empty lines", "email,name\na@x,Anna\n\n\r\n", {"email", "name"}, {{2, {"a@x", "Anna"}}}},
      {"blank and whitespace-only lines are skipped", "email,name\n\na@x,Anna\n   \n\t\r\nb@x,Bo\n",
       {"email", "name"}, {{3, {"a@x", "Anna"}}, {6, {"b@x", "Bo"}}}},
      {"blank lines before the header", "\n \r\nemail\na@x\n", {"email"}, {{4, {"a@x"}}}},
      {"UTF-8 BOM stripped", "\xEF\xBB\xBF" "email,name\na@x,Anna\n", {"email", "name"}, {{2, {"a@x", "Anna"}}}},
      {"quoted delimiter and doubled quotes", "email,name\na@x,\"M\xC3\xBCller, \"\"Hans\"\"\"\n", {"email", "name"},
       {{2, {"a@x", "M\xC3\xBCller, \"Hans\""}}}},
      {"quoted LF, CRLF and CR count as lines", "email,note\na@x,\"one\ntwo\r\nthree\rfour\"\nb@x,x\n",
       {"email", "note"}, {{2, {"a@x", "one\ntwo\r\nthree\rfour"}}, {6, {"b@x", "x"}}}},
      {"quoted line breaks in CRLF file", "email,note\r\n\"a@x\",\"1\r\n2\"\r\nb@x,\"\"\r\n", {"email", "note"},
       {{2, {"a@x", "1\r\n2"}}, {4, {"b@x", ""}}}},
      {"empty values", "a,b,c\n,\"\",\n,,\n", {"a", "b", "c"}, {{2, {"", "", ""}}, {3, {"", "", ""}}}},
      {"values kept as written", "email,name\na@x, Anna \n", {"email", "name"}, {{2, {"a@x", " Anna "}}}},
      {"header names trimmed", " email ,\tname \na@x,Anna\n", {"email", "name"}, {{2, {"a@x", "Anna"}}}},
      {"blanks around quotes dropped", "email,name\na@x, \"M\xC3\xBCller, Hans\" \t\n", {"email", "name"},
       {{2, {"a@x", "M\xC3\xBCller, Hans"}}}},
      {"stray quote in unquoted field kept", "email,size\na@x,5\" screen\nb@x,ab\"c\"\n", {"email", "size"},
       {{2, {"a@x", "5\" screen"}}, {3, {"b@x", "ab\"c\""}}}},
      {"semicolon detected", "email;name\na@x;M\xC3\xBCller, Hans\n", {"email", "name"},
       {{2, {"a@x", "M\xC3\xBCller, Hans"}}}},
      {"tab detected", "email\tname\na@x\tA, B; C\n", {"email", "name"}, {{2, {"a@x", "A, B; C"}}}},
      {"tab file: a line of tabs is a record", "a\tb\n\t\n", {"a", "b"}, {{2, {"", ""}}}},
      {"header only", "email,name\n", {"email", "name"}, {}},
      {"header only without line end", "email,name", {"email", "name"}, {}},
      {"single column", "email\na@x\n\nb@x\n", {"email"}, {{2, {"a@x"}}, {4, {"b@x"}}}},
      {"quoted header names", "\"e-mail\",\"first name\"\na,b\n", {"e-mail", "first name"}, {{2, {"a", "b"}}}},
      {"UTF-8 values", "email,name\na@x,\xE6\x97\xA5\xE6\x9C\xAC Gr\xC3\xBC\xC3\x9F" "e \xF0\x9F\x98\x80\n",
       {"email", "name"}, {{2, {"a@x", "\xE6\x97\xA5\xE6\x9C\xAC Gr\xC3\xBC\xC3\x9F" "e \xF0\x9F\x98\x80"}}}},
      {"delimiter set in options", "a;b,c\n1;2,3\n", {"a;b", "c"}, {{2, {"1;2", "3"}}}, ','},
      {"NUL bytes are data", std::string("a,b\nx\0y,z\n", 10), {"a", "b"}, {{2, {std::string("x\0y", 3), "z"}}}},
  };
  for (const Case& c : cases) {
    CsvOptions options;
    options.delimiter = c.delimiter;
    ReadResult got = ReadAll(c.input, options);
    ASSERT_TRUE(got.status.ok()) << c.name << ": " << got.status.ToString();
    EXPECT_EQ(Join(got.header), Join(c.header)) << c.name;
    ExpectRecords(got.records, c.records, c.name);
  }
}

TEST(CsvReaderTest, DetectsTheDelimiterFromTheHeader) {
  struct Case {
    std::string header;
    char want;
  };
  const Case cases[] = {
      {"email,name,city", ','},
      {"email;name;city", ';'},
      {"email\tname\tcity", '\t'},
      {"email", ','},                        // none: comma
      {"a;b,c;d", ';'},                      // the most frequent wins
      {"\"a,b,c\";d", ';'},                  // commas inside quotes do not count
      {"a,b;c", ','},                        // a tie goes to the comma
      {"a;b\tc", ';'},                       // then the semicolon
      {"\t\t\na;b", ';'},                    // the tabs of a blank line are no evidence
  };
  for (const Case& c : cases) {
    ReadResult got = ReadAll(c.header + "\n");
    ASSERT_TRUE(got.status.ok()) << Printable(c.header) << ": " << got.status.ToString();
    EXPECT_EQ(got.delimiter, c.want) << "header " << Printable(c.header) << " header read as " << Join(got.header);
  }
}

TEST(CsvReaderTest, ReportsBadRecordsAndGoesOn) {
  struct Case {
    const char* name;
    std::string input;
    std::vector<WantRecord> records;
    std::size_t max_record_bytes = 1 << 20;
    std::string encoding = "auto";
  };
  const Case cases[] = {
      {"short row", "a,b,c\n1,2\n4,5,6\n",
       {{2, {}, "expected 3 fields as in the header row, got 2"}, {3, {"4", "5", "6"}}}},
      {"long row", "a,b\n1,2,3,4\n5,6\n", {{2, {}, "expected 2 fields as in the header row, got 4"}, {3, {"5", "6"}}}},
      {"semicolons in a comma file", "a,b\n1;2\n3,4\n",
       {{2, {}, "got 1 (fields are separated by comma)"}, {3, {"3", "4"}}}},
      {"ISO-8859-1 value in a file read as UTF-8", "email,name\na@x,M\xFCller\nb@x,Bo\n",
       {{2, {}, "field 2 (\"name\") is not valid UTF-8 at byte 2 of the value (\"M\\xFCller\"); the file is read as "
                "utf-8 (recipients.encoding): set recipients.encoding to the file's encoding"},
        {3, {"b@x", "Bo"}}},
       1 << 20, "utf-8"},
      {"truncated UTF-8 sequence", "email,name\na@x,Gr\xC3\n",
       {{2, {}, "field 2 (\"name\") is not valid UTF-8 at byte 3"}}, 1 << 20, "utf-8"},
      {"a damaged row in a UTF-8 file", "email,name\na@x,J\xC3\xBCrgen\nb@x,M\xFCller\nc@x,Zo\xC3\xAB\n",
       {{2, {"a@x", "J\xC3\xBCrgen"}},
        {3, {}, "field 2 (\"name\") is not valid UTF-8 at byte 2 of the value (\"M\\xFCller\"), though the rest of "
                "the file is UTF-8"},
        {4, {"c@x", "Zo\xC3\xAB"}}}},
      {"a byte Windows-1252 does not define", "email,name\na@x,M\xFCller\nb@x,x\x81y\nc@x,Bo\n",
       {{2, {"a@x", "M\xC3\xBCller"}},
        {3, {}, "field 2 (\"name\") holds a byte that is not a character of windows-1252 (the file is not UTF-8; "
                "recipients.fallback_encoding) (shown as \\xFF at byte 2 of the value: \"x\\xFFy\")"},
        {4, {"c@x", "Bo"}}}},
      {"text after the closing quote", "a,b\n\"ab\"c,d\n1,2\n",
       {{2, {}, "field 1: unexpected 'c' after the closing quote on line 2"}, {3, {"1", "2"}}}},
      {"undoubled quote inside quotes", "a,b\nx,\"say \"hi\" now\"\n1,2\n",
       {{2, {}, "field 2: unexpected 'h' after the closing quote on line 2; a quote inside a quoted field must be "
                "doubled"},
        {3, {"1", "2"}}}},
      {"two quoted parts", "a,b\nx,\"ab\" \"c\"\n1,2\n",
       {{2, {}, "unexpected '\"' after the closing quote"}, {3, {"1", "2"}}}},
      {"unterminated quote at the end", "a,b\n1,2\n3,\"open\nmore\n",
       {{2, {"1", "2"}},
        {3, {}, "field 2: the quoted field opened on line 3 is not closed before the end of the file"}}},
      {"unterminated quote in the last line", "a,b\n1,\"", {{2, {}, "quoted field opened on line 2 is not closed"}}},
      {"record too large", "a,b\n1,2\nx,yyyyyyyyyyyyyyyyyyyy\n3,4\n",
       {{2, {"1", "2"}}, {3, {}, "the record is larger than 16 bytes (max_record_bytes); skipped it up to line 3"},
        {4, {"3", "4"}}},
       16},
      {"record just at the limit", "a,b\n12,45\n12,456\n",
       {{2, {"12", "45"}}, {3, {}, "larger than 5 bytes"}}, 5},
      {"quoted record too large over lines", "a,b\nx,\"1\n2\n3\n4\n5\n6\"\n3,4\n",
       {{2, {}, "skipped it up to line 7; the quoted field opened on line 2 runs over several lines: is a closing "
                "quote missing?"},
        {8, {"3", "4"}}},
       8},
      {"too large and unterminated", "a,b\nx,\"1\n2\n3\n4\n5\n6\n",
       {{2, {}, "skipped it up to line 8; the file ends inside the quoted field opened on line 2"}}, 8},
  };
  for (const Case& c : cases) {
    CsvOptions options;
    options.max_record_bytes = c.max_record_bytes;
    options.encoding.name = c.encoding;
    ReadResult got = ReadAll(c.input, options);
    ASSERT_TRUE(got.status.ok()) << c.name << ": " << got.status.ToString();
    ExpectRecords(got.records, c.records, c.name);
  }
}

TEST(CsvReaderTest, RejectsBadHeadersAndOptions) {
  struct Case {
    std::string input;
    std::string want;  // the error message holds this
    CsvOptions options = {};
    StatusCode code = StatusCode::kInvalidArgument;
  };
  const Case cases[] = {
      {"", "list.csv: the file is empty"},
      {"\xEF\xBB\xBF", "list.csv: the file is empty"},
      {"\n\n  \r\n\t\n", "list.csv: no header row: the file holds only blank lines"},
      {"a,,c\nx,y,z\n", "list.csv:1: header row: column 2 has an empty name"},
      {"\na, ,c\n", "list.csv:2: header row: column 2 has an empty name"},
      {"\"\"\n", "list.csv:1: header row: column 1 has an empty name"},
      {"email;name;\n",
       "list.csv:1: header row: column 3 has an empty name; every column needs a name (columns are separated by "
       "semicolon)"},
      {"Email,name,EMAIL\n", "list.csv:1: header row: columns 1 (\"Email\") and 3 (\"EMAIL\") have the same name"},
      {"email,name, Name \n", "columns 2 (\"name\") and 3 (\"Name\") have the same name"},
      {"email,na\xFCme\n",
       "list.csv:1: header row: the name of column 2 is not valid UTF-8 at byte 3 of the value (\"na\\xFCme\")",
       CsvOptions{.encoding = {.name = "utf-8"}}},
      {"\"first\nname\",email\n", "list.csv:1: header row: the name of column 1 (\"first\\nname\") holds a line break"},
      {"email,\"name\n", "list.csv:1: header row: field 2: the quoted field opened on line 1 is not closed"},
      {"email,\"na\"me\n", "list.csv:1: header row: field 2: unexpected 'm' after the closing quote"},
      {std::string("\xFF\xFE" "e\0m\0", 6),
       "list.csv: the file is UTF-16 (it starts with a UTF-16 byte-order mark) but is read as utf-8 "
       "(recipients.encoding); set recipients.encoding to \"auto\" or \"utf-16\"",
       CsvOptions{.encoding = {.name = "utf-8"}}},
      {"a,b\n", "list.csv: encoding: \"latin-99\" is not a character set this system can read; common names: utf-8,",
       CsvOptions{.encoding = {.name = "latin-99"}}},
      {"a,b\n", "list.csv: fallback encoding: \"utf-8//IGNORE\" is not a character set",
       CsvOptions{.encoding = {.fallback = "utf-8//IGNORE"}}},
      {"abcdef\n", "list.csv:1: header row: the record is larger than 4 bytes", CsvOptions{'\0', 4}},
      {"a|b\n", "list.csv: delimiter '|' is not supported; use comma, semicolon or tab", CsvOptions{'|'}},
      {"a,b\n", "list.csv: max_record_bytes must be at least 1", CsvOptions{',', 0}},
  };
  for (const Case& c : cases) {
    ReadResult got = ReadAll(c.input, c.options);
    EXPECT_EQ(got.status.code(), c.code) << Printable(c.input) << ": " << got.status.ToString();
    EXPECT_NE(got.status.message().find(c.want), std::string::npos)
        << "input " << Printable(c.input) << "\n got: " << got.status.message() << "\nwant it to hold: " << c.want;
  }
}

// Puts every byte of a tricky tail at the 64 KiB boundary between two reads, once each: a CRLF
// split in two, a doubled quote split in two, a closing quote last in a block, and so on.
TEST(CsvReaderTest, RecordsSpanningReadBlocks) {
  constexpr std::size_t kBlock = 64 * 1024;
  const std::string header = "h1,h2\n";
  const std::string tail =
      "x,\"q\r\nr\"\r\n"
      "y,\"a\"\"b\"\r"
      "z, \"c\" \n"
      "\r\n"
      "w,\"\"\r\n"
      "v,M\xC3\xBCller\n";
  ReadResult alone = ReadAll(header + tail);
  ASSERT_TRUE(alone.status.ok()) << alone.status.ToString();
  ASSERT_EQ(Describe(alone.records),
            "2:[x|q\\r\\nr]\n"
            "4:[y|a\"b]\n"
            "5:[z|c]\n"
            "7:[w|]\n"
            "8:[v|M\xC3\xBCller]\n");

  for (std::size_t shift = 0; shift <= tail.size() + 1; ++shift) {
    const std::size_t filler = kBlock - shift - header.size() - 3;  // "f," + filler + "\n"
    std::string input = header + "f," + std::string(filler, 'f') + "\n" + tail;
    ReadResult got = ReadAll(input);
    ASSERT_TRUE(got.status.ok()) << "shift " << shift << ": " << got.status.ToString();
    ASSERT_FALSE(got.records.empty()) << "shift " << shift;
    EXPECT_EQ(got.records[0].fields.size(), 2u) << "shift " << shift;
    std::vector<CsvRecord> rest(got.records.begin() + 1, got.records.end());
    for (CsvRecord& record : rest) --record.line;  // the filler took one line
    EXPECT_EQ(Describe(rest), Describe(alone.records)) << "tail starts " << shift << " bytes before the boundary";
  }
}

TEST(CsvReaderTest, TenMegabyteCellIsSkippedAndTheNextRecordRead) {
  const std::string cell(10 * 1024 * 1024, 'x');
  const std::string input = "email,note\na@x,\"" + cell + "\"\nb@x,ok\n";

  ReadResult got = ReadAll(input);
  ASSERT_TRUE(got.status.ok()) << got.status.ToString();
  ExpectRecords(got.records,
                {{2, {}, "the record is larger than 1048576 bytes (max_record_bytes); skipped it up to line 2"},
                 {3, {"b@x", "ok"}}},
                "default limit");
  EXPECT_TRUE(got.records[0].fields.empty()) << "a record too large must not hand out a partial value";

  CsvOptions roomy;
  roomy.max_record_bytes = 16 * 1024 * 1024;
  ReadResult allowed = ReadAll(input, roomy);
  ASSERT_TRUE(allowed.status.ok()) << allowed.status.ToString();
  ASSERT_EQ(allowed.records.size(), 2u);
  EXPECT_EQ(allowed.records[0].problem, "");
  EXPECT_EQ(allowed.records[0].fields.size(), 2u);
  EXPECT_TRUE(allowed.records[0].fields[1] == cell) << "got a value of " << allowed.records[0].fields[1].size()
                                                    << " bytes, want " << cell.size();
  EXPECT_EQ(Join(allowed.records[1].fields), "[b@x|ok]");
}

// Serves `prefix`, then `unit` repeated until `total` bytes, without ever holding them all.
class GeneratedBuf : public std::streambuf {
 public:
  GeneratedBuf(std::string prefix, const std::string& unit, std::size_t total)
      : prefix_(std::move(prefix)), left_(total) {
    while (chunk_.size() < 64 * 1024) chunk_ += unit;
  }

 protected:
  int_type underflow() override {
    std::string& source = prefix_served_ ? chunk_ : prefix_;
    prefix_served_ = true;
    if (left_ == 0) return traits_type::eof();
    std::size_t n = std::min(source.size(), left_);
    left_ -= n;
    setg(source.data(), source.data(), source.data() + n);
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::string prefix_;
  std::string chunk_;
  std::size_t left_;
  bool prefix_served_ = false;
};

long MaxResidentKilobytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// An unclosed quote early in a big file makes the rest one record; reading it must not keep it.
TEST(CsvReaderTest, MissingClosingQuoteDoesNotGrowMemoryWithTheFile) {
  constexpr std::size_t kTotal = 256u * 1024 * 1024;
  GeneratedBuf generated("email,name\na@x,\"Anna\n", "b@x,Bo\n", kTotal);
  const long before = MaxResidentKilobytes();
  Result<std::unique_ptr<CsvReader>> reader =
      CsvReader::Open(std::make_unique<std::istream>(&generated), "big.csv");
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  ReadResult got = ReadReader(**reader);
  const long grown_kib = MaxResidentKilobytes() - before;

  ASSERT_TRUE(got.status.ok()) << got.status.ToString();
  ASSERT_EQ(got.records.size(), 1u) << Describe(got.records);
  EXPECT_EQ(got.records[0].line, 2u);
  EXPECT_NE(got.records[0].problem.find("the file ends inside the quoted field opened on line 2"), std::string::npos)
      << got.records[0].problem;
  EXPECT_LT(grown_kib, 64 * 1024) << "reading " << kTotal / (1024 * 1024) << " MiB grew the peak memory by "
                                  << grown_kib << " KiB";
}

// Serves `data`, then fails as a disk read error would.
class FailingBuf : public std::streambuf {
 public:
  explicit FailingBuf(std::string data) : data_(std::move(data)) {}

 protected:
  int_type underflow() override {
    if (served_) throw std::runtime_error("input/output error");
    served_ = true;
    setg(data_.data(), data_.data(), data_.data() + data_.size());
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::string data_;
  bool served_ = false;
};

TEST(CsvReaderTest, ReadErrorIsAStatusAndStays) {
  std::string data = "email,name\n";
  while (data.size() < 100 * 1024) data += "a@x,Anna\n";
  FailingBuf failing(data);
  Result<std::unique_ptr<CsvReader>> reader = CsvReader::Open(std::make_unique<std::istream>(&failing), "list.csv");
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  ReadResult got = ReadReader(**reader);
  EXPECT_EQ(got.status.code(), StatusCode::kIo) << got.status.ToString();
  EXPECT_NE(got.status.message().find("list.csv: read error after byte"), std::string::npos) << got.status.message();
  CsvRecord record;
  Result<bool> again = (*reader)->Next(record);
  EXPECT_FALSE(again.ok()) << "a read error must not turn into the end of the file";
}

class CsvFileTest : public ::testing::Test {
 protected:
  void TearDown() override { std::remove(path_.c_str()); }

  std::string Write(const std::string& content) {
    std::ofstream(path_, std::ios::binary) << content;
    return path_;
  }

  std::string path_ = ::testing::TempDir() + "csv_reader_test_" +
                      ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".csv";
};

TEST_F(CsvFileTest, FileNotFoundNamesThePath) {
  const std::string path = ::testing::TempDir() + "no-such-dir/recipients.csv";
  Result<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), StatusCode::kNotFound) << reader.status().ToString();
  EXPECT_NE(reader.status().message().find(path), std::string::npos) << reader.status().message();
}

TEST_F(CsvFileTest, DirectoryIsNotAList) {
  Result<std::unique_ptr<CsvReader>> reader = CsvReader::Open(::testing::TempDir());
  ASSERT_FALSE(reader.ok());
  EXPECT_NE(reader.status().message().find("is a directory"), std::string::npos) << reader.status().message();
}

TEST_F(CsvFileTest, ReadsManyBlocksFromAFile) {
  constexpr int kRecords = 50000;
  std::string content = "\xEF\xBB\xBF" "id;email;note\r\n";
  for (int i = 0; i < kRecords; ++i) {
    content += std::to_string(i) + ";user" + std::to_string(i) + "@example.com;";
    content += (i % 7 == 0) ? "\"two\r\nlines; \"\"quoted\"\"\"\r\n" : "plain\r\n";
  }
  Result<std::unique_ptr<CsvReader>> reader = CsvReader::Open(Write(content));
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->name(), path_);
  EXPECT_EQ((*reader)->delimiter(), ';');
  EXPECT_EQ(Join((*reader)->header()), "[id|email|note]");

  CsvRecord record;
  std::size_t want_line = 2;
  for (int i = 0; i < kRecords; ++i) {
    Result<bool> more = (*reader)->Next(record);
    ASSERT_TRUE(more.ok()) << more.status().ToString();
    ASSERT_TRUE(*more) << "ended before record " << i;
    const std::string want_note = (i % 7 == 0) ? "two\r\nlines; \"quoted\"" : "plain";
    ASSERT_EQ(Join(record.fields),
              Join({std::to_string(i), "user" + std::to_string(i) + "@example.com", want_note}))
        << "record " << i << " problem: " << record.problem;
    ASSERT_EQ(record.line, want_line) << "record " << i;
    want_line += (i % 7 == 0) ? 2 : 1;
  }
  Result<bool> more = (*reader)->Next(record);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more) << "a record after the last: " << Join(record.fields);
}

TEST(CsvReaderTest, ReusesTheCallersStrings) {
  Result<std::unique_ptr<CsvReader>> reader = CsvReader::Open(
      std::make_unique<std::istringstream>("email,name\nfirst.address@example.com,Anna-Maria Long-Name\nb@x,Bo\n"),
      "list.csv");
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  CsvRecord record;
  ASSERT_TRUE((*reader)->Next(record).value());
  const char* email = record.fields[0].data();
  const char* name = record.fields[1].data();
  ASSERT_TRUE((*reader)->Next(record).value());
  EXPECT_EQ(Join(record.fields), "[b@x|Bo]");
  EXPECT_EQ(record.fields[0].data(), email) << "the first value's storage was not reused";
  EXPECT_EQ(record.fields[1].data(), name) << "the second value's storage was not reused";
}


// Records of `input` read with `encoding`; the reader's account of the encoding in `how`.
ReadResult ReadEncoded(std::string input, TextEncoding encoding, std::string* how = nullptr) {
  CsvOptions options;
  options.encoding = std::move(encoding);
  Result<std::unique_ptr<CsvReader>> reader =
      CsvReader::Open(std::make_unique<std::istringstream>(std::move(input)), "list.csv", options);
  if (!reader.ok()) return ReadResult{reader.status()};
  if (how != nullptr) *how = (*reader)->encoding();
  return ReadReader(**reader);
}

// UTF-16 with a byte-order mark, as Excel saves "Unicode text". Written here from the code points
// rather than with iconv, so the reader is not checked against the library it uses.
std::string Utf16WithBom(std::string_view utf8, bool big_endian) {
  std::string out;
  auto unit = [&](unsigned value) {
    const char high = static_cast<char>(value >> 8);
    const char low = static_cast<char>(value & 0xFF);
    out += big_endian ? high : low;
    out += big_endian ? low : high;
  };
  unit(0xFEFF);
  for (std::size_t i = 0; i < utf8.size();) {
    const unsigned char c = static_cast<unsigned char>(utf8[i]);
    const std::size_t length = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    unsigned code = length == 1 ? c : c & (0xFF >> (length + 1));
    for (std::size_t k = 1; k < length; ++k) code = (code << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
    i += length;
    if (code < 0x10000) {
      unit(code);
    } else {
      unit(0xD800 + ((code - 0x10000) >> 10));
      unit(0xDC00 + ((code - 0x10000) & 0x3FF));
    }
  }
  return out;
}

TEST(CsvEncodingTest, Windows1252FromExcelInWesternEurope) {
  // Excel in a German, French or Spanish locale: "CSV (Trennzeichen-getrennt)", semicolons, CRLF.
  const std::string input =
      "E-Mail;Vorname;Nachname;Ort;Notiz\r\n"
      "juergen@example.de;J\xFCrgen;M\xFCller;K\xF6ln;\x84Gr\xFC\xDF" "e\x93 \x80 5\r\n"
      "zoe@example.fr;Zo\xEB;Fran\xE7ois;Besan\xE7on;na\xEFve \x96 caf\xE9\r\n"
      "inigo@example.es;\xCD\xF1igo;Pe\xF1" "a;M\xE1laga;\x85\r\n"
      "plain@example.com;Anna;Smith;Bern;\r\n";
  const std::vector<WantRecord> want = {
      {2, {"juergen@example.de", "Jürgen", "Müller", "Köln", "„Grüße“ € 5"}},
      {3, {"zoe@example.fr", "Zoë", "François", "Besançon", "naïve – café"}},
      {4, {"inigo@example.es", "Íñigo", "Peña", "Málaga", "…"}},
      {5, {"plain@example.com", "Anna", "Smith", "Bern", ""}},
  };
  std::string how;
  ReadResult detected = ReadEncoded(input, TextEncoding{}, &how);
  ASSERT_TRUE(detected.status.ok()) << detected.status.ToString();
  EXPECT_EQ(Join(detected.header), "[E-Mail|Vorname|Nachname|Ort|Notiz]");
  ExpectRecords(detected.records, want, "auto");
  EXPECT_EQ(how, "windows-1252 (the file is not UTF-8; recipients.fallback_encoding)");

  ReadResult named = ReadEncoded(input, TextEncoding{.name = "windows-1252"}, &how);
  ASSERT_TRUE(named.status.ok()) << named.status.ToString();
  ExpectRecords(named.records, want, "windows-1252");
  EXPECT_EQ(how, "windows-1252 (recipients.encoding)");
}

TEST(CsvEncodingTest, CentralEuropeanCodePages) {
  const std::vector<WantRecord> want = {
      {2, {"a@example.pl", "Łukasz", "Kraków"}},
      {3, {"b@example.cz", "Šťastný", "Žižkov"}},
      {4, {"c@example.cz", "Dvořák", "Brno"}},
      {5, {"d@example.hu", "Erdős", "Budapest"}},
  };
  const std::string header = "email,name,city\n";
  const std::string iso_8859_2 = header +
                                 "a@example.pl,\xA3ukasz,Krak\xF3w\n"
                                 "b@example.cz,\xA9\xBB" "astn\xFD,\xAEi\xBEkov\n"
                                 "c@example.cz,Dvo\xF8\xE1k,Brno\n"
                                 "d@example.hu,Erd\xF5s,Budapest\n";
  const std::string windows_1250 = header +
                                   "a@example.pl,\xA3ukasz,Krak\xF3w\n"
                                   "b@example.cz,\x8A\x9D" "astn\xFD,\x8Ei\x9Ekov\n"
                                   "c@example.cz,Dvo\xF8\xE1k,Brno\n"
                                   "d@example.hu,Erd\xF5s,Budapest\n";
  ReadResult named = ReadEncoded(iso_8859_2, TextEncoding{.name = "ISO-8859-2"});
  ASSERT_TRUE(named.status.ok()) << named.status.ToString();
  ExpectRecords(named.records, want, "iso-8859-2 by name");

  std::string how;
  ReadResult fallback = ReadEncoded(windows_1250, TextEncoding{.fallback = "windows-1250"}, &how);
  ASSERT_TRUE(fallback.status.ok()) << fallback.status.ToString();
  ExpectRecords(fallback.records, want, "windows-1250 as the fallback");
  EXPECT_EQ(how, "windows-1250 (the file is not UTF-8; recipients.fallback_encoding)");
}

TEST(CsvEncodingTest, Utf16WithByteOrderMarkAsExcelUnicodeText) {
  // Excel's "Unicode text": UTF-16 LE with a byte-order mark, tab-separated, CRLF.
  const std::string text =
      "email\tVorname\tStadt\r\n"
      "zoe@example.fr\tZoë\tBesançon\r\n"
      "olga@example.ru\tОльга\t\"Москва, центр\"\r\n"
      "taro@example.jp\t日本 太郎\t東京\r\n"
      "smile@example.com\t😀 Emoji\tBern\r\n";
  const std::vector<WantRecord> want = {
      {2, {"zoe@example.fr", "Zoë", "Besançon"}},
      {3, {"olga@example.ru", "Ольга", "Москва, центр"}},
      {4, {"taro@example.jp", "日本 太郎", "東京"}},
      {5, {"smile@example.com", "😀 Emoji", "Bern"}},
  };
  for (bool big_endian : {false, true}) {
    SCOPED_TRACE(big_endian ? "UTF-16 BE" : "UTF-16 LE");
    std::string how;
    ReadResult got = ReadEncoded(Utf16WithBom(text, big_endian), TextEncoding{}, &how);
    ASSERT_TRUE(got.status.ok()) << got.status.ToString();
    EXPECT_EQ(got.delimiter, '\t');
    EXPECT_EQ(Join(got.header), "[email|Vorname|Stadt]");
    ExpectRecords(got.records, want, how);
    EXPECT_EQ(how, big_endian ? "UTF-16BE (byte-order mark)" : "UTF-16LE (byte-order mark)");
  }
}

TEST(CsvEncodingTest, Utf16CharacterSplitBetweenTwoBlocks) {
  // The emoji's two surrogates lie on both sides of the first 64 KiB block: 2 bytes of mark, 24 of
  // header, 8 + 2 * 32744 + 4 of filler row and 8 of "a@x\t" put it at byte 65534.
  const std::string text =
      "email\tname\r\nf@x\t" + std::string(32744, 'f') + "\r\na@x\t😀 x\r\nb@x\tZoë\r\n";
  const std::string input = Utf16WithBom(text, /*big_endian=*/false);
  ASSERT_EQ(input.substr(65534, 4), std::string("\x3D\xD8\x00\xDE", 4)) << "the emoji is not where the test wants it";
  ReadResult got = ReadEncoded(input, TextEncoding{});
  ASSERT_TRUE(got.status.ok()) << got.status.ToString();
  ASSERT_EQ(got.records.size(), 3u);
  ExpectRecords({got.records[1], got.records[2]}, {{3, {"a@x", "😀 x"}}, {4, {"b@x", "Zoë"}}}, "split");
}

TEST(CsvEncodingTest, Utf16ThatIsNotWellFormed) {
  // An unpaired surrogate spoils its row only; a lone byte at the end spoils the last row.
  std::string input = Utf16WithBom("email,name\na@x,", false) + std::string("\x00\xD8", 2) +
                      Utf16WithBom("x\nb@x,Bo\nc@x,C", false).substr(2) + "!";
  std::string how;
  ReadResult got = ReadEncoded(input, TextEncoding{}, &how);
  ASSERT_TRUE(got.status.ok()) << got.status.ToString();
  ExpectRecords(got.records,
                {{2, {}, "field 2 (\"name\") holds a byte that is not a character of UTF-16LE (byte-order mark)"},
                 {3, {"b@x", "Bo"}},
                 {4, {}, "field 2 (\"name\") holds a byte that is not a character of UTF-16LE"}},
                how);
}

TEST(CsvEncodingTest, Utf8WithByteOrderMarkStaysUtf8) {
  // The mark decides: a stray Latin-1 byte spoils its row, not the reading of the others.
  std::string how;
  ReadResult got =
      ReadEncoded("\xEF\xBB\xBF" "email;name\r\na@x;Jürgen\r\nb@x;M\xFCller\r\nc@x;日本\r\n", TextEncoding{}, &how);
  ASSERT_TRUE(got.status.ok()) << got.status.ToString();
  EXPECT_EQ(Join(got.header), "[email|name]");
  ExpectRecords(got.records,
                {{2, {"a@x", "Jürgen"}}, {3, {}, "is not valid UTF-8 at byte 2"}, {4, {"c@x", "日本"}}}, how);
  EXPECT_EQ(how, "UTF-8 (byte-order mark)");
}

TEST(CsvEncodingTest, TheWholeFileDecidesNotTheFirstRows) {
  // 100 KiB of ASCII rows, then one Windows-1252 name: the file is read as Windows-1252 from the
  // start, so the late row is a good one.
  std::string input = "email,name\n";
  int rows = 0;
  while (input.size() < 100 * 1024) input += "r" + std::to_string(rows++) + "@x,Anna\n";
  input += "last@x,M\xFCller\n";
  std::string how;
  ReadResult got = ReadEncoded(input, TextEncoding{}, &how);
  ASSERT_TRUE(got.status.ok()) << got.status.ToString();
  ASSERT_EQ(got.records.size(), static_cast<std::size_t>(rows + 1));
  ExpectRecords({got.records.back()}, {{static_cast<std::size_t>(rows + 2), {"last@x", "Müller"}}}, how);
  EXPECT_EQ(how, "windows-1252 (the file is not UTF-8; recipients.fallback_encoding)");

  // ASCII with one UTF-8 letter cut by the end of the first block: still UTF-8.
  std::string utf8 = "email,name\nf@x," + std::string(65535 - 15, 'f') + "\xC3\xBC\nz@x,Zo\xC3\xAB\n";
  ASSERT_EQ(utf8.substr(65535, 2), "\xC3\xBC");
  ReadResult cut = ReadEncoded(utf8, TextEncoding{}, &how);
  ASSERT_TRUE(cut.status.ok()) << cut.status.ToString();
  EXPECT_EQ(how, "UTF-8");
  ASSERT_EQ(cut.records.size(), 2u);
  ExpectRecords({cut.records[1]}, {{3, {"z@x", "Zoë"}}}, "cut");
}

// Serves its text in one piece and cannot seek, like a pipe.
class PipeBuf : public std::streambuf {
 public:
  explicit PipeBuf(std::string text) : text_(std::move(text)) {
    setg(text_.data(), text_.data(), text_.data() + text_.size());
  }

 private:
  std::string text_;
};

TEST(CsvEncodingTest, AStreamThatCannotSeekIsDecidedOnItsFirstBlock) {
  PipeBuf pipe("email,name\na@x,M\xFCller\n");
  Result<std::unique_ptr<CsvReader>> reader = CsvReader::Open(std::make_unique<std::istream>(&pipe), "pipe");
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->encoding(),
            "windows-1252 (the first 64 KiB of the input is not UTF-8; recipients.fallback_encoding)");
  ReadResult got = ReadReader(**reader);
  ExpectRecords(got.records, {{2, {"a@x", "Müller"}}}, "pipe");

  // A UTF-8 letter cut by the end of the first block does not count against UTF-8.
  PipeBuf cut("email,name\nf@x," + std::string(65535 - 15, 'f') + "\xC3\xBC\nz@x,Zo\xC3\xAB\n");
  Result<std::unique_ptr<CsvReader>> utf8 = CsvReader::Open(std::make_unique<std::istream>(&cut), "pipe");
  ASSERT_TRUE(utf8.ok()) << utf8.status().ToString();
  EXPECT_EQ((*utf8)->encoding(), "UTF-8");
  ReadResult letters = ReadReader(**utf8);
  ASSERT_EQ(letters.records.size(), 2u);
  ExpectRecords({letters.records[1]}, {{3, {"z@x", "Zoë"}}}, "cut pipe");
}

TEST_F(CsvFileTest, Windows1252FileAcrossManyBlocks) {
  constexpr int kRecords = 20000;
  std::string content = "id;name\r\n";
  for (int i = 0; i < kRecords; ++i) content += std::to_string(i) + ";J\xFCrgen \x80" + std::to_string(i) + "\r\n";
  Result<std::unique_ptr<CsvReader>> reader = CsvReader::Open(Write(content));
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  CsvRecord record;
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_TRUE((*reader)->Next(record).value()) << "ended before record " << i;
    ASSERT_EQ(Join(record.fields), Join({std::to_string(i), "Jürgen €" + std::to_string(i)})) << record.problem;
    ASSERT_EQ(record.line, static_cast<std::size_t>(i + 2));
  }
  EXPECT_FALSE((*reader)->Next(record).value());
}

}  // namespace
}  // namespace herald
