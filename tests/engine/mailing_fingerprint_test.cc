#include "engine/mailing_fingerprint.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "config/loader.h"
#include "temp_dir.h"

namespace herald {
namespace {

class MailingFingerprintTest : public ::testing::Test {
 protected:
  static constexpr std::string_view kTask = R"(title = "Spring"
[message]
from = "news@example.com"
from_name = "{%agent%} at Example"
reply_to = "office@example.com"
to_name = "{%name%}"
subject = "Hello {%name%}"
text = "Dear {%name%}"
html = "<p>Dear {%name%}</p>"
attachments = ["a.pdf", { path = "b.pdf", name = "Programme.pdf", content_type = "application/pdf" }]
headers = { "X-Campaign" = "spring" }
sensitivity = "personal"
[recipients]
file = "recipients.csv"
[sending]
concurrency = 2
)";

  void SetUp() override {
    dir_.Write("a.pdf", "%PDF a");
    dir_.Write("b.pdf", "%PDF b");
    dir_.Write("recipients.csv", "email,name,agent\nann@example.com,Ann,Bo\n");
    dir_.Write("other.csv", "email,name,agent\n");
  }

  // The fingerprint of kTask with each `from` replaced by its `to`, in task file `folder`task.toml.
  std::string Fingerprint(const std::vector<std::pair<std::string_view, std::string_view>>& replace = {},
                          const std::string& folder = "") {
    std::string text(kTask);
    for (const auto& [from, to] : replace) {
      const std::size_t at = text.find(from);
      EXPECT_NE(at, std::string::npos) << from;
      if (at != std::string::npos) text.replace(at, from.size(), to);
    }
    Result<TaskConfig> task = LoadTask(dir_.Write(folder + "task.toml", text));
    EXPECT_TRUE(task.ok()) << task.status().message();
    if (!task.ok()) return "";
    Result<std::string> fingerprint = MailingFingerprint(*task);
    EXPECT_TRUE(fingerprint.ok()) << fingerprint.status().message();
    return fingerprint.ok() ? *fingerprint : "";
  }

  TempDir dir_;
};

TEST_F(MailingFingerprintTest, EveryPartOfTheMailingChangesItAndIsNamed) {
  const std::string base = Fingerprint();
  EXPECT_EQ(Fingerprint(), base) << "the same task, the same fingerprint";
  struct Case {
    std::vector<std::pair<std::string_view, std::string_view>> replace;
    std::vector<std::string> parts;
  };
  const Case cases[] = {
      {{{"news@example.com", "info@example.com"}}, {"sender"}},
      {{{"\"news@example.com\"", "\"News <news@example.com>\""}, {"from_name = \"{%agent%} at Example\"", ""}},
       {"sender", "sender's name"}},
      {{{"{%agent%} at Example", "{%agent%} for Example"}}, {"sender's name"}},
      {{{"office@example.com", "desk@example.com"}}, {"Reply-To"}},
      {{{"to_name = \"{%name%}\"", "to_name = \"{%name%} {%agent%}\""}}, {"recipient's name"}},
      {{{"Hello {%name%}", "Hi {%name%}"}}, {"subject"}},
      {{{"text = \"Dear", "text = \"Hi"}}, {"text body"}},
      {{{"<p>Dear", "<p>Hi"}}, {"HTML body"}},
      {{{"name = \"Programme.pdf\"", "name = \"Programm.pdf\""}}, {"attachments"}},
      {{{"content_type = \"application/pdf\"", "content_type = \"application/octet-stream\""}}, {"attachments"}},
      {{{"[\"a.pdf\", ", "["}}, {"attachments"}},
      {{{"\"X-Campaign\" = \"spring\"", "\"X-Campaign\" = \"autumn\""}}, {"extra headers"}},
      {{{"\"personal\"", "\"private\""}}, {"sensitivity"}},
      {{{"file = \"recipients.csv\"", "file = \"other.csv\""}}, {"recipient list file"}},
  };
  for (const Case& c : cases) {
    const std::string changed = Fingerprint(c.replace);
    EXPECT_NE(changed, base) << c.replace[0].second;
    EXPECT_EQ(MailingChanges(base, changed), c.parts) << c.replace[0].second;
  }
  // An attachment's content.
  dir_.Write("b.pdf", "%PDF b, second edition");
  EXPECT_EQ(MailingChanges(base, Fingerprint()), std::vector<std::string>{"attachments"});
}

TEST_F(MailingFingerprintTest, WhatIsNotTheMailingLeavesItAlone) {
  const std::string base = Fingerprint();
  EXPECT_EQ(Fingerprint({{"title = \"Spring\"", "title = \"Spring 2027\""}}), base);
  EXPECT_EQ(Fingerprint({{"concurrency = 2", "concurrency = 8"}}), base);
  EXPECT_EQ(Fingerprint({{"title", "id = \"other\"\ntitle"}}), base);
  // Rows added to the list: the same mailing.
  dir_.Write("recipients.csv", "email,name,agent\nann@example.com,Ann,Bo\nbob@example.com,Bob,Bo\n");
  EXPECT_EQ(Fingerprint(), base);
  // The task and its files moved together.
  dir_.Write("moved/a.pdf", "%PDF a");
  dir_.Write("moved/b.pdf", "%PDF b");
  dir_.Write("moved/recipients.csv", "email,name,agent\n");
  EXPECT_EQ(Fingerprint({}, "moved/"), base);
}

TEST_F(MailingFingerprintTest, AFingerprintOfAnotherKindDiffersInEveryPart) {
  const std::string base = Fingerprint();
  EXPECT_EQ(MailingChanges("", base).size(), 11u);
  EXPECT_EQ(MailingChanges("mailing/0 from=1", base).size(), 11u);
  EXPECT_TRUE(MailingChanges(base, base).empty());
}

}  // namespace
}  // namespace herald
