// Smoke tests of the real-server harness (mail_servers.h) with clients we did not write: swaks and
// Postfix's smtp-source send, Python's poplib (Debian's /usr/bin/python3) logs in to POP3.
#include "servers/mail_servers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "temp_dir.h"
#include "tls_certificates.h"

namespace herald::test_servers {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// What swaks sends as DATA: CRLF lines, a line that needs dot-stuffing, 8-bit UTF-8, a long line;
// the final ".\r\n" keeps swaks from adding anything (it appends a terminator only when missing).
const std::string kMessage =
    "From: Alice <alice@herald.test>\r\n"
    "To: Bob <bob@example.test>\r\n"
    "Subject: harness smoke test\r\n"
    "Message-ID: <smoke-1@herald.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    ".a line that starts with a dot\r\n"
    "Grüße aus Köln — ünïcödé\r\n" +
    std::string(900, 'x') + "\r\n"
    "\r\n"
    "end\r\n";

std::string Joined(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& argument : argv) text += argument + " ";
  return text;
}

struct Sent {
  int exit_code;
  std::string transcript;
};

// Runs swaks (bounded, stdin closed) against host:port with `options`.
Sent Swaks(const std::string& host, int port, std::vector<std::string> options) {
  std::vector<std::string> argv = {"swaks", "--server", host, "--port", std::to_string(port),
                                   "--timeout", "10", "--helo", "client.herald.test"};
  argv.insert(argv.end(), options.begin(), options.end());
  auto run = RunCommand(argv, milliseconds(30000));
  if (!run.ok()) return {-1, run.status().ToString()};
  return {run->exit_code, "$ " + Joined(argv) + "\n" + run->output};
}

// Runs a Python snippet with Debian's interpreter (its poplib is the independent POP3 client).
CommandResult Python(const std::string& code, const std::vector<std::string>& arguments) {
  std::vector<std::string> argv = {"/usr/bin/python3", "-c", code};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  auto run = RunCommand(argv, milliseconds(30000));
  if (!run.ok()) return CommandResult{-1, false, run.status().ToString()};
  return *run;
}

// POP3 login (USER/PASS) after STLS with the test CA, then STAT; prints "count size".
const char kPop3Login[] = R"(
import poplib, ssl, sys
host, port, ca, user, password = sys.argv[1:6]
pop = poplib.POP3(host, int(port), timeout=10)
pop.stls(ssl.create_default_context(cafile=ca))
pop.user(user)
pop.pass_(password)
count, size = pop.stat()
print(count, size)
pop.quit()
)";

// POP3S login, then prints the first message's lines (RETR 1).
const char kPop3sRetrieve[] = R"(
import poplib, ssl, sys
host, port, ca, user, password = sys.argv[1:6]
pop = poplib.POP3_SSL(host, int(port), timeout=10, context=ssl.create_default_context(cafile=ca))
pop.user(user)
pop.pass_(password)
response, lines, octets = pop.retr(1)
sys.stdout.buffer.write(b"\n".join(lines))
pop.quit()
)";

// Command lines of live processes mentioning `text` (what `pgrep -f text` would find).
std::vector<std::string> ProcessesMentioning(const std::string& text) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoi(name) == getpid()) continue;
    std::string command_line = ReadTextFile(entry.path().string() + "/cmdline");
    for (char& c : command_line) {
      if (c == '\0') c = ' ';
    }
    if (command_line.find(text) != std::string::npos) found.push_back(name + ": " + command_line);
  }
  return found;
}

class ServersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(temp_.Path("certs"));
    certs_ = MakeTestCertificates(temp_.Path("certs"));
    tls_ = {certs_.localhost.certificate, certs_.localhost.key};
    message_file_ = temp_.Write("message.eml", kMessage + ".\r\n");
  }

  void TearDown() override {
    // Every server of the test has stopped by now (they are members of the test body or of
    // derived fixtures, destroyed first); nothing of theirs may still run.
    EXPECT_THAT(ProcessesMentioning(temp_.path() + "/"), IsEmpty());
  }

  TempDir temp_;
  TestCertificates certs_;
  TlsFiles tls_;
  std::string message_file_;
};

