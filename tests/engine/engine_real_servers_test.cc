// herald's sending engine against real mail servers (issue 4, "Done when"): RunTask with a
// SqliteStore and the SMTP transport, the task and accounts written as TOML the way users write
// them and loaded by the config loader, against aiosmtpd, Postfix's smtp-sink and Postfix itself.
// Covered: failover from a primary that refuses connections to its secondary (and along a chain of
// secondaries), excluded domains, sender and recipient routing (with a fixed sender), blacklists,
// and turbo mode (one transaction, many recipients, a result per recipient).
//
// Every case checks both sides: what herald recorded per recipient (the observer's result and the
// store's row) and what each server actually received per recipient. Servers come from
// tests/servers/mail_servers.h and need root and Debian's packages (scripts/setup.sh test).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.h"
#include "engine/task_runner.h"
#include "servers/mail_servers.h"
#include "smtp/smtp_transport.h"
#include "store/sqlite_store.h"
#include "temp_dir.h"
#include "tls_certificates.h"

namespace herald {
namespace {

using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using test_servers::AiosmtpdOptions;
using test_servers::AiosmtpdServer;
using test_servers::DeliveredMessage;
using test_servers::DovecotOptions;
using test_servers::DovecotServer;
using test_servers::kNoPort;
using test_servers::PostfixOptions;
using test_servers::PostfixServer;
using test_servers::RecordedMessage;
using test_servers::SinkTransaction;
using test_servers::SmtpSink;
using test_servers::SmtpSinkOptions;

constexpr char kHeloName[] = "engine.herald.test";
constexpr char kAlicePassword[] = "wonderland";

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// A port on 127.0.0.1 with nothing listening: bound by the OS (port 0), then closed, so a
// connection to it is refused (RST) at once.
int RefusingPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t size = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    ADD_FAILURE() << "cannot bind a socket on 127.0.0.1";
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

// One SMTP account in accounts TOML; `extra` adds lines to its table.
std::string SmtpAccount(std::string_view name, int port, std::string_view extra = "") {
  return fmt::format(
      "[[account]]\n"
      "name = \"{}\"\n"
      "kind = \"smtp\"\n"
      "host = \"127.0.0.1\"\n"
      "port = {}\n"
      "security = \"none\"\n"
      "helo_name = \"{}\"\n"
      "timeout = \"10s\"\n"
      "{}\n",
      name, port, kHeloName, extra);
}

// The recipient list: a header row and one row per address, named after its local part.
std::string RecipientsCsv(const std::vector<std::string>& addresses) {
  std::string csv = "email,name\n";
  for (const std::string& address : addresses) csv += address + "," + address.substr(0, address.find('@')) + "\n";
  return csv;
}

// What the engine told the observer about one recipient in a run.
struct Seen {
  RecipientStatus status = RecipientStatus::kUnsent;
  std::string account;
  DeliveryError error;
  int results = 0;  // results given for it in the run: one each
};

class RecordingObserver final : public RunObserver {
 public:
  void OnResult(const RecipientEvent& event) override {
    Seen& seen = results[Lower(event.recipient.address)];
    seen.status = event.result.status;
    seen.account = std::string(event.account);
    seen.error = event.result.error;
    ++seen.results;
  }
  void OnWarning(std::string_view warning) override { warnings.emplace_back(warning); }

  std::map<std::string, Seen> results;  // by lowercased address
  std::vector<std::string> warnings;
};

// The transports herald's command line makes for smtp accounts (src/main.cc), keeping each
// account's SMTP dialogue so that a failure shows what crossed the wire.
class SmtpTransports final : public TransportFactory {
 public:
  Result<std::unique_ptr<Transport>> Create(const AccountConfig& account, Transcript) override {
    std::vector<std::string>* lines = &transcripts[account.name];
    Result<std::unique_ptr<SmtpTransport>> transport =
        SmtpTransport::Create(account, [lines](std::string_view line) { lines->emplace_back(line); });
    if (!transport.ok()) return transport.status();
    return std::unique_ptr<Transport>(std::move(*transport));
  }

  // Lines of `account`'s dialogues that start with `prefix`, e.g. "C: MAIL FROM".
  int CountLines(const std::string& account, std::string_view prefix) const {
    auto found = transcripts.find(account);
    if (found == transcripts.end()) return 0;
    return static_cast<int>(std::count_if(found->second.begin(), found->second.end(),
                                          [&](const std::string& line) { return line.starts_with(prefix); }));
  }
  std::string Transcript(const std::string& account) const {
    std::string all;
    auto found = transcripts.find(account);
    if (found != transcripts.end()) {
      for (const std::string& line : found->second) all += line + "\n";
    }
    return all;
  }

