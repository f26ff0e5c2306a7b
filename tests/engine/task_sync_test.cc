// What a run brings into the store before sending (engine/task_sync.h): the recipient list's
// rows that cannot be recipients kept as rejected, replaced by the list's next import.
#include "engine/task_sync.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "task_runner_fixture.h"

namespace herald {
namespace {

using ::testing::HasSubstr;

class TaskSyncTest : public TaskRunnerFixture {
 protected:
  // Writes `folder`/task.toml (no id unless `extra` sets one) and `folder`/recipients.csv with
  // `addresses`, beside the fixture's accounts and store.
  std::string WriteTask(const std::string& folder, std::string_view subject, const std::vector<std::string>& addresses,
                        std::string_view extra = "") {
    std::string list = "email,name\n";
    for (const std::string& address : addresses) list += address + ",Reader\n";
    dir_.Write(folder + "/recipients.csv", list);
    return dir_.Write(folder + "/task.toml", std::string(extra) + "accounts = \"../accounts.toml\"\n[message]\n" +
                                                 "from = \"news@example.com\"\nsubject = \"" + std::string(subject) +
                                                 "\"\ntext = \"Hello\"\n[recipients]\nfile = \"recipients.csv\"\n");
  }

  // Runs a task file as `herald send` does: under the id the store keeps it by.
  Result<RunReport> RunFile(const std::string& path, bool accept_changes = false) {
    Result<TaskConfig> task = LoadTask(path);
    if (!task.ok()) return task.status();
    Result<std::string> id = StoredTaskId(*task, *store_);
    if (!id.ok()) return id.status();
    task->id = *id;
    task_ = *task;
    return RunTask(*task, accounts_, *store_, clock_, transports_, observer_,
                   RunOptions{.sleeper = &sleeper_, .accept_changes = accept_changes});
  }

  std::vector<std::string> SentTo() {
    std::vector<std::string> addresses;
    for (const auto& message : relay().sent) addresses.push_back(message.envelope.recipients[0]);
    return addresses;
  }

  void SetUp() override {
    TaskRunnerFixture::SetUp();
    Result<AccountSet> accounts = LoadAccounts(dir_.Path("accounts.toml"));
    ASSERT_TRUE(accounts.ok()) << accounts.status().message();
    accounts_ = std::move(*accounts);
  }