class PostfixTest : public ServersTest {
 protected:
  void StartServers(PostfixOptions postfix_options = {}) {
    DovecotOptions dovecot_options;
    dovecot_options.directory = temp_.Path("dovecot");
    dovecot_options.users = {{"alice", "wonderland"}, {"bob", "builder"}};
    dovecot_options.tls = tls_;
    dovecot_options.pop_before_smtp_directory = temp_.Path("pop-before-smtp");
    dovecot_ = std::make_unique<DovecotServer>(dovecot_options);
    Status dovecot_started = dovecot_->Start();
    ASSERT_TRUE(dovecot_started.ok()) << dovecot_started.ToString();

    postfix_options.directory = temp_.Path("postfix");
    postfix_options.tls = tls_;
    postfix_options.sasl_socket = dovecot_->auth_socket();
    postfix_options.pop_before_smtp_directory = temp_.Path("pop-before-smtp");
    postfix_ = std::make_unique<PostfixServer>(postfix_options);
    Status postfix_started = postfix_->Start();
    ASSERT_TRUE(postfix_started.ok()) << postfix_started.ToString();
  }

  void TearDown() override {
    postfix_.reset();
    dovecot_.reset();
    ServersTest::TearDown();
  }

  std::string Logs() const {
    return (postfix_ ? postfix_->Log() : "") + "\n" + (dovecot_ ? dovecot_->Log() : "");
  }

  std::unique_ptr<DovecotServer> dovecot_;
  std::unique_ptr<PostfixServer> postfix_;
};

TEST_F(PostfixTest, SubmissionWithStartTlsAndAuthPlainDeliversTheExactMessagePerRecipient) {
  StartServers();
  Sent sent = Swaks("127.0.0.1", postfix_->submission_port(),
                    {"--tls", "--tls-verify", "--tls-ca-path", certs_.ca_file,
                     "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wonderland",
                     "--from", "alice@herald.test", "--to", "bob@example.test,carol@example.org",
                     "--data", message_file_});
  ASSERT_EQ(sent.exit_code, 0) << sent.transcript << Logs();
  EXPECT_THAT(sent.transcript, HasSubstr("235 2.7.0 Authentication successful"));

  for (std::string recipient : {"bob@example.test", "carol@example.org"}) {
    auto delivered = postfix_->WaitForDelivered(recipient, 1);
    ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
    ASSERT_EQ(delivered->size(), 1u);
    const DeliveredMessage& message = delivered->front();
    EXPECT_EQ(message.sender, "alice@herald.test");
    EXPECT_EQ(message.recipient, recipient);
    EXPECT_EQ(message.ClientData(), kMessage) << message.data;
    // Postfix's own header says TLS and authentication were used (ESMTPSA, RFC 3848).
    EXPECT_THAT(message.data, AllOf(StartsWith("Received: from client.herald.test"),
                                    HasSubstr("with ESMTPSA id")));
  }
  EXPECT_EQ(postfix_->AllDelivered().size(), 2u);
}

TEST_F(PostfixTest, NullSenderIsDeliveredWithAnEmptySender) {
  StartServers();
  Sent sent = Swaks("127.0.0.1", postfix_->submission_port(),
                    {"--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password",
                     "wonderland", "--from", "<>", "--to", "bob@example.test", "--data", message_file_});
  ASSERT_EQ(sent.exit_code, 0) << sent.transcript << Logs();
  auto delivered = postfix_->WaitForDelivered("bob@example.test", 1);
  ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
  EXPECT_EQ(delivered->front().sender, "");
  EXPECT_EQ(delivered->front().recipient, "bob@example.test");
}

