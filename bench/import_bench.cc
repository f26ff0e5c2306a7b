// Imports a generated recipient list of N rows (default 1,000,000; 8 columns, ~90 bytes a row,
// some non-ASCII names) into a fresh SqliteStore through the engine's importer, and prints rows per
// second and the process's peak memory. The target: 1M rows under 100 MB peak RSS.
//
//   build/bench/import_bench [rows] [folder] [--windows-1252] [--read-only]
//
// --windows-1252 writes the list as Excel does in Western Europe (Western names and cities only)
// and imports it with recipients.encoding = "auto", which reads it in the fallback code page.
// --read-only reads every record with the CSV reader and stores nothing: the reader's own cost.
#include <iconv.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core/clock.h"
#include "engine/recipient_import.h"
#include "merge/csv_reader.h"
#include "store/sqlite_store.h"

namespace {

long PeakRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// UTF-8 text in Windows-1252 (every character must have one).
std::string ToWindows1252(std::string_view utf8) {
  iconv_t encoder = iconv_open("WINDOWS-1252", "UTF-8");
  std::string out(utf8.size(), '\0');
  char* in = const_cast<char*>(utf8.data());
  std::size_t in_left = utf8.size();
  char* out_ptr = out.data();
  std::size_t out_left = out.size();
  if (iconv(encoder, &in, &in_left, &out_ptr, &out_left) == static_cast<std::size_t>(-1)) {
    fmt::print(stderr, "cannot write '{}' in Windows-1252\n", utf8);
    std::exit(1);
  }
  iconv_close(encoder);
  out.resize(out.size() - out_left);
  return out;
}

void WriteList(const std::string& path, long rows, bool windows_1252) {
  std::ofstream out(path, std::ios::binary);
  out << "email,firstname,lastname,city,zip,member_since,language,segment\r\n";
  static const char* kFirst[] = {"Anna", "Jürgen", "Zoë", "François", "Łukasz", "Ольга", "Mehmet", "Siobhán"};
  static const char* kCity[] = {"Zürich", "Lyon", "Kraków", "Graz", "\"Frankfurt, Main\"", "Köln", "Wien", "Bern"};
  static const char* kWesternFirst[] = {"Anna", "Jürgen", "Zoë", "François", "Íñigo", "Åsa", "Mehmet", "Siobhán"};
  std::string first[8];
  std::string city[8];
  for (int k = 0; k < 8; ++k) {
    first[k] = windows_1252 ? ToWindows1252(kWesternFirst[k]) : kFirst[k];
    city[k] = windows_1252 ? ToWindows1252(kCity[k]) : kCity[k];
  }
  std::string line;
  for (long i = 0; i < rows; ++i) {
    line.clear();
    fmt::format_to(std::back_inserter(line), "reader{:07d}@example{}.com,{},Lastname{},{},{:05d},{},de,{}\r\n", i,
                   i % 97, first[i % 8], i, city[i % 8], 10000 + i % 89999, 1990 + i % 35, i % 5);
    out << line;
  }
}

}  // namespace

// Removes `flag` from `args`; whether it was there.
bool TakeFlag(std::vector<std::string>& args, std::string_view flag) {
  const auto found = std::find(args.begin(), args.end(), flag);
  if (found == args.end()) return false;
  args.erase(found);
  return true;
}

// Reads every record of the list; prints the rate.
int ReadOnly(const std::string& list, long rss_before) {
  auto start = std::chrono::steady_clock::now();
  auto reader = herald::CsvReader::Open(list);
  if (!reader.ok()) {
    fmt::print(stderr, "{}\n", reader.status().message());
    return 1;
  }
  herald::CsvRecord record;
  std::size_t rows = 0, bad = 0, bytes = 0;
  for (;;) {
    auto more = (*reader)->Next(record);
    if (!more.ok()) {
      fmt::print(stderr, "{}\n", more.status().message());
      return 1;
    }
    if (!*more) break;
    ++rows;
    if (!record.problem.empty()) ++bad;
    for (const std::string& field : record.fields) bytes += field.size();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print("read: {} rows, {} bad, {} bytes of values in {:.3f} s = {:.0f} rows/s, {:.0f} MB/s of list; "
             "peak RSS {:.1f} MB (before: {:.1f} MB)\n",
             rows, bad, bytes, seconds, static_cast<double>(rows) / seconds,
             std::filesystem::file_size(list) / 1e6 / seconds, PeakRssKb() / 1024.0, rss_before / 1024.0);
  return 0;
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const bool windows_1252 = TakeFlag(args, "--windows-1252");
  const bool read_only = TakeFlag(args, "--read-only");
  long rows = args.size() > 0 ? std::stol(args[0]) : 1'000'000;
  std::filesystem::path folder =
      args.size() > 1 ? std::filesystem::path(args[1]) : std::filesystem::temp_directory_path() / "herald-import-bench";
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  std::string list = (folder / "recipients.csv").string();
  WriteList(list, rows, windows_1252);
  long rss_before = PeakRssKb();
  if (read_only) {
    const int result = ReadOnly(list, rss_before);
    std::filesystem::remove_all(folder);
    return result;
  }

  auto store = herald::SqliteStore::Open((folder / "herald.db").string());
  if (!store.ok()) {
    fmt::print(stderr, "{}\n", store.status().message());
    return 1;
  }
  herald::RecipientsConfig config;
  config.file = list;
  auto columns = herald::ReadRecipientColumns(config);
  herald::TaskRecord task{"bench", "bench", *columns, herald::SystemClock().Now(), "", "nonce"};
  if (auto created = (*store)->CreateTask(task); !created.ok()) {
    fmt::print(stderr, "{}\n", created.message());
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  auto report = herald::ImportRecipients(config, 0, "bench", **store);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!report.ok()) {
    fmt::print(stderr, "{}\n", report.status().message());
    return 1;
  }
  fmt::print("import: {} rows, {} imported, {} duplicates, {} bad in {:.2f} s = {:.0f} rows/s; "
             "peak RSS {:.1f} MB (before the import: {:.1f} MB); list {:.1f} MB\n",
             report->rows, report->imported, report->duplicates, report->bad, seconds,
             static_cast<double>(report->rows) / seconds, PeakRssKb() / 1024.0, rss_before / 1024.0,
             std::filesystem::file_size(list) / 1e6);
  std::filesystem::remove_all(folder);
  return 0;
}
