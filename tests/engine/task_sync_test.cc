// What a run brings into the store before sending (engine/task_sync.h): the recipient list's
// rows that cannot be recipients kept as rejected, replaced by the list's next import.
#include "engine/task_sync.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "task_runner_fixture.h"

namespace herald {
namespace {

using ::testing::HasSubstr;

class TaskSyncTest : public TaskRunnerFixture {
 protected:
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
  LoadConfig();
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

}  // namespace
}  // namespace herald
