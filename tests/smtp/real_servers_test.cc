// herald's SMTP client against real mail servers (docs/design.md, "How it is tested"): each
// account is written as accounts TOML the way users write it, loaded by LoadAccounts, turned into
// an SmtpTransport and driven against Postfix (submission with STARTTLS, smtps, AUTH through
// Dovecot, POP-before-SMTP, SIZE), python3-aiosmtpd and Postfix's smtp-sink. Every case checks
// the Outcome of each recipient and what actually arrived at the server (or that nothing did).
//
// Servers come from tests/servers/mail_servers.h and need root and Debian's packages (scripts/setup.sh
// test). Servers a suite shares start once in its SetUpTestSuite; the certificates and the Dovecot
// every Postfix authenticates against are shared by the whole binary (SharedServers).
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.h"
#include "servers/mail_servers.h"
#include "smtp/smtp_transport.h"
#include "temp_dir.h"
#include "tls_certificates.h"

namespace herald {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;
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
using test_servers::TlsFiles;

constexpr char kHeloName[] = "client.herald.test";
constexpr char kAlicePassword[] = "wonderland";
constexpr char kBobPassword[] = "builder";

// ---------------------------------------------------------------------------------------------
// Messages, envelopes and outcomes

// A message as herald's composer writes one: CRLF lines, headers, then a body with a line that
// needs dot-stuffing, a lone dot, 8-bit UTF-8 and a 900-octet line. The body is a shared piece
// (as a task's attachment would be), the headers are the message's own.
struct TestMessage {
  std::string text;
  std::shared_ptr<const MessageData> data;
};

TestMessage Compose(const std::string& subject, std::size_t padding = 0) {
  static int counter = 0;
  std::string headers = fmt::format(
      "From: Herald Test <news@herald.test>\r\n"
      "To: Readers <readers@example.test>\r\n"
      "Subject: {}\r\n"
      "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
      "Message-ID: <real-servers-{}@herald.test>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n",
      subject, ++counter);
  std::string body =
      "Hello,\r\n"
      ".a line that starts with a dot\r\n"
      ".\r\n"
      "Grüße aus Köln — ünïcödé\r\n" +
      std::string(900, 'x') + "\r\n";
  for (std::size_t i = 0; i < padding / 72; ++i) body += std::string(70, 'p') + "\r\n";
  body += "end\r\n";
  auto data = std::make_shared<MessageData>();
  data->Append(headers);
  data->AppendShared(std::make_shared<const std::string>(body));
  return TestMessage{headers + body, std::move(data)};
}

// The Subject: of a message ("" when it has none).
std::string Subject(const std::string& message) {
  std::size_t start = message.find("\r\nSubject: ");
  if (start == std::string::npos) return "";
  start += 11;
  return message.substr(start, message.find("\r\n", start) - start);
}

Envelope EnvelopeTo(std::vector<std::string> recipients, std::string mail_from = "news@herald.test") {
  return Envelope{std::move(mail_from), std::move(recipients), false};
}

std::string_view DispositionName(Disposition disposition) {
  switch (disposition) {
    case Disposition::kDelivered: return "delivered";
    case Disposition::kTemporary: return "temporary";
    case Disposition::kPermanent: return "permanent";
  }
  return "?";
}

std::string_view ScopeName(Scope scope) {
  switch (scope) {
    case Scope::kRecipient: return "recipient";
    case Scope::kMessage: return "message";
    case Scope::kAccount: return "account";
    case Scope::kDestination: return "destination";
    case Scope::kLocal: return "local";
  }
  return "?";
}

// The classified fields of an outcome in one line, so a check shows got and want side by side:
// "permanent | recipient | RCPT TO | 550 | 5.1.1".
std::string Fields(const Outcome& outcome) {
  return fmt::format("{} | {} | {} | {} | {}", DispositionName(outcome.disposition), ScopeName(outcome.scope),
                     StageName(outcome.stage), outcome.reply_code, outcome.enhanced_status);
}

// What a message accepted at the end of data looks like; the stage and reply say who accepted it.
constexpr char kAcceptedByPostfix[] = "delivered | message | end of data | 250 | 2.0.0";

// ---------------------------------------------------------------------------------------------
// Accounts from TOML, and sessions through their transport

// One account as a user configures it: the TOML text is written to a file, loaded by LoadAccounts
// (which checks it as it checks users' files) and the transport made by SmtpTransport::Create.
// The dialogue of every session (AUTH redacted) is kept for checks on what crossed the wire.
class Account {
 public:
  // Loads the first account of `toml`; null (with a test failure) when it does not load.
  static std::unique_ptr<Account> Load(const TempDir& dir, const std::string& toml) {
    static int counter = 0;
    std::string path = dir.Write(fmt::format("accounts/accounts-{}.toml", ++counter), toml);
    Result<AccountSet> accounts = LoadAccounts(path);
    if (!accounts.ok()) {
      ADD_FAILURE() << accounts.status().ToString() << "\n" << toml;
      return nullptr;
    }
    std::unique_ptr<Account> account(new Account(std::move(*accounts)));
    auto transport = SmtpTransport::Create(account->config(),
                                           [raw = account.get()](std::string_view line) {
                                             raw->transcript_.emplace_back(line);
                                           });
    if (!transport.ok()) {
      ADD_FAILURE() << transport.status().ToString();
      return nullptr;
    }
    account->transport_ = std::move(*transport);
    return account;
  }

  const AccountConfig& config() const { return accounts_.accounts().front(); }
  SmtpTransport& transport() { return *transport_; }

  std::string Transcript() const {
    std::string all;
    for (const std::string& line : transcript_) all += line + "\n";
    return all;
  }
  // Lines of the dialogue starting with `prefix`, e.g. "C: MAIL FROM".
  int CountLines(std::string_view prefix) const {
    return static_cast<int>(std::count_if(transcript_.begin(), transcript_.end(),
                                          [&](const std::string& line) { return line.starts_with(prefix); }));
  }

 private:
  explicit Account(AccountSet accounts) : accounts_(std::move(accounts)) {}

