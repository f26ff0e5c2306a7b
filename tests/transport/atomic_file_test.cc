#include "transport/internal/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "temp_dir.h"

namespace herald::transport_internal {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Every name in `folder` and below, links not followed.
std::vector<std::string> Tree(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    names.push_back(entry.path().lexically_relative(folder).string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Both ways of resolving a path: openat2 (this kernel has it) and the component walk older
// kernels get.
class AtomicFileTest : public ::testing::TestWithParam<Resolution> {
 protected:
  AtomicFileTest() {
    fs::create_directories(root_);
    fs::create_directories(outside_);
    message_.Append("Subject: x\r\n\r\nbody\r\n");
  }

  Result<std::string> Write(std::string_view subfolders, const std::string& name,
                            IfExists if_exists = IfExists::kAddNumber) {
    return WriteMessageFile(root_, subfolders, name, message_, if_exists, GetParam());
  }

  TempDir dir_;
  const std::string root_ = dir_.Path("sent");
  const std::string outside_ = dir_.Path("outside");
  MessageData message_;
};

INSTANTIATE_TEST_SUITE_P(Resolutions, AtomicFileTest,
                         ::testing::Values(Resolution::kOpenat2, Resolution::kComponentWalk),
                         [](const ::testing::TestParamInfo<Resolution>& info) {
                           return info.param == Resolution::kOpenat2 ? "Openat2" : "ComponentWalk";
                         });

TEST_P(AtomicFileTest, CreatesFoldersAndWritesTheFile) {
  Result<std::string> written = Write("Autumn newsletter/2026", "anna@example.com.eml");
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(*written, root_ + "/Autumn newsletter/2026/anna@example.com.eml");
  EXPECT_EQ(Slurp(*written), "Subject: x\r\n\r\nbody\r\n");
  Result<std::string> again = Write("Autumn newsletter/2026", "anna@example.com.eml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, root_ + "/Autumn newsletter/2026/anna@example.com-2.eml");
  Result<std::string> replaced = Write("", "pickup.eml", IfExists::kReplace);
  ASSERT_TRUE(replaced.ok()) << replaced.status().ToString();
  EXPECT_EQ(Tree(root_), (std::vector<std::string>{"Autumn newsletter", "Autumn newsletter/2026",
                                                    "Autumn newsletter/2026/anna@example.com-2.eml",
                                                    "Autumn newsletter/2026/anna@example.com.eml", "pickup.eml"}));
}

TEST_P(AtomicFileTest, ALinkedFolderBelowIsNotFollowed) {
  // The attack: a link planted at sent/<task title> pointing elsewhere.
  fs::create_directory_symlink(outside_, root_ + "/November");
  Result<std::string> written = Write("November", "anna@example.com.eml");
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(written.status().message(), root_ + "/November: a symbolic link; herald writes below " + root_ +
                                            " without following links or leaving it");
  EXPECT_TRUE(fs::is_empty(outside_));

  // Deeper, and to a folder inside the backup folder itself: no link at all.
  fs::create_directories(root_ + "/real/inner");
  fs::create_directory_symlink(root_ + "/real", root_ + "/real/inner/loop");
  Result<std::string> deeper = Write("real/inner/loop/x", "a.eml");
  ASSERT_FALSE(deeper.ok());
  EXPECT_THAT(deeper.status().message(), HasSubstr(root_ + "/real/inner/loop: a symbolic link"));
  EXPECT_FALSE(fs::exists(root_ + "/real/x"));
}

TEST_P(AtomicFileTest, ALinkAtTheFileNameIsNotFollowed) {
  const std::string target = outside_ + "/passwd";
  std::ofstream(target) << "root:x:0:0\n";
  fs::create_directories(root_ + "/November");
  fs::create_symlink(target, root_ + "/November/anna@example.com.eml");
  Result<std::string> written = Write("November", "anna@example.com.eml");
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(written.status().message(), HasSubstr(root_ + "/November/anna@example.com.eml: a symbolic link"));
  EXPECT_EQ(Slurp(target), "root:x:0:0\n");
  EXPECT_EQ(Tree(root_ + "/November"), std::vector<std::string>{"anna@example.com.eml"}) << "no temporary file left";

  // A dangling link to where a file would be created: not created there either.
  fs::create_symlink(outside_ + "/new", root_ + "/November/bert@example.com.eml");
  EXPECT_FALSE(Write("November", "bert@example.com.eml").ok());
  EXPECT_FALSE(fs::exists(outside_ + "/new"));

  // Replacing (the pickup folder's way) replaces the link itself, never its target.
  fs::create_symlink(target, root_ + "/pickup.eml");
  Result<std::string> replaced = Write("", "pickup.eml", IfExists::kReplace);
  ASSERT_TRUE(replaced.ok()) << replaced.status().ToString();
  EXPECT_FALSE(fs::is_symlink(root_ + "/pickup.eml"));
  EXPECT_EQ(Slurp(root_ + "/pickup.eml"), "Subject: x\r\n\r\nbody\r\n");
  EXPECT_EQ(Slurp(target), "root:x:0:0\n");
}

TEST_P(AtomicFileTest, DotDotAndOddNamesDoNotLeave) {
  fs::create_directories(root_ + "/a");
  for (std::string_view subfolders : {"..", "a/../..", "../outside", "a/./b"}) {
    Result<std::string> written = Write(subfolders, "x.eml");
    ASSERT_FALSE(written.ok()) << subfolders;
    EXPECT_EQ(written.status().code(), StatusCode::kPermissionDenied) << subfolders;
    EXPECT_THAT(written.status().message(), HasSubstr("a \".\" or \"..\" component")) << subfolders;
  }
  for (std::string name : {"..", ".", "", "a/b.eml"}) {
    Result<std::string> written = Write("a", name);
    ASSERT_FALSE(written.ok()) << name;
    EXPECT_THAT(written.status().message(), HasSubstr("not a file name")) << name;
  }
  EXPECT_TRUE(fs::is_empty(outside_));
  EXPECT_TRUE(fs::is_empty(root_ + "/a"));
}

TEST_P(AtomicFileTest, AFileInTheWayIsNotAFolder) {
  std::ofstream(root_ + "/November") << "x";
  Result<std::string> written = Write("November/week", "a.eml");
  ASSERT_FALSE(written.ok());
  EXPECT_THAT(written.status().message(), HasSubstr(root_ + "/November: not a folder"));
}

TEST_P(AtomicFileTest, TheConfiguredFolderMayItselfBeALink) {
  // The user's own setting (a share mounted elsewhere, reached through a link): followed.
  const std::string linked = dir_.Path("backup-link");
  fs::create_directory_symlink(outside_, linked);
  Result<std::string> written =
      WriteMessageFile(linked, "November", "a.eml", message_, IfExists::kAddNumber, GetParam());
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(*written, linked + "/November/a.eml");
  EXPECT_EQ(Slurp(outside_ + "/November/a.eml"), "Subject: x\r\n\r\nbody\r\n");
}

TEST(AtomicFileAutoTest, UsesWhatTheKernelHas) {
  TempDir dir;
  MessageData message;
  message.Append("x");
  fs::create_directories(dir.Path("sent"));
  fs::create_directory_symlink(dir.Path("elsewhere"), dir.Path("sent/link"));
  Result<std::string> written =
      WriteMessageFile(dir.Path("sent"), "a/b", "c.eml", message, IfExists::kAddNumber, Resolution::kAuto);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(Slurp(dir.Path("sent/a/b/c.eml")), "x");
  Result<std::string> refused =
      WriteMessageFile(dir.Path("sent"), "link", "c.eml", message, IfExists::kAddNumber, Resolution::kAuto);
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace herald::transport_internal
