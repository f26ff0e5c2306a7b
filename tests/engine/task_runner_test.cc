#include "engine/task_runner.h"

#include <filesystem>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/task_runner_fixture.h"

namespace herald {
namespace {

using ::testing::HasSubstr;

using TaskRunnerTest = TaskRunnerFixture;

TEST_F(TaskRunnerTest, SendsEveryRecipientOnceAndNothingMoreOnTheNextRun) {
  LoadConfig();
  RunReport first = Run();
  EXPECT_EQ(first.sent, 3u);
  EXPECT_EQ(first.counts[RecipientStatus::kSent], 3u);
  ASSERT_TRUE(first.import.has_value());
  EXPECT_EQ(first.import->imported, 3u);
  ASSERT_EQ(relay().sent.size(), 3u);
  const SentMessage& anna = relay().sent[0];
  EXPECT_EQ(anna.envelope.mail_from, "news@example.com");
  EXPECT_EQ(anna.envelope.recipients, std::vector<std::string>{"anna@example.com"});
  EXPECT_THAT(anna.data, HasSubstr("Subject: Hello Anna\r\n"));
  EXPECT_THAT(anna.data, HasSubstr("this is for anna@example.com."));

  RunReport second = Run();
  EXPECT_EQ(second.sent, 0u);
  EXPECT_FALSE(second.import.has_value()) << "an unchanged list is not imported again";
  EXPECT_EQ(relay().sent.size(), 3u);
}

TEST_F(TaskRunnerTest, MessageIdIsStablePerRecipientAndUniqueAcrossRecipients) {
  LoadConfig();
  Run();
  std::set<std::string> ids;
  for (const SentMessage& message : relay().sent) {
    std::size_t start = message.data.find("Message-ID: <");
    ASSERT_NE(start, std::string::npos);
    ids.insert(message.data.substr(start, message.data.find('>', start) - start));
  }
  EXPECT_EQ(ids.size(), 3u);
}

TEST_F(TaskRunnerTest, HeaderInjectionFailsThatRecipientOnly) {
  static constexpr char kCsv[] =
      "email,name\n"
      "anna@example.com,Anna\n"
      "evil@example.com,\"x\r\nBcc: victim@example.net\"\n"
      "nul@example.com,\"a\0b\"\n"
      "lf@example.com,\"x\nTo: other@example.net\"\n"
      "encoded@example.com,=?utf-8?q?=0D=0ABcc:_victim@example.net?=\n"
      "carla@example.org,Carla\n";
  WriteRecipients(std::string_view(kCsv, sizeof kCsv - 1));
  LoadConfig();
  RunReport report = Run();
  EXPECT_EQ(report.failed, 3u);
  EXPECT_EQ(report.sent, 3u);
  for (const char* address : {"evil@example.com", "nul@example.com", "lf@example.com"}) {
    const AttemptResult& result = observer_.results.at(address);
    EXPECT_EQ(result.status, RecipientStatus::kFailed) << address;
    EXPECT_THAT(result.error.text, HasSubstr("subject")) << address;
  }
  EXPECT_EQ(observer_.results.at("encoded@example.com").status, RecipientStatus::kSent);
  // Every message has exactly the header fields herald writes, one each; nothing was added.
  const std::multiset<std::string> kFields = {"Content-Transfer-Encoding", "Content-Type", "Date", "From",
                                              "MIME-Version", "Message-ID", "Subject", "To"};
  for (const SentMessage& message : relay().sent) {
    EXPECT_EQ(message.envelope.recipients.size(), 1u);
    std::string headers = message.data.substr(0, message.data.find("\r\n\r\n") + 2);
    std::multiset<std::string> fields;
    for (std::size_t start = 0; start < headers.size();) {
      std::size_t end = headers.find("\r\n", start);
      std::string line = headers.substr(start, end - start);
      if (!line.empty() && line[0] != ' ' && line[0] != '\t') fields.insert(line.substr(0, line.find(':')));
      start = end + 2;
    }
    EXPECT_EQ(fields, kFields) << headers;
  }
}

TEST_F(TaskRunnerTest, TemporaryFailureIsRetriedAfterTheRetryDelay) {
  LoadConfig("[sending]\nretries = 2\nretry_delay = \"1h\"\nretry_backoff = 2.0\n");
  relay().outcome_for["bob@example.com"] =
      FakeTransport::Reply(Disposition::kTemporary, Scope::kRecipient, 451, "4.3.0", "try later");
  RunReport first = Run();
  EXPECT_EQ(first.sent, 2u);
  EXPECT_EQ(first.deferred, 1u);
  const AttemptResult& bob = observer_.results.at("bob@example.com");
  EXPECT_EQ(bob.status, RecipientStatus::kDeferred);
  EXPECT_EQ(*bob.next_attempt_at, clock_.Now() + std::chrono::hours(1));
  EXPECT_EQ(bob.error.reply_code, 451);
  EXPECT_EQ(bob.error.enhanced_status, "4.3.0");
  EXPECT_THAT(bob.error.text, HasSubstr("RCPT TO: try later"));
  ASSERT_TRUE(first.next_attempt_at.has_value());

  clock_.Advance(std::chrono::minutes(59));
  EXPECT_EQ(Run().deferred, 0u) << "not due yet";

  clock_.Advance(std::chrono::minutes(1));
  RunReport second = Run();
  EXPECT_EQ(second.deferred, 1u);
  EXPECT_EQ(*observer_.results.at("bob@example.com").next_attempt_at, clock_.Now() + std::chrono::hours(2))
      << "the second retry waits twice as long";

  clock_.Advance(std::chrono::hours(2));
  RunReport third = Run();
  EXPECT_EQ(third.failed, 1u) << "retries used up";
  EXPECT_THAT(observer_.results.at("bob@example.com").error.text, HasSubstr("gave up after 3 attempts"));
}

TEST_F(TaskRunnerTest, PermanentFailureIsNeverRetried) {
  LoadConfig();
  relay().outcome_for["bob@example.com"] =
      FakeTransport::Reply(Disposition::kPermanent, Scope::kRecipient, 550, "5.1.1", "no such user");
  RunReport report = Run();
  EXPECT_EQ(report.failed, 1u);
  EXPECT_EQ(report.counts[RecipientStatus::kFailed], 1u);
  clock_.Advance(std::chrono::hours(48));
  EXPECT_EQ(Run().failed, 0u);
  EXPECT_EQ(relay().sent.size(), 2u);
}

TEST_F(TaskRunnerTest, AccountFailureDefersEveryoneWithoutHammeringTheServer) {
  LoadConfig();
  relay().connect_failure =
      FakeTransport::Reply(Disposition::kTemporary, Scope::kAccount, 421, "4.3.2", "service not available");
  RunReport report = Run();
  EXPECT_EQ(report.deferred, 3u);
  EXPECT_EQ(relay().connects, 1);
  EXPECT_THAT(observer_.warnings, ::testing::Contains(HasSubstr("service not available")));
}

// A full disk under a pickup folder: no recipient's fault, no secondary would help. The run
// stops with the reason; nothing is deferred (no retry delay to sit out once the disk is freed).
TEST_F(TaskRunnerTest, ALocalFaultStopsTheRunAndLeavesTheRecipientsUnsent) {
  LoadConfig();
  relay().outcome_for["bob@example.com"] = FakeTransport::Reply(
      Disposition::kTemporary, Scope::kLocal, 0, "", "cannot write /mail/out/x.eml: No space left on device");
  RunReport report = Run();
  EXPECT_EQ(report.stopped_by.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(report.stopped_by.message(), HasSubstr("No space left on device"));
  EXPECT_EQ(report.deferred, 0u);
  EXPECT_EQ(report.failed, 0u);
  EXPECT_EQ(report.counts[RecipientStatus::kDeferred], 0u);
  EXPECT_EQ(report.counts[RecipientStatus::kSent] + report.counts[RecipientStatus::kUnsent], 3u);
  EXPECT_GE(report.counts[RecipientStatus::kUnsent], 1u) << "bob at least waits for the next run";

  relay().outcome_for.clear();
  RunReport next = Run();
  EXPECT_TRUE(next.stopped_by.ok()) << next.stopped_by.ToString();
  EXPECT_EQ(next.counts[RecipientStatus::kSent], 3u) << "the next run sends the rest";
  EXPECT_EQ(next.counts.possible_duplicates, 0u);
}

TEST_F(TaskRunnerTest, InFlightRecipientsOfAnAbruptStopAreSentAgainAsPossibleDuplicates) {
  LoadConfig();
  for (const char* address : {"anna@example.com", "bob@example.com", "carla@example.org"}) {
    relay().outcome_for[address] =
        FakeTransport::Reply(Disposition::kTemporary, Scope::kRecipient, 451, "4.3.0", "try later");
  }
  Run();  // imports and defers everyone for the retry delay
  Result<std::vector<RecipientRecord>> due = store_->FetchDue("t1", clock_.Now() + std::chrono::hours(2), 0, 10);
  ASSERT_TRUE(due.ok());
  StoreBatch batch;
  batch.in_flight.push_back({due->front().id});  // as if a run died between MAIL FROM and the result
  ASSERT_TRUE(store_->Apply(batch, clock_.Now() + std::chrono::hours(2)).ok());

  relay().outcome_for.clear();
  RunReport report = Run();
  EXPECT_EQ(report.recovered_in_flight, 1u);
  EXPECT_EQ(observer_.recovered, 1u);
  EXPECT_EQ(report.sent, 1u) << "only the recovered one is due now";
  EXPECT_EQ(report.counts.possible_duplicates, 1u);
}

TEST_F(TaskRunnerTest, ImportDropsDuplicatesAndReportsBadRows) {
  WriteRecipients("email,name\n"
                  "anna@example.com,Anna\n"
                  "ANNA@Example.com,Anna again\n"
                  "not-an-address,X\n"
                  ",Nobody\n"
                  "carla@example.org,Carla,extra\n"
                  "dora@example.org,Dora\n");
  LoadConfig();
  RunReport report = Run();
  ASSERT_TRUE(report.import.has_value());
  EXPECT_EQ(report.import->rows, 6u);
  EXPECT_EQ(report.import->imported, 2u);
  EXPECT_EQ(report.import->duplicates, 1u);
  EXPECT_EQ(report.import->bad, 3u);
  ASSERT_EQ(report.import->bad_rows.size(), 3u);
  EXPECT_EQ(report.import->bad_rows[0].line, 4u);
  EXPECT_THAT(report.import->bad_rows[0].reason, HasSubstr("column \"email\""));
  EXPECT_EQ(report.import->bad_rows[1].line, 5u);
  EXPECT_THAT(report.import->bad_rows[1].reason, HasSubstr("no address"));
  EXPECT_EQ(report.import->bad_rows[2].line, 6u);
  EXPECT_EQ(report.sent, 2u);
}

TEST_F(TaskRunnerTest, BadRowsFailTheImportWhenTheTaskSaysSo) {
  WriteRecipients("email,name\nanna@example.com,Anna\nbroken,X\n");
  LoadConfig();
  task_.recipients.bad_rows = BadRows::kFail;
  Result<RunReport> report = TryRun();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(), HasSubstr("line 3"));
  EXPECT_THAT(report.status().message(), HasSubstr("nothing was imported"));
  Result<StatusCounts> counts = store_->CountByStatus("t1");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->total(), 0u);
  EXPECT_TRUE(relay().sent.empty());
}

TEST_F(TaskRunnerTest, AChangedListAddsOnlyTheNewRecipients) {
  LoadConfig();
  Run();
  WriteRecipients("email,name\nanna@example.com,Anna\nbob@example.com,Bob\ncarla@example.org,Carla\n"
                  "dora@example.org,Dora\n");
  RunReport report = Run();
  ASSERT_TRUE(report.import.has_value());
  EXPECT_EQ(report.import->imported, 1u);
  EXPECT_EQ(report.import->duplicates, 3u);
  EXPECT_EQ(report.sent, 1u);
  EXPECT_EQ(relay().sent.back().envelope.recipients[0], "dora@example.org");
}

TEST_F(TaskRunnerTest, UnknownPlaceholderStopsTheTaskBeforeAnythingIsSent) {
  LoadConfig("", "html = \"<p>{%firstname%}</p>\"\n");
  Result<RunReport> report = TryRun();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(), HasSubstr("firstname"));
  EXPECT_THAT(report.status().message(), HasSubstr("message.html"));
  EXPECT_TRUE(relay().sent.empty());
  Result<std::optional<TaskRecord>> task = store_->FindTask("t1");
  ASSERT_TRUE(task.ok());
  EXPECT_FALSE(task->has_value()) << "nothing is stored for a task that cannot run";
}