  std::map<std::string, std::vector<std::string>> transcripts;
};

struct RunOutput {
  RunReport report;
  std::map<std::string, Seen> results;
  std::vector<std::string> warnings;
  std::map<std::string, RecipientRecord> stored;  // by lowercased address, after the run
};

// aiosmtpd's messages: how many each recipient received (lowercased).
std::map<std::string, int> CountByRecipient(const std::vector<RecordedMessage>& messages) {
  std::map<std::string, int> counts;
  for (const RecordedMessage& message : messages) {
    for (const std::string& recipient : message.rcpt_tos) ++counts[Lower(recipient)];
  }
  return counts;
}

std::map<std::string, int> Lowered(const std::map<std::string, int>& counts) {
  std::map<std::string, int> lowered;
  for (const auto& [address, count] : counts) lowered[Lower(address)] += count;
  return lowered;
}

// Once each.
std::map<std::string, int> Once(const std::vector<std::string>& addresses) {
  std::map<std::string, int> counts;
  for (const std::string& address : addresses) counts[Lower(address)] = 1;
  return counts;
}

// The [message] lines of a personalised task: each message names its recipient.
constexpr std::string_view kPersonalMessage =
    "subject = \"Hello {%name%}\"\n"
    "text = \"Dear {%name%},\\nthis is for {%recipient%}.\\n\"";
// Turbo mode sends one message to many: no placeholder of a recipient's own.
constexpr std::string_view kTurboMessage =
    "subject = \"News for {%task_title%}\"\n"
    "text = \"Dear reader,\\nthis is for everyone.\\n\"";

class EngineRealServersTest : public ::testing::Test {
 protected:
  std::string WriteAccounts(const std::string& toml) const { return dir_.Write("accounts.toml", toml); }

  // Writes a task file `<id>.toml` whose recipient list is `addresses`; `sending` and
  // `recipients_extra` add lines to the [sending] and [recipients] tables.
  std::string WriteTask(std::string_view id, std::string_view from, const std::vector<std::string>& addresses,
                        std::string_view sending = "", std::string_view recipients_extra = "",
                        std::string_view message = kPersonalMessage) const {
    dir_.Write(fmt::format("{}.csv", id), RecipientsCsv(addresses));
    return dir_.Write(fmt::format("{}.toml", id),
                      fmt::format("id = \"{0}\"\n"
                                  "title = \"Engine test {0}\"\n"
                                  "[message]\n"
                                  "from = \"News <{1}>\"\n"
                                  "{4}\n"
                                  "[recipients]\n"
                                  "file = \"{0}.csv\"\n"
                                  "{2}\n"
                                  "[sending]\n"
                                  "{3}\n",
                                  id, from, recipients_extra, sending, message));
  }

  // Loads the task and its accounts as `herald send` does and runs it to the end.
  std::optional<RunOutput> Run(const std::string& task_file) {
    Result<TaskConfig> task = LoadTask(task_file);
    if (!task.ok()) {
      ADD_FAILURE() << task.status().ToString();
      return std::nullopt;
    }
    Result<AccountSet> accounts = LoadAccounts(task->accounts_file);
    if (!accounts.ok()) {
      ADD_FAILURE() << accounts.status().ToString();
      return std::nullopt;
    }
    Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(task->store_file);
    if (!store.ok()) {
      ADD_FAILURE() << store.status().ToString();
      return std::nullopt;
    }
    RecordingObserver observer;
    SystemClock clock;
    Result<RunReport> report = RunTask(*task, *accounts, **store, clock, transports_, observer);
    if (!report.ok()) {
      ADD_FAILURE() << report.status().ToString();
      return std::nullopt;
    }
    EXPECT_TRUE(report->stopped_by.ok()) << report->stopped_by.ToString();
    RunOutput output{std::move(*report), std::move(observer.results), std::move(observer.warnings), {}};
    Status visited = (*store)->ForEachRecipient(task->id, [&](const RecipientRecord& record) {
      output.stored[Lower(record.address)] = record;
      return Status::Ok();
    });
    EXPECT_TRUE(visited.ok()) << visited.ToString();
    for (const auto& [address, seen] : output.results) {
      EXPECT_EQ(seen.results, 1) << address << ": one result per recipient and run";
    }
    return output;
  }