  AccountSet accounts_;  // the transport keeps a reference to its AccountConfig
  std::unique_ptr<SmtpTransport> transport_;
  std::vector<std::string> transcript_;
};

struct Delivery {
  Envelope envelope;
  std::shared_ptr<const MessageData> message;
};

// What one connection did: the connect failure, or one outcome list per message.
struct ConnectionRun {
  bool connected = false;
  Outcome failure;  // when not connected
  std::vector<std::vector<Outcome>> outcomes;
  bool reusable = false;  // after the last message, before QUIT
};

asio::awaitable<ConnectionRun> ConnectionTask(Transport* transport, std::vector<Delivery> deliveries) {
  ConnectionRun run;
  ConnectResult connected = co_await transport->Connect(std::string());
  if (connected.connection == nullptr) {
    run.failure = std::move(connected.failure);
    co_return run;
  }
  run.connected = true;
  for (Delivery& delivery : deliveries) {
    std::vector<Outcome> outcomes = co_await connected.connection->Send(std::move(delivery.envelope), delivery.message);
    run.outcomes.push_back(std::move(outcomes));
  }
  run.reusable = connected.connection->reusable();
  co_await connected.connection->Close();
  co_return run;
}

// Runs one connection per element of `work`, all at the same time on one io_context (the engine's
// model: one thread, many sessions), each carrying its messages in order.
std::vector<ConnectionRun> RunConnections(Transport& transport, std::vector<std::vector<Delivery>> work) {
  asio::io_context io;
  std::vector<ConnectionRun> runs(work.size());
  for (std::size_t i = 0; i < work.size(); ++i) {
    asio::co_spawn(io, ConnectionTask(&transport, std::move(work[i])),
                   [&runs, i](std::exception_ptr failure, ConnectionRun run) {
                     if (failure) std::rethrow_exception(failure);
                     runs[i] = std::move(run);
                   });
  }
  io.run();
  return runs;
}

ConnectionRun RunConnection(Transport& transport, std::vector<Delivery> deliveries) {
  std::vector<std::vector<Delivery>> work;
  work.push_back(std::move(deliveries));
  return std::move(RunConnections(transport, std::move(work)).front());
}

// ---------------------------------------------------------------------------------------------
// Servers shared by the whole binary

// The folder, certificates and the Dovecot (POP3, POP3S, SASL for every Postfix here) that the
// suites share; made on first use, removed after the last test.
class SharedServers : public ::testing::Environment {
 public:
  static const TempDir& Dir() {
    if (!dir_) dir_ = std::make_unique<TempDir>();
    return *dir_;
  }

  static const TestCertificates& Certificates() {
    if (!certificates_) {
      std::filesystem::create_directories(Dir().Path("certs"));
      certificates_ = std::make_unique<TestCertificates>(MakeTestCertificates(Dir().Path("certs")));
    }
    return *certificates_;
  }

  static TlsFiles Tls(const CertificateFiles& files) { return TlsFiles{files.certificate, files.key}; }

  // Where Dovecot records POP3 logins and Postfix's POP-before-SMTP policy reads them.
  static std::string PopBeforeSmtpDirectory() { return Dir().Path("pop-before-smtp"); }

  // Dovecot with users alice and bob; the error (with its log) when it did not start.
  static Result<DovecotServer*> Dovecot() {
    if (!dovecot_) {
      DovecotOptions options;
      options.directory = Dir().Path("dovecot");
      options.users = {{"alice", kAlicePassword}, {"bob", kBobPassword}};
      options.tls = Tls(Certificates().localhost);
      options.pop_before_smtp_directory = PopBeforeSmtpDirectory();
      dovecot_ = std::make_unique<DovecotServer>(options);
      dovecot_started_ = dovecot_->Start();
    }
    if (!dovecot_started_.ok()) return dovecot_started_;
    return dovecot_.get();
  }

  // A file holding `password`, for password_file in accounts TOML.
  static std::string PasswordFile(const std::string& password) {
    return Dir().Write("secrets/" + password, password + "\n");
  }

  void TearDown() override {
    dovecot_.reset();
    certificates_.reset();
    dir_.reset();
  }

 private:
  static inline std::unique_ptr<TempDir> dir_;
  static inline std::unique_ptr<TestCertificates> certificates_;
  static inline std::unique_ptr<DovecotServer> dovecot_;
  static inline Status dovecot_started_;
};

[[maybe_unused]] ::testing::Environment* const kSharedServers =
    ::testing::AddGlobalTestEnvironment(new SharedServers);

// A Postfix for a suite, authenticating through the shared Dovecot.
std::unique_ptr<PostfixServer> StartPostfix(PostfixOptions options, Status& started) {
  Result<DovecotServer*> dovecot = SharedServers::Dovecot();
  if (!dovecot.ok()) {
    started = dovecot.status();
    return nullptr;
  }
  options.sasl_socket = (*dovecot)->auth_socket();
  auto postfix = std::make_unique<PostfixServer>(std::move(options));
  started = postfix->Start();
  return postfix;
}

// accounts TOML for a relay on `host`. `extra` adds lines to the [[account]] table.
std::string RelayAccount(int port, std::string_view security, std::string_view extra,
                         std::string_view host = "127.0.0.1") {
  return fmt::format(
      "[[account]]\n"
      "name = \"relay\"\n"
      "kind = \"smtp\"\n"
      "host = \"{}\"\n"
      "port = {}\n"
      "security = \"{}\"\n"
      "helo_name = \"{}\"\n"
      "timeout = \"10s\"\n"
      "{}",
      host, port, security, kHeloName, extra);
}

// The lines for alice's password login with the test CA trusted; `methods` e.g. "\"plain\"".
std::string AliceLogin(std::string_view methods = "", std::string_view password = kAlicePassword) {
  std::string lines = fmt::format(
      "ca_file = \"{}\"\n"
      "username = \"alice\"\n"
      "password_file = \"{}\"\n",
      SharedServers::Certificates().ca_file, SharedServers::PasswordFile(std::string(password)));
  if (!methods.empty()) lines += fmt::format("auth_methods = [{}]\n", methods);
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Postfix: submission (STARTTLS), smtps, smtp with POP-before-SMTP; AUTH through Dovecot

constexpr char kUnknownRecipient[] = "nobody@example.test";

class PostfixRelayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PostfixOptions options;
    options.directory = SharedServers::Dir().Path("postfix");
    options.tls = SharedServers::Tls(SharedServers::Certificates().localhost);
    options.pop_before_smtp_directory = SharedServers::PopBeforeSmtpDirectory();
    options.rejected_recipients = {{kUnknownRecipient, "550 5.1.1 User unknown"}};
    postfix_ = StartPostfix(options, started_);
  }
  static void TearDownTestSuite() { postfix_.reset(); }
  void SetUp() override { ASSERT_TRUE(started_.ok()) << started_.ToString(); }

