#include "config/task_file.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

#include "config/loader.h"
#include "temp_dir.h"

namespace herald {
namespace {

TEST(TaskFileTest, APlaceInsideTheStoresFolderIsRelative) {
  struct Case {
    std::string task;
    std::string store;
    std::string want;
  };
  const Case cases[] = {
      {"/m/task.toml", "/m/herald.db", "task.toml"},
      {"/m/spring/task.toml", "/m/herald.db", "spring/task.toml"},
      {"/m/a/./b/../c/task.toml", "/m/x/../herald.db", "a/c/task.toml"},
      {"/elsewhere/task.toml", "/m/herald.db", "/elsewhere/task.toml"},
      {"/m2/task.toml", "/m/herald.db", "/m2/task.toml"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(TaskFileInStore(c.task, c.store), c.want) << c.task << " with " << c.store;
    EXPECT_EQ(TaskFileFromStore(TaskFileInStore(c.task, c.store), c.store),
              std::filesystem::path(c.task).lexically_normal().string());
  }
  // The same place after the whole tree moved.
  EXPECT_EQ(TaskFileFromStore("spring/task.toml", "/moved/herald.db"), "/moved/spring/task.toml");
}

TEST(TaskFileTest, DefaultIdsAreReadableValidAndApart) {
  const std::regex hash_suffix("-[0-9a-f]{8}$");
  struct Case {
    std::string task;
    std::string want;  // "": a hash is appended to `prefix`
    std::string prefix;
  };
  const Case cases[] = {
      {"/m/task.toml", "task", ""},
      {"/m/spring/task.toml", "spring-task", ""},
      {"/m/mailings/2027/autumn.toml", "mailings-2027-autumn", ""},
      {"/m/Frühling/task.toml", "", "Fr__hling-task"},
      {"/m/.hidden/task.toml", "", "_.hidden-task"},
      {"/m/my task/news letter.toml", "", "my_task-news_letter"},
      {"/elsewhere/task.toml", "", "task"},
      {"/m/" + std::string(200, 'x') + "/task.toml", "", std::string(119, 'x')},
  };
  std::set<std::string> ids;
  for (const Case& c : cases) {
    const std::string id = DefaultTaskId(c.task, "/m/herald.db");
    ids.insert(id);
    if (!c.want.empty()) {
      EXPECT_EQ(id, c.want) << c.task;
    } else {
      EXPECT_TRUE(std::regex_search(id, hash_suffix)) << c.task << ": " << id;
      EXPECT_EQ(id.substr(0, c.prefix.size()), c.prefix) << c.task << ": " << id;
    }
    EXPECT_LE(id.size(), 128u) << c.task;
    EXPECT_TRUE(std::regex_match(id, std::regex("[A-Za-z0-9_-][A-Za-z0-9._-]*"))) << c.task << ": " << id;
  }
  EXPECT_EQ(ids.size(), std::size(cases));
  // Two places that read alike stay apart; a tree moved as a whole keeps its ids.
  EXPECT_NE(DefaultTaskId("/m/Früh/task.toml", "/m/herald.db"), DefaultTaskId("/m/Fräh/task.toml", "/m/herald.db"));
  EXPECT_NE(DefaultTaskId("/a/task.toml", "/m/herald.db"), DefaultTaskId("/b/task.toml", "/m/herald.db"));
  EXPECT_EQ(DefaultTaskId("/m/Frühling/task.toml", "/m/herald.db"),
            DefaultTaskId("/n/Frühling/task.toml", "/n/herald.db"));
}

TEST(TaskFileTest, TwoFoldersTaskFilesGetIdsOfTheirOwn) {
  TempDir dir;
  const std::string task = "[message]\nfrom = \"news@example.com\"\nsubject = \"Hi\"\ntext = \"Hi\"\n"
                           "[recipients]\nfile = \"../recipients.csv\"\n";
  dir.Write("recipients.csv", "email\n");
  dir.Write("accounts.toml", "[[account]]\nname = \"p\"\nkind = \"pickup\"\nfolder = \"out\"\n");
  Result<TaskConfig> spring = LoadTask(dir.Write("spring/task.toml", "accounts = \"../accounts.toml\"\n" + task));
  Result<TaskConfig> autumn = LoadTask(dir.Write("autumn/task.toml", "accounts = \"../accounts.toml\"\n" + task));
  ASSERT_TRUE(spring.ok()) << spring.status().message();
  ASSERT_TRUE(autumn.ok()) << autumn.status().message();
  EXPECT_EQ(spring->store_file, autumn->store_file);
  EXPECT_EQ(spring->id, "spring-task");
  EXPECT_EQ(autumn->id, "autumn-task");
  EXPECT_FALSE(spring->id_given);
  EXPECT_EQ(spring->title, "spring-task");
  Result<TaskConfig> named =
      LoadTask(dir.Write("named/task.toml", "id = \"n-1\"\naccounts = \"../accounts.toml\"\n" + task));
  ASSERT_TRUE(named.ok()) << named.status().message();
  EXPECT_EQ(named->id, "n-1");
  EXPECT_TRUE(named->id_given);
}

}  // namespace
}  // namespace herald