  // Starts an aiosmtpd named `name` (its folder); null with a test failure when it does not start.
  std::unique_ptr<AiosmtpdServer> StartAiosmtpd(std::string_view name) {
    AiosmtpdOptions options;
    options.directory = dir_.Path(name);
    options.hostname = std::string(name) + ".herald.test";
    auto server = std::make_unique<AiosmtpdServer>(options);
    Status started = server->Start();
    if (!started.ok()) {
      ADD_FAILURE() << name << ": " << started.ToString();
      return nullptr;
    }
    return server;
  }

  std::unique_ptr<SmtpSink> StartSink(std::string_view name) {
    SmtpSinkOptions options;
    options.directory = dir_.Path(name);
    options.hostname = std::string(name) + ".herald.test";
    auto sink = std::make_unique<SmtpSink>(options);
    Status started = sink->Start();
    if (!started.ok()) {
      ADD_FAILURE() << name << ": " << started.ToString();
      return nullptr;
    }
    return sink;
  }

  // Checks that `recipients` were sent through `account`: the observer's result and the store's
  // row say sent by that account.
  static void ExpectSentThrough(const RunOutput& run, const std::vector<std::string>& recipients,
                                std::string_view account) {
    for (const std::string& address : recipients) {
      std::string key = Lower(address);
      ASSERT_TRUE(run.results.contains(key)) << address << ": no result";
      const Seen& seen = run.results.at(key);
      EXPECT_EQ(RecipientStatusName(seen.status), "sent") << address << ": " << seen.error.text;
      EXPECT_EQ(seen.account, account) << address;
      ASSERT_TRUE(run.stored.contains(key)) << address << ": not in the store";
      const RecipientRecord& stored = run.stored.at(key);
      EXPECT_EQ(RecipientStatusName(stored.status), "sent") << address;
      EXPECT_EQ(stored.account, account) << address;
      EXPECT_FALSE(stored.possible_duplicate) << address;
    }
  }

  // Every message aiosmtpd recorded is personal: one recipient, and its text names that recipient.
  static void ExpectPersonalised(const std::vector<RecordedMessage>& messages, std::string_view sender) {
    for (const RecordedMessage& message : messages) {
      ASSERT_EQ(message.rcpt_tos.size(), 1u);
      EXPECT_EQ(message.mail_from, sender);
      EXPECT_THAT(message.data, HasSubstr("this is for " + message.rcpt_tos.front() + "."));
      EXPECT_EQ(message.helo, kHeloName);
    }
  }

