// Reading TOML tables with errors that name file, line, column and key, and say what was
// expected. Collects every error of a file so the user can fix them in one go. Internal to config.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "core/clock.h"
#include "core/status.h"

namespace herald::config_internal {

class Diagnostics {
 public:
  // `settings_read`, when given, receives the name of every setting looked for (NoteSetting).
  explicit Diagnostics(std::string file, std::set<std::string>* settings_read = nullptr)
      : file_(std::move(file)), settings_read_(settings_read) {}

  // Records "file:line:column: key: message" (location from `node` when it has one).
  void Error(const toml::node* node, std::string_view key, std::string_view message);
  // The same at an explicit place (a key's own position rather than its value's).
  void ErrorAt(const toml::source_region& where, std::string_view key, std::string_view message);
  // "file:line" of `node`, for AccountConfig::origin and similar.
  std::string Origin(const toml::node& node) const;

  // Records that the setting at `key_path` ("account[2].destination[0].domain") was looked for,
  // as "account.destination.domain": array indexes are left out.
  void NoteSetting(std::string_view key_path);

  bool ok() const { return errors_.empty(); }
  // kInvalidArgument with every error on its own line; ok when there were none.
  Status ToStatus() const;
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::vector<std::string> errors_;
  std::set<std::string>* settings_read_;
};

// Reads the keys of one table. Every accessor marks its key as known; Finish() reports the keys
// nobody asked for as unknown. Accessors return nullopt both when a key is absent and when it
// is invalid (the error is then recorded).
class TableReader {
 public:
  // `prefix` is the table's dotted path ("sending", "account[2]"), empty for the root.
  TableReader(const toml::table& table, std::string prefix, Diagnostics& diagnostics);

  bool Has(std::string_view key) const;
  std::optional<std::string> String(std::string_view key);
  // A string that must not be empty when present.
  std::optional<std::string> NonEmptyString(std::string_view key);
  std::optional<std::int64_t> Integer(std::string_view key, std::int64_t min, std::int64_t max);
  std::optional<double> Number(std::string_view key, double min, double max);
  std::optional<bool> Bool(std::string_view key);
  std::optional<Duration> DurationValue(std::string_view key);
  // A size in bytes: a string with a unit ("25MB", core/units.h) or an integer of bytes.
  std::optional<std::uint64_t> ByteSize(std::string_view key);
  // An array of strings (a single string is accepted as a list of one).
  std::optional<std::vector<std::string>> StringList(std::string_view key);
  // One of the listed words; the error lists them.
  template <typename E>
  std::optional<E> Choice(std::string_view key, std::initializer_list<std::pair<std::string_view, E>> choices);
  const toml::table* Table(std::string_view key);
  const toml::array* Array(std::string_view key);
  // The node of `key`, marked known, for callers that parse it themselves.
  const toml::node* Node(std::string_view key);

  // Records an error about `key` at its location (or the table's when absent).
  void Error(std::string_view key, std::string_view message);
  // A key that must not be set at all (a secret written into the file): when present, the error
  // `message`, and not also "unknown setting". Not a setting the loader reads.
  void Refuse(std::string_view key, std::string_view message);
  // "prefix.key".
  std::string KeyPath(std::string_view key) const;
  // Leaves `key` out of the "did you mean" hints for unknown keys (a setting of another account kind).
  void DoNotSuggest(std::string_view key);
  // Reports every key that no accessor asked for, with the setting it probably meant: the one
  // other mail tools' name for it stands for ("server" is "host"), or the closest in spelling.
  void Finish();

  Diagnostics& diagnostics() { return diagnostics_; }
  const toml::table& table() const { return table_; }

 private:
  std::optional<std::string> ChoiceWord(std::string_view key, std::string_view expected);
  // The known key `unknown` probably meant, or empty.
  std::string_view Suggestion(std::string_view unknown) const;

  const toml::table& table_;
  std::string prefix_;
  Diagnostics& diagnostics_;
  std::set<std::string, std::less<>> known_;
  std::set<std::string, std::less<>> not_suggested_;
};

template <typename E>
std::optional<E> TableReader::Choice(std::string_view key,
                                     std::initializer_list<std::pair<std::string_view, E>> choices) {
  std::string expected;
  for (const auto& [word, value] : choices) {
    if (!expected.empty()) expected += ", ";
    expected += '"';
    expected += word;
    expected += '"';
  }
  std::optional<std::string> word = ChoiceWord(key, expected);
  if (!word) return std::nullopt;
  for (const auto& [name, value] : choices) {
    if (*word == name) return value;
  }
  Error(key, "\"" + *word + "\" is not one of " + expected);
  return std::nullopt;
}

// Parses a TOML file; syntax errors become kInvalidArgument naming file, line and column.
Result<toml::table> ParseTomlFile(const std::string& path);

}  // namespace herald::config_internal