TEST_F(TaskRunnerTest, ConcurrentSendsShareTheAccountsConnections) {
  std::string csv = "email,name\n";
  for (int i = 0; i < 40; ++i) csv += "r" + std::to_string(i) + "@example.com,R\n";
  WriteRecipients(csv);
  dir_.Write("accounts.toml",
             "[[account]]\nname = \"relay\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nmax_connections = 3\n"
             "reconnect_every = 5\n");
  LoadConfig("[sending]\nconcurrency = 8\n");
  relay().send_delay = std::chrono::milliseconds(2);
  RunReport report = Run();
  EXPECT_EQ(report.sent, 40u);
  EXPECT_EQ(relay().max_open_connections, 3) << "max_connections holds";
  EXPECT_EQ(relay().max_sends_in_progress, 3);
  EXPECT_GE(relay().connects, 8) << "each connection carries at most reconnect_every messages";
  EXPECT_EQ(relay().open_connections, 0) << "every connection is closed at the end";
}

TEST_F(TaskRunnerTest, BackupKeepsACopyOfEverySentMessage) {
  LoadConfig("[backup]\nfolder = \"sent\"\nfile_name = \"{%name%}/{%recipient%}.eml\"\n");
  relay().outcome_for["bob@example.com"] =
      FakeTransport::Reply(Disposition::kPermanent, Scope::kRecipient, 550, "5.1.1", "no such user");
  Run();
  EXPECT_TRUE(std::filesystem::exists(dir_.Path("sent/Anna/anna@example.com.eml")));
  EXPECT_TRUE(std::filesystem::exists(dir_.Path("sent/Carla/carla@example.org.eml")));
  EXPECT_FALSE(std::filesystem::exists(dir_.Path("sent/Bob"))) << "only sent messages are kept";
}

TEST_F(TaskRunnerTest, ResetOptionsPutRecipientsBackToUnsent) {
  LoadConfig("[sending]\nreset_errors_after = true\n");
  relay().outcome_for["bob@example.com"] =
      FakeTransport::Reply(Disposition::kPermanent, Scope::kRecipient, 550, "5.1.1", "no such user");
  RunReport report = Run();
  EXPECT_EQ(report.failed, 1u);
  EXPECT_EQ(report.counts[RecipientStatus::kFailed], 0u);
  EXPECT_EQ(report.counts[RecipientStatus::kUnsent], 1u);

  LoadConfig("[sending]\nreset_before = true\n");
  relay().outcome_for.clear();
  EXPECT_EQ(Run().sent, 3u) << "everyone is sent again";
}

}  // namespace
}  // namespace herald