  std::vector<RecipientRecord> Rejected() {
    std::vector<RecipientRecord> rejected;
    Status status = store_->ForEachRecipient(task_.id, [&](const RecipientRecord& r) {
      if (r.status == RecipientStatus::kRejected) rejected.push_back(r);
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.message();
    return rejected;
  }
};

TEST_F(TaskSyncTest, RowsThatCannotBeRecipientsAreKeptAsRejectedAndNeverSent) {
  WriteRecipients("email,name\n"
                  "anna@example.com,Anna\n"
                  "not-an-address,X\n"
                  ",Nobody\n"
                  "carla@example.org,Carla,extra\n"
                  "d\xffra@example.org,Dora\n"
                  "eve@example.org,Eve\n");
  // Read as UTF-8 whatever the file holds (with "auto", a list whose only non-ASCII octet is not
  // UTF-8 is read as Windows-1252), so that the row with the octet 0xFF is invalid text.
  LoadConfig("encoding = \"utf-8\"\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 2u);
  EXPECT_EQ(report.counts[RecipientStatus::kRejected], 4u);
  EXPECT_EQ(relay().sent.size(), 2u);

  const std::vector<RecipientRecord> rejected = Rejected();
  ASSERT_EQ(rejected.size(), 4u);
  struct Want {
    std::size_t line;
    std::string address;
    std::vector<std::string> fields;
    std::string reason;
  };
  const Want want[] = {
      {3, "not-an-address", {"not-an-address", "X"}, "column \"email\""},
      {4, "", {"", "Nobody"}, "no address"},
      {5, "carla@example.org", {}, "expected 2 fields"},
      {6, "d\\xFFra@example.org", {}, "UTF-8"},
  };
  for (std::size_t i = 0; i < rejected.size(); ++i) {
    EXPECT_EQ(rejected[i].line, want[i].line);
    EXPECT_EQ(rejected[i].address, want[i].address) << "line " << want[i].line;
    EXPECT_EQ(rejected[i].fields, want[i].fields) << "line " << want[i].line;
    EXPECT_THAT(rejected[i].last_error.text, HasSubstr(want[i].reason)) << "line " << want[i].line;
    EXPECT_EQ(rejected[i].attempts, 0);
  }

  // Run again: nothing more is sent, and the rejected rows stay.
  report = Run();
  EXPECT_EQ(report.sent, 0u);
  EXPECT_EQ(report.counts[RecipientStatus::kRejected], 4u);

  // The list fixed in part: its rejected rows are those of the new file; the fixed row is sent.
  WriteRecipients("email,name\n"
                  "anna@example.com,Anna\n"
                  "nora@example.org,Nora\n"
                  "carla@example.org,Carla\n"
                  "eve@example.org,Eve\n"
                  "@example.org,Nameless\n");
  report = Run();
  EXPECT_EQ(report.sent, 2u);
  ASSERT_EQ(Rejected().size(), 1u);
  EXPECT_EQ(Rejected()[0].line, 6u);
  EXPECT_EQ(Rejected()[0].address, "@example.org");
  EXPECT_EQ(report.counts[RecipientStatus::kSent], 4u);
  EXPECT_EQ(report.counts.total(), 5u);
}

TEST_F(TaskSyncTest, TaskFilesOfTwoFoldersAreTwoMailings) {
  const std::string spring = WriteTask("spring", "Spring", {"ann@example.com", "bob@example.com"});
  const std::string autumn = WriteTask("autumn", "Autumn", {"ann@example.com", "cat@example.com"});
  Result<RunReport> first = RunFile(spring);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->sent, 2u);
  Result<RunReport> second = RunFile(autumn);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->sent, 2u);
  EXPECT_EQ(SentTo(), (std::vector<std::string>{"ann@example.com", "bob@example.com", "ann@example.com",
                                                "cat@example.com"}));
  Result<std::vector<TaskRecord>> tasks = store_->ListTasks();
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 2u);
  EXPECT_EQ((*tasks)[0].id, "spring-task");
  EXPECT_EQ((*tasks)[0].task_file, "spring/task.toml");
  EXPECT_EQ((*tasks)[1].id, "autumn-task");
  EXPECT_EQ((*tasks)[1].task_file, "autumn/task.toml");
}

TEST_F(TaskSyncTest, AnEditedTaskFileIsRefusedUntilItsChangesAreAccepted) {
  const std::string path = WriteTask("news", "March", {"ann@example.com", "bob@example.com"}, "id = \"news\"\n");
  const TimePoint first_run = clock_.Now();
  ASSERT_TRUE(RunFile(path).ok());
  clock_.Advance(std::chrono::hours(24 * 30));

  // Next month: the same file, a new subject and list.
  WriteTask("news", "April", {"ann@example.com", "bob@example.com", "cat@example.com"}, "id = \"news\"\n");
  const TaskRecord before = **store_->FindTask("news");
  Result<RunReport> refused = RunFile(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  for (const std::string& part :
       {path + " describes another mailing than the one stored as task \"news\"", dir_.Path("herald.db"),
        "stored: \"news\" from " + path, "first run " + FormatLocalTime(first_run) + "",
        "last run " + FormatLocalTime(first_run) + "", std::string("2 of 2 recipient(s) sent"),
        std::string("changed: subject\n"), std::string("id = \"...\""), "herald send " + path + " --accept-changes"}) {
    EXPECT_THAT(refused.status().message(), HasSubstr(part));
  }
  EXPECT_EQ(relay().sent.size(), 2u);
  const TaskRecord after = **store_->FindTask("news");
  EXPECT_EQ(after.fingerprint, before.fingerprint) << "nothing written";
  EXPECT_EQ(after.last_run_at, before.last_run_at);
  EXPECT_EQ(store_->CountByStatus("news")->total(), 2u) << "the new list is not imported";

  // Accepted: the stored mailing goes on with the new content; the sent are not sent again.
  Result<RunReport> accepted = RunFile(path, /*accept_changes=*/true);
  ASSERT_TRUE(accepted.ok()) << accepted.status().message();
  EXPECT_EQ(accepted->sent, 1u);
  EXPECT_EQ(SentTo().back(), "cat@example.com");
  const TaskRecord now = **store_->FindTask("news");
  EXPECT_NE(now.fingerprint, before.fingerprint);
  EXPECT_EQ(now.last_run_at, clock_.Now());
  EXPECT_EQ(now.submitted_at, first_run);
  // From now on it is this mailing.
  Result<RunReport> again = RunFile(path);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->sent, 0u);
}

TEST_F(TaskSyncTest, ATaskOfAnOlderStoreIsAdoptedByTheTaskFileOfItsName) {
  // As a herald before store version 4 left it: task "task" (spring/task.toml's default id then),
  // no task file, no fingerprint; one recipient sent, one not.
  TaskRecord old{"task", "Spring", {"email", "name"}, clock_.Now(), "", "n1", "", "", std::nullopt};
  ASSERT_TRUE(store_->CreateTask(old).ok());
  {
    Result<std::unique_ptr<RecipientImport>> import = store_->BeginImport("task");
    ASSERT_TRUE(import.ok());
    for (const std::string address : {"ann@example.com", "bob@example.com"}) {
      ASSERT_TRUE((*import)->Add(NewRecipient{address, address, {address, "Reader"}, 2}).ok());
    }
    ASSERT_TRUE((*import)->Finish().ok());
  }
  const std::int64_t ann = (*store_->FetchDue("task", clock_.Now(), 0, 1))[0].id;
  StoreBatch batch;
  batch.results = {{ann, RecipientStatus::kSent, std::nullopt, {}, "relay"}};
  ASSERT_TRUE(store_->Apply(batch, clock_.Now()).ok());

  const std::string spring = WriteTask("spring", "Spring", {"ann@example.com", "bob@example.com", "cat@example.com"});
  const std::string autumn = WriteTask("autumn", "Autumn", {"dan@example.com"});
  Result<RunReport> adopted = RunFile(spring);
  ASSERT_TRUE(adopted.ok()) << adopted.status().message();
  EXPECT_EQ(task_.id, "task");
  EXPECT_EQ(SentTo(), (std::vector<std::string>{"bob@example.com", "cat@example.com"}));
  const TaskRecord record = **store_->FindTask("task");
  EXPECT_EQ(record.task_file, "spring/task.toml");
  EXPECT_FALSE(record.fingerprint.empty());

  // Another folder's task.toml is not that task; the adopting file still is.
  Result<RunReport> other = RunFile(autumn);
  ASSERT_TRUE(other.ok()) << other.status().message();
  EXPECT_EQ(task_.id, "autumn-task");
  EXPECT_EQ(SentTo().back(), "dan@example.com");
  Result<RunReport> again = RunFile(spring);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(task_.id, "task");
  EXPECT_EQ(again->sent, 0u);
  EXPECT_EQ(store_->ListTasks()->size(), 2u);
}

TEST_F(TaskSyncTest, AMovedTaskFileIsNotTakenForANewMailing) {
  const std::string spring = WriteTask("spring", "Spring", {"ann@example.com", "bob@example.com"});
  ASSERT_TRUE(RunFile(spring).ok());
  std::filesystem::rename(dir_.Path("spring"), dir_.Path("spring-2027"));
  const std::string moved = dir_.Path("spring-2027/task.toml");
  Result<RunReport> refused = RunFile(moved);
  ASSERT_FALSE(refused.ok());
  for (const std::string& part :
       {moved + " is new here, but the same mailing is stored as task \"spring-task\"",
        "from " + dir_.Path("spring/task.toml"), std::string("set id = \"spring-task\" in the task file")}) {
    EXPECT_THAT(refused.status().message(), HasSubstr(part));
  }
  EXPECT_EQ(relay().sent.size(), 2u);
  EXPECT_EQ(store_->ListTasks()->size(), 1u);

  // Told which task it is, it goes on with it and records its new place.
  WriteTask("spring-2027", "Spring", {"ann@example.com", "bob@example.com"}, "id = \"spring-task\"\n");
  Result<RunReport> resumed = RunFile(moved);
  ASSERT_TRUE(resumed.ok()) << resumed.status().message();
  EXPECT_EQ(resumed->sent, 0u);
  EXPECT_EQ((*store_->FindTask("spring-task"))->task_file, "spring-2027/task.toml");

  // A copy beside the original is a mailing of its own.
  std::filesystem::copy(dir_.Path("spring-2027"), dir_.Path("copy"));
  WriteTask("copy", "Spring", {"ann@example.com", "bob@example.com"});
  Result<RunReport> copy = RunFile(dir_.Path("copy/task.toml"));
  ASSERT_TRUE(copy.ok()) << copy.status().message();
  EXPECT_EQ(copy->sent, 2u);
}

}  // namespace
}  // namespace herald
