// The live progress line of `herald send` on a terminal: its text for a given RunProgress, the
// times formatted in the local time zone (UTC here), without a terminal or a clock of its own.
#include "cli/console_observer.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace herald {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

// What an observer writes, read back as text.
class Captured {
 public:
  Captured() : file_(open_memstream(&buffer_, &size_)) {}
  ~Captured() {
    std::fclose(file_);
    std::free(buffer_);
  }
  std::FILE* file() { return file_; }
  // The live line as last drawn ("\r\x1b[K" then the line).
  std::string LastLine() {
    std::fflush(file_);
    std::string text(buffer_, size_);
    std::size_t at = text.rfind("\r\x1b[K");
    return at == std::string::npos ? text : text.substr(at + 4);
  }

 private:
  char* buffer_ = nullptr;
  std::size_t size_ = 0;
  std::FILE* file_;
};

class ConsoleObserverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("TZ", "UTC", 1);
    tzset();
  }

  // 3 of 10 sent in 3 s spent sending (1 message a second), 7 remaining.
  RunProgress Sending() const {
    RunProgress progress;
    progress.total = 10;
    progress.sent = 3;
    progress.remaining = 7;
    progress.sent_this_run = 3;
    progress.elapsed = seconds(3);
    progress.now = clock_.Now();
    return progress;
  }

  FakeClock clock_;  // 2026-01-01 00:00:00 UTC
  Captured out_;
  ConsoleObserver observer_{out_.file(), /*terminal=*/true, /*quiet=*/false};
};

TEST_F(ConsoleObserverTest, WhileSendingTheLineShowsTheRateAndTheTimeLeft) {
  observer_.OnProgress(Sending());
  EXPECT_EQ(out_.LastLine(), "sent 3  failed 0  deferred 0  remaining 7  1 msg/s  left 0:07");
}

TEST_F(ConsoleObserverTest, WhileWaitingTheLineSaysWhatForUntilWhenAndCountsTheWaitInTheTimeLeft) {
  RunProgress progress = Sending();
  progress.waiting_until = clock_.Now() + minutes(59) + seconds(59);
  progress.waiting_for = "the sending limit of 3/hour of account \"relay\"";
  observer_.OnProgress(progress);
  EXPECT_EQ(out_.LastLine(),
            "sent 3  failed 0  deferred 0  remaining 7  1 msg/s  left 1:00:06  waiting for the sending limit of "
            "3/hour of account \"relay\" until 2026-01-01 00:59:59+00:00");

  // Ten minutes into the wait: the rate holds (the engine leaves the wait out of the time spent
  // sending), and the time left shrinks with the wait.
  clock_.Advance(minutes(10));
  progress.now = clock_.Now();
  observer_.OnProgress(progress);
  EXPECT_EQ(out_.LastLine(),
            "sent 3  failed 0  deferred 0  remaining 7  1 msg/s  left 50:06  waiting for the sending limit of "
            "3/hour of account \"relay\" until 2026-01-01 00:59:59+00:00");
}

TEST_F(ConsoleObserverTest, BeforeAnythingWasSentTheTimeLeftIsAtLeastTheWait) {
  RunProgress progress;
  progress.total = 5;
  progress.remaining = 5;
  progress.now = clock_.Now();
  progress.waiting_until = clock_.Now() + minutes(10);
  progress.waiting_for = "the pending delay";
  observer_.OnProgress(progress);
  EXPECT_EQ(out_.LastLine(),
            "sent 0  failed 0  deferred 0  remaining 5  0 msg/s  left over 10:00  waiting for the pending delay "
            "until 2026-01-01 00:10:00+00:00");
}

TEST_F(ConsoleObserverTest, AWaitThatIsOverIsNoLongerShown) {
  RunProgress progress = Sending();
  progress.waiting_until = clock_.Now() - seconds(1);
  progress.waiting_for = "a block pause";
  observer_.OnProgress(progress);
  EXPECT_EQ(out_.LastLine(), "sent 3  failed 0  deferred 0  remaining 7  1 msg/s  left 0:07");
}

}  // namespace
}  // namespace herald