TEST_F(PostfixTest, SmtpsIsImplicitTlsWithAuthLoginAndCramMd5) {
  StartServers();
  for (std::string mechanism : {"LOGIN", "CRAM-MD5"}) {
    Sent sent = Swaks("127.0.0.1", postfix_->smtps_port(),
                      {"--tls-on-connect", "--tls-verify", "--tls-ca-path", certs_.ca_file,
                       "--auth", mechanism, "--auth-user", "bob", "--auth-password", "builder",
                       "--from", "bob@herald.test", "--to", "dave@example.test",
                       "--data", message_file_});
    ASSERT_EQ(sent.exit_code, 0) << sent.transcript << Logs();
    EXPECT_THAT(sent.transcript, HasSubstr("235 2.7.0 Authentication successful"));
  }
  auto delivered = postfix_->WaitForDelivered("dave@example.test", 2);
  ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
  for (const DeliveredMessage& message : *delivered) {
    EXPECT_EQ(message.ClientData(), kMessage);
    EXPECT_EQ(message.sender, "bob@herald.test");
  }
}

TEST_F(PostfixTest, RejectsWrongPasswordsPlainTextAuthAndUnauthenticatedRelay) {
  StartServers();
  Sent wrong_password = Swaks("127.0.0.1", postfix_->submission_port(),
                              {"--tls", "--auth", "PLAIN", "--auth-user", "alice",
                               "--auth-password", "not-the-password", "--from", "alice@herald.test",
                               "--to", "bob@example.test", "--data", message_file_});
  EXPECT_EQ(wrong_password.exit_code, 28) << wrong_password.transcript;  // swaks: AUTH failed
  EXPECT_THAT(wrong_password.transcript, HasSubstr("535 5.7.8"));

  // Submission demands STARTTLS before anything else (smtpd_tls_security_level = encrypt).
  Sent no_tls = Swaks("127.0.0.1", postfix_->submission_port(),
                      {"--from", "alice@herald.test", "--to", "bob@example.test"});
  EXPECT_NE(no_tls.exit_code, 0) << no_tls.transcript;
  EXPECT_THAT(no_tls.transcript, HasSubstr("530 5.7.0 Must issue a STARTTLS command first"));

  // TLS but no AUTH: no relaying.
  Sent no_auth = Swaks("127.0.0.1", postfix_->submission_port(),
                       {"--tls", "--from", "alice@herald.test", "--to", "bob@example.test"});
  EXPECT_EQ(no_auth.exit_code, 24) << no_auth.transcript;  // swaks: no RCPT accepted
  EXPECT_THAT(no_auth.transcript, HasSubstr("554 5.7.1"));

  EXPECT_THAT(postfix_->AllDelivered(), IsEmpty());
}

TEST_F(PostfixTest, MessageSizeLimitIsAnnouncedAndEnforced) {
  PostfixOptions options;
  options.message_size_limit = 2000;
  StartServers(options);
  Sent sent = Swaks("127.0.0.1", postfix_->submission_port(),
                    {"--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password",
                     "wonderland", "--from", "alice@herald.test", "--to", "bob@example.test",
                     "--data", temp_.Write("big.eml", kMessage + std::string(3000, 'y') + "\r\n.\r\n")});
  EXPECT_THAT(sent.transcript, HasSubstr("250-SIZE 2000"));
  EXPECT_EQ(sent.exit_code, 26) << sent.transcript;  // swaks: not accepted after DATA
  EXPECT_THAT(sent.transcript, HasSubstr("552 5.3.4 Error: message file too big"));
}