  static std::unique_ptr<Account> Load(const std::string& toml) {
    return Account::Load(SharedServers::Dir(), toml);
  }

  // Waits until `recipient` has the messages `want` ({sender, message} in any order: Postfix
  // delivers in parallel) and checks each arrived byte for byte, over TLS, authenticated when
  // `esmtpsa`, and nothing else arrived.
  static void ExpectArrived(const std::string& recipient, const std::vector<std::pair<std::string, std::string>>& want,
                            bool esmtpsa = true) {
    auto delivered = postfix_->WaitForDelivered(recipient, want.size());
    ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
    std::vector<std::pair<std::string, std::string>> got;
    for (const DeliveredMessage& message : *delivered) {
      EXPECT_EQ(message.recipient, recipient);
      EXPECT_THAT(message.data, AllOf(StartsWith(std::string("Received: from ") + kHeloName),
                                      HasSubstr(esmtpsa ? "with ESMTPSA id" : "with ESMTPS id")));
      got.emplace_back(message.sender, message.ClientData());
    }
    EXPECT_THAT(got, UnorderedElementsAreArray(want)) << recipient;
  }

  static inline std::unique_ptr<PostfixServer> postfix_;
  static inline Status started_;
};

TEST_F(PostfixRelayTest, SubmissionWithStartTlsAndAuthPlainDeliversExactBytesAndOutcomesPerRecipient) {
  auto account = Load(RelayAccount(postfix_->submission_port(), "starttls", AliceLogin("\"plain\"")));
  ASSERT_NE(account, nullptr);
  TestMessage first = Compose("first: three recipients, one unknown");
  TestMessage second = Compose("second: same connection");
  TestMessage third = Compose("third: null sender");
  std::vector<Delivery> deliveries;
  deliveries.push_back({EnvelopeTo({"bob@example.test", kUnknownRecipient, "carol@example.org"}), first.data});
  deliveries.push_back({EnvelopeTo({"carol@example.org"}), second.data});
  deliveries.push_back({EnvelopeTo({"bob@example.test"}, ""), third.data});

  ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
  ASSERT_TRUE(run.connected) << run.failure.text << "\n" << account->Transcript() << postfix_->Log();
  ASSERT_EQ(run.outcomes.size(), 3u);
  ASSERT_EQ(run.outcomes[0].size(), 3u);
  EXPECT_EQ(Fields(run.outcomes[0][0]), kAcceptedByPostfix) << run.outcomes[0][0].text;
  EXPECT_THAT(run.outcomes[0][0].text, StartsWith("Ok: queued as "));
  // The recipient Postfix refuses: permanent, for this recipient only, with Postfix's words.
  EXPECT_EQ(Fields(run.outcomes[0][1]), "permanent | recipient | RCPT TO | 550 | 5.1.1");
  EXPECT_EQ(run.outcomes[0][1].text,
            std::string("<") + kUnknownRecipient + ">: Recipient address rejected: User unknown");
  EXPECT_EQ(Fields(run.outcomes[0][2]), kAcceptedByPostfix) << run.outcomes[0][2].text;
  EXPECT_EQ(run.outcomes[0][2].text, run.outcomes[0][0].text) << "one transaction, one queue id";
  ASSERT_EQ(run.outcomes[1].size(), 1u);
  EXPECT_EQ(Fields(run.outcomes[1][0]), kAcceptedByPostfix) << run.outcomes[1][0].text;
  EXPECT_NE(run.outcomes[1][0].text, run.outcomes[0][0].text);
  ASSERT_EQ(run.outcomes[2].size(), 1u);
  EXPECT_EQ(Fields(run.outcomes[2][0]), kAcceptedByPostfix) << run.outcomes[2][0].text;
  EXPECT_TRUE(run.reusable);

  ExpectArrived("bob@example.test", {{"news@herald.test", first.text}, {"", third.text}});
  ExpectArrived("carol@example.org", {{"news@herald.test", first.text}, {"news@herald.test", second.text}});
  EXPECT_THAT(postfix_->Delivered(kUnknownRecipient), IsEmpty());

  // One connection: STARTTLS, EHLO again, AUTH PLAIN, three transactions, QUIT; no secret in the log.
  EXPECT_EQ(account->CountLines("C: STARTTLS"), 1);
  EXPECT_EQ(account->CountLines("C: EHLO client.herald.test"), 2);
  EXPECT_EQ(account->CountLines("C: AUTH PLAIN"), 1);
  EXPECT_EQ(account->CountLines("C: MAIL FROM"), 3);
  EXPECT_EQ(account->CountLines("C: QUIT"), 1);
  EXPECT_THAT(account->Transcript(), AllOf(Not(HasSubstr(kAlicePassword)), Not(HasSubstr("AGFsaWNl"))));
}