  TempDir dir_;
  SmtpTransports transports_;
};

// ---------------------------------------------------------------------------------------------
// Failover

TEST_F(EngineRealServersTest, PrimaryThatRefusesConnectionsFailsOverToItsSecondary) {
  std::unique_ptr<AiosmtpdServer> backup = StartAiosmtpd("backup");
  ASSERT_NE(backup, nullptr);
  int refusing = RefusingPort();
  WriteAccounts(SmtpAccount("primary", refusing, "max_connections = 3\nsecondary = \"backup\"") +
                SmtpAccount("backup", backup->port(), "max_connections = 2"));
  const std::vector<std::string> recipients = {"anna@example.com", "bert@example.com", "cora@example.org",
                                               "dora@example.net", "emil@example.com", "fred@example.org",
                                               "gina@example.com", "hugo@example.net"};
  std::optional<RunOutput> run =
      Run(WriteTask("failover", "news@example.com", recipients, "accounts = [\"primary\"]\nconcurrency = 3"));
  ASSERT_TRUE(run.has_value());

  EXPECT_EQ(run->report.sent, recipients.size());
  EXPECT_EQ(run->report.counts[RecipientStatus::kSent], recipients.size());
  ExpectSentThrough(*run, recipients, "backup");
  for (const std::string& address : recipients) {
    EXPECT_EQ(run->stored.at(Lower(address)).attempts, 1)
        << address << ": the refused connection never reached MAIL FROM, so it is no attempt";
  }
  EXPECT_THAT(run->warnings, testing::Contains(HasSubstr("account \"primary\" failed")));
  std::vector<RecordedMessage> messages = backup->Messages();
  EXPECT_EQ(CountByRecipient(messages), Once(recipients)) << backup->Log();
  ExpectPersonalised(messages, "news@example.com");
  EXPECT_EQ(transports_.CountLines("primary", "C: MAIL FROM"), 0) << transports_.Transcript("primary");
}

TEST_F(EngineRealServersTest, FailoverFollowsTheChainOfSecondariesPastAnotherRefusingOne) {
  std::unique_ptr<AiosmtpdServer> last = StartAiosmtpd("last");
  ASSERT_NE(last, nullptr);
  WriteAccounts(SmtpAccount("primary", RefusingPort(), "secondary = \"middle\"") +
                SmtpAccount("middle", RefusingPort(), "secondary = \"last\"") +
                SmtpAccount("last", last->port()));
  const std::vector<std::string> recipients = {"anna@example.com", "bert@example.org", "cora@example.net"};
  std::optional<RunOutput> run =
      Run(WriteTask("chain", "news@example.com", recipients, "accounts = [\"primary\"]\nconcurrency = 2"));
  ASSERT_TRUE(run.has_value());

  ExpectSentThrough(*run, recipients, "last");
  EXPECT_EQ(CountByRecipient(last->Messages()), Once(recipients)) << last->Log();
  EXPECT_THAT(run->warnings, testing::Contains(HasSubstr("account \"middle\" failed")));
}

TEST_F(EngineRealServersTest, RefusingAccountWithoutSecondaryDefersEveryRecipientWithTheReason) {
  WriteAccounts(SmtpAccount("alone", RefusingPort()));
  const std::vector<std::string> recipients = {"anna@example.com", "bert@example.org"};
  std::optional<RunOutput> run = Run(WriteTask("alone", "news@example.com", recipients, "concurrency = 2"));
  ASSERT_TRUE(run.has_value());

  EXPECT_EQ(run->report.sent, 0u);
  for (const std::string& address : recipients) {
    const RecipientRecord& stored = run->stored.at(address);
    // Connection refused is temporary (docs/design.md): retried later, not failed.
    EXPECT_EQ(RecipientStatusName(stored.status), "deferred") << address;
    EXPECT_TRUE(stored.next_attempt_at.has_value()) << address;
    EXPECT_EQ(stored.account, "alone") << address;
    EXPECT_THAT(Lower(stored.last_error.text), HasSubstr("refused")) << address << ": " << stored.last_error.text;
  }
}

// A password the server refuses (AUTH 535) is the account's fault: no recipient fails, none has
// an attempt counted, the account is tried once, and once the password is fixed the next run
// sends them all.
TEST_F(EngineRealServersTest, ARefusedPasswordDefersEveryRecipientUntilItIsFixed) {
  AiosmtpdOptions options;
  options.directory = dir_.Path("auth");
  options.hostname = "auth.herald.test";
  options.users = {{"alice", kAlicePassword}};
  options.auth_required = true;
  AiosmtpdServer server(options);
  Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  const std::string secret = dir_.Write("relay-password", "not the password\n");
  WriteAccounts(SmtpAccount("relay", server.port(),
                            fmt::format("username = \"alice\"\npassword_file = \"{}\"\n"
                                        "allow_plaintext_auth = true\nmax_connections = 4",
                                        secret)));
  const std::vector<std::string> recipients = {"anna@example.com", "bert@example.org", "cora@example.net",
                                               "dora@example.com", "emil@example.org", "fred@example.net"};
  const std::string task = WriteTask("auth", "news@example.com", recipients, "concurrency = 4\nretries = 0");
  std::optional<RunOutput> run = Run(task);
  ASSERT_TRUE(run.has_value());

  EXPECT_EQ(run->report.sent, 0u);
  EXPECT_EQ(run->report.failed, 0u) << "retries = 0, and still no recipient fails for the account's fault";
  EXPECT_EQ(run->report.deferred, recipients.size());
  for (const std::string& address : recipients) {
    const RecipientRecord& stored = run->stored.at(address);
    EXPECT_EQ(RecipientStatusName(stored.status), "deferred") << address;
    EXPECT_EQ(stored.attempts, 0) << address;
    EXPECT_EQ(stored.last_error.reply_code, 535) << address << ": " << stored.last_error.text;
  }
  EXPECT_EQ(transports_.CountLines("relay", "C: AUTH"), 1) << "tried once, not once per concurrent send\n"
                                                           << transports_.Transcript("relay");
  ASSERT_EQ(run->report.waiting_for_accounts.size(), 1u);
  EXPECT_EQ(run->report.waiting_for_accounts[0].account, "relay");
  EXPECT_EQ(run->report.waiting_for_accounts[0].recipients, recipients.size());
  EXPECT_THAT(run->report.waiting_for_accounts[0].cause, HasSubstr("535"));
  EXPECT_EQ(std::count_if(run->warnings.begin(), run->warnings.end(),
                          [](const std::string& warning) { return warning.find("\"relay\"") != std::string::npos; }),
            1);
  EXPECT_THAT(server.Messages(), IsEmpty());

  dir_.Write("relay-password", std::string(kAlicePassword) + "\n");
  std::optional<RunOutput> fixed = Run(task);
  ASSERT_TRUE(fixed.has_value());
  EXPECT_EQ(fixed->report.sent, recipients.size());
  ExpectSentThrough(*fixed, recipients, "relay");
  EXPECT_EQ(CountByRecipient(server.Messages()), Once(recipients)) << server.Log();
}

// ---------------------------------------------------------------------------------------------
// Excluded domains

TEST_F(EngineRealServersTest, ExcludedDomainsGoThroughTheSecondaryAndTheRestThroughThePrimary) {
  std::unique_ptr<AiosmtpdServer> primary = StartAiosmtpd("primary");
  std::unique_ptr<AiosmtpdServer> secondary = StartAiosmtpd("secondary");
  ASSERT_NE(primary, nullptr);
  ASSERT_NE(secondary, nullptr);
  WriteAccounts(SmtpAccount("primary", primary->port(),
                            "max_connections = 2\n"
                            "secondary = \"secondary\"\n"
                            "excluded_domains = [\"excluded.test\", \"*@other-excluded.test\"]") +
                SmtpAccount("secondary", secondary->port()));
  // A domain pattern excludes that domain only, in any case, not its subdomains (address.h).
  const std::vector<std::string> through_primary = {"anna@kept.test", "dora@sub.excluded.test", "fred@kept.test"};
  const std::vector<std::string> through_secondary = {"bert@excluded.test", "cora@other-excluded.test",
                                                      "emil@EXCLUDED.Test"};
  std::vector<std::string> all = through_primary;
  all.insert(all.end(), through_secondary.begin(), through_secondary.end());
  std::optional<RunOutput> run =
      Run(WriteTask("excluded", "news@example.com", all, "accounts = [\"primary\"]\nconcurrency = 2"));
  ASSERT_TRUE(run.has_value());

  ExpectSentThrough(*run, through_primary, "primary");
  ExpectSentThrough(*run, through_secondary, "secondary");
  EXPECT_EQ(CountByRecipient(primary->Messages()), Once(through_primary)) << primary->Log();
  EXPECT_EQ(CountByRecipient(secondary->Messages()), Once(through_secondary)) << secondary->Log();
  ExpectPersonalised(primary->Messages(), "news@example.com");
  ExpectPersonalised(secondary->Messages(), "news@example.com");
  EXPECT_THAT(run->warnings, IsEmpty()) << "no account failed";
}

TEST_F(EngineRealServersTest, ExcludedDomainWithoutASecondaryFailsWithThatReasonAndIsNotSent) {
  std::unique_ptr<AiosmtpdServer> server = StartAiosmtpd("solo");
  ASSERT_NE(server, nullptr);
  WriteAccounts(SmtpAccount("solo", server->port(), "excluded_domains = [\"excluded.test\"]"));
  std::optional<RunOutput> run =
      Run(WriteTask("solo", "news@example.com", {"anna@kept.test", "bert@excluded.test"}));
  ASSERT_TRUE(run.has_value());

  ExpectSentThrough(*run, {"anna@kept.test"}, "solo");
  const RecipientRecord& bert = run->stored.at("bert@excluded.test");
  EXPECT_EQ(RecipientStatusName(bert.status), "failed");
  EXPECT_EQ(bert.attempts, 0) << "never put in flight";
  EXPECT_THAT(bert.last_error.text, HasSubstr("excluded.test is excluded from account \"solo\""));
  EXPECT_EQ(CountByRecipient(server->Messages()), Once({"anna@kept.test"})) << server->Log();
}

// ---------------------------------------------------------------------------------------------
// Sender and recipient routing

// The sender of a captured smtp-sink transaction: "<a@b> SIZE=12" -> "a@b".
std::string SinkSender(const SinkTransaction& transaction) {
  std::string args = transaction.mail_args;
  std::size_t open = args.find('<');
  std::size_t close = args.find('>');
  return open == std::string::npos || close == std::string::npos ? args : args.substr(open + 1, close - open - 1);
}

// The senders a sink saw, with how many transactions each.
std::map<std::string, int> SendersOf(const SmtpSink& sink) {
  std::map<std::string, int> senders;
  for (const SinkTransaction& transaction : sink.Transactions()) ++senders[SinkSender(transaction)];
  return senders;
}

TEST_F(EngineRealServersTest, SenderAndRecipientRulesPickTheFirstMatchingAccount) {
  std::unique_ptr<SmtpSink> org = StartSink("org");
  std::unique_ptr<SmtpSink> vip = StartSink("vip");
  std::unique_ptr<SmtpSink> news = StartSink("news");
  std::unique_ptr<SmtpSink> letters = StartSink("letters");
  ASSERT_TRUE(org && vip && news && letters);
  // In file order: the first account whose rules accept a message takes it.
  WriteAccounts(SmtpAccount("org-relay", org->port(), "only_recipients = [\"*@example.org\"]") +
                SmtpAccount("vip-relay", vip->port(),
                            "only_recipients = [\"boss@example.com\", \"ceo@example.net\"]\n"
                            "fixed_sender = \"office@example.com\"") +
                SmtpAccount("news-relay", news->port(), "only_senders = [\"news@example.com\"]") +
                SmtpAccount("letters-relay", letters->port(), "only_senders = [\"*@example.net\"]"));

  std::optional<RunOutput> from_news =
      Run(WriteTask("from-news", "news@example.com",
                    {"reader1@example.org", "boss@example.com", "ceo@example.net", "plain1@example.com",
                     "other1@example.net"},
                    "concurrency = 3"));
  std::optional<RunOutput> from_letters =
      Run(WriteTask("from-letters", "letters@example.net",
                    {"reader2@example.org", "plain2@example.com", "boss@example.com"}, "concurrency = 2"));
  std::optional<RunOutput> from_stranger =
      Run(WriteTask("from-stranger", "someone@other.test", {"reader3@example.org", "plain3@example.com"}));
  ASSERT_TRUE(from_news && from_letters && from_stranger);

  ExpectSentThrough(*from_news, {"reader1@example.org"}, "org-relay");
  ExpectSentThrough(*from_news, {"boss@example.com", "ceo@example.net"}, "vip-relay");
  ExpectSentThrough(*from_news, {"plain1@example.com", "other1@example.net"}, "news-relay");
  ExpectSentThrough(*from_letters, {"reader2@example.org"}, "org-relay");
  ExpectSentThrough(*from_letters, {"boss@example.com"}, "vip-relay");
  ExpectSentThrough(*from_letters, {"plain2@example.com"}, "letters-relay");
  ExpectSentThrough(*from_stranger, {"reader3@example.org"}, "org-relay");
  const RecipientRecord& unroutable = from_stranger->stored.at("plain3@example.com");
  EXPECT_EQ(RecipientStatusName(unroutable.status), "failed");
  EXPECT_EQ(unroutable.attempts, 0);
  EXPECT_THAT(unroutable.last_error.text,
              HasSubstr("no account takes mail from someone@other.test to plain3@example.com"));

  // What each server received, per recipient, and from which envelope sender.
  ASSERT_TRUE(org->WaitForMessageCount(3).ok()) << org->Log();
  ASSERT_TRUE(vip->WaitForMessageCount(3).ok()) << vip->Log();
  ASSERT_TRUE(news->WaitForMessageCount(2).ok()) << news->Log();
  ASSERT_TRUE(letters->WaitForMessageCount(1).ok()) << letters->Log();
  EXPECT_EQ(Lowered(org->CountByRecipient()),
            Once({"reader1@example.org", "reader2@example.org", "reader3@example.org"}));
  EXPECT_EQ(SendersOf(*org), (std::map<std::string, int>{
                                 {"news@example.com", 1}, {"letters@example.net", 1}, {"someone@other.test", 1}}));
  EXPECT_EQ(Lowered(vip->CountByRecipient()),
            (std::map<std::string, int>{{"boss@example.com", 2}, {"ceo@example.net", 1}}));
  EXPECT_EQ(SendersOf(*vip), (std::map<std::string, int>{{"office@example.com", 3}}))
      << "the account's fixed sender replaces the task's in the envelope";
  EXPECT_EQ(Lowered(news->CountByRecipient()), Once({"plain1@example.com", "other1@example.net"}));
  EXPECT_EQ(SendersOf(*news), (std::map<std::string, int>{{"news@example.com", 2}}));
  EXPECT_EQ(Lowered(letters->CountByRecipient()), Once({"plain2@example.com"}));
  EXPECT_EQ(SendersOf(*letters), (std::map<std::string, int>{{"letters@example.net", 1}}));
  for (const SmtpSink* sink : {org.get(), vip.get(), news.get(), letters.get()}) {
    for (const SinkTransaction& transaction : sink->Transactions()) {
      ASSERT_EQ(transaction.recipients.size(), 1u);
      EXPECT_THAT(transaction.data, HasSubstr("this is for " + transaction.recipients.front() + "."));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Blacklists

TEST_F(EngineRealServersTest, BlacklistedRecipientsAreNeverSent) {
  std::unique_ptr<AiosmtpdServer> server = StartAiosmtpd("relay");
  ASSERT_NE(server, nullptr);
  WriteAccounts(SmtpAccount("relay", server->port(), "max_connections = 2"));
  dir_.Write("blacklist.txt",
             "# addresses that asked never to be mailed\n"
             "blocked@example.com\n"
             "\n"
             "*@spam.test\n"
             "banned.test\n");
  const std::vector<std::string> sendable = {"ok1@example.com", "ok2@sub.banned.test", "ok3@example.org",
                                             "blocked2@example.com"};
  const std::vector<std::string> blacklisted = {"Blocked@Example.com", "anyone@spam.test", "someone@banned.test",
                                                "Other@BANNED.test"};
  std::vector<std::string> all = {sendable[0], blacklisted[0], sendable[1], blacklisted[1],
                                  sendable[2], blacklisted[2], sendable[3], blacklisted[3]};
  std::string task = WriteTask("blacklist", "news@example.com", all, "concurrency = 2",
                               "blacklists = [\"blacklist.txt\"]");
  std::optional<RunOutput> run = Run(task);
  ASSERT_TRUE(run.has_value());

  EXPECT_EQ(run->report.blacklisted, blacklisted.size());
  EXPECT_EQ(run->report.sent, sendable.size());
  ExpectSentThrough(*run, sendable, "relay");
  for (const std::string& address : blacklisted) {
    const RecipientRecord& stored = run->stored.at(Lower(address));
    EXPECT_EQ(RecipientStatusName(stored.status), "blacklisted") << address;
    EXPECT_EQ(stored.attempts, 0) << address;
    EXPECT_FALSE(run->results.contains(Lower(address))) << address << ": no attempt, so no result";
  }
  EXPECT_EQ(CountByRecipient(server->Messages()), Once(sendable)) << server->Log();

  // A second run sends nothing: the blacklisted stay blacklisted, the sent stay sent.
  std::optional<RunOutput> again = Run(task);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->report.sent, 0u);
  EXPECT_EQ(again->report.counts[RecipientStatus::kBlacklisted], blacklisted.size());
  EXPECT_EQ(CountByRecipient(server->Messages()), Once(sendable)) << server->Log();
}

// ---------------------------------------------------------------------------------------------
// Turbo mode, against Postfix: one transaction carries many recipients; Postfix refuses one
// permanently and one temporarily at RCPT TO, and only those two do not go out.

constexpr char kRefused[] = "refused@example.org";
constexpr char kBusy[] = "busy@example.org";

// The Postfix queue id of a delivered message: its transaction at the server ("... with ESMTPSA
// id 4Xyz...").
std::string QueueId(const DeliveredMessage& message) {
  static const std::regex kId(R"(with ESMTPS?A? id ([0-9A-Za-z]+))");
  std::smatch match;
  return std::regex_search(message.data, match, kId) ? match[1].str() : std::string();
}

TEST_F(EngineRealServersTest, TurboModeSendsOneTransactionToManyRecipientsWithAResultEach) {
  constexpr int kPerMessage = 20;
  std::filesystem::create_directories(dir_.Path("certs"));
  TestCertificates certificates = MakeTestCertificates(dir_.Path("certs"));
  test_servers::TlsFiles tls{certificates.localhost.certificate, certificates.localhost.key};
  DovecotOptions dovecot_options;
  dovecot_options.directory = dir_.Path("dovecot");
  dovecot_options.users = {{"alice", kAlicePassword}};
  dovecot_options.pop3_port = kNoPort;
  dovecot_options.pop3s_port = kNoPort;
  DovecotServer dovecot(dovecot_options);
  Status started = dovecot.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  PostfixOptions postfix_options;
  postfix_options.directory = dir_.Path("postfix");
  postfix_options.tls = tls;
  postfix_options.smtps_port = kNoPort;
  postfix_options.smtp_port = kNoPort;
  postfix_options.sasl_socket = dovecot.auth_socket();
  postfix_options.rejected_recipients = {{kRefused, "550 5.1.1 User unknown"},
                                         {kBusy, "450 4.2.1 Mailbox busy, try later"}};
  PostfixServer postfix(postfix_options);
  started = postfix.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  WriteAccounts(fmt::format(
      "[[account]]\n"
      "name = \"relay\"\n"
      "kind = \"smtp\"\n"
      "host = \"127.0.0.1\"\n"
      "port = {}\n"
      "security = \"starttls\"\n"
      "ca_file = \"{}\"\n"
      "username = \"alice\"\n"
      "password_file = \"{}\"\n"
      "helo_name = \"{}\"\n"
      "max_connections = 2\n"
      "recipients_per_message = {}\n",
      postfix.submission_port(), certificates.ca_file, dir_.Write("secret", std::string(kAlicePassword) + "\n"),
      kHeloName, kPerMessage));
  std::vector<std::string> delivered;
  for (int i = 0; i < 48; ++i) delivered.push_back(fmt::format("r{:02}@example.org", i));
  std::vector<std::string> all = delivered;
  all.insert(all.begin() + 7, kRefused);
  all.insert(all.begin() + 31, kBusy);
  std::optional<RunOutput> run =
      Run(WriteTask("turbo", "news@example.com", all, "mode = \"turbo\"\nconcurrency = 2", "", kTurboMessage));
  ASSERT_TRUE(run.has_value());

  ExpectSentThrough(*run, delivered, "relay");
  const RecipientRecord& refused = run->stored.at(kRefused);
  EXPECT_EQ(RecipientStatusName(refused.status), "failed");
  EXPECT_EQ(refused.last_error.reply_code, 550);
  EXPECT_EQ(refused.last_error.enhanced_status, "5.1.1");
  EXPECT_THAT(refused.last_error.text, HasSubstr("User unknown"));
  const RecipientRecord& busy = run->stored.at(kBusy);
  EXPECT_EQ(RecipientStatusName(busy.status), "deferred");
  EXPECT_EQ(busy.last_error.reply_code, 450);
  EXPECT_EQ(busy.last_error.enhanced_status, "4.2.1");
  EXPECT_TRUE(busy.next_attempt_at.has_value());
  EXPECT_EQ(run->report.sent, delivered.size());
  EXPECT_EQ(run->report.failed, 1u);
  EXPECT_EQ(run->report.deferred, 1u);

  // At the server: 50 recipients in ceil(50 / 20) = 3 transactions, every deliverable recipient
  // once, the refused ones never.
  const std::size_t want_transactions = (all.size() + kPerMessage - 1) / kPerMessage;
  EXPECT_EQ(transports_.CountLines("relay", "C: MAIL FROM"), static_cast<int>(want_transactions))
      << transports_.Transcript("relay");
  std::vector<DeliveredMessage> messages;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       std::chrono::steady_clock::now() < deadline;) {
    messages = postfix.AllDelivered();
    if (messages.size() >= delivered.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // anything more would show now
  messages = postfix.AllDelivered();
  std::map<std::string, int> per_recipient;
  std::map<std::string, std::set<std::string>> by_transaction;
  for (const DeliveredMessage& message : messages) {
    ++per_recipient[Lower(message.recipient)];
    std::string id = QueueId(message);
    EXPECT_FALSE(id.empty()) << message.data.substr(0, 400);
    by_transaction[id].insert(message.recipient);
    EXPECT_EQ(message.sender, "news@example.com");
    // Bcc: the message names none of its recipients; it is addressed to the sender.
    EXPECT_THAT(message.ClientData(), Not(HasSubstr(message.recipient))) << message.recipient;
    EXPECT_THAT(message.ClientData(), HasSubstr("\r\nTo: news@example.com\r\n"));
  }
  EXPECT_EQ(per_recipient, Once(delivered)) << postfix.Log();
  EXPECT_EQ(by_transaction.size(), want_transactions);
  std::vector<std::size_t> sizes;
  for (const auto& [id, recipients] : by_transaction) sizes.push_back(recipients.size());
  std::sort(sizes.begin(), sizes.end());
  // 20 + 20 + 10 recipients sent, of which the transaction(s) holding refused@ and busy@ lost one each.
  std::size_t total = 0;
  for (std::size_t size : sizes) total += size;
  EXPECT_EQ(total, delivered.size());
  EXPECT_THAT(sizes, Each(testing::Le(static_cast<std::size_t>(kPerMessage))));
  EXPECT_GE(sizes.back(), static_cast<std::size_t>(kPerMessage - 2)) << "one transaction carried a full batch";
}

}  // namespace
}  // namespace herald