TEST_F(PostfixTest, PopBeforeSmtpOpensRelayingForTheClientAddressForAWhile) {
  PostfixOptions options;
  options.pop_before_smtp_ttl = std::chrono::seconds(1);
  StartServers(options);
  std::vector<std::string> plain = {"--from", "alice@herald.test", "--to", "erin@example.test",
                                    "--data", message_file_};

  Sent before = Swaks("127.0.0.1", postfix_->smtp_port(), plain);
  EXPECT_EQ(before.exit_code, 24) << before.transcript;
  EXPECT_THAT(before.transcript, HasSubstr("554 5.7.1 <erin@example.test>: Relay access denied"));

  // A failed POP3 login opens nothing.
  CommandResult failed = Python(kPop3Login, {"127.0.0.1", std::to_string(dovecot_->pop3_port()),
                                             certs_.ca_file, "alice", "wrong"});
  EXPECT_NE(failed.exit_code, 0) << failed.output;
  EXPECT_THAT(failed.output, HasSubstr("-ERR [AUTH] Authentication failed"));
  Sent still_denied = Swaks("127.0.0.1", postfix_->smtp_port(), plain);
  EXPECT_EQ(still_denied.exit_code, 24) << still_denied.transcript;

  CommandResult login = Python(kPop3Login, {"127.0.0.1", std::to_string(dovecot_->pop3_port()),
                                            certs_.ca_file, "alice", "wonderland"});
  ASSERT_EQ(login.exit_code, 0) << login.output << Logs();
  EXPECT_EQ(login.output, "0 0\n");

  Sent after = Swaks("127.0.0.1", postfix_->smtp_port(), plain);
  ASSERT_EQ(after.exit_code, 0) << after.transcript << Logs();
  // Also on the submission port (after the STARTTLS it demands), without AUTH.
  std::vector<std::string> submission = {"--tls"};
  submission.insert(submission.end(), plain.begin(), plain.end());
  Sent after_on_submission = Swaks("127.0.0.1", postfix_->submission_port(), submission);
  ASSERT_EQ(after_on_submission.exit_code, 0) << after_on_submission.transcript << Logs();
  auto delivered = postfix_->WaitForDelivered("erin@example.test", 2);
  ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
  for (const DeliveredMessage& message : *delivered) EXPECT_EQ(message.ClientData(), kMessage);

  // The permission ends after pop_before_smtp_ttl (whole seconds, so wait for two).
  std::this_thread::sleep_for(milliseconds(2200));
  Sent expired = Swaks("127.0.0.1", postfix_->smtp_port(), plain);
  EXPECT_EQ(expired.exit_code, 24) << expired.transcript;
  EXPECT_THAT(expired.transcript, HasSubstr("Relay access denied"));
}

TEST_F(PostfixTest, DovecotServesAddedMessagesOverPop3s) {
  StartServers();
  Status added = dovecot_->AddMessage("bob", "From: a@herald.test\nSubject: bounce\n\nbody line\n");
  ASSERT_TRUE(added.ok()) << added.ToString();
  CommandResult retrieved = Python(kPop3sRetrieve, {"127.0.0.1", std::to_string(dovecot_->pop3s_port()),
                                                    certs_.ca_file, "bob", "builder"});
  ASSERT_EQ(retrieved.exit_code, 0) << retrieved.output << Logs();
  EXPECT_EQ(retrieved.output, "From: a@herald.test\nSubject: bounce\n\nbody line");
}

TEST_F(ServersTest, AiosmtpdWithStartTlsAndAuthRecordsEnvelopeAndExactBytes) {
  AiosmtpdOptions options;
  options.directory = temp_.Path("aiosmtpd");
  options.tls = tls_;
  options.users = {{"alice", "pass:with:colons"}};
  options.require_starttls = true;
  options.auth_require_tls = true;
  AiosmtpdServer server(options);
  Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  Sent without_tls = Swaks("127.0.0.1", server.port(), {"--from", "a@herald.test", "--to", "b@example.test"});
  EXPECT_NE(without_tls.exit_code, 0) << without_tls.transcript;
  EXPECT_THAT(without_tls.transcript, HasSubstr("530 Must issue a STARTTLS command first"));

  Sent sent = Swaks("127.0.0.1", server.port(),
                    {"--tls", "--tls-verify", "--tls-ca-path", certs_.ca_file,
                     "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "pass:with:colons",
                     "--from", "alice@herald.test", "--to", "bob@example.test,carol@example.test",
                     "--data", message_file_});
  ASSERT_EQ(sent.exit_code, 0) << sent.transcript << server.Log();
  auto messages = server.WaitForMessages(1);
  ASSERT_TRUE(messages.ok()) << messages.status().ToString();
  ASSERT_EQ(messages->size(), 1u);
  const RecordedMessage& message = messages->front();
  EXPECT_EQ(message.mail_from, "alice@herald.test");
  EXPECT_THAT(message.rcpt_tos, ElementsAre("bob@example.test", "carol@example.test"));
  EXPECT_EQ(message.auth_user, "alice");
  EXPECT_TRUE(message.tls);
  EXPECT_EQ(message.helo, "client.herald.test");
  EXPECT_EQ(message.data, kMessage);

  Sent wrong = Swaks("127.0.0.1", server.port(),
                     {"--tls", "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "nope",
                      "--from", "alice@herald.test", "--to", "bob@example.test"});
  EXPECT_EQ(wrong.exit_code, 28) << wrong.transcript;
  EXPECT_THAT(wrong.transcript, HasSubstr("535 5.7.8 Authentication credentials invalid"));
}

