// The fixture of the task runner's tests: a task file and an accounts file written into a fresh
// folder and loaded as herald loads them, a SQLite store there, a fake transport per account and
// a fake clock that moves only when the engine waits (FakeSleeper, virtual time), so every wait,
// pause and limit is tested without sleeping; an observer that records what the run said.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/loader.h"
#include "engine/task_runner.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_sleeper.h"
#include "fakes/fake_transport.h"
#include "store/sqlite_store.h"
#include "temp_dir.h"

namespace herald {

class RecordingObserver final : public RunObserver {
 public:
  struct Wait {
    std::string why;
    TimePoint until;
  };

  void OnImport(const ImportReport& report) override { imports.push_back(report); }
  void OnRecovered(std::size_t n) override { recovered += n; }
  void OnResult(const RecipientEvent& event) override {
    results[event.recipient.address] = event.result;
    accounts[event.recipient.address] = std::string(event.account);
    if (event.waits_for_account) waiting_for_account.insert(event.recipient.address);
  }
  void OnProgress(const RunProgress& update) override { progress.push_back(update); }
  void OnWarning(std::string_view warning) override { warnings.emplace_back(warning); }
  void OnWaiting(std::string_view why, TimePoint until) override {
    waits.push_back(Wait{std::string(why), until});
    if (on_waiting) on_waiting(why, until);
  }
  void OnBlacklisted(std::size_t n) override { blacklisted += n; }

  // The waits whose reason contains `text`.
  std::vector<Wait> WaitsFor(std::string_view text) const {
    std::vector<Wait> found;
    for (const Wait& wait : waits) {
      if (wait.why.find(text) != std::string::npos) found.push_back(wait);
    }
    return found;
  }

  std::vector<ImportReport> imports;
  std::size_t recovered = 0;
  std::map<std::string, AttemptResult> results;   // the last result per address
  std::map<std::string, std::string> accounts;    // the account of the last result per address
  std::set<std::string> waiting_for_account;      // deferred to wait for their account (failed as a whole)
  std::vector<std::string> warnings;
  std::vector<Wait> waits;
  std::vector<RunProgress> progress;  // every update, the last one at the end of the run
  std::size_t blacklisted = 0;
  // Called after a wait is recorded (a test acts in the middle of a run, e.g. cancels the task).
  std::function<void(std::string_view why, TimePoint until)> on_waiting;
};

class TaskRunnerFixture : public ::testing::Test {
 protected:
  static constexpr std::string_view kDefaultMessage = R"(
from = "News <news@example.com>"
subject = "Hello {%name%}"
text = "Dear {%name%},\nthis is for {%recipient%}.\n"
)";

  void SetUp() override {
    WriteAccounts("[[account]]\nname = \"relay\"\nkind = \"pickup\"\nfolder = \"unused\"\n");
    WriteRecipients("email,name\n"
                    "anna@example.com,Anna\n"
                    "bob@example.com,Bob\n"
                    "carla@example.org,Carla\n");
    OpenStore();
  }

  void WriteRecipients(std::string_view csv) { dir_.Write("recipients.csv", csv); }
  void WriteAccounts(std::string_view toml) { dir_.Write("accounts.toml", toml); }

  // Opens the store file anew, as another process (or the next run of herald) would.
  void OpenStore() {
    store_.reset();
    Result<std::unique_ptr<SqliteStore>> opened = SqliteStore::Open(dir_.Path("herald.db"));
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(*opened);
  }

  // Writes the task file — `message_` with `message_extra` appended as [message], then `extra`
  // — and loads task and accounts.
  void LoadConfig(std::string_view extra = "", std::string_view message_extra = "") {
    std::string toml = "id = \"t1\"\n[message]\n" + message_ + std::string(message_extra) +
                       "\n[recipients]\nfile = \"recipients.csv\"\n" + std::string(extra);
    Result<TaskConfig> task = LoadTask(dir_.Write("task.toml", toml));
    ASSERT_TRUE(task.ok()) << task.status().message();
    task_ = std::move(*task);
    Result<AccountSet> accounts = LoadAccounts(dir_.Path("accounts.toml"));
    ASSERT_TRUE(accounts.ok()) << accounts.status().message();
    accounts_ = std::move(*accounts);
  }

  Result<RunReport> TryRun() {
    return RunTask(task_, accounts_, *store_, clock_, transports_, observer_, RunOptions{.sleeper = &sleeper_});
  }

  RunReport Run() {
    Result<RunReport> report = TryRun();
    EXPECT_TRUE(report.ok()) << report.status().message();
    return report.ok() ? *report : RunReport{};
  }

  FakeTransport& relay() { return transports_.For("relay"); }

  TempDir dir_;
  FakeClock clock_;
  FakeSleeper sleeper_{clock_};
  FakeTransportFactory transports_{&clock_, &sleeper_};
  RecordingObserver observer_;
  std::unique_ptr<SqliteStore> store_;
  std::string message_{kDefaultMessage};
  TaskConfig task_;
  AccountSet accounts_;
};

}  // namespace herald
