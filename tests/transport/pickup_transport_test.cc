#include "transport/pickup_transport.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "run_awaitable.h"
#include "temp_dir.h"

namespace herald {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> Files(const std::string& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::shared_ptr<const MessageData> Message(std::string_view head, std::shared_ptr<const std::string> shared,
                                           std::string_view tail) {
  auto message = std::make_shared<MessageData>();
  message->Append(head);
  message->AppendShared(std::move(shared));
  message->Append(tail);
  return message;
}

TEST(PickupTransportTest, WritesOneCompleteEmlFilePerMessage) {
  TempDir dir;
  PickupTransport transport(dir.Path("pickup/nested"));
  ConnectResult connected = RunAwaitable(transport.Connect(""));
  ASSERT_NE(connected.connection, nullptr) << connected.failure.text;

  auto attachment = std::make_shared<const std::string>("QUJD\r\n");
  for (int i = 0; i < 3; ++i) {
    Envelope envelope{"news@example.com", {"a@example.com", "b@example.com"}, false};
    std::vector<Outcome> outcomes = RunAwaitable(connected.connection->Send(
        envelope, Message("Subject: " + std::to_string(i) + "\r\n\r\n", attachment, "end\r\n")));
    ASSERT_EQ(outcomes.size(), 2u);
    for (const Outcome& outcome : outcomes) {
      EXPECT_TRUE(outcome.delivered()) << outcome.text;
      EXPECT_THAT(outcome.text, ::testing::HasSubstr(".eml"));
    }
  }
  std::vector<fs::path> files = Files(dir.Path("pickup/nested"));
  ASSERT_EQ(files.size(), 3u);  // no temporary files left behind
  std::set<std::string> contents;
  for (const fs::path& file : files) {
    EXPECT_EQ(file.extension(), ".eml");
    EXPECT_NE(file.filename().string()[0], '.');
    contents.insert(Slurp(file));
  }
  EXPECT_EQ(contents, (std::set<std::string>{"Subject: 0\r\n\r\nQUJD\r\nend\r\n", "Subject: 1\r\n\r\nQUJD\r\nend\r\n",
                                             "Subject: 2\r\n\r\nQUJD\r\nend\r\n"}));
}

TEST(PickupTransportTest, ThePickupFolderMayBeALink) {
  TempDir dir;
  fs::create_directories(dir.Path("spool/pickup"));
  fs::create_directory_symlink(dir.Path("spool/pickup"), dir.Path("pickup"));
  PickupTransport transport(dir.Path("pickup"));
  ConnectResult connected = RunAwaitable(transport.Connect(""));
  ASSERT_NE(connected.connection, nullptr) << connected.failure.text;
  Envelope envelope{"news@example.com", {"a@example.com"}, false};
  auto body = std::make_shared<const std::string>("y");
  std::vector<Outcome> outcomes =
      RunAwaitable(connected.connection->Send(envelope, Message("Subject: x\r\n\r\n", body, "")));
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
  EXPECT_EQ(Files(dir.Path("spool/pickup")).size(), 1u);
}

TEST(PickupTransportTest, FolderThatCannotBeCreatedFailsTheAccount) {
  TempDir dir;
  std::string blocker = dir.Write("file", "not a folder");
  PickupTransport transport(blocker + "/pickup");
  ConnectResult connected = RunAwaitable(transport.Connect(""));
  EXPECT_EQ(connected.connection, nullptr);
  EXPECT_EQ(connected.failure.scope, Scope::kLocal);
  EXPECT_EQ(connected.failure.disposition, Disposition::kTemporary);
  EXPECT_THAT(connected.failure.text, ::testing::HasSubstr(blocker));
}

TEST(PickupTransportTest, FolderGoneAfterConnectDefersWithTheReason) {
  TempDir dir;
  PickupTransport transport(dir.Path("pickup"));
  ConnectResult connected = RunAwaitable(transport.Connect(""));
  ASSERT_NE(connected.connection, nullptr);
  fs::remove(dir.Path("pickup"));
  dir.Write("pickup", "a file where the folder was");
  std::vector<Outcome> outcomes = RunAwaitable(connected.connection->Send(
      Envelope{"a@example.com", {"b@example.com"}, false}, Message("x\r\n", std::make_shared<std::string>(), "")));
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].disposition, Disposition::kTemporary);
  EXPECT_EQ(outcomes[0].scope, Scope::kLocal);
  EXPECT_THAT(outcomes[0].text, ::testing::HasSubstr(dir.Path("pickup")));
}

}  // namespace
}  // namespace herald