TEST_F(ServersTest, SmtpSinkCountsMessagesFromSmtpSourcePerRecipient) {
  SmtpSinkOptions options;
  options.directory = temp_.Path("sink");
  SmtpSink sink(options);
  Status started = sink.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  // 100 messages over 5 parallel sessions, 2 recipients each (smtp-source names them
  // "rcpt@example.test" and "2rcpt@example.test").
  auto run = RunCommand({"/usr/sbin/smtp-source", "-c", "-m", "100", "-s", "5", "-r", "2",
                         "-f", "sender@herald.test", "-t", "rcpt@example.test",
                         "127.0.0.1:" + std::to_string(sink.port())},
                        milliseconds(30000));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_EQ(run->exit_code, 0) << run->output;

  Status counted = sink.WaitForMessageCount(100);
  ASSERT_TRUE(counted.ok()) << counted.ToString();
  EXPECT_EQ(sink.MessageCount(), 100);
  std::map<std::string, int> want = {{"2rcpt@example.test", 100}, {"rcpt@example.test", 100}};
  EXPECT_EQ(sink.CountByRecipient(), want);
  std::vector<SinkTransaction> transactions = sink.Transactions();
  ASSERT_EQ(transactions.size(), 100u);
  EXPECT_EQ(transactions.front().mail_args, "<sender@herald.test>");
  EXPECT_EQ(transactions.front().client_address, "127.0.0.1");
  EXPECT_THAT(transactions.front().data, HasSubstr("La de da de da 1.\n"));
}

TEST_F(ServersTest, SmtpSinkCapturesAMessageExactly) {
  SmtpSinkOptions options;
  options.directory = temp_.Path("sink");
  SmtpSink sink(options);
  Status started = sink.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  Sent sent = Swaks("127.0.0.1", sink.port(),
                    {"--from", "a@herald.test", "--to", "b@example.test", "--data", message_file_});
  ASSERT_EQ(sent.exit_code, 0) << sent.transcript;
  ASSERT_TRUE(sink.WaitForMessageCount(1).ok()) << sink.Log();
  std::vector<SinkTransaction> transactions = sink.Transactions();
  ASSERT_EQ(transactions.size(), 1u);
  std::string lf_message = kMessage;
  std::erase(lf_message, '\r');
  EXPECT_EQ(transactions[0].data, lf_message);
  EXPECT_EQ(transactions[0].helo, "client.herald.test");
  EXPECT_THAT(transactions[0].recipients, ElementsAre("b@example.test"));
}