TEST_F(PostfixRelayTest, AuthLoginAndCramMd5AsTheAccountAllows) {
  for (std::string method : {"login", "cram-md5"}) {
    SCOPED_TRACE(method);
    auto account = Load(RelayAccount(postfix_->submission_port(), "starttls", AliceLogin("\"" + method + "\"")));
    ASSERT_NE(account, nullptr);
    TestMessage message = Compose("AUTH " + method);
    std::string recipient = "dave-" + method + "@example.test";
    std::vector<Delivery> deliveries;
    deliveries.push_back({EnvelopeTo({recipient}), message.data});
    ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
    ASSERT_TRUE(run.connected) << run.failure.text << "\n" << account->Transcript();
    EXPECT_EQ(Fields(run.outcomes[0][0]), kAcceptedByPostfix) << run.outcomes[0][0].text;
    std::string upper = method == "login" ? "LOGIN" : "CRAM-MD5";
    EXPECT_EQ(account->CountLines("C: AUTH " + upper), 1) << account->Transcript();
    EXPECT_THAT(account->Transcript(), HasSubstr("S: 235 2.7.0 Authentication successful"));
    ExpectArrived(recipient, {{"news@herald.test", message.text}});
  }
}

TEST_F(PostfixRelayTest, SmtpsIsImplicitTls) {
  auto account = Load(RelayAccount(postfix_->smtps_port(), "tls", AliceLogin()));
  ASSERT_NE(account, nullptr);
  ASSERT_EQ(account->config().security, Security::kTls);
  TestMessage message = Compose("implicit TLS");
  std::vector<Delivery> deliveries;
  deliveries.push_back({EnvelopeTo({"erin@example.test", "frank@example.org"}), message.data});
  ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
  ASSERT_TRUE(run.connected) << run.failure.text << "\n" << account->Transcript();
  for (const Outcome& outcome : run.outcomes[0]) EXPECT_EQ(Fields(outcome), kAcceptedByPostfix) << outcome.text;
  EXPECT_EQ(account->CountLines("C: STARTTLS"), 0);
  EXPECT_EQ(account->CountLines("C: EHLO"), 1);
  ExpectArrived("erin@example.test", {{"news@herald.test", message.text}});
  ExpectArrived("frank@example.org", {{"news@herald.test", message.text}});
}

TEST_F(PostfixRelayTest, SmtpUtf8AddressesAndAMessageLargerThanOneDataBlock) {
  auto account = Load(RelayAccount(postfix_->submission_port(), "starttls", AliceLogin()));
  ASSERT_NE(account, nullptr);
  TestMessage international = Compose("SMTPUTF8: Grüße");
  TestMessage large = Compose("three megabytes", 3 << 20);  // the session writes 1 MiB blocks
  std::vector<Delivery> deliveries;
  Envelope utf8 = EnvelopeTo({"jürgen@example.test"}, "nachrichten@herald.test");
  utf8.smtputf8 = true;
  deliveries.push_back({utf8, international.data});
  deliveries.push_back({EnvelopeTo({"large@example.test"}), large.data});
  ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
  ASSERT_TRUE(run.connected) << run.failure.text;
  EXPECT_EQ(Fields(run.outcomes[0][0]), kAcceptedByPostfix) << run.outcomes[0][0].text;
  EXPECT_EQ(Fields(run.outcomes[1][0]), kAcceptedByPostfix) << run.outcomes[1][0].text;
  EXPECT_THAT(account->Transcript(),
              HasSubstr(fmt::format("C: MAIL FROM:<nachrichten@herald.test> SIZE={} BODY=8BITMIME SMTPUTF8\n",
                                    international.text.size())));

  auto to_jurgen = postfix_->WaitForDelivered("jürgen@example.test", 1);
  ASSERT_TRUE(to_jurgen.ok()) << to_jurgen.status().ToString();
  EXPECT_EQ(to_jurgen->front().sender, "nachrichten@herald.test");
  EXPECT_EQ(to_jurgen->front().ClientData(), international.text);
  EXPECT_THAT(to_jurgen->front().data, HasSubstr("with UTF8SMTPSA id"));  // RFC 6531 §3.7.3
  auto to_large = postfix_->WaitForDelivered("large@example.test", 1);
  ASSERT_TRUE(to_large.ok()) << to_large.status().ToString();
  ASSERT_GT(large.text.size(), 3u << 20);
  std::string arrived = to_large->front().ClientData();
  EXPECT_EQ(arrived.size(), large.text.size());
  EXPECT_TRUE(arrived == large.text) << "the large message arrived changed";
}

