#include "transport/backup_writer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/text.h"
#include "temp_dir.h"

namespace herald {
namespace {

class BackupWriterTest : public ::testing::Test {
 protected:
  BackupWriter Writer(std::string_view file_name) {
    Result<Template> compiled = Template::Compile(file_name, fields_, "backup.file_name");
    EXPECT_TRUE(compiled.ok()) << compiled.status().message();
    return BackupWriter(dir_.Path("backup"), std::move(*compiled));
  }
  std::vector<std::string_view> Values(std::string_view name, std::string_view recipient) {
    std::vector<std::string_view> values(fields_.size());
    values[1] = name;
    values[fields_.task_title_index()] = "November";
    values[fields_.recipient_index()] = recipient;
    return values;
  }

  FieldSet fields_{{"email", "name"}};
  TempDir dir_;
};

TEST_F(BackupWriterTest, BuildsSafePathsFromPlaceholders) {
  struct Case {
    std::string_view file_name;
    std::string_view name;
    std::string_view want;
  };
  const Case cases[] = {
      {"{%task_title%}/{%recipient%}.eml", "x", "November/anna@example.com.eml"},
      {"{%name%}.eml", "../../etc/passwd", "_.._etc_passwd.eml"},
      {"{%name%}.eml", "..", "eml"},
      {"{%name%}/x.eml", "..", "x.eml"},
      {"/abs/{%name%}.eml", "Anna", "abs/Anna.eml"},
      {"{%name%}.eml", std::string_view("a\r\nb\0c", 6), "a__b_c.eml"},
      {"{%name%}.eml", "Jürgen: \"Boss\" <x>|?*", "Jürgen_ _Boss_ _x____.eml"},
      {"{%name%}.eml", "C:\\Windows\\evil", "C__Windows_evil.eml"},
      {"{%name|unnamed%}.eml", "", "unnamed.eml"},
      {"{%name%}", "", "message.eml"},
      {"../{%name%}.eml", "a", "a.eml"},
  };
  for (const Case& c : cases) {
    BackupWriter writer = Writer(c.file_name);
    std::vector<std::string_view> values = Values(c.name, "anna@example.com");
    EXPECT_EQ(writer.RelativePath(values), c.want) << c.file_name << " with " << Printable(c.name);
  }
}

TEST_F(BackupWriterTest, LongNamesAreCutWithoutSplittingCharacters) {
  BackupWriter writer = Writer("{%name%}");
  std::string name;
  for (int i = 0; i < 150; ++i) name += "ü";
  std::string path = writer.RelativePath(Values(name, "a@example.com"));
  EXPECT_LE(path.size(), 200u);
  EXPECT_TRUE(IsValidUtf8(path)) << Printable(path);
}

TEST_F(BackupWriterTest, SavesAndNumbersCollidingNames) {
  BackupWriter writer = Writer("{%task_title%}/{%name%}.eml");
  MessageData message;
  message.Append("Subject: x\r\n\r\nbody\r\n");
  std::vector<std::string_view> values = Values("same", "a@example.com");
  Result<std::string> first = writer.Save(values, message);
  Result<std::string> second = writer.Save(values, message);
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(*first, dir_.Path("backup/November/same.eml"));
  EXPECT_EQ(*second, dir_.Path("backup/November/same-2.eml"));
  std::ifstream in(*second, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), "Subject: x\r\n\r\nbody\r\n");
}

TEST_F(BackupWriterTest, ALinkPlantedAtTheTaskTitleFailsTheBackup) {
  // sent/<task title> made a link to elsewhere by someone who can write in the backup folder.
  const std::string elsewhere = dir_.Path("elsewhere");
  std::filesystem::create_directories(elsewhere);
  std::filesystem::create_directories(dir_.Path("backup"));
  std::filesystem::create_directory_symlink(elsewhere, dir_.Path("backup/November"));
  BackupWriter writer = Writer("{%task_title%}/{%recipient%}.eml");
  MessageData message;
  message.Append("Subject: x\r\n\r\nbody\r\n");
  Result<std::string> saved = writer.Save(Values("x", "anna@example.com"), message);
  ASSERT_FALSE(saved.ok());
  EXPECT_EQ(saved.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(saved.status().message(), dir_.Path("backup/November") + ": a symbolic link; herald writes below " +
                                          dir_.Path("backup") + " without following links or leaving it");
  EXPECT_TRUE(std::filesystem::is_empty(elsewhere));
}

TEST_F(BackupWriterTest, DotDotFromPlaceholdersStaysBelowTheFolder) {
  BackupWriter writer = Writer("{%name%}/../{%name%}.eml");
  MessageData message;
  message.Append("x");
  Result<std::string> saved = writer.Save(Values("../../..", "anna@example.com"), message);
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  EXPECT_EQ(*saved, dir_.Path("backup/_.._/_.._...eml"));
  EXPECT_EQ(std::filesystem::path(*saved).lexically_normal().string(), *saved);
  EXPECT_EQ(writer.RelativePath(Values("..", "anna@example.com")), "eml");
}

TEST_F(BackupWriterTest, TheBackupFolderItselfMayBeALink) {
  const std::string share = dir_.Path("share");
  std::filesystem::create_directories(share);
  std::filesystem::create_directory_symlink(share, dir_.Path("backup"));
  BackupWriter writer = Writer("{%task_title%}/{%recipient%}.eml");
  MessageData message;
  message.Append("x");
  Result<std::string> saved = writer.Save(Values("x", "anna@example.com"), message);
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  EXPECT_TRUE(std::filesystem::is_regular_file(share + "/November/anna@example.com.eml"));
}

}  // namespace
}  // namespace herald
