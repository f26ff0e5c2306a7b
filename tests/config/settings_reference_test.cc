// The settings reference (docs/settings.md) against the loader: every setting the loader looks for
// is documented, and every documented setting is one the loader reads. The loader reports what it
// looks for (LoadTask/LoadAccounts `settings_read`) on files that open every nested table.
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "config/loader.h"
#include "temp_dir.h"

namespace herald {
namespace {

// "section.key" for every key row of the reference: a heading names its section by its first
// `code` span ("### `[[account.destination]]` (direct accounts)" -> "account.destination"), and a
// table row names its keys by the code spans of its first cell ("| `password_env`, `password_file` |").
std::set<std::string> DocumentedSettings(const std::string& markdown) {
  std::set<std::string> settings;
  std::string section;
  std::istringstream lines(markdown);
  std::string line;
  auto code_spans = [](std::string_view text) {
    std::vector<std::string> spans;
    std::size_t open = text.find('`');
    while (open != std::string_view::npos) {
      std::size_t close = text.find('`', open + 1);
      if (close == std::string_view::npos) break;
      spans.emplace_back(text.substr(open + 1, close - open - 1));
      open = text.find('`', close + 1);
    }
    return spans;
  };
  while (std::getline(lines, line)) {
    if (line.starts_with("## ")) section.clear();  // "The task file", "The accounts file": top level
    if (line.starts_with("###")) {
      std::vector<std::string> spans = code_spans(line);
      section.clear();
      if (!spans.empty()) {
        for (char c : spans.front()) {
          if (c != '[' && c != ']') section += c;
        }
      }
      continue;
    }
    if (!line.starts_with("| `")) continue;
    std::string_view first_cell = std::string_view(line).substr(1, line.find('|', 1) - 1);
    for (const std::string& key : code_spans(first_cell)) settings.insert(section.empty() ? key : section + "." + key);
  }
  return settings;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(SettingsReferenceTest, EverySettingTheLoaderReadsIsDocumentedAndNothingElse) {
  TempDir dir;
  // Not valid configurations: only the tables that hold further settings must be there, so that
  // the loader looks inside them (and `limits`, read only when present).
  std::string task = dir.Write("task.toml", R"(
[message]
attachments = [{ path = "a.pdf" }]
[recipients]
[sending]
[backup]
)");
  std::string accounts = dir.Write("accounts.toml", R"(
[[account]]
kind = "smtp"
limits = []
[account.pop_before_smtp]
[[account]]
kind = "direct"
[[account.destination]]
)");
  std::set<std::string> read;
  (void)LoadTask(task, &read);
  (void)LoadAccounts(accounts, &read);
  ASSERT_GT(read.size(), 50u) << "the loader reported too few settings";
  // Tables and arrays of tables are documented as sections, not as keys of their parent.
  std::set<std::string> documented = DocumentedSettings(ReadFile(HERALD_SOURCE_DIR "/docs/settings.md"));
  for (const char* section : {"message", "recipients", "sending", "backup", "account", "account.pop_before_smtp",
                              "account.destination", "message.attachments"}) {
    documented.insert(section);
  }

  for (const std::string& name : read) {
    EXPECT_TRUE(documented.count(name)) << "docs/settings.md does not document `" << name << "`";
  }
  for (const std::string& name : documented) {
    EXPECT_TRUE(read.count(name)) << "docs/settings.md documents `" << name << "`, which the loader does not read";
  }
}

}  // namespace
}  // namespace herald