TEST_F(PostfixRelayTest, WrongPasswordIsAPermanentAccountFailureWithPostfixsText) {
  for (std::string method : {"plain", "login", "cram-md5"}) {
    SCOPED_TRACE(method);
    auto account = Load(
        RelayAccount(postfix_->submission_port(), "starttls", AliceLogin("\"" + method + "\"", "not-the-password")));
    ASSERT_NE(account, nullptr);
    TestMessage message = Compose("never sent");
    std::vector<Delivery> deliveries;
    deliveries.push_back({EnvelopeTo({"grace@example.test"}), message.data});
    ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
    ASSERT_FALSE(run.connected) << account->Transcript();
    EXPECT_EQ(Fields(run.failure), "permanent | account | AUTH | 535 | 5.7.8");
    EXPECT_THAT(run.failure.text, StartsWith("Error: authentication failed"));  // Postfix's words
    EXPECT_EQ(account->CountLines("C: MAIL FROM"), 0);
    EXPECT_THAT(account->Transcript(), Not(HasSubstr("not-the-password")));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_THAT(postfix_->Delivered("grace@example.test"), IsEmpty());
}

// POP-before-SMTP: Postfix's smtp port relays for a client address only after a POP3 login there
// (the harness's policy service); herald logs in to Dovecot before connecting.
TEST_F(PostfixRelayTest, PopBeforeSmtpOpensTheRelayThatIsClosedWithoutIt) {
  Result<DovecotServer*> dovecot = SharedServers::Dovecot();
  ASSERT_TRUE(dovecot.ok());
  const std::string login_record = SharedServers::PopBeforeSmtpDirectory() + "/127.0.0.1";
  std::filesystem::remove(login_record);
  const std::string ca_file = SharedServers::Certificates().ca_file;
  const std::string smtp_account = RelayAccount(postfix_->smtp_port(), "starttls", "ca_file = \"" + ca_file + "\"\n");
  auto pop_section = [&](int port, std::string_view security, std::string_view password) {
    return fmt::format(
        "\n[account.pop_before_smtp]\n"
        "host = \"127.0.0.1\"\n"
        "port = {}\n"
        "security = \"{}\"\n"
        "ca_file = \"{}\"\n"
        "username = \"bob\"\n"
        "password_file = \"{}\"\n",
        port, security, ca_file, SharedServers::PasswordFile(std::string(password)));
  };
  auto send = [&](Account& account, const TestMessage& message) {
    std::vector<Delivery> deliveries;
    deliveries.push_back({EnvelopeTo({"heidi@example.test", "ivan@example.org"}), message.data});
    return RunConnection(account.transport(), std::move(deliveries));
  };

  // Without the pop section: relaying is refused per recipient (554 5.7.1), nothing arrives. The
  // connection stays usable: a recipient this Postfix is the destination for (its own address
  // literal) is accepted by the next transaction on it, after RSET.
  auto plain = Load(smtp_account);
  ASSERT_NE(plain, nullptr);
  TestMessage local = Compose("to the relay's own address literal");
  std::vector<Delivery> deliveries;
  deliveries.push_back({EnvelopeTo({"heidi@example.test", "ivan@example.org"}), Compose("refused").data});
  deliveries.push_back({EnvelopeTo({"heidi@[127.0.0.1]"}), local.data});
  ConnectionRun denied = RunConnection(plain->transport(), std::move(deliveries));
  ASSERT_TRUE(denied.connected) << denied.failure.text << "\n" << plain->Transcript();
  for (const Outcome& outcome : denied.outcomes[0]) {
    EXPECT_EQ(Fields(outcome), "permanent | recipient | RCPT TO | 554 | 5.7.1");
    EXPECT_THAT(outcome.text, HasSubstr("Relay access denied"));
  }
  EXPECT_EQ(Fields(denied.outcomes[1][0]), kAcceptedByPostfix)
      << denied.outcomes[1][0].text << "\n" << plain->Transcript();
  EXPECT_TRUE(denied.reusable);
  EXPECT_EQ(plain->CountLines("C: RSET"), 1);
  ExpectArrived("heidi@[127.0.0.1]", {{"news@herald.test", local.text}}, /*esmtpsa=*/false);

  // A wrong POP3 password: the account fails before any SMTP connection.
  auto wrong = Load(smtp_account + pop_section((*dovecot)->pop3_port(), "stls", "not-the-password"));
  ASSERT_NE(wrong, nullptr);
  ConnectionRun refused = send(*wrong, Compose("wrong POP3 password"));
  ASSERT_FALSE(refused.connected);
  EXPECT_EQ(Fields(refused.failure), "permanent | account | AUTH | 0 | ");
  EXPECT_THAT(refused.failure.text, AllOf(StartsWith("POP-before-SMTP: "), HasSubstr("Authentication failed")));
  EXPECT_THAT(wrong->Transcript(), IsEmpty()) << "no SMTP session";
  EXPECT_FALSE(std::filesystem::exists(login_record));

  // POP3 with STLS, then POP3S (the login record removed in between, so each opens the relay).
  struct Variant {
    int port;
    const char* security;
  };
  for (Variant variant : {Variant{(*dovecot)->pop3_port(), "stls"}, Variant{(*dovecot)->pop3s_port(), "tls"}}) {
    SCOPED_TRACE(variant.security);
    std::filesystem::remove(login_record);
    auto account = Load(smtp_account + pop_section(variant.port, variant.security, kBobPassword));
    ASSERT_NE(account, nullptr);
    ASSERT_TRUE(account->config().pop_before_smtp.has_value());
    TestMessage message = Compose(std::string("after POP3 login with ") + variant.security);
    ConnectionRun run = send(*account, message);
    ASSERT_TRUE(run.connected) << run.failure.text << "\n" << (*dovecot)->Log();
    EXPECT_TRUE(std::filesystem::exists(login_record)) << "herald's POP3 login was recorded";
    for (const Outcome& outcome : run.outcomes[0]) EXPECT_EQ(Fields(outcome), kAcceptedByPostfix) << outcome.text;
  }
  std::filesystem::remove(login_record);

  auto heidi = postfix_->WaitForDelivered("heidi@example.test", 2);
  ASSERT_TRUE(heidi.ok()) << heidi.status().ToString();
  auto ivan = postfix_->WaitForDelivered("ivan@example.org", 2);
  ASSERT_TRUE(ivan.ok()) << ivan.status().ToString();
  std::vector<std::string> subjects;
  for (const DeliveredMessage& message : *heidi) subjects.push_back(Subject(message.ClientData()));
  EXPECT_THAT(subjects, UnorderedElementsAre("after POP3 login with stls", "after POP3 login with tls"));
  // Received over STARTTLS without SMTP AUTH.
  EXPECT_THAT((*heidi)[0].data, HasSubstr("with ESMTPS id"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(postfix_->Delivered("heidi@example.test").size(), 2u) << "nothing from the refused attempt";
}

// ---------------------------------------------------------------------------------------------
// Certificates: a Postfix per broken certificate, submission (STARTTLS) and smtps (implicit TLS)

struct BrokenCertificate {
  const char* name;
  CertificateFiles TestCertificates::*files;
  const char* want;  // what the outcome's text must name
};

const BrokenCertificate kBrokenCertificates[] = {
    {"self-signed", &TestCertificates::self_signed, "not trusted: self-signed certificate"},
    {"expired", &TestCertificates::expired, "not trusted: certificate has expired"},
    {"wrong-host", &TestCertificates::wrong_host,
     "not trusted: IP address mismatch: certificate is for mail.other.example"},
    {"unknown-ca", &TestCertificates::unknown_ca, "not trusted: unable to get local issuer certificate"},
};

class PostfixCertificateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    for (const BrokenCertificate& broken : kBrokenCertificates) {
      PostfixOptions options;
      options.directory = SharedServers::Dir().Path(std::string("postfix-") + broken.name);
      options.tls = SharedServers::Tls(SharedServers::Certificates().*broken.files);
      options.smtp_port = kNoPort;
      servers_[broken.name] = StartPostfix(options, started_);
      if (!started_.ok()) return;
    }
  }
  static void TearDownTestSuite() { servers_.clear(); }
  void SetUp() override { ASSERT_TRUE(started_.ok()) << started_.ToString(); }

  static inline std::map<std::string, std::unique_ptr<PostfixServer>> servers_;
  static inline Status started_;
};

TEST_F(PostfixCertificateTest, EachBrokenCertificateFailsTheAccountAndNothingIsSent) {
  for (const BrokenCertificate& broken : kBrokenCertificates) {
    SCOPED_TRACE(broken.name);
    PostfixServer& postfix = *servers_[broken.name];
    struct Port {
      int port;
      const char* security;
      const char* fields;
    };
    for (Port port : {Port{postfix.submission_port(), "starttls", "temporary | account | STARTTLS | 0 | "},
                      Port{postfix.smtps_port(), "tls", "temporary | account | connect | 0 | "}}) {
      SCOPED_TRACE(port.security);
      auto account = Account::Load(SharedServers::Dir(), RelayAccount(port.port, port.security, AliceLogin()));
      ASSERT_NE(account, nullptr);
      std::vector<Delivery> deliveries;
      deliveries.push_back({EnvelopeTo({"judy@example.test"}), Compose("untrusted").data});
      ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
      ASSERT_FALSE(run.connected) << account->Transcript();
      EXPECT_EQ(Fields(run.failure), port.fields) << run.failure.text;
      EXPECT_THAT(run.failure.text, HasSubstr(broken.want));
      EXPECT_EQ(account->CountLines("C: AUTH"), 0) << "no credentials over an untrusted connection";
      EXPECT_EQ(account->CountLines("C: MAIL FROM"), 0);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (const auto& [name, postfix] : servers_) EXPECT_THAT(postfix->AllDelivered(), IsEmpty()) << name;
}

TEST_F(PostfixCertificateTest, VerifyCertificateFalseDeliversToTheSelfSignedServer) {
  PostfixServer& postfix = *servers_["self-signed"];
  for (auto [port, security] :
       {std::pair{postfix.submission_port(), "starttls"}, std::pair{postfix.smtps_port(), "tls"}}) {
    SCOPED_TRACE(security);
    auto account = Account::Load(SharedServers::Dir(),
                                 RelayAccount(port, security, AliceLogin() + "verify_certificate = false\n"));
    ASSERT_NE(account, nullptr);
    ASSERT_FALSE(account->config().verify_certificate);
    TestMessage message = Compose(std::string("verification off, ") + security);
    std::vector<Delivery> deliveries;
    deliveries.push_back({EnvelopeTo({"ken@example.test"}), message.data});
    ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
    ASSERT_TRUE(run.connected) << run.failure.text;
    EXPECT_EQ(Fields(run.outcomes[0][0]), kAcceptedByPostfix) << run.outcomes[0][0].text;
  }
  auto delivered = postfix.WaitForDelivered("ken@example.test", 2);
  ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
  std::vector<std::string> subjects;
  for (const DeliveredMessage& message : *delivered) subjects.push_back(Subject(message.ClientData()));
  EXPECT_THAT(subjects, UnorderedElementsAre("verification off, starttls", "verification off, tls"));
}

// ---------------------------------------------------------------------------------------------
// SIZE: a Postfix with a small message_size_limit

class PostfixSizeLimitTest : public ::testing::Test {
 protected:
  static constexpr int kLimit = 6000;
  static void SetUpTestSuite() {
    PostfixOptions options;
    options.directory = SharedServers::Dir().Path("postfix-size");
    options.tls = SharedServers::Tls(SharedServers::Certificates().localhost);
    options.smtp_port = kNoPort;
    options.smtps_port = kNoPort;
    options.message_size_limit = kLimit;
    postfix_ = StartPostfix(options, started_);
  }
  static void TearDownTestSuite() { postfix_.reset(); }
  void SetUp() override { ASSERT_TRUE(started_.ok()) << started_.ToString(); }

  static inline std::unique_ptr<PostfixServer> postfix_;
  static inline Status started_;
};

TEST_F(PostfixSizeLimitTest, MessageOverTheAnnouncedLimitFailsBeforeItIsSent) {
  auto account = Account::Load(SharedServers::Dir(),
                               RelayAccount(postfix_->submission_port(), "starttls", AliceLogin()));
  ASSERT_NE(account, nullptr);
  TestMessage small = Compose("well under the limit", 1000);
  TestMessage large = Compose("over the limit", 2 * kLimit);
  // Under the announced SIZE, but over it once Postfix has added its Received: header (Postfix
  // counts the queue file): the server refuses it at the end of data.
  TestMessage borderline = Compose("just under the limit", kLimit - 1400);
  std::vector<Delivery> deliveries;
  deliveries.push_back({EnvelopeTo({"lena@example.test", "mike@example.test"}), large.data});
  deliveries.push_back({EnvelopeTo({"lena@example.test"}), small.data});
  deliveries.push_back({EnvelopeTo({"mike@example.test"}), borderline.data});
  ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
  ASSERT_TRUE(run.connected) << run.failure.text;
  EXPECT_THAT(account->Transcript(), HasSubstr(fmt::format("S: 250-SIZE {}", kLimit)));

  ASSERT_EQ(run.outcomes[0].size(), 2u);
  for (const Outcome& outcome : run.outcomes[0]) {
    EXPECT_EQ(Fields(outcome), "permanent | message | prepare | 0 | ");
    EXPECT_THAT(outcome.text, HasSubstr(fmt::format("larger than the server's limit of {} bytes (SIZE)", kLimit)));
  }
  EXPECT_EQ(Fields(run.outcomes[1][0]), kAcceptedByPostfix) << run.outcomes[1][0].text;
  ASSERT_LT(borderline.data->size(), static_cast<std::size_t>(kLimit));
  EXPECT_EQ(Fields(run.outcomes[2][0]), "permanent | message | end of data | 552 | 5.3.4") << run.outcomes[2][0].text;
  EXPECT_THAT(run.outcomes[2][0].text, HasSubstr("too big"));
  // The large message never went out: two transactions for three messages.
  EXPECT_EQ(account->CountLines("C: MAIL FROM"), 2);
  EXPECT_EQ(account->CountLines("C: <message"), 2);

  auto delivered = postfix_->WaitForDelivered("lena@example.test", 1);
  ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
  EXPECT_EQ(delivered->size(), 1u);
  EXPECT_EQ(delivered->front().ClientData(), small.text);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_THAT(postfix_->Delivered("mike@example.test"), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// python3-aiosmtpd and smtp-sink

class OtherServersTest : public ::testing::Test {
 protected:
  TempDir temp_;  // destroyed after the servers a test declares in its body
};

TEST_F(OtherServersTest, AiosmtpdWithRequiredStartTlsAndAuthRecordsTheEnvelope) {
  AiosmtpdOptions options;
  options.directory = temp_.Path("aiosmtpd");
  options.tls = SharedServers::Tls(SharedServers::Certificates().localhost);
  options.users = {{"alice", kAlicePassword}};
  options.require_starttls = true;
  options.auth_require_tls = true;
  options.auth_required = true;
  AiosmtpdServer server(options);
  Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  std::vector<TestMessage> messages;
  for (std::string method : {"plain", "login"}) {
    SCOPED_TRACE(method);
    auto account = Account::Load(temp_, RelayAccount(server.port(), "starttls", AliceLogin("\"" + method + "\"")));
    ASSERT_NE(account, nullptr);
    messages.push_back(Compose("to aiosmtpd with AUTH " + method));
    std::vector<Delivery> deliveries;
    deliveries.push_back({EnvelopeTo({"bob@example.test", "carol@example.test"}), messages.back().data});
    ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
    ASSERT_TRUE(run.connected) << run.failure.text << "\n" << account->Transcript() << server.Log();
    for (const Outcome& outcome : run.outcomes[0]) {
      EXPECT_EQ(Fields(outcome), "delivered | message | end of data | 250 | 2.0.0");
      EXPECT_THAT(outcome.text, StartsWith("Ok: recorded as"));
    }
    EXPECT_EQ(account->CountLines("C: AUTH " + std::string(method == "plain" ? "PLAIN" : "LOGIN")), 1);
  }

  auto recorded = server.WaitForMessages(2);
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
  ASSERT_EQ(recorded->size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const RecordedMessage& message = (*recorded)[i];
    EXPECT_EQ(message.mail_from, "news@herald.test");
    EXPECT_THAT(message.rcpt_tos, ElementsAre("bob@example.test", "carol@example.test"));
    EXPECT_THAT(message.mail_options, ElementsAre("SIZE=" + std::to_string(messages[i].text.size())));
    EXPECT_THAT(message.rcpt_options, IsEmpty());
    EXPECT_EQ(message.helo, kHeloName);
    EXPECT_EQ(message.auth_user, "alice");
    EXPECT_TRUE(message.tls);
    EXPECT_EQ(message.data, messages[i].text);
  }
}

TEST_F(OtherServersTest, Ipv6LoopbackWithTheCertificateCheckedForTheAddress) {
  if (!test_servers::PickFreePort("::1").ok()) GTEST_SKIP() << "no IPv6 loopback on this machine";
  struct Case {
    const char* name;
    CertificateFiles TestCertificates::*files;
  };
  for (Case c : {Case{"localhost", &TestCertificates::localhost}, Case{"wrong-host", &TestCertificates::wrong_host}}) {
    SCOPED_TRACE(c.name);
    AiosmtpdOptions options;
    options.directory = temp_.Path(std::string("aiosmtpd-") + c.name);
    options.host = "::1";
    options.tls = SharedServers::Tls(SharedServers::Certificates().*c.files);
    options.users = {{"alice", kAlicePassword}};
    options.require_starttls = true;
    options.auth_require_tls = true;
    AiosmtpdServer server(options);
    Status started = server.Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    auto account = Account::Load(temp_, RelayAccount(server.port(), "starttls", AliceLogin(), "[::1]"));
    ASSERT_NE(account, nullptr);
    ASSERT_EQ(account->config().host, "::1");
    TestMessage message = Compose("over IPv6");
    std::vector<Delivery> deliveries;
    deliveries.push_back({EnvelopeTo({"bob@example.test"}), message.data});
    ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
    if (c.files == &TestCertificates::localhost) {
      ASSERT_TRUE(run.connected) << run.failure.text << "\n" << server.Log();
      EXPECT_EQ(Fields(run.outcomes[0][0]), "delivered | message | end of data | 250 | 2.0.0");
      auto recorded = server.WaitForMessages(1);
      ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
      EXPECT_EQ(recorded->front().data, message.text);
      EXPECT_TRUE(recorded->front().tls);
    } else {
      ASSERT_FALSE(run.connected);
      EXPECT_EQ(Fields(run.failure), "temporary | account | STARTTLS | 0 | ");
      EXPECT_THAT(run.failure.text, HasSubstr("certificate of ::1 not trusted: IP address mismatch"));
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      EXPECT_THAT(server.Messages(), IsEmpty());
    }
  }
}

TEST_F(OtherServersTest, RequiredStartTlsNotOfferedSendsNothing) {
  SmtpSinkOptions sink_options;
  sink_options.directory = temp_.Path("sink");
  SmtpSink sink(sink_options);
  Status started = sink.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  AiosmtpdOptions aiosmtpd_options;
  aiosmtpd_options.directory = temp_.Path("aiosmtpd");
  aiosmtpd_options.users = {{"alice", kAlicePassword}};  // AUTH offered in clear: still not used
  AiosmtpdServer aiosmtpd(aiosmtpd_options);
  started = aiosmtpd.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  for (auto [name, port] : {std::pair{"smtp-sink", sink.port()}, std::pair{"aiosmtpd", aiosmtpd.port()}}) {
    SCOPED_TRACE(name);
    auto account = Account::Load(temp_, RelayAccount(port, "starttls", AliceLogin()));
    ASSERT_NE(account, nullptr);
    std::vector<Delivery> deliveries;
    deliveries.push_back({EnvelopeTo({"bob@example.test"}), Compose("must not be sent in clear").data});
    ConnectionRun run = RunConnection(account->transport(), std::move(deliveries));
    ASSERT_FALSE(run.connected) << account->Transcript();
    EXPECT_EQ(Fields(run.failure), "permanent | account | STARTTLS | 0 | ");
    EXPECT_THAT(run.failure.text, HasSubstr("does not offer STARTTLS"));
    EXPECT_EQ(account->CountLines("C: AUTH"), 0);
    EXPECT_EQ(account->CountLines("C: MAIL FROM"), 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(sink.MessageCount(), 0);
  EXPECT_THAT(sink.Transactions(), IsEmpty());
  EXPECT_THAT(aiosmtpd.Messages(), IsEmpty());
}

// A password account on a plain connection (security = "none") to a server that offers AUTH PLAIN
// and LOGIN in clear: without allow_plaintext_auth neither the password nor any mail goes out and
// the account fails naming the settings to change; with it, the message is delivered.
TEST_F(OtherServersTest, APasswordCrossesAPlainConnectionOnlyWithAllowPlaintextAuth) {
  AiosmtpdOptions options;
  options.directory = temp_.Path("aiosmtpd");
  options.users = {{"alice", kAlicePassword}};
  AiosmtpdServer server(options);
  Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  auto refused = Account::Load(temp_, RelayAccount(server.port(), "none", AliceLogin()));
  ASSERT_NE(refused, nullptr);
  std::vector<Delivery> deliveries;
  deliveries.push_back({EnvelopeTo({"bob@example.test"}), Compose("password in clear").data});
  ConnectionRun run = RunConnection(refused->transport(), std::move(deliveries));
  ASSERT_FALSE(run.connected) << refused->Transcript();
  EXPECT_EQ(Fields(run.failure), "permanent | account | AUTH | 0 | ");
  EXPECT_THAT(run.failure.text, HasSubstr("none protects the credentials on an unencrypted connection"));
  EXPECT_THAT(run.failure.text, HasSubstr("allow_plaintext_auth = true"));
  EXPECT_EQ(refused->CountLines("C: AUTH"), 0);
  EXPECT_EQ(refused->CountLines("C: MAIL FROM"), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_THAT(server.Messages(), IsEmpty());

  auto allowed =
      Account::Load(temp_, RelayAccount(server.port(), "none", AliceLogin() + "allow_plaintext_auth = true\n"));
  ASSERT_NE(allowed, nullptr);
  deliveries.clear();
  deliveries.push_back({EnvelopeTo({"bob@example.test"}), Compose("password in clear, allowed").data});
  run = RunConnection(allowed->transport(), std::move(deliveries));
  ASSERT_TRUE(run.connected) << run.failure.text << "\n" << allowed->Transcript();
  EXPECT_TRUE(run.outcomes[0][0].delivered()) << run.outcomes[0][0].text;
  auto recorded = server.WaitForMessages(1);
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
  EXPECT_EQ(recorded->front().auth_user, "alice");
  EXPECT_FALSE(recorded->front().tls);
}

// Per message of the sink test: a recipient of its own and one they all share.
Envelope SinkEnvelope(int i) {
  return EnvelopeTo({fmt::format("r{:03}@example.test", i), "all@example.test"});
}

TEST_F(OtherServersTest, SmtpSinkCountsTwoHundredMessagesOverFourConnections) {
  constexpr int kConnections = 4;
  constexpr int kMessages = 200;
  SmtpSinkOptions options;
  options.directory = temp_.Path("sink");
  SmtpSink sink(options);
  Status started = sink.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto account = Account::Load(temp_, RelayAccount(sink.port(), "none", ""));
  ASSERT_NE(account, nullptr);

  TestMessage message = Compose("bulk");
  std::vector<std::vector<Delivery>> work(kConnections);
  for (int i = 0; i < kMessages; ++i) work[i % kConnections].push_back({SinkEnvelope(i), message.data});
  std::vector<ConnectionRun> runs = RunConnections(account->transport(), std::move(work));

  ASSERT_EQ(runs.size(), static_cast<std::size_t>(kConnections));
  for (const ConnectionRun& run : runs) {
    ASSERT_TRUE(run.connected) << run.failure.text;
    ASSERT_EQ(run.outcomes.size(), static_cast<std::size_t>(kMessages / kConnections));
    for (const std::vector<Outcome>& outcomes : run.outcomes) {
      ASSERT_EQ(outcomes.size(), 2u);
      for (const Outcome& outcome : outcomes) {
        EXPECT_TRUE(outcome.delivered()) << Fields(outcome) << " " << outcome.text;
      }
    }
  }
  EXPECT_EQ(account->CountLines("C: QUIT"), kConnections);
  EXPECT_EQ(account->CountLines("C: MAIL FROM"), kMessages);

  Status counted = sink.WaitForMessageCount(kMessages);
  ASSERT_TRUE(counted.ok()) << counted.ToString();
  EXPECT_EQ(sink.MessageCount(), kMessages);
  std::map<std::string, int> want = {{"all@example.test", kMessages}};
  for (int i = 0; i < kMessages; ++i) want[fmt::format("r{:03}@example.test", i)] = 1;
  EXPECT_EQ(sink.CountByRecipient(), want);
  std::string lf_text = message.text;
  std::erase(lf_text, '\r');
  std::vector<SinkTransaction> transactions = sink.Transactions();
  ASSERT_EQ(transactions.size(), static_cast<std::size_t>(kMessages));
  for (const SinkTransaction& transaction : transactions) {
    EXPECT_EQ(transaction.data, lf_text);
    EXPECT_EQ(transaction.helo, kHeloName);
    EXPECT_EQ(transaction.mail_args, "<news@herald.test>") << "smtp-sink announces no SIZE: none is sent";
  }
}

}  // namespace
}  // namespace herald