TEST_F(ServersTest, PostfixInRelayModeRelaysMailFromLoopbackToTheRelayHost) {
  SmtpSinkOptions sink_options;
  sink_options.directory = temp_.Path("sink");
  SmtpSink sink(sink_options);
  Status sink_started = sink.Start();
  ASSERT_TRUE(sink_started.ok()) << sink_started.ToString();
  PostfixOptions options;
  options.directory = temp_.Path("postfix");
  options.submission_port = kNoPort;
  options.smtps_port = kNoPort;
  options.relay_host = "[127.0.0.1]:" + std::to_string(sink.port());
  options.relay_connections = 2;
  PostfixServer postfix(options);
  Status started = postfix.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  // Without AUTH: a client on the loopback network may relay.
  Sent sent = Swaks("127.0.0.1", postfix.smtp_port(),
                    {"--from", "a@herald.test", "--to", "b@example.test", "--data", message_file_});
  ASSERT_EQ(sent.exit_code, 0) << sent.transcript << postfix.Log();
  ASSERT_TRUE(sink.WaitForMessageCount(1).ok()) << sink.Log() << postfix.Log();
  std::vector<SinkTransaction> transactions = sink.Transactions();
  ASSERT_EQ(transactions.size(), 1u);
  EXPECT_EQ(transactions[0].helo, "mx.herald.test");  // Postfix's smtp(8), not swaks
  EXPECT_THAT(transactions[0].recipients, ElementsAre("b@example.test"));
  EXPECT_THAT(transactions[0].data, HasSubstr("Grüße aus Köln"));
  EXPECT_TRUE(postfix.AllDelivered().empty());  // relayed, not delivered into files
}

TEST_F(ServersTest, ServersListenOnIpv6Loopback) {
  if (!PickFreePort("::1").ok()) GTEST_SKIP() << "no IPv6 loopback on this machine";
  DovecotOptions dovecot_options;
  dovecot_options.directory = temp_.Path("dovecot");
  dovecot_options.host = "::1";
  dovecot_options.users = {{"alice", "wonderland"}};
  dovecot_options.tls = tls_;
  DovecotServer dovecot(dovecot_options);
  Status started = dovecot.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  PostfixOptions postfix_options;
  postfix_options.directory = temp_.Path("postfix");
  postfix_options.host = "::1";
  postfix_options.tls = tls_;
  postfix_options.sasl_socket = dovecot.auth_socket();
  PostfixServer postfix(postfix_options);
  started = postfix.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  AiosmtpdOptions aiosmtpd_options;
  aiosmtpd_options.directory = temp_.Path("aiosmtpd");
  aiosmtpd_options.host = "::1";
  AiosmtpdServer aiosmtpd(aiosmtpd_options);
  started = aiosmtpd.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  SmtpSinkOptions sink_options;
  sink_options.directory = temp_.Path("sink");
  sink_options.host = "::1";
  SmtpSink sink(sink_options);
  started = sink.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  std::vector<std::string> envelope = {"--from", "alice@herald.test", "--to", "bob@example.test",
                                       "--data", message_file_};
  std::vector<std::string> authenticated = {"--tls", "--tls-verify", "--tls-ca-path", certs_.ca_file,
                                            "--auth", "PLAIN", "--auth-user", "alice",
                                            "--auth-password", "wonderland"};
  authenticated.insert(authenticated.end(), envelope.begin(), envelope.end());
  Sent to_postfix = Swaks("::1", postfix.submission_port(), authenticated);
  ASSERT_EQ(to_postfix.exit_code, 0) << to_postfix.transcript << postfix.Log();
  auto delivered = postfix.WaitForDelivered("bob@example.test", 1);
  ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
  EXPECT_THAT(delivered->front().data, HasSubstr("[IPv6:::1]"));

  Sent to_aiosmtpd = Swaks("::1", aiosmtpd.port(), envelope);
  ASSERT_EQ(to_aiosmtpd.exit_code, 0) << to_aiosmtpd.transcript << aiosmtpd.Log();
  auto recorded = aiosmtpd.WaitForMessages(1);
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
  EXPECT_EQ(recorded->front().data, kMessage);

  Sent to_sink = Swaks("::1", sink.port(), envelope);
  ASSERT_EQ(to_sink.exit_code, 0) << to_sink.transcript << sink.Log();
  ASSERT_TRUE(sink.WaitForMessageCount(1).ok()) << sink.Log();
  EXPECT_EQ(sink.Transactions().front().client_address, "ipv6:::1");
}

