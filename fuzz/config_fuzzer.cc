// Fuzz target: the configuration loader (config/loader.h) — toml++'s parser and herald's reading
// of accounts and sending tasks. The input is written to a file in a private temporary folder
// and loaded both as an accounts file and as a task file; the folder holds the files a task
// refers to (body.txt, body.html, recipients.csv, programme.pdf, blacklist.txt), so that inputs
// naming them get past the existence checks.
//
// Properties, beyond "no crash, leak or undefined behaviour" (toml++ throws on syntax errors;
// nothing may escape the loader):
// - Every line of an error names the file first ("file:line:column: key: ..."), so a value from
//   the file cannot start a line of its own in the message.
// - A loaded account set has distinct names, and each secondary names an account of the set.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "config/loader.h"
#include "fuzz_check.h"

namespace herald {
namespace {

namespace fs = std::filesystem;
using fuzz::Escaped;

void WriteFile(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

// The private folder, made once per process and removed at exit.
const fs::path& Folder() {
  static const fs::path folder = [] {
    std::string pattern = (fs::temp_directory_path() / "herald-fuzz-config-XXXXXX").string();
    FUZZ_CHECK(mkdtemp(pattern.data()) != nullptr, "cannot make a temporary folder");
    const fs::path made = pattern;
    WriteFile(made / "body.txt", "Dear {%firstname%},\n");
    WriteFile(made / "body.html", "<p>Dear {%firstname%},</p>\n");
    WriteFile(made / "recipients.csv", "email,firstname\nanna@example.org,Anna\n");
    WriteFile(made / "programme.pdf", "%PDF-1.4\n");
    WriteFile(made / "blacklist.txt", "*@example.net\n");
    std::atexit([] {
      std::error_code ignored;
      fs::remove_all(Folder(), ignored);
    });
    return made;
  }();
  return folder;
}

void CheckError(const Status& status, const std::string& path) {
  FUZZ_CHECK(!status.message().empty(), "an error without a message");
  std::string_view message = status.message();
  for (std::size_t start = 0; start <= message.size();) {
    std::size_t end = message.find('\n', start);
    if (end == std::string_view::npos) end = message.size();
    const std::string_view line = message.substr(start, end - start);
    FUZZ_CHECK(line.starts_with(path), "a line of the error does not name the file: " + Escaped(line));
    start = end + 1;
  }
}

}  // namespace
}  // namespace herald

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // A path into /dev, /proc or /sys could name a device that never ends (/dev/zero) or blocks
  // (a FIFO): configuration files come from the user, who would not do that to themselves.
  for (std::string_view device : {"/dev", "/proc", "/sys"}) {
    if (text.find(device) != std::string_view::npos) return -1;
  }
  const std::string path = (Folder() / "fuzz.toml").string();
  WriteFile(path, text);

  Result<AccountSet> accounts = LoadAccounts(path);
  if (!accounts.ok()) {
    CheckError(accounts.status(), path);
  } else {
    const std::vector<AccountConfig>& list = accounts->accounts();
    FUZZ_CHECK(!list.empty(), "an account set without accounts");
    for (std::size_t i = 0; i < list.size(); ++i) {
      FUZZ_CHECK(accounts->Find(list[i].name) == &list[i], "account names are not distinct: " + Escaped(list[i].name));
      FUZZ_CHECK(list[i].secondary.empty() || accounts->Find(list[i].secondary) != nullptr,
                 "a secondary account that does not exist: " + Escaped(list[i].secondary));
    }
  }
  Result<TaskConfig> task = LoadTask(path);
  if (!task.ok()) CheckError(task.status(), path);
  return 0;
}
