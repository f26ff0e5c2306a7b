// The sending engine holds every rule a user sets — sending limits (also across a restart and
// with many parallel connections), minimum waits, reconnects and pauses, blocks, the task limit,
// the pending delay and cancel, retries, failover and unreachable destinations, routing,
// blacklists and turbo mode, connections left idle through long waits — checked
// through RunTask with fake transports on virtual time: every wait moves the fake clock
// (FakeSleeper), and each transaction is stamped with the time it began, so "never early" and
// "never more than N in any window" are checked against what actually left when.
#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/task_runner.h"
#include "engine/task_runner_fixture.h"

namespace herald {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr Duration kDay = hours(24);

// "email,name" and `n` recipients r0@<domain> .. r<n-1>@<domain>.
std::string Recipients(int n, std::string_view domain = "example.com") {
  std::string csv = "email,name\n";
  for (int i = 0; i < n; ++i) csv += fmt::format("r{}@{},R{}\n", i, domain, i);
  return csv;
}

// An SMTP account (the fake transport stands in for its server) with `settings` added.
// A relay account. Its helo_name keeps the warnings of a run independent of this machine's name
// (one without a dot is warned about).
std::string Account(std::string_view name, std::string_view settings = "") {
  return fmt::format(
      "[[account]]\nname = \"{}\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nhelo_name = \"herald.example.com\"\n{}\n",
      name, settings);
}

// Replies of the fake servers.
Outcome TryLater() {
  return FakeTransport::Reply(Disposition::kTemporary, Scope::kRecipient, 451, "4.3.0", "try later");
}
Outcome NoSuchUser() {
  return FakeTransport::Reply(Disposition::kPermanent, Scope::kRecipient, 550, "5.1.1", "no such user");
}
Outcome AccountDown(std::string text) {  // the whole account fails (Postfix's site failure)
  return FakeTransport::Reply(Disposition::kTemporary, Scope::kAccount, 421, "4.3.2", std::move(text));
}

// A direct account, as the fake stands in for it: one destination per recipient domain.
std::string DirectAccount(std::string_view settings) {
  return fmt::format("[[account]]\nname = \"mx\"\nkind = \"direct\"\nhelo_name = \"mail.example.com\"\n{}\n", settings);
}

// `per_domain` recipients of each domain, the list sorted by domain.
std::string SortedByDomain(const std::vector<std::string>& domains, int per_domain) {
  std::string csv = "email,name\n";
  for (const std::string& domain : domains) {
    for (int i = 0; i < per_domain; ++i) csv += fmt::format("r{}@{},R\n", i, domain);
  }
  return csv;
}

// The server refuses the account's password (AUTH): a fault of the account, not of a recipient.
Outcome AuthRefused() {
  Outcome outcome = FakeTransport::Reply(Disposition::kPermanent, Scope::kAccount, 535, "5.7.8",
                                         "authentication credentials invalid");
  outcome.stage = Stage::kAuth;
  return outcome;
}

// A mail exchanger refuses this sending host by policy (a blocklisted address) at `stage`.
Outcome HostBlocked(Scope scope, Stage stage) {
  Outcome outcome =
      FakeTransport::Reply(Disposition::kPermanent, scope, 550, "5.7.1", "Client host [192.0.2.1] blocked");
  outcome.stage = stage;
  outcome.policy_refusal = true;
  return outcome;
}

// How many of `warnings` contain `text`.
std::size_t CountContaining(const std::vector<std::string>& warnings, std::string_view text) {
  return static_cast<std::size_t>(std::count_if(warnings.begin(), warnings.end(), [&](const std::string& warning) {
    return warning.find(text) != std::string::npos;
  }));
}

// Direct delivery cannot reach one recipient domain: only its recipients get the outcome.
Outcome DestinationDown(Disposition disposition, std::string text) {
  Outcome outcome = FakeTransport::Reply(disposition, Scope::kDestination, 0, "", std::move(text));
  outcome.stage = Stage::kConnect;
  return outcome;
}

// A time as an offset from the fake clock's start, for failure messages: "t0+1:00:59.999".
std::string Offset(TimePoint t) {
  long long ms = ToUnixMillis(t) - ToUnixMillis(FakeClock().Now());
  return fmt::format("t0+{}:{:02}:{:02}.{:03}", ms / 3'600'000, ms / 60'000 % 60, ms / 1000 % 60, ms % 1000);
}

std::vector<std::string> Offsets(const std::vector<TimePoint>& times) {
  std::vector<std::string> offsets;
  for (TimePoint t : times) offsets.push_back(Offset(t));
  return offsets;
}

// When each recipient left through `fake`: the start of its transaction, in order.
std::vector<TimePoint> SendTimes(const FakeTransport& fake) {
  std::vector<TimePoint> times;
  for (const SentMessage& transaction : fake.transactions) {
    for (std::size_t i = 0; i < transaction.envelope.recipients.size(); ++i) times.push_back(transaction.at);
  }
  std::sort(times.begin(), times.end());
  return times;
}

std::vector<std::string> EnvelopeRecipients(const FakeTransport& fake) {
  std::vector<std::string> recipients;
  for (const SentMessage& transaction : fake.transactions) {
    for (const std::string& to : transaction.envelope.recipients) recipients.push_back(to);
  }
  return recipients;
}

// True when no span [s, s + window) holds more than `most` of `times` (a sending limit).
::testing::AssertionResult AtMostInAnyWindow(std::vector<TimePoint> times, std::size_t most, Duration window) {
  std::sort(times.begin(), times.end());
  for (std::size_t i = 0; i + most < times.size(); ++i) {
    if (times[i + most] - times[i] < window) {
      return ::testing::AssertionFailure() << most + 1 << " sends within " << window.count() << " ms: from "
                                           << Offset(times[i]) << " to " << Offset(times[i + most]);
    }
  }
  return ::testing::AssertionSuccess();
}

class TaskRunnerRulesTest : public TaskRunnerFixture {
 protected:
  // Withdraws the task as `herald cancel` does: another process opens the store file and
  // cancels everything not yet sent.
  void CancelFromOutside() {
    Result<std::unique_ptr<SqliteStore>> other = SqliteStore::Open(dir_.Path("herald.db"));
    ASSERT_TRUE(other.ok()) << other.status().message();
    static constexpr RecipientStatus kNotYetSent[] = {RecipientStatus::kUnsent, RecipientStatus::kDeferred};
    Result<std::size_t> cancelled = (*other)->ChangeStatus("t1", kNotYetSent, RecipientStatus::kCancelled);
    ASSERT_TRUE(cancelled.ok()) << cancelled.status().message();
    cancelled_ += *cancelled;
  }

  RecipientRecord Stored(std::string_view address) {
    RecipientRecord found;
    Status visited = store_->ForEachRecipient("t1", [&](const RecipientRecord& recipient) {
      if (recipient.address == address) found = recipient;
      return Status::Ok();
    });
    EXPECT_TRUE(visited.ok()) << visited.message();
    EXPECT_EQ(found.address, address) << "not in the store";
    return found;
  }

  // The fake of the direct account "mx", to which example.org's mail exchangers do not answer.
  FakeTransport& DirectWithExampleOrgDown() {
    FakeTransport& mx = transports_.For("mx");
    mx.destination_is_domain = true;
    mx.connect_failure_for["example.org"] =
        DestinationDown(Disposition::kTemporary, "no mail exchanger of example.org answers");
    return mx;
  }

  const TimePoint t0_ = clock_.Now();
  std::size_t cancelled_ = 0;
};

// --- 1. sending limits

TEST_F(TaskRunnerRulesTest, HourlyLimitSendsThreeAnHourAndWaitsForTheWindowNeverEarly) {
  WriteRecipients(Recipients(10));
  WriteAccounts(Account("relay", "limits = [\"3/hour\"]"));
  LoadConfig();
  RunReport report = Run();
  EXPECT_EQ(report.sent, 10u);
  EXPECT_TRUE(report.limit_stop.empty());
  std::vector<TimePoint> times = SendTimes(relay());
  ASSERT_EQ(times.size(), 10u);
  EXPECT_TRUE(AtMostInAnyWindow(times, 3, hours(1)));

  // Three at once, then each three when the wait the console was told of ends: exactly then,
  // an hour after the last three (at most the store's one-minute bucket later), not earlier.
  std::vector<RecordingObserver::Wait> waits = observer_.WaitsFor("sending limit of 3/hour");
  ASSERT_EQ(waits.size(), 3u);
  TimePoint group_start = t0_;
  for (std::size_t group = 0; group < 4; ++group) {
    for (std::size_t i = group * 3; i < std::min<std::size_t>(group * 3 + 3, 10); ++i) {
      EXPECT_EQ(Offset(times[i]), Offset(group_start)) << "send " << i;
    }
    if (group == 3) break;
    EXPECT_THAT(waits[group].why, HasSubstr("account \"relay\""));
    EXPECT_GE(waits[group].until, group_start + hours(1)) << Offset(waits[group].until);
    EXPECT_LE(waits[group].until, group_start + hours(1) + minutes(1)) << Offset(waits[group].until);
    group_start = waits[group].until;
  }
  EXPECT_EQ(Offset(clock_.Now()), Offset(times.back())) << "the run ends with the last send, without a further wait";
}

TEST_F(TaskRunnerRulesTest, ProgressTellsTheWaitAndLeavesItOutOfTheTimeSpentSending) {
  WriteRecipients(Recipients(6));
  WriteAccounts(Account("relay", "limits = [\"3/hour\"]"));
  LoadConfig();
  relay().send_time = seconds(10);  // one after the other: three messages take 30 s
  RunReport report = Run();
  EXPECT_EQ(report.sent, 6u);
  std::vector<RecordingObserver::Wait> waits = observer_.WaitsFor("sending limit of 3/hour");
  ASSERT_EQ(waits.size(), 1u);
  auto told = std::find_if(observer_.progress.begin(), observer_.progress.end(),
                           [](const RunProgress& progress) { return progress.waiting_until.has_value(); });
  ASSERT_NE(told, observer_.progress.end()) << "the progress line is told of the wait";
  EXPECT_EQ(*told->waiting_until, waits[0].until);
  EXPECT_EQ(told->waiting_for, "the sending limit of 3/hour of account \"relay\"");
  EXPECT_EQ(Offset(told->now), "t0+0:00:30.000");
  EXPECT_EQ(told->elapsed, seconds(30));
  EXPECT_EQ(told->sent_this_run, 3u);
  const RunProgress& last = observer_.progress.back();
  EXPECT_FALSE(last.waiting_until.has_value());
  EXPECT_EQ(last.elapsed, seconds(60)) << "six messages of 10 s; the hour waited is not time spent sending";
  EXPECT_GT(last.now - t0_, hours(1));
}

TEST_F(TaskRunnerRulesTest, OnLimitStopEndsTheRunAndLeavesTheRestUnsent) {
  WriteRecipients(Recipients(10));
  WriteAccounts(Account("relay", "limits = [\"3/hour\"]"));
  LoadConfig("[sending]\non_limit = \"stop\"\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_THAT(report.limit_stop, HasSubstr("\"relay\""));
  EXPECT_THAT(report.limit_stop, HasSubstr("3/hour"));
  EXPECT_THAT(report.limit_stop, HasSubstr(FormatLocalTime(t0_ + hours(1) + seconds(59))))
      << "when the next message fits, in local time like every time herald prints";
  EXPECT_EQ(report.counts[RecipientStatus::kUnsent], 7u);
  EXPECT_EQ(report.counts[RecipientStatus::kInFlight], 0u);
  EXPECT_EQ(relay().transactions.size(), 3u);
  EXPECT_EQ(Offset(clock_.Now()), "t0+0:00:00.000") << "the run did not wait";
}

TEST_F(TaskRunnerRulesTest, LimitWindowSpansARestart) {
  WriteRecipients(Recipients(10));
  WriteAccounts(Account("relay", "limits = [\"3/hour\"]"));
  LoadConfig("[sending]\non_limit = \"stop\"\n");
  EXPECT_EQ(Run().sent, 3u);

  // herald runs again half an hour later, a new process on the same store file.
  clock_.Advance(minutes(30));
  OpenStore();
  LoadConfig();
  std::size_t sent_before = relay().transactions.size();
  RunReport second = Run();
  EXPECT_EQ(second.sent, 7u);
  std::vector<RecordingObserver::Wait> waits = observer_.WaitsFor("sending limit of 3/hour");
  ASSERT_FALSE(waits.empty());
  EXPECT_GE(waits[0].until, t0_ + hours(1)) << "the window of the first run still holds";
  for (std::size_t i = sent_before; i < relay().transactions.size(); ++i) {
    EXPECT_GE(relay().transactions[i].at, t0_ + hours(1)) << "sent early: " << Offset(relay().transactions[i].at);
  }
  EXPECT_TRUE(AtMostInAnyWindow(SendTimes(relay()), 3, hours(1)));
}

TEST_F(TaskRunnerRulesTest, LimitIsSharedByTasksThroughTheSameAccount) {
  WriteRecipients(Recipients(5));
  WriteAccounts(Account("relay", "limits = [\"3/hour\"]"));
  LoadConfig("[sending]\non_limit = \"stop\"\n");
  EXPECT_EQ(Run().sent, 3u);
  task_.id = "t2";  // another task, same account
  RunReport other = Run();
  EXPECT_EQ(other.sent, 0u);
  EXPECT_THAT(other.limit_stop, HasSubstr("3/hour"));
  EXPECT_EQ(relay().transactions.size(), 3u);
}

TEST_F(TaskRunnerRulesTest, SeveralLimitsHoldTogether) {
  WriteRecipients(Recipients(12));
  WriteAccounts(Account("relay", "limits = [\"2/minute\", \"5/day\"]"));
  LoadConfig();
  RunReport report = Run();
  EXPECT_EQ(report.sent, 12u);
  std::vector<TimePoint> times = SendTimes(relay());
  EXPECT_TRUE(AtMostInAnyWindow(times, 2, minutes(1)));
  EXPECT_TRUE(AtMostInAnyWindow(times, 5, kDay));
  EXPECT_FALSE(observer_.WaitsFor("2/minute").empty());
  EXPECT_FALSE(observer_.WaitsFor("5/day").empty());
  // 5 + 5 + 2 over three days, each day's five two a minute: no needless waiting either.
  EXPECT_LT(times.back(), t0_ + 2 * kDay + hours(3)) << Offset(times.back());
}

TEST_F(TaskRunnerRulesTest, WeeklyAndMonthlyLimits) {
  WriteRecipients(Recipients(7));
  WriteAccounts(Account("relay", "limits = [\"2/week\", \"3/month\"]"));
  LoadConfig();
  RunReport report = Run();
  EXPECT_EQ(report.sent, 7u);
  std::vector<TimePoint> times = SendTimes(relay());
  EXPECT_TRUE(AtMostInAnyWindow(times, 2, 7 * kDay));
  EXPECT_TRUE(AtMostInAnyWindow(times, 3, 31 * kDay));
  EXPECT_FALSE(observer_.WaitsFor("2/week").empty());
  EXPECT_FALSE(observer_.WaitsFor("3/month").empty());
  // Each wait ends with a send at its end: the engine waits exactly as long as it said.
  for (const RecordingObserver::Wait& wait : observer_.waits) {
    EXPECT_NE(std::find(times.begin(), times.end(), wait.until), times.end()) << wait.why << " until "
                                                                             << Offset(wait.until);
  }
  EXPECT_LT(times.back(), t0_ + 70 * kDay) << Offset(times.back());
}

// --- 2. many parallel connections never burst above a limit

TEST_F(TaskRunnerRulesTest, ParallelSendsNeverBurstAboveTheLimit) {
  WriteRecipients(Recipients(50));
  WriteAccounts(Account("relay", "max_connections = 8\nlimits = [\"10/hour\"]"));
  LoadConfig("[sending]\nconcurrency = 16\n");
  relay().send_time = seconds(1);
  RunReport report = Run();
  EXPECT_EQ(report.sent, 50u);
  std::vector<TimePoint> times = SendTimes(relay());
  ASSERT_EQ(times.size(), 50u);
  EXPECT_TRUE(AtMostInAnyWindow(times, 10, hours(1)));
  EXPECT_EQ(relay().max_open_connections, 8) << "the sends did go in parallel";
  EXPECT_GT(relay().max_sends_in_progress, 1);
  EXPECT_LT(times.back(), t0_ + hours(4) + minutes(5)) << "five windows of ten, no more";
}

// --- 3. waits, pauses, blocks, the task limit, the pending delay, cancel

TEST_F(TaskRunnerRulesTest, MinimumWaitSpacesTheMessagesAsTheyLeave) {
  WriteRecipients(Recipients(5));
  WriteAccounts(Account("relay", "minimum_wait = \"30s\""));
  LoadConfig();
  relay().connect_time = seconds(10);  // the first message leaves only once connected
  RunReport report = Run();
  EXPECT_EQ(report.sent, 5u);
  std::vector<TimePoint> times = SendTimes(relay());
  ASSERT_EQ(times.size(), 5u);
  EXPECT_THAT(Offsets(times), ElementsAre("t0+0:00:10.000", "t0+0:00:40.000", "t0+0:01:10.000", "t0+0:01:40.000",
                                           "t0+0:02:10.000"));
}

TEST_F(TaskRunnerRulesTest, MinimumWaitSpacesParallelSendsInsteadOfBurstingThem) {
  WriteRecipients(Recipients(12));
  WriteAccounts(Account("relay", "max_connections = 4\nminimum_wait = \"10s\""));
  LoadConfig("[sending]\nconcurrency = 8\n");
  relay().connect_time = seconds(2);
  relay().send_time = seconds(25);  // several transactions overlap; their starts are spaced
  RunReport report = Run();
  EXPECT_EQ(report.sent, 12u);
  std::vector<TimePoint> times = SendTimes(relay());
  ASSERT_EQ(times.size(), 12u);
  for (std::size_t i = 1; i < times.size(); ++i) {
    EXPECT_GE(times[i] - times[i - 1], seconds(10)) << "send " << i << " at " << Offset(times[i]);
  }
  EXPECT_GT(relay().max_sends_in_progress, 1);
  EXPECT_LE(times.back() - times.front(), seconds(11 * 10 + 25)) << "spaced, not slowed further";
}

TEST_F(TaskRunnerRulesTest, MinimumWaitOfMinutesDoesNotHoldAConnectionIdle) {
  WriteAccounts(Account("relay", "minimum_wait = \"10m\""));
  LoadConfig();
  relay().idle_timeout = minutes(5);  // the server drops a client idle for five minutes
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_EQ(report.deferred, 0u);
  EXPECT_EQ(relay().dropped_idle, 0);
  EXPECT_THAT(Offsets(SendTimes(relay())), ElementsAre("t0+0:00:00.000", "t0+0:10:00.000", "t0+0:20:00.000"));
}

TEST_F(TaskRunnerRulesTest, ReconnectEveryAndPauseBetweenChunks) {
  WriteRecipients(Recipients(6));
  WriteAccounts(Account("relay", "reconnect_every = 2\npause_between_chunks = \"5m\""));
  LoadConfig();
  RunReport report = Run();
  EXPECT_EQ(report.sent, 6u);
  EXPECT_EQ(relay().connects, 3);
  EXPECT_THAT(Offsets(SendTimes(relay())), ElementsAre("t0+0:00:00.000", "t0+0:00:00.000", "t0+0:05:00.000",
                                                       "t0+0:05:00.000", "t0+0:10:00.000", "t0+0:10:00.000"));
}

TEST_F(TaskRunnerRulesTest, BlocksPauseAfterTheLastMessageOfEachBlockLeft) {
  WriteRecipients(Recipients(8));
  WriteAccounts(Account("relay", "minimum_wait = \"1m\""));
  LoadConfig("[sending]\nblock_size = 3\nblock_pause = \"10m\"\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 8u);
  // Within a block the minimum wait spaces the messages; the pause runs from the block's last.
  EXPECT_THAT(Offsets(SendTimes(relay())),
              ElementsAre("t0+0:00:00.000", "t0+0:01:00.000", "t0+0:02:00.000", "t0+0:12:00.000", "t0+0:13:00.000",
                          "t0+0:14:00.000", "t0+0:24:00.000", "t0+0:25:00.000"));
  std::vector<RecordingObserver::Wait> pauses = observer_.WaitsFor("pause after a block of 3");
  ASSERT_EQ(pauses.size(), 2u);
  EXPECT_EQ(Offset(pauses[0].until), "t0+0:12:00.000");
  EXPECT_EQ(Offset(pauses[1].until), "t0+0:24:00.000");
}

TEST_F(TaskRunnerRulesTest, NoPauseAfterTheLastBlock) {
  WriteRecipients(Recipients(6));
  WriteAccounts(Account("relay"));
  LoadConfig("[sending]\nblock_size = 3\nblock_pause = \"10m\"\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 6u);
  EXPECT_THAT(Offsets(SendTimes(relay())), ElementsAre("t0+0:00:00.000", "t0+0:00:00.000", "t0+0:00:00.000",
                                                       "t0+0:10:00.000", "t0+0:10:00.000", "t0+0:10:00.000"));
  EXPECT_EQ(observer_.WaitsFor("pause after a block of 3").size(), 1u) << "one pause between the two blocks";
  EXPECT_EQ(Offset(clock_.Now()), "t0+0:10:00.000") << "the run ends with its last message";
}

TEST_F(TaskRunnerRulesTest, ConnectionLeftIdleThroughALongPauseIsNotUsedAgain) {
  WriteRecipients(Recipients(4));
  WriteAccounts(Account("relay"));
  LoadConfig("[sending]\nblock_size = 2\nblock_pause = \"10m\"\n");
  relay().idle_timeout = minutes(5);  // the server drops a client idle for five minutes
  RunReport report = Run();
  EXPECT_EQ(report.sent, 4u);
  EXPECT_EQ(report.deferred, 0u) << "no message fails because the server closed an idle connection";
  EXPECT_EQ(relay().dropped_idle, 0);
  EXPECT_EQ(relay().connects, 2);
  EXPECT_EQ(relay().open_connections, 0);
}

TEST_F(TaskRunnerRulesTest, BlocksHoldWithParallelSends) {
  WriteRecipients(Recipients(7));
  WriteAccounts(Account("relay", "max_connections = 1"));
  LoadConfig("[sending]\nconcurrency = 4\nblock_size = 3\nblock_pause = \"10m\"\n");
  relay().send_time = seconds(30);  // one connection: the block's messages leave one after another
  RunReport report = Run();
  EXPECT_EQ(report.sent, 7u);
  std::vector<TimePoint> times = SendTimes(relay());
  ASSERT_EQ(times.size(), 7u);
  // Block 1 leaves at 0, 30 s, 60 s and is done at 90 s; the pause runs from there.
  EXPECT_THAT(Offsets(times), ElementsAre("t0+0:00:00.000", "t0+0:00:30.000", "t0+0:01:00.000", "t0+0:11:30.000",
                                           "t0+0:12:00.000", "t0+0:12:30.000", "t0+0:23:00.000"));
}

TEST_F(TaskRunnerRulesTest, TaskLimitLeavesTheRestForTheNextRun) {
  WriteRecipients(Recipients(10));
  WriteAccounts(Account("relay", "max_connections = 4"));
  LoadConfig("[sending]\nlimit = 4\nconcurrency = 8\n");
  RunReport first = Run();
  EXPECT_EQ(first.sent, 4u) << "not one more, with eight sends at once";
  EXPECT_TRUE(first.task_limit_reached);
  EXPECT_EQ(first.counts[RecipientStatus::kUnsent], 6u);
  EXPECT_EQ(relay().transactions.size(), 4u);

  RunReport second = Run();
  EXPECT_EQ(second.sent, 4u);
  EXPECT_TRUE(second.task_limit_reached);
  RunReport third = Run();
  EXPECT_EQ(third.sent, 2u);
  EXPECT_EQ(third.counts[RecipientStatus::kSent], 10u);
  EXPECT_EQ(EnvelopeRecipients(relay()).size(), 10u);
}

TEST_F(TaskRunnerRulesTest, NothingLeavesBeforeThePendingDelay) {
  WriteAccounts(Account("relay"));
  LoadConfig("[sending]\npending_delay = \"10m\"\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  std::vector<RecordingObserver::Wait> waits = observer_.WaitsFor("pending delay");
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(Offset(waits[0].until), "t0+0:10:00.000");
  EXPECT_THAT(waits[0].why, HasSubstr("herald cancel t1"));
  EXPECT_THAT(Offsets(SendTimes(relay())), ElementsAre("t0+0:10:00.000", "t0+0:10:00.000", "t0+0:10:00.000"));

  // The delay counts from when the task was first stored: a later run does not wait again.
  WriteRecipients("email,name\nanna@example.com,Anna\nbob@example.com,Bob\ncarla@example.org,Carla\n"
                  "dora@example.org,Dora\n");
  EXPECT_EQ(Run().sent, 1u);
  EXPECT_EQ(observer_.WaitsFor("pending delay").size(), 1u);
}

TEST_F(TaskRunnerRulesTest, CancelDuringThePendingDelaySendsNothing) {
  WriteAccounts(Account("relay"));
  LoadConfig("[sending]\npending_delay = \"10m\"\n");
  observer_.on_waiting = [&](std::string_view, TimePoint) { CancelFromOutside(); };
  RunReport report = Run();
  EXPECT_EQ(cancelled_, 3u);
  EXPECT_EQ(report.sent, 0u);
  EXPECT_EQ(report.counts[RecipientStatus::kCancelled], 3u);
  EXPECT_TRUE(relay().transactions.empty());
  EXPECT_EQ(Offset(clock_.Now()), "t0+0:00:00.000") << "the run ends without waiting out the delay";
}

TEST_F(TaskRunnerRulesTest, CancelDuringALimitWaitSendsNothingMore) {
  WriteRecipients(Recipients(10));
  WriteAccounts(Account("relay", "limits = [\"3/day\"]"));
  LoadConfig("[sending]\nconcurrency = 4\n");
  observer_.on_waiting = [&](std::string_view why, TimePoint) {
    if (why.find("sending limit") != std::string_view::npos && cancelled_ == 0) CancelFromOutside();
  };
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_EQ(relay().transactions.size(), 3u);
  EXPECT_EQ(report.counts[RecipientStatus::kCancelled], 7u);
  EXPECT_EQ(report.counts[RecipientStatus::kInFlight], 0u);
  EXPECT_EQ(Offset(clock_.Now()), "t0+0:00:00.000") << "the run ends without waiting a day for nothing";
  EXPECT_EQ(relay().connects, 1);
}

// --- 4. retries

TEST_F(TaskRunnerRulesTest, TemporaryFailuresAreRetriedOnAGrowingScheduleThenFail) {
  WriteAccounts(Account("relay"));
  LoadConfig("[sending]\nretries = 3\nretry_delay = \"10m\"\nretry_backoff = 2.0\n");
  relay().outcome_for["bob@example.com"] = TryLater();
  relay().outcome_for["carla@example.org"] = NoSuchUser();
  RunReport first = Run();
  EXPECT_EQ(first.sent, 1u);
  EXPECT_EQ(first.failed, 1u);
  EXPECT_EQ(first.deferred, 1u);
  ASSERT_TRUE(first.next_attempt_at.has_value());
  EXPECT_EQ(Offset(*first.next_attempt_at), "t0+0:10:00.000");

  // Retry n waits 10 min * 2^(n-1): due at +10, +30, +70 minutes; not a moment before.
  const Duration kDelays[] = {minutes(10), minutes(20), minutes(40)};
  TimePoint due = t0_;
  for (int retry = 1; retry <= 3; ++retry) {
    due += kDelays[retry - 1];
    clock_.Set(due - milliseconds(1));
    std::size_t before = relay().transactions.size();
    EXPECT_EQ(Run().deferred, 0u) << "retry " << retry << " is not due yet";
    EXPECT_EQ(relay().transactions.size(), before);
    clock_.Set(due);
    RunReport report = Run();
    EXPECT_EQ(relay().transactions.size(), before + 1) << "retry " << retry;
    if (retry < 3) {
      EXPECT_EQ(report.deferred, 1u);
      ASSERT_TRUE(report.next_attempt_at.has_value());
      EXPECT_EQ(Offset(*report.next_attempt_at), Offset(due + kDelays[retry])) << "retry " << retry;
    } else {
      EXPECT_EQ(report.failed, 1u) << "retries used up";
      EXPECT_FALSE(report.next_attempt_at.has_value());
    }
  }
  EXPECT_EQ(Stored("bob@example.com").status, RecipientStatus::kFailed);
  EXPECT_EQ(Stored("bob@example.com").attempts, 4);
  EXPECT_THAT(Stored("bob@example.com").last_error.text, HasSubstr("gave up after 4 attempts"));
  EXPECT_EQ(Stored("carla@example.org").attempts, 1) << "a permanent failure is never retried";

  clock_.Advance(kDay * 30);
  EXPECT_EQ(Run().sent + Run().failed, 0u);
  EXPECT_EQ(relay().transactions.size(), 6u);
}

TEST_F(TaskRunnerRulesTest, DefaultRetryDelayIsAnHour) {
  WriteAccounts(Account("relay"));
  LoadConfig();
  relay().outcome_for["bob@example.com"] = TryLater();
  RunReport report = Run();
  ASSERT_TRUE(report.next_attempt_at.has_value());
  EXPECT_EQ(Offset(*report.next_attempt_at), "t0+1:00:00.000");
}

TEST_F(TaskRunnerRulesTest, RetryThatFallsDueDuringTheRunIsSentInIt) {
  WriteAccounts(Account("relay", "minimum_wait = \"5m\""));
  LoadConfig("[sending]\nretry_delay = \"2m\"\n");
  relay().next_outcomes_for["anna@example.com"] = {TryLater()};
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_EQ(report.deferred, 1u);
  EXPECT_EQ(report.counts[RecipientStatus::kSent], 3u);
  EXPECT_THAT(EnvelopeRecipients(relay()),
              ElementsAre("anna@example.com", "bob@example.com", "carla@example.org", "anna@example.com"));
  EXPECT_EQ(Offset(relay().transactions.back().at), "t0+0:15:00.000");
}

// --- 5. failover

TEST_F(TaskRunnerRulesTest, AccountFailureGoesToTheSecondaryAndItsSecondary) {
  WriteAccounts(Account("a", "secondary = \"b\"") + Account("b", "secondary = \"c\"") + Account("c"));
  LoadConfig();
  transports_.For("a").connect_failure = AccountDown("a is down");
  transports_.For("b").connect_failure = AccountDown("b refuses connections");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_THAT(EnvelopeRecipients(transports_.For("c")),
              ElementsAre("anna@example.com", "bob@example.com", "carla@example.org"));
  EXPECT_EQ(transports_.For("a").connects, 1) << "a failed account is not tried again in the run";
  EXPECT_EQ(transports_.For("b").connects, 1);
  EXPECT_EQ(observer_.accounts.at("bob@example.com"), "c");
  EXPECT_THAT(observer_.warnings, ::testing::Contains(HasSubstr("a is down")));
  EXPECT_THAT(observer_.warnings, ::testing::Contains(HasSubstr("b refuses connections")));
}

TEST_F(TaskRunnerRulesTest, NoSecondaryLeftDefersWithTheFailureUntilTheNextRun) {
  WriteAccounts(Account("a", "secondary = \"b\"") + Account("b"));
  LoadConfig();
  transports_.For("a").connect_failure = AccountDown("a is down");
  transports_.For("b").connect_failure = AccountDown("b is down too");
  RunReport report = Run();
  EXPECT_EQ(report.deferred, 3u);
  EXPECT_EQ(report.counts[RecipientStatus::kDeferred], 3u);
  const AttemptResult& anna = observer_.results.at("anna@example.com");
  EXPECT_EQ(anna.status, RecipientStatus::kDeferred);
  EXPECT_EQ(anna.error.reply_code, 421);
  EXPECT_THAT(anna.error.text, HasSubstr("a is down")) << "they wait for their own account";
  EXPECT_EQ(observer_.accounts.at("anna@example.com"), "a");
  ASSERT_TRUE(anna.next_attempt_at.has_value());
  EXPECT_EQ(Offset(*anna.next_attempt_at), "t0+0:00:00.000") << "due again for the next run, not after retry_delay";
  EXPECT_EQ(Stored("anna@example.com").attempts, 0);
}

// --- account faults (AUTH refused, TLS refused, cannot connect, 421 at the greeting, the
// sender refused): the account's, never the recipients'

TEST_F(TaskRunnerRulesTest, ARefusedPasswordDefersEveryRecipientWithoutAnAttemptForTheNextRun) {
  WriteRecipients(Recipients(5));
  WriteAccounts(Account("relay"));
  LoadConfig("[sending]\nretries = 0\nconcurrency = 2\n");
  relay().connect_failure = AuthRefused();
  RunReport report = Run();
  EXPECT_EQ(report.failed, 0u) << "retries = 0 does not turn an account fault into failed recipients";
  EXPECT_EQ(report.deferred, 5u);
  EXPECT_EQ(report.counts[RecipientStatus::kDeferred], 5u);
  EXPECT_EQ(relay().connects, 1) << "not tried again in this run";
  EXPECT_EQ(Offset(clock_.Now()), "t0+0:00:00.000") << "the run ends at once";
  for (int i = 0; i < 5; ++i) {
    const RecipientRecord stored = Stored(fmt::format("r{}@example.com", i));
    EXPECT_EQ(stored.status, RecipientStatus::kDeferred) << i;
    EXPECT_EQ(stored.attempts, 0) << i;
    EXPECT_EQ(stored.next_attempt_at, std::optional<TimePoint>(t0_)) << "due for the next run: " << i;
    EXPECT_EQ(stored.last_error.reply_code, 535) << i;
  }
  // One line for the account, none per recipient; the summary says who waits for what.
  EXPECT_EQ(CountContaining(observer_.warnings, "account \"relay\""), 1u);
  EXPECT_THAT(observer_.warnings, Contains(HasSubstr("AUTH: 535 5.7.8 authentication credentials invalid")));
  EXPECT_EQ(observer_.waiting_for_account.size(), 5u);
  ASSERT_EQ(report.waiting_for_accounts.size(), 1u);
  EXPECT_EQ(report.waiting_for_accounts[0].account, "relay");
  EXPECT_EQ(report.waiting_for_accounts[0].recipients, 5u);
  EXPECT_EQ(report.waiting_for_accounts[0].cause, "AUTH: 535 5.7.8 authentication credentials invalid");

  // The password is fixed: the next run sends everyone, at once.
  relay().connect_failure.reset();
  RunReport next = Run();
  EXPECT_EQ(next.sent, 5u);
  EXPECT_TRUE(next.waiting_for_accounts.empty());
  EXPECT_EQ(Stored("r4@example.com").attempts, 1);
}

TEST_F(TaskRunnerRulesTest, ASenderRefusedAtMailFromWaitsForTheAccountWithoutAnAttemptCounted) {
  WriteAccounts(Account("relay"));
  LoadConfig("[sending]\nretries = 0\n");
  Outcome sender_refused =
      FakeTransport::Reply(Disposition::kPermanent, Scope::kAccount, 553, "5.7.1", "sender not owned by user");
  sender_refused.stage = Stage::kMailFrom;
  relay().outcome_for["anna@example.com"] = sender_refused;
  RunReport report = Run();
  EXPECT_EQ(report.failed, 0u);
  EXPECT_EQ(report.deferred, 3u) << "anna in flight, the others before they were";
  EXPECT_EQ(relay().transactions.size(), 1u);
  for (const char* address : {"anna@example.com", "bob@example.com", "carla@example.org"}) {
    EXPECT_EQ(Stored(address).status, RecipientStatus::kDeferred) << address;
    EXPECT_EQ(Stored(address).attempts, 0) << address << ": the attempt is not counted";
  }
  ASSERT_EQ(report.waiting_for_accounts.size(), 1u);
  EXPECT_EQ(report.waiting_for_accounts[0].recipients, 3u);
}

TEST_F(TaskRunnerRulesTest, WithAnUnreachableSecondaryEveryRecipientWaitsForTheAccount) {
  WriteRecipients(Recipients(6));
  WriteAccounts(Account("relay", "secondary = \"backup\"") + Account("backup"));
  LoadConfig("[sending]\naccounts = [\"relay\"]\nconcurrency = 3\n");
  relay().connect_failure = AuthRefused();
  transports_.For("backup").connect_failure = AccountDown("connection refused");
  RunReport report = Run();
  EXPECT_EQ(report.failed, 0u);
  EXPECT_EQ(report.deferred, 6u);
  EXPECT_EQ(transports_.For("backup").connects, 1);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(Stored(fmt::format("r{}@example.com", i)).attempts, 0) << i;
  ASSERT_EQ(report.waiting_for_accounts.size(), 1u);
  EXPECT_EQ(report.waiting_for_accounts[0].account, "relay") << "the account they were routed to";
  EXPECT_EQ(report.waiting_for_accounts[0].recipients, 6u);
  EXPECT_EQ(CountContaining(observer_.warnings, "account \"relay\""), 1u);
  EXPECT_EQ(CountContaining(observer_.warnings, "account \"backup\""), 1u);
}

TEST_F(TaskRunnerRulesTest, AnAccountThatCannotBeReachedIsTriedOnceNotOncePerConcurrentSend) {
  WriteRecipients(Recipients(8));
  WriteAccounts(Account("relay", "max_connections = 8"));
  LoadConfig("[sending]\nconcurrency = 8\n");
  relay().connect_time = seconds(2);  // the sends all want a connection while the first connect is under way
  relay().connect_failure = AccountDown("connection refused");
  RunReport report = Run();
  EXPECT_EQ(relay().connects, 1);
  EXPECT_EQ(report.deferred, 8u);
  EXPECT_EQ(report.counts[RecipientStatus::kDeferred], 8u);
}

TEST_F(TaskRunnerRulesTest, ConcurrentSendsOpenTheirOwnConnectionsOnceOneWorked) {
  WriteRecipients(Recipients(8));
  WriteAccounts(Account("relay", "max_connections = 4"));
  LoadConfig("[sending]\nconcurrency = 8\n");
  relay().connect_time = seconds(2);
  relay().send_time = seconds(1);
  RunReport report = Run();
  EXPECT_EQ(report.sent, 8u);
  EXPECT_EQ(relay().max_open_connections, 4);
}

TEST_F(TaskRunnerRulesTest, AccountFailureMidRunMovesTheRestToTheSecondary) {
  WriteAccounts(Account("a", "secondary = \"b\"") + Account("b"));
  LoadConfig();
  transports_.For("a").outcome_for["bob@example.com"] =
      FakeTransport::Reply(Disposition::kTemporary, Scope::kAccount, 421, "4.7.0", "too many messages, closing");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_THAT(EnvelopeRecipients(transports_.For("a")), ElementsAre("anna@example.com", "bob@example.com"));
  EXPECT_THAT(EnvelopeRecipients(transports_.For("b")), ElementsAre("bob@example.com", "carla@example.org"));
  EXPECT_EQ(observer_.accounts.at("anna@example.com"), "a");
  EXPECT_EQ(observer_.accounts.at("bob@example.com"), "b");
  EXPECT_EQ(observer_.accounts.at("carla@example.org"), "b");
  EXPECT_EQ(Stored("bob@example.com").attempts, 2);
  EXPECT_EQ(Stored("bob@example.com").status, RecipientStatus::kSent);
  EXPECT_EQ(Stored("carla@example.org").attempts, 1);
}

TEST_F(TaskRunnerRulesTest, ExcludedDomainGoesToTheSecondary) {
  WriteAccounts(Account("a", "secondary = \"b\"\nexcluded_domains = [\"example.org\"]") + Account("b"));
  LoadConfig("[sending]\naccounts = [\"a\"]\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_THAT(EnvelopeRecipients(transports_.For("a")), ElementsAre("anna@example.com", "bob@example.com"));
  EXPECT_THAT(EnvelopeRecipients(transports_.For("b")), ElementsAre("carla@example.org"));
}

TEST_F(TaskRunnerRulesTest, ExcludedDomainWithoutSecondaryFailsWithTheReason) {
  WriteAccounts(Account("relay", "excluded_domains = [\"*@example.org\"]"));
  LoadConfig();
  RunReport report = Run();
  EXPECT_EQ(report.sent, 2u);
  EXPECT_EQ(report.failed, 1u);
  const AttemptResult& carla = observer_.results.at("carla@example.org");
  EXPECT_EQ(carla.status, RecipientStatus::kFailed);
  EXPECT_THAT(carla.error.text, HasSubstr("example.org is excluded from account \"relay\""));
  EXPECT_THAT(EnvelopeRecipients(relay()), ElementsAre("anna@example.com", "bob@example.com"));
}

TEST_F(TaskRunnerRulesTest, FailoverSkipsASecondaryThatExcludesTheDomain) {
  WriteAccounts(Account("a", "secondary = \"b\"") +
                Account("b", "secondary = \"c\"\nexcluded_domains = [\"example.org\"]") + Account("c"));
  LoadConfig("[sending]\naccounts = [\"a\"]\n");
  transports_.For("a").connect_failure = AccountDown("a is down");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_THAT(EnvelopeRecipients(transports_.For("b")), ElementsAre("anna@example.com", "bob@example.com"));
  EXPECT_THAT(EnvelopeRecipients(transports_.For("c")), ElementsAre("carla@example.org"));
}

TEST_F(TaskRunnerRulesTest, UnreachableDestinationFailsOnlyItsRecipients) {
  WriteRecipients("email,name\nanna@example.com,Anna\ncarla@example.org,Carla\nbob@example.com,Bob\n"
                  "dora@example.org,Dora\nemil@example.net,Emil\n");
  WriteAccounts(Account("mx"));
  LoadConfig();
  FakeTransport& mx = transports_.For("mx");
  mx.destination_is_domain = true;  // as direct delivery: one destination per recipient domain
  mx.connect_failure_for["example.org"] =
      DestinationDown(Disposition::kTemporary, "no mail exchanger of example.org answers");
  mx.connect_failure_for["example.net"] = DestinationDown(Disposition::kPermanent, "example.net has a null MX");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 2u);
  EXPECT_EQ(report.deferred, 2u);
  EXPECT_EQ(report.failed, 1u);
  EXPECT_THAT(EnvelopeRecipients(mx), ElementsAre("anna@example.com", "bob@example.com"))
      << "the account and its other destinations go on";
  const AttemptResult& dora = observer_.results.at("dora@example.org");
  EXPECT_EQ(dora.status, RecipientStatus::kDeferred);
  EXPECT_THAT(dora.error.text, HasSubstr("no mail exchanger of example.org answers"));
  EXPECT_EQ(observer_.accounts.at("dora@example.org"), "mx");
  EXPECT_EQ(observer_.results.at("emil@example.net").status, RecipientStatus::kFailed);
  EXPECT_EQ(mx.connects_to["example.org"], 1) << "an unreachable destination is not tried again in the run";
  EXPECT_EQ(Stored("carla@example.org").attempts, 1) << "carla's connection failed";
  EXPECT_EQ(Stored("dora@example.org").attempts, 0) << "dora waits for example.org's next try, without an attempt";
  EXPECT_THAT(dora.error.text, HasSubstr("(not tried again before "));
  EXPECT_EQ(Stored("dora@example.org").next_attempt_at, Stored("carla@example.org").next_attempt_at);
}

// A destination that keeps failing is backed off as a whole, across runs: one connection per
// retry delay (growing by the backoff), whatever the number of its recipients or runs.
TEST_F(TaskRunnerRulesTest, AFailingDestinationIsBackedOffAsAWholeAcrossRunsUntilItComesBack) {
  std::string csv = SortedByDomain({"example.org"}, 20) + "anna@example.com,Anna\n";
  WriteRecipients(csv);
  WriteAccounts(DirectAccount(""));
  LoadConfig("[sending]\nconcurrency = 4\nretries = 5\nretry_delay = \"10m\"\nretry_backoff = 2\n");
  FakeTransport& mx = DirectWithExampleOrgDown();

  RunReport first = Run();  // t0: the first try fails
  EXPECT_EQ(first.sent, 1u);
  EXPECT_EQ(first.deferred, 20u);
  const int after_first = mx.connects_to["example.org"];
  EXPECT_EQ(after_first, 1) << "the sends wanting a connection meanwhile wait for the first one's result";
  Result<std::vector<DestinationBackoff>> stored = store_->DestinationBackoffs("mx");
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ(stored->front().destination, "example.org");
  EXPECT_EQ(stored->front().failures, 1);
  EXPECT_EQ(stored->front().retry_at, t0_ + minutes(10));
  EXPECT_THAT(stored->front().error.text, HasSubstr("no mail exchanger of example.org answers"));

  // Another process, 5 minutes later, a fresh list entry for the domain: nothing is tried.
  clock_.Advance(minutes(5));
  WriteRecipients(csv + "late@example.org,Late\n");
  OpenStore();
  RunReport second = Run();
  EXPECT_EQ(mx.connects_to["example.org"], after_first);
  EXPECT_EQ(Stored("late@example.org").attempts, 0);
  EXPECT_EQ(Stored("late@example.org").status, RecipientStatus::kDeferred);
  EXPECT_EQ(Stored("late@example.org").next_attempt_at, t0_ + minutes(10));

  // After the delay: one more try, which fails: the next wait is twice as long.
  clock_.Advance(minutes(6));
  Run();
  EXPECT_EQ(mx.connects_to["example.org"], after_first + 1);
  stored = store_->DestinationBackoffs("mx");
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ(stored->front().failures, 2);
  EXPECT_EQ(stored->front().retry_at, clock_.Now() + minutes(20));

  // The domain is back: the next run after the delay delivers everything, and forgets it.
  mx.connect_failure_for.clear();
  clock_.Advance(minutes(21));
  RunReport last = Run();
  EXPECT_EQ(last.sent, 21u);
  stored = store_->DestinationBackoffs("mx");
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(stored->empty());
  for (int i = 0; i < 20; ++i) {
    EXPECT_LE(Stored(fmt::format("r{}@example.org", i)).attempts, 3) << "never more attempts than tries";
  }
}

// --- direct delivery falls back to the secondary

// A direct account "mx" with the secondary relay "relay"; example.org's mail exchangers do not
// answer, example.net has a null MX, blocked.example refuses this host at the greeting,
// rcpt.example at RCPT TO.
class DirectFallbackTest : public TaskRunnerRulesTest {
 protected:
  FakeTransport& SetUpMx(std::string_view task_extra = "") {
    WriteAccounts(DirectAccount("secondary = \"relay\"") + Account("relay"));
    LoadConfig(fmt::format("[sending]\naccounts = [\"mx\"]\n{}", task_extra));
    FakeTransport& mx = DirectWithExampleOrgDown();
    mx.connect_failure_for["example.net"] = DestinationDown(Disposition::kPermanent, "example.net has a null MX");
    mx.connect_failure_for["blocked.example"] = HostBlocked(Scope::kDestination, Stage::kGreeting);
    return mx;
  }
};

TEST_F(DirectFallbackTest, UnreachableAndRefusingDestinationsGoThroughTheSecondary) {
  WriteRecipients("email,name\nanna@example.com,A\ncarla@example.org,C\ndora@example.org,D\n"
                  "emil@example.net,E\nfritz@blocked.example,F\ngus@rcpt.example,G\nhans@rcpt.example,H\n"
                  "ida@rcpt.example,I\nnobody@example.com,N\n");
  FakeTransport& mx = SetUpMx();
  mx.outcome_for["gus@rcpt.example"] = HostBlocked(Scope::kRecipient, Stage::kRcptTo);
  mx.outcome_for["nobody@example.com"] = NoSuchUser();
  RunReport report = Run();
  EXPECT_THAT(EnvelopeRecipients(relay()),
              ::testing::UnorderedElementsAre("carla@example.org", "dora@example.org", "fritz@blocked.example",
                                              "gus@rcpt.example", "hans@rcpt.example", "ida@rcpt.example"));
  EXPECT_EQ(report.sent, 7u);
  EXPECT_EQ(report.failed, 2u);
  for (const char* address : {"carla@example.org", "dora@example.org", "fritz@blocked.example", "gus@rcpt.example",
                              "hans@rcpt.example", "ida@rcpt.example"}) {
    EXPECT_EQ(observer_.results.at(address).status, RecipientStatus::kSent) << address;
    EXPECT_EQ(observer_.accounts.at(address), "relay") << address;
  }
  EXPECT_EQ(observer_.results.at("emil@example.net").status, RecipientStatus::kFailed) << "no relay delivers there";
  EXPECT_EQ(observer_.results.at("nobody@example.com").status, RecipientStatus::kFailed) << "refused as such";
  EXPECT_EQ(observer_.accounts.at("nobody@example.com"), "mx");
  EXPECT_EQ(mx.connects_to["example.org"], 1) << "the backed-off domain's others go straight to the secondary";
  EXPECT_EQ(mx.connects_to["blocked.example"], 1);
  EXPECT_THAT(EnvelopeRecipients(mx), Contains("gus@rcpt.example"));
  EXPECT_THAT(EnvelopeRecipients(mx), Not(Contains("hans@rcpt.example")))
      << "a mail exchanger that refused this host gets its domain's others no more";
}

TEST_F(DirectFallbackTest, ADestinationBackedOffByAnEarlierRunSendsItsRecipientsToTheSecondary) {
  WriteRecipients("email,name\ncarla@example.org,C\n");
  FakeTransport& mx = SetUpMx("retry_delay = \"1h\"\n");
  ASSERT_TRUE(store_
                  ->SetDestinationBackoff(DestinationBackoff{"mx", "example.org", 1, t0_ + hours(1),
                                                             {0, "", "connect: no mail exchanger answers"}})
                  .ok());
  RunReport report = Run();
  EXPECT_EQ(report.sent, 1u);
  EXPECT_EQ(mx.connects_to["example.org"], 0);
  EXPECT_THAT(EnvelopeRecipients(relay()), ElementsAre("carla@example.org"));
}

TEST_F(DirectFallbackTest, ARelayThatOnlyTakesOtherSendersIsNoFallback) {
  WriteRecipients("email,name\ncarla@example.org,C\nfritz@blocked.example,F\n");
  WriteAccounts(DirectAccount("secondary = \"relay\"") + Account("relay", "only_senders = [\"*@other.example\"]"));
  LoadConfig("[sending]\naccounts = [\"mx\"]\n");
  FakeTransport& mx = DirectWithExampleOrgDown();
  mx.connect_failure_for["blocked.example"] = HostBlocked(Scope::kDestination, Stage::kGreeting);
  RunReport report = Run();
  EXPECT_TRUE(relay().transactions.empty());
  EXPECT_EQ(observer_.results.at("carla@example.org").status, RecipientStatus::kDeferred) << "as without a secondary";
  EXPECT_EQ(observer_.results.at("fritz@blocked.example").status, RecipientStatus::kFailed);
}

TEST_F(TaskRunnerRulesTest, WithoutASecondaryAPolicyRefusalFailsTheRecipientAsBefore) {
  WriteRecipients("email,name\ngus@rcpt.example,G\nhans@rcpt.example,H\n");
  WriteAccounts(DirectAccount(""));
  LoadConfig();
  FakeTransport& mx = transports_.For("mx");
  mx.destination_is_domain = true;
  mx.outcome_for["gus@rcpt.example"] = HostBlocked(Scope::kRecipient, Stage::kRcptTo);
  RunReport report = Run();
  EXPECT_EQ(observer_.results.at("gus@rcpt.example").status, RecipientStatus::kFailed);
  EXPECT_EQ(observer_.results.at("hans@rcpt.example").status, RecipientStatus::kSent) << "still tried";
}

// --- 6. routing

TEST_F(TaskRunnerRulesTest, FirstAccountWhoseRulesMatchIsUsed) {
  WriteRecipients("email,name\nanna@example.com,Anna\nbob@example.com,Bob\ncarla@example.org,Carla\n"
                  "dora@example.net,Dora\n");
  WriteAccounts(Account("elsewhere", "only_senders = [\"*@elsewhere.example\"]") +
                Account("org", "only_recipients = [\"*@example.org\"]") +
                Account("vip", "only_recipients = [\"bob@example.com\", \"carla@example.org\"]") +
                Account("main", "only_senders = [\"news@example.com\"]"));
  LoadConfig();
  RunReport report = Run();
  EXPECT_EQ(report.sent, 4u);
  EXPECT_TRUE(transports_.For("elsewhere").transactions.empty());
  EXPECT_THAT(EnvelopeRecipients(transports_.For("org")), ElementsAre("carla@example.org"))
      << "carla matches vip too, but org comes first";
  EXPECT_THAT(EnvelopeRecipients(transports_.For("vip")), ElementsAre("bob@example.com"));
  EXPECT_THAT(EnvelopeRecipients(transports_.For("main")), ElementsAre("anna@example.com", "dora@example.net"));

  // Another sender goes its own way.
  message_ = "from = \"someone@elsewhere.example\"\nsubject = \"Hi\"\ntext = \"Hello\"\n";
  LoadConfig();
  task_.id = "t2";
  EXPECT_EQ(Run().sent, 4u);
  EXPECT_EQ(transports_.For("elsewhere").transactions.size(), 4u) << "the first account whose rules match takes all";
}

TEST_F(TaskRunnerRulesTest, ASecondaryKeepsItsOwnSenderAndRecipientRules) {
  WriteRecipients("email,name\nanna@example.com,Anna\ncarla@example.org,Carla\ndora@partner.example,Dora\n");
  WriteAccounts(Account("a", "secondary = \"sales\"\nexcluded_domains = [\"example.org\", \"partner.example\"]") +
                Account("sales", "secondary = \"partners\"\nonly_senders = [\"*@sales.example.com\"]") +
                Account("partners", "secondary = \"last\"\nonly_recipients = [\"*@partner.example\"]") +
                Account("last", "excluded_domains = [\"partner.example\"]"));
  LoadConfig("[sending]\naccounts = [\"a\"]\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_TRUE(transports_.For("sales").transactions.empty()) << "it only takes other senders";
  EXPECT_THAT(EnvelopeRecipients(transports_.For("partners")), ElementsAre("dora@partner.example"));
  EXPECT_THAT(EnvelopeRecipients(transports_.For("last")), ElementsAre("carla@example.org"));

  // Failing over: the same walk down the chain.
  transports_.For("a").connect_failure = AccountDown("a is down");
  task_.id = "t2";
  report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_TRUE(transports_.For("sales").transactions.empty());
  EXPECT_EQ(EnvelopeRecipients(transports_.For("last")).size(), 3u);
  EXPECT_THAT(EnvelopeRecipients(transports_.For("last")), Contains("anna@example.com"));
  EXPECT_EQ(EnvelopeRecipients(transports_.For("partners")).size(), 2u);
}

TEST_F(TaskRunnerRulesTest, AnExcludedRecipientNoAccountInTheChainTakesFailsNamingEachAccount) {
  WriteAccounts(Account("a", "secondary = \"sales\"\nexcluded_domains = [\"example.org\"]") +
                Account("sales", "only_senders = [\"*@sales.example.com\"]"));
  LoadConfig("[sending]\naccounts = [\"a\"]\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 2u);
  EXPECT_EQ(report.failed, 1u);
  EXPECT_THAT(observer_.results.at("carla@example.org").error.text,
              HasSubstr("no account takes mail from news@example.com to carla@example.org: the domain example.org "
                        "is excluded from account \"a\"; its secondary: account \"sales\" takes only the senders "
                        "*@sales.example.com"));
  EXPECT_TRUE(transports_.For("sales").transactions.empty());
}

TEST_F(TaskRunnerRulesTest, AFailedOverRecipientNoSecondaryTakesWaitsForItsAccount) {
  WriteAccounts(Account("a", "secondary = \"sales\"") + Account("sales", "only_senders = [\"*@sales.example.com\"]"));
  LoadConfig("[sending]\naccounts = [\"a\"]\n");
  transports_.For("a").connect_failure = AccountDown("a is down");
  RunReport report = Run();
  EXPECT_EQ(report.deferred, 3u);
  EXPECT_EQ(report.failed, 0u);
  EXPECT_TRUE(transports_.For("sales").transactions.empty());
  ASSERT_EQ(report.waiting_for_accounts.size(), 1u);
  EXPECT_EQ(report.waiting_for_accounts[0].account, "a");
}

TEST_F(TaskRunnerRulesTest, MessageNoAccountAcceptsFailsWithTheReason) {
  WriteAccounts(Account("org", "only_recipients = [\"*@example.org\"]"));
  LoadConfig();
  RunReport report = Run();
  EXPECT_EQ(report.sent, 1u);
  EXPECT_EQ(report.failed, 2u);
  const AttemptResult& anna = observer_.results.at("anna@example.com");
  EXPECT_EQ(anna.status, RecipientStatus::kFailed);
  EXPECT_THAT(anna.error.text, HasSubstr("no account takes mail from news@example.com to anna@example.com"));
  EXPECT_EQ(Stored("anna@example.com").attempts, 0) << "nothing was attempted";
  EXPECT_THAT(EnvelopeRecipients(transports_.For("org")), ElementsAre("carla@example.org"));
}

TEST_F(TaskRunnerRulesTest, FixedSenderReplacesTheSenderExceptForPrivateMessages) {
  WriteAccounts(Account("relay", "fixed_sender = \"bounces@relay.example.net\""));
  LoadConfig();
  Run();
  ASSERT_EQ(relay().transactions.size(), 3u);
  EXPECT_EQ(relay().transactions[0].envelope.mail_from, "bounces@relay.example.net");
  EXPECT_THAT(relay().transactions[0].data, HasSubstr("From: News <bounces@relay.example.net>\r\n"));

  LoadConfig("", "sensitivity = \"private\"\n");
  task_.id = "t2";
  Run();
  ASSERT_EQ(relay().transactions.size(), 6u);
  EXPECT_EQ(relay().transactions[3].envelope.mail_from, "news@example.com");
  EXPECT_THAT(relay().transactions[3].data, HasSubstr("From: News <news@example.com>\r\n"));
}

// --- 7. blacklists and resets

TEST_F(TaskRunnerRulesTest, BlacklistedRecipientsAreMarkedAndNeverSent) {
  WriteRecipients("email,name\nanna@example.com,Anna\nbob@example.com,Bob\ncarla@example.org,Carla\n"
                  "dora@example.net,Dora\nemil@example.com,Emil\n");
  dir_.Write("blacklist.txt", "# never these\nBOB@example.com\n*@example.org\n\nexample.net\n");
  WriteAccounts(Account("relay"));
  LoadConfig("blacklists = [\"blacklist.txt\"]\n");
  RunReport report = Run();
  EXPECT_EQ(report.blacklisted, 3u);
  EXPECT_EQ(observer_.blacklisted, 3u);
  EXPECT_EQ(report.counts[RecipientStatus::kBlacklisted], 3u);
  EXPECT_EQ(report.sent, 2u);
  EXPECT_THAT(EnvelopeRecipients(relay()), ElementsAre("anna@example.com", "emil@example.com"));
  EXPECT_EQ(Stored("bob@example.com").status, RecipientStatus::kBlacklisted);
  EXPECT_EQ(Stored("bob@example.com").attempts, 0);

  // Sending everyone again (reset_before) still passes the blacklist first.
  LoadConfig("blacklists = [\"blacklist.txt\"]\n[sending]\nreset_before = true\n");
  RunReport again = Run();
  EXPECT_EQ(again.sent, 2u);
  EXPECT_EQ(again.blacklisted, 3u);
  EXPECT_THAT(EnvelopeRecipients(relay()),
              ElementsAre("anna@example.com", "emil@example.com", "anna@example.com", "emil@example.com"));
}

TEST_F(TaskRunnerRulesTest, ResetErrorsAfterPutsOnlyTheFailedBack) {
  WriteAccounts(Account("relay"));
  LoadConfig("[sending]\nreset_errors_after = true\n");
  relay().outcome_for["bob@example.com"] = NoSuchUser();
  relay().outcome_for["carla@example.org"] = TryLater();
  RunReport report = Run();
  EXPECT_EQ(report.failed, 1u);
  EXPECT_EQ(report.counts[RecipientStatus::kUnsent], 1u);
  EXPECT_EQ(report.counts[RecipientStatus::kDeferred], 1u) << "a recipient waiting for a retry keeps waiting";
  EXPECT_EQ(Stored("bob@example.com").status, RecipientStatus::kUnsent);
  EXPECT_THAT(Stored("bob@example.com").last_error.text, HasSubstr("no such user")) << "the error is kept";

  relay().outcome_for.clear();
  LoadConfig();
  EXPECT_EQ(Run().sent, 1u);
  EXPECT_EQ(relay().transactions.back().envelope.recipients[0], "bob@example.com");
}

// --- 8. turbo mode

TEST_F(TaskRunnerRulesTest, TurboSendsUpToRecipientsPerMessageInOneTransaction) {
  WriteRecipients(Recipients(7));
  WriteAccounts(Account("relay", "recipients_per_message = 3"));
  message_ = "from = \"News <news@example.com>\"\nsubject = \"News for everyone\"\ntext = \"Hello all\"\n";
  LoadConfig("[sending]\nmode = \"turbo\"\n");
  relay().outcome_for["r4@example.com"] = NoSuchUser();
  RunReport report = Run();
  ASSERT_EQ(relay().transactions.size(), 3u);
  EXPECT_THAT(relay().transactions[0].envelope.recipients,
              ElementsAre("r0@example.com", "r1@example.com", "r2@example.com"));
  EXPECT_THAT(relay().transactions[1].envelope.recipients,
              ElementsAre("r3@example.com", "r4@example.com", "r5@example.com"));
  EXPECT_THAT(relay().transactions[2].envelope.recipients, ElementsAre("r6@example.com"));
  EXPECT_EQ(report.sent, 6u);
  EXPECT_EQ(report.failed, 1u) << "the refused recipient fails alone";
  ASSERT_EQ(observer_.results.size(), 7u);
  EXPECT_EQ(observer_.results.at("r4@example.com").status, RecipientStatus::kFailed);
  EXPECT_EQ(observer_.results.at("r4@example.com").error.reply_code, 550);
  EXPECT_EQ(observer_.results.at("r3@example.com").status, RecipientStatus::kSent);
  EXPECT_EQ(observer_.results.at("r5@example.com").status, RecipientStatus::kSent);
  // One message for all, addressed to the sender: the recipients are in the envelope only (Bcc).
  EXPECT_THAT(relay().transactions[0].data, HasSubstr("To: news@example.com\r\n"));
  EXPECT_THAT(relay().transactions[0].data, ::testing::Not(HasSubstr("r0@example.com")));
}

TEST_F(TaskRunnerRulesTest, TurboTransactionsHoldRecipientsOfOneDestination) {
  WriteRecipients("email,name\na1@example.com,A\nb1@example.org,B\na2@example.com,A\nb2@example.org,B\n"
                  "a3@example.com,A\n");
  WriteAccounts(Account("mx", "recipients_per_message = 10"));
  message_ = "from = \"News <news@example.com>\"\nsubject = \"News for everyone\"\ntext = \"Hello all\"\n";
  LoadConfig("[sending]\nmode = \"turbo\"\n");
  FakeTransport& mx = transports_.For("mx");
  mx.destination_is_domain = true;  // direct delivery: a transaction goes to one domain's MX
  RunReport report = Run();
  EXPECT_EQ(report.sent, 5u);
  ASSERT_EQ(mx.transactions.size(), 2u);
  EXPECT_THAT(mx.transactions[0].envelope.recipients,
              ElementsAre("a1@example.com", "a2@example.com", "a3@example.com"));
  EXPECT_THAT(mx.transactions[1].envelope.recipients, ElementsAre("b1@example.org", "b2@example.org"));
}

TEST_F(TaskRunnerRulesTest, ATurboJobFailingOverToADirectSecondaryGoesOneTransactionPerDomain) {
  WriteRecipients("email,name\na1@example.com,A\nb1@example.org,B\na2@example.com,A\n");
  WriteAccounts(Account("relay", "secondary = \"mx\"\nrecipients_per_message = 10") +
                DirectAccount("recipients_per_message = 10"));
  message_ = "from = \"News <news@example.com>\"\nsubject = \"News for everyone\"\ntext = \"Hello all\"\n";
  LoadConfig("[sending]\nmode = \"turbo\"\naccounts = [\"relay\"]\n");
  relay().connect_failure = AccountDown("relay refuses connections");
  FakeTransport& mx = transports_.For("mx");
  mx.destination_is_domain = true;
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  ASSERT_EQ(mx.transactions.size(), 2u) << "a mail exchanger takes its own domain's recipients only";
  EXPECT_THAT(mx.transactions[0].envelope.recipients, ElementsAre("a1@example.com", "a2@example.com"));
  EXPECT_THAT(mx.transactions[1].envelope.recipients, ElementsAre("b1@example.org"));
  EXPECT_EQ(mx.connects_to["example.com"], 1);
  EXPECT_EQ(mx.connects_to["example.org"], 1);
}

TEST_F(TaskRunnerRulesTest, TurboThroughAPickupAccountIsRefused) {
  message_ = "from = \"News <news@example.com>\"\nsubject = \"News for everyone\"\ntext = \"Hello all\"\n";
  LoadConfig("[sending]\nmode = \"turbo\"\n");  // the fixture's account is a pickup folder
  Result<RunReport> report = TryRun();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(), HasSubstr("turbo mode cannot go through a pickup folder"));
  EXPECT_THAT(report.status().message(), HasSubstr("account \"relay\""));
  EXPECT_TRUE(relay().transactions.empty());
}

// --- per destination (direct delivery)



TEST_F(TaskRunnerRulesTest, EachDestinationStaysUnderItsConnectionLimitAndTheAccountUnderItsTotal) {
  WriteRecipients(SortedByDomain({"a.example", "b.example", "c.example", "d.example"}, 12));
  WriteAccounts(DirectAccount("max_connections = 5\ndestination_max_connections = 2\n"
                              "[[account.destination]]\ndomain = \"b.example\"\nmax_connections = 1\n"
                              "[[account.destination]]\ndomain = \"c.example\"\nmax_connections = 3\n"));
  LoadConfig("[sending]\nconcurrency = 16\n");
  FakeTransport& mx = transports_.For("mx");
  mx.destination_is_domain = true;
  mx.send_time = seconds(1);
  RunReport report = Run();
  EXPECT_EQ(report.sent, 48u);
  EXPECT_EQ(mx.max_open_to["a.example"], 2);
  EXPECT_EQ(mx.max_open_to["b.example"], 1) << "the domain's own limit";
  EXPECT_EQ(mx.max_open_to["c.example"], 3) << "the domain's own limit, above the account's default";
  EXPECT_EQ(mx.max_open_to["d.example"], 2);
  EXPECT_LE(mx.max_open_connections, 5) << "the account's total";
  EXPECT_EQ(mx.max_sends_in_progress, 5) << "a list sorted by domain is still sent over every connection allowed";
}

TEST_F(TaskRunnerRulesTest, AListSortedByDomainKeepsEveryConnectionBusy) {
  // 8 domains of 10 recipients in list order; 2 connections per domain, 8 sends at once: the
  // dispatcher reads ahead to the next domains instead of queueing every worker on the first.
  WriteRecipients(SortedByDomain({"a.example", "b.example", "c.example", "d.example", "e.example", "f.example",
                                  "g.example", "h.example"},
                                 10));
  WriteAccounts(DirectAccount("max_connections = 8\ndestination_max_connections = 2\n"));
  LoadConfig("[sending]\nconcurrency = 8\n");
  FakeTransport& mx = transports_.For("mx");
  mx.destination_is_domain = true;
  mx.send_time = seconds(1);
  RunReport report = Run();
  EXPECT_EQ(report.sent, 80u);
  EXPECT_EQ(mx.max_sends_in_progress, 8);
  // 80 sends of 1 s over 8 connections: 10 s, not the 40 s of 2 connections at a time.
  EXPECT_LE(clock_.Now() - t0_, seconds(12)) << Offset(clock_.Now());
  for (const auto& [domain, most] : mx.max_open_to) EXPECT_LE(most, 2) << domain;
  // Each domain's recipients still go in list order.
  std::vector<std::string> a;
  for (const std::string& to : EnvelopeRecipients(mx)) {
    if (to.ends_with("@a.example")) a.push_back(to);
  }
  ASSERT_EQ(a.size(), 10u);
  EXPECT_EQ(a.front(), "r0@a.example");
}

TEST_F(TaskRunnerRulesTest, TheAccountsTotalClosesAnIdleConnectionOfAnotherDestination) {
  WriteRecipients("email,name\na@a.example,A\nb@b.example,B\nc@c.example,C\na2@a.example,A\n");
  WriteAccounts(DirectAccount("max_connections = 2\n"));
  LoadConfig();
  FakeTransport& mx = transports_.For("mx");
  mx.destination_is_domain = true;
  RunReport report = Run();
  EXPECT_EQ(report.sent, 4u);
  EXPECT_EQ(mx.max_open_connections, 2);
  EXPECT_EQ(mx.connects, 4) << "a.example's idle connection made room for c.example, then came back";
  EXPECT_EQ(mx.open_connections, 0) << "all closed at the end";
}

TEST_F(TaskRunnerRulesTest, ADestinationsMinimumWaitSpacesOnlyItsMessages) {
  WriteRecipients("email,name\no1@example.org,O\nc1@example.com,C\no2@example.org,O\nc2@example.com,C\n"
                  "o3@example.org,O\nc3@example.com,C\n");
  WriteAccounts(DirectAccount("max_connections = 4\n[[account.destination]]\ndomain = \"example.org\"\n"
                              "minimum_wait = \"30s\"\n"));
  LoadConfig("[sending]\nconcurrency = 4\n");
  FakeTransport& mx = transports_.For("mx");
  mx.destination_is_domain = true;
  mx.send_time = seconds(1);
  RunReport report = Run();
  EXPECT_EQ(report.sent, 6u);
  std::vector<TimePoint> org;
  std::vector<TimePoint> com;
  for (const SentMessage& transaction : mx.transactions) {
    (transaction.envelope.recipients[0].ends_with("example.org") ? org : com).push_back(transaction.at);
  }
  std::sort(org.begin(), org.end());
  ASSERT_EQ(org.size(), 3u);
  EXPECT_GE(org[1] - org[0], seconds(30)) << Offsets(org)[1];
  EXPECT_GE(org[2] - org[1], seconds(30)) << Offsets(org)[2];
  for (TimePoint at : com) EXPECT_LT(at - t0_, seconds(5)) << "example.com does not wait: " << Offset(at);
}

TEST_F(TaskRunnerRulesTest, ADestinationsSendingLimitHoldsOnlyItsMessages) {
  WriteRecipients("email,name\no1@example.org,O\no2@example.org,O\no3@example.org,O\nc1@example.com,C\n"
                  "o4@example.org,O\nc2@example.com,C\n");
  WriteAccounts(DirectAccount("limits = [\"100/hour\"]\n[[account.destination]]\ndomain = \"example.org\"\n"
                              "limits = [\"2/hour\"]\n"));
  LoadConfig("[sending]\non_limit = \"stop\"\n");
  FakeTransport& mx = transports_.For("mx");
  mx.destination_is_domain = true;
  RunReport report = Run();
  EXPECT_EQ(report.sent, 4u) << "example.com goes on: the domain's limit is not the account's";
  EXPECT_TRUE(report.limit_stop.empty()) << "on_limit = \"stop\" is about the account's limits";
  EXPECT_THAT(observer_.warnings, Contains(HasSubstr("sending limit of 2/hour for example.org: its recipients wait")));
  const RecipientRecord o3 = Stored("o3@example.org");
  EXPECT_EQ(o3.status, RecipientStatus::kDeferred);
  EXPECT_EQ(o3.attempts, 0) << "postponed, not attempted";
  EXPECT_THAT(o3.last_error.text, HasSubstr("sending limit of 2/hour for example.org"));
  ASSERT_TRUE(o3.next_attempt_at.has_value());
  EXPECT_GE(*o3.next_attempt_at - t0_, hours(1));
  EXPECT_EQ(Stored("o4@example.org").next_attempt_at, o3.next_attempt_at);

  clock_.Set(*o3.next_attempt_at);
  report = Run();
  EXPECT_EQ(report.sent, 2u);
  std::vector<TimePoint> org;
  for (const SentMessage& transaction : mx.transactions) {
    if (transaction.envelope.recipients[0].ends_with("example.org")) org.push_back(transaction.at);
  }
  ASSERT_EQ(org.size(), 4u);
  EXPECT_TRUE(AtMostInAnyWindow(org, 2, hours(1)));
}

TEST_F(TaskRunnerRulesTest, ADestinationFailingMoreOftenThanTheTaskRetriesFailsItsRecipients) {
  WriteRecipients(SortedByDomain({"example.org"}, 10));
  WriteAccounts(DirectAccount(""));
  LoadConfig("[sending]\nretries = 1\nretry_delay = \"10m\"\n");
  FakeTransport& mx = DirectWithExampleOrgDown();
  RunReport first = Run();
  EXPECT_EQ(first.deferred, 10u);
  clock_.Advance(minutes(11));
  RunReport second = Run();
  EXPECT_EQ(second.failed, 10u);
  EXPECT_EQ(mx.connects_to["example.org"], 2) << "one try per retry, not one per recipient";
  const RecipientRecord r9 = Stored("r9@example.org");
  EXPECT_EQ(r9.status, RecipientStatus::kFailed);
  EXPECT_THAT(r9.last_error.text, HasSubstr("example.org could not be reached in 2 tries (retries = 1)"));
  EXPECT_THAT(r9.last_error.text, HasSubstr("no mail exchanger of example.org answers"));
}

// --- message size

TEST_F(TaskRunnerRulesTest, AMessageOverTheAccountsMaxMessageSizeFailsAloneWithItsSize) {
  WriteRecipients("email,name,note\nanna@example.com,Anna,short\n"
                  "bob@example.com,Bob," + std::string(3000, 'x') + "\ncarla@example.org,Carla,short\n");
  WriteAccounts(Account("relay", "max_message_size = \"2KB\""));
  LoadConfig("", "html = \"<p>{%note%}</p>\"\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 2u);
  EXPECT_EQ(report.failed, 1u);
  const AttemptResult& bob = observer_.results.at("bob@example.com");
  EXPECT_EQ(bob.status, RecipientStatus::kFailed);
  EXPECT_THAT(bob.error.text, HasSubstr("over the max_message_size of 2.0 KB of account \"relay\""));
  EXPECT_THAT(bob.error.text, ::testing::ContainsRegex("the message is [0-9.]+ KB \\([0-9]+ bytes\\)"));
  EXPECT_THAT(EnvelopeRecipients(relay()), ElementsAre("anna@example.com", "carla@example.org"))
      << "nothing of it reached the server";
}

TEST_F(TaskRunnerRulesTest, AttachmentsOverOneOfTheAccountsMaxMessageSizeAreAWarning) {
  dir_.Write("report.pdf", std::string(30000, 'p'));
  WriteAccounts(Account("big") + Account("small", "max_message_size = \"25KB\""));
  LoadConfig("", "attachments = [\"report.pdf\"]\n");
  RunReport report = Run();
  EXPECT_EQ(report.sent, 3u);
  EXPECT_THAT(observer_.warnings, Contains(AllOf(HasSubstr("over the max_message_size of 25.0 KB of account \"small\""),
                                                 HasSubstr("messages routed there fail"))));
  EXPECT_EQ(transports_.For("big").transactions.size(), 3u);
}

TEST_F(TaskRunnerRulesTest, AttachmentsOverAnAccountsMaxMessageSizeStopTheTaskBeforeTheFirstMessage) {
  dir_.Write("report.pdf", std::string(30000, 'p'));
  WriteAccounts(Account("relay", "max_message_size = \"25KB\""));
  LoadConfig("", "attachments = [\"report.pdf\"]\n");
  Result<RunReport> report = TryRun();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(), HasSubstr("the attachments make every message at least 41.3 KB"));
  EXPECT_THAT(report.status().message(), HasSubstr("over the max_message_size of 25.0 KB of account \"relay\""));
  EXPECT_THAT(report.status().message(), HasSubstr("accounts.toml:1"));
  EXPECT_TRUE(relay().transactions.empty());
}

}  // namespace
}  // namespace herald