TEST_F(ServersTest, FailedStartShowsTheServerLog) {
  DovecotOptions options;
  options.directory = temp_.Path("dovecot");
  options.users = {{"alice", "wonderland"}};
  options.tls = {temp_.Path("missing.pem"), temp_.Path("missing.key")};
  DovecotServer dovecot(options);
  Status started = dovecot.Start();
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(started.message(), AllOf(HasSubstr("Dovecot did not start"), HasSubstr("missing.pem")));
}

TEST_F(ServersTest, PortTakenByAnotherProcessIsReportedWithTheLog) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);

  SmtpSinkOptions options;
  options.directory = temp_.Path("sink");
  options.port = ntohs(address.sin_port);
  SmtpSink sink(options);
  Status started = sink.Start();
  close(listener);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(started.message(), AllOf(HasSubstr("smtp-sink did not start"), HasSubstr("in use")));
}

// A read error gives "" as the header promises, not std::terminate: std::filebuf throws on one (a
// directory's EISDIR here; ESRCH from /proc/<pid>/cmdline of a process that exits meanwhile, which
// ended ServersListenOnIpv6Loopback under AddressSanitizer's slower timing).
TEST(ReadTextFileTest, ReadErrorGivesAnEmptyText) {
  TempDir dir;
  EXPECT_EQ(ReadTextFile(dir.path()), "");
  EXPECT_EQ(ReadTextFile(dir.Path("missing")), "");
  ASSERT_TRUE(WriteTextFile(dir.Path("file"), "text\n").ok());
  EXPECT_EQ(ReadTextFile(dir.Path("file")), "text\n");
}

TEST_F(ServersTest, StoppedServersLeaveNoProcessBehind) {
  DovecotOptions dovecot_options;
  dovecot_options.directory = temp_.Path("dovecot");
  dovecot_options.users = {{"alice", "wonderland"}};
  dovecot_options.tls = tls_;
  DovecotServer dovecot(dovecot_options);
  ASSERT_TRUE(dovecot.Start().ok()) << dovecot.Log();
  PostfixOptions postfix_options;
  postfix_options.directory = temp_.Path("postfix");
  postfix_options.tls = tls_;
  postfix_options.sasl_socket = dovecot.auth_socket();
  PostfixServer postfix(postfix_options);
  ASSERT_TRUE(postfix.Start().ok()) << postfix.Log();
  AiosmtpdOptions aiosmtpd_options;
  aiosmtpd_options.directory = temp_.Path("aiosmtpd");
  AiosmtpdServer aiosmtpd(aiosmtpd_options);
  ASSERT_TRUE(aiosmtpd.Start().ok()) << aiosmtpd.Log();
  SmtpSinkOptions sink_options;
  sink_options.directory = temp_.Path("sink");
  SmtpSink sink(sink_options);
  ASSERT_TRUE(sink.Start().ok()) << sink.Log();

  // Some traffic first, so that Postfix has spawned its per-connection helpers.
  Sent sent = Swaks("127.0.0.1", postfix.submission_port(),
                    {"--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password",
                     "wonderland", "--from", "alice@herald.test", "--to", "bob@example.test",
                     "--data", message_file_});
  ASSERT_EQ(sent.exit_code, 0) << sent.transcript;
  ASSERT_TRUE(postfix.WaitForDelivered("bob@example.test", 1).ok());
  EXPECT_THAT(ProcessesMentioning(temp_.path() + "/"), Not(IsEmpty()));

  sink.Stop();
  aiosmtpd.Stop();
  postfix.Stop();
  dovecot.Stop();
  EXPECT_THAT(ProcessesMentioning(temp_.path() + "/"), IsEmpty());
  // Nothing answers on their ports any more.
  for (int port : {postfix.submission_port(), postfix.smtps_port(), dovecot.pop3_port(),
                   aiosmtpd.port(), sink.port()}) {
    EXPECT_FALSE(WaitForListener("127.0.0.1", port, "", milliseconds(50), nullptr).ok()) << port;
  }
}

}  // namespace
}  // namespace herald::test_servers
