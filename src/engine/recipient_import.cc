#include "engine/recipient_import.h"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "address/address.h"
#include "core/text.h"
#include "merge/csv_reader.h"

namespace herald {

Result<std::unique_ptr<CsvReader>> OpenRecipientList(const RecipientsConfig& config) {
  return CsvReader::Open(config.file, CsvOptions{.delimiter = config.delimiter, .encoding = config.encoding});
}

namespace {

// More than any address can be (RFC 5321 §4.5.3.1.3: a path holds at most 256 octets).
constexpr std::size_t kMaxGivenAddressBytes = 320;

// Why `record` cannot be a recipient, or an empty string when it can; fills `address`.
std::string CheckRecord(const CsvRecord& record, std::size_t address_column, const std::vector<std::string>& header,
                        Address& address) {
  if (!record.problem.empty()) return record.problem;
  std::string_view cell = TrimBlanks(record.fields[address_column]);
  if (cell.empty()) return fmt::format("no address in column \"{}\"", header[address_column]);
  Result<Address> parsed = ParseAddress(cell);
  if (!parsed.ok()) return fmt::format("column \"{}\": {}", header[address_column], parsed.status().message());
  address = std::move(*parsed);
  return {};
}

void NoteBadRow(ImportReport& report, std::size_t line, const std::string& reason) {
  ++report.bad;
  if (report.bad_rows.size() < ImportReport::kListedBadRows) report.bad_rows.push_back({line, reason});
}

// The address a bad record gives, for the user to recognise the row: as written when it is
// printable text, else escaped.
std::string GivenAddress(const CsvRecord& record, std::size_t address_column) {
  if (address_column >= record.fields.size()) return {};
  std::string_view cell = TrimBlanks(record.fields[address_column]);
  const bool printable = IsValidUtf8(cell) && std::none_of(cell.begin(), cell.end(), [](char c) {
                           return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                         });
  return printable ? std::string(cell) : Printable(cell, kMaxGivenAddressBytes);
}

}  // namespace

Result<std::vector<std::string>> ReadRecipientColumns(const RecipientsConfig& config) {
  Result<std::unique_ptr<CsvReader>> reader = OpenRecipientList(config);
  if (!reader.ok()) return reader.status();
  return (*reader)->header();
}

Result<std::string> FileDigest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(fmt::format("cannot open {}", path));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    return Internal("cannot start a SHA-256 digest");
  }
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(context.get(), buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) return IoError(fmt::format("read error in {}", path));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(context.get(), digest, &size);
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

Result<ImportReport> ImportRecipients(const RecipientsConfig& config, std::size_t address_column,
                                      std::string_view task_id, Store& store) {
  CsvRecord record;
  Address address;
  if (config.bad_rows == BadRows::kFail) {
    // A first pass finds bad rows, so that a refused import leaves nothing behind.
    Result<std::unique_ptr<CsvReader>> reader = OpenRecipientList(config);
    if (!reader.ok()) return reader.status();
    ImportReport scan;
    while (true) {
      Result<bool> more = (*reader)->Next(record);
      if (!more.ok()) return more.status();
      if (!*more) break;
      std::string reason = CheckRecord(record, address_column, (*reader)->header(), address);
      if (!reason.empty()) NoteBadRow(scan, record.line, reason);
    }
    if (scan.bad > 0) {
      std::string message = fmt::format("{}: {} bad row(s) and recipients.bad_rows = \"fail\"; nothing was imported",
                                        config.file, scan.bad);
      for (std::size_t i = 0; i < scan.bad_rows.size() && i < 10; ++i) {
        message += fmt::format("\n  line {}: {}", scan.bad_rows[i].line, scan.bad_rows[i].reason);
      }
      if (scan.bad > 10) message += fmt::format("\n  ... and {} more", scan.bad - 10);
      return InvalidArgument(std::move(message));
    }
  }

  Result<std::unique_ptr<CsvReader>> reader = OpenRecipientList(config);
  if (!reader.ok()) return reader.status();
  Result<std::unique_ptr<RecipientImport>> import = store.BeginImport(task_id);
  if (!import.ok()) return import.status();
  ImportReport report;
  NewRecipient recipient;
  RejectedRow rejected;
  while (true) {
    Result<bool> more = (*reader)->Next(record);
    if (!more.ok()) return more.status();
    if (!*more) break;
    ++report.rows;
    std::string reason = CheckRecord(record, address_column, (*reader)->header(), address);
    if (!reason.empty()) {
      NoteBadRow(report, record.line, reason);
      rejected.address = GivenAddress(record, address_column);
      // A record with a problem has incomplete fields (csv_reader.h): none are kept.
      rejected.fields.clear();
      if (record.problem.empty()) rejected.fields.swap(record.fields);
      rejected.line = record.line;
      rejected.reason = std::move(reason);
      HERALD_RETURN_IF_ERROR((*import)->Reject(rejected));
      continue;
    }
    recipient.address = address.ToString();
    recipient.dedup_key = address.DedupKey();
    recipient.fields.swap(record.fields);
    recipient.line = record.line;
    Result<bool> added = (*import)->Add(recipient);
    recipient.fields.swap(record.fields);
    if (!added.ok()) return added.status();
    if (*added) {
      ++report.imported;
    } else {
      ++report.duplicates;
    }
  }
  HERALD_RETURN_IF_ERROR((*import)->Finish());
  return report;
}

}  // namespace herald
