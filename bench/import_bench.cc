// Imports a generated recipient list of N rows (default 1,000,000; 8 columns, ~90 bytes a row,
// some non-ASCII names) into a fresh SqliteStore through the engine's importer, and prints rows per
// second and the process's peak memory. The target: 1M rows under 100 MB peak RSS.
//
//   build/bench/import_bench [rows] [folder]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "core/clock.h"
#include "engine/recipient_import.h"
#include "store/sqlite_store.h"

namespace {

long PeakRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

void WriteList(const std::string& path, long rows) {
  std::ofstream out(path, std::ios::binary);
  out << "email,firstname,lastname,city,zip,member_since,language,segment\r\n";
  static const char* kFirst[] = {"Anna", "Jürgen", "Zoë", "François", "Łukasz", "Ольга", "Mehmet", "Siobhán"};
  static const char* kCity[] = {"Zürich", "Lyon", "Kraków", "Graz", "\"Frankfurt, Main\"", "Köln", "Wien", "Bern"};
  std::string line;
  for (long i = 0; i < rows; ++i) {
    line.clear();
    fmt::format_to(std::back_inserter(line), "reader{:07d}@example{}.com,{},Lastname{},{},{:05d},{},de,{}\r\n", i,
                   i % 97, kFirst[i % 8], i, kCity[i % 8], 10000 + i % 89999, 1990 + i % 35, i % 5);
    out << line;
  }
}

}  // namespace

int main(int argc, char** argv) {
  long rows = argc > 1 ? std::stol(argv[1]) : 1'000'000;
  std::filesystem::path folder = argc > 2 ? argv[2] : std::filesystem::temp_directory_path() / "herald-import-bench";
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  std::string list = (folder / "recipients.csv").string();
  WriteList(list, rows);
  long rss_before = PeakRssKb();

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
