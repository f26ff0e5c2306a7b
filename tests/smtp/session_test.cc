#include "smtp/session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/scripted_smtp_server.h"
#include "run_awaitable.h"
#include "temp_dir.h"
#include "tls_certificates.h"

namespace herald::smtp {
namespace {

using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::shared_ptr<const MessageData> Message(std::string_view bytes) {
  auto message = std::make_shared<MessageData>();
  message->Append(bytes);
  return message;
}

const std::string kBody = "Subject: test\r\n\r\nHello\r\n";

// Built outside the coroutines below: g++ 12 miscompiles temporaries (string concatenations,
// braced lists) inside coroutine bodies.
Envelope EnvelopeTo(std::vector<std::string> recipients, bool smtputf8 = false) {
  return Envelope{"news@example.com", std::move(recipients), smtputf8};
}
Envelope RefusedEnvelope() { return EnvelopeTo({"refused@example.org"}); }
Envelope Numbered(int i) { return EnvelopeTo({"r" + std::to_string(i) + "@example.org"}); }

class SessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    certificates_ = new TestCertificates(MakeTestCertificates(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete certificates_;
    delete dir_;
  }

  SessionOptions Options(const ScriptedSmtpServer& server, Security security = Security::kNone) {
    SessionOptions options;
    options.host = server.host();
    options.port = server.port();
    options.security = security;
    options.tls.ca_file = certificates_->ca_file;
    options.helo_name = "client.example.com";
    options.timeouts.connect = std::chrono::seconds(5);
    options.timeouts.greeting = std::chrono::seconds(5);
    options.timeouts.command = std::chrono::seconds(5);
    options.timeouts.data_init = std::chrono::seconds(5);
    options.timeouts.data_block = std::chrono::seconds(5);
    options.timeouts.data_end = std::chrono::seconds(5);
    options.transcript = [this](std::string_view line) { transcript_.emplace_back(line); };
    return options;
  }

  static SmtpServerScript Tls(const CertificateFiles& files) {
    SmtpServerScript script;
    script.certificate_file = files.certificate;
    script.key_file = files.key;
    return script;
  }

  // Opens a session, sends one message to `recipients`, quits; returns the outcomes (or the
  // open failure repeated per recipient).
  std::vector<Outcome> SendOne(SessionOptions options, std::vector<std::string> recipients,
                               std::string_view bytes = kBody, bool smtputf8 = false) {
    return RunAwaitable([](SessionOptions options, std::vector<std::string> recipients, std::string data,
                           bool smtputf8) -> asio::awaitable<std::vector<Outcome>> {
      OpenResult opened = co_await Session::Open(std::move(options));
      if (opened.session == nullptr) co_return std::vector<Outcome>(recipients.size(), opened.failure);
      std::vector<Outcome> outcomes = co_await opened.session->Send(EnvelopeTo(recipients, smtputf8), Message(data));
      co_await opened.session->Quit();
      co_return outcomes;
    }(std::move(options), std::move(recipients), std::string(bytes), smtputf8));
  }

  // Opens a session, sends `bytes` once per envelope, quits; the outcomes per envelope (the open
  // failure repeated per recipient when the session did not open).
  std::vector<std::vector<Outcome>> SendEach(SessionOptions options, std::vector<Envelope> envelopes,
                                             std::string_view bytes = kBody) {
    return RunAwaitable([](SessionOptions options, std::vector<Envelope> envelopes,
                           std::string data) -> asio::awaitable<std::vector<std::vector<Outcome>>> {
      std::vector<std::vector<Outcome>> all;
      OpenResult opened = co_await Session::Open(std::move(options));
      for (Envelope& envelope : envelopes) {
        if (opened.session == nullptr) {
          all.emplace_back(envelope.recipients.size(), opened.failure);
          continue;
        }
        std::vector<Outcome> outcomes = co_await opened.session->Send(std::move(envelope), Message(data));
        all.push_back(std::move(outcomes));
      }
      if (opened.session != nullptr) co_await opened.session->Quit();
      co_return all;
    }(std::move(options), std::move(envelopes), std::string(bytes)));
  }

  OpenResult OpenOnly(SessionOptions options) {
    return RunAwaitable([](SessionOptions options) -> asio::awaitable<OpenResult> {
      co_return co_await Session::Open(std::move(options));
    }(std::move(options)));
  }

  static std::size_t CountCommands(const SmtpSessionRecord& record, std::string_view verb) {
    return std::count_if(record.commands.begin(), record.commands.end(),
                         [&](const std::string& c) { return c.rfind(verb, 0) == 0; });
  }

  static TempDir* dir_;
  static TestCertificates* certificates_;
  std::vector<std::string> transcript_;
};

TempDir* SessionTest::dir_ = nullptr;
TestCertificates* SessionTest::certificates_ = nullptr;

TEST_F(SessionTest, DeliversSeveralMessagesOnOneConnectionWithPipelining) {
  ScriptedSmtpServer server;
  std::vector<std::vector<Outcome>> all = RunAwaitable(
      [](SessionOptions options) -> asio::awaitable<std::vector<std::vector<Outcome>>> {
        OpenResult opened = co_await Session::Open(std::move(options));
        std::vector<std::vector<Outcome>> results;
        if (opened.session == nullptr) co_return results;
        for (int i = 0; i < 3; ++i) {
          std::vector<Outcome> outcomes = co_await opened.session->Send(Numbered(i), Message(kBody));
          results.push_back(std::move(outcomes));
        }
        co_await opened.session->Quit();
        co_return results;
      }(Options(server)));
  ASSERT_EQ(all.size(), 3u);
  for (const auto& outcomes : all) {
    ASSERT_EQ(outcomes.size(), 1u);
    EXPECT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
    EXPECT_EQ(outcomes[0].reply_code, 250);
  }
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  std::vector<SmtpSessionRecord> sessions = server.sessions();
  ASSERT_EQ(sessions.size(), 1u);
  ASSERT_EQ(sessions[0].messages.size(), 3u);
  EXPECT_EQ(UnstuffSmtpData(sessions[0].messages[2].data), kBody);
  EXPECT_EQ(sessions[0].messages[2].recipients, std::vector<std::string>{"r2@example.org"});
  EXPECT_THAT(sessions[0].messages[0].mail_parameters, HasSubstr("SIZE=" + std::to_string(kBody.size())));
  EXPECT_EQ(CountCommands(sessions[0], "RSET"), 0u) << "no RSET after a completed transaction";
  EXPECT_TRUE(sessions[0].quit);
  EXPECT_FALSE(sessions[0].bare_lf);
}

TEST_F(SessionTest, WorksWithoutPipeliningAndFallsBackToHelo) {
  SmtpServerScript script;
  script.extensions = {"SIZE 1000000"};
  ScriptedSmtpServer plain(script);
  std::vector<Outcome> outcomes = SendOne(Options(plain), {"a@example.org", "b@example.org"});
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_TRUE(outcomes[0].delivered() && outcomes[1].delivered()) << outcomes[0].text;

  SmtpServerScript old;
  old.on["EHLO"] = SmtpAction::Reply("502 5.5.1 EHLO not implemented");
  ScriptedSmtpServer helo_only(old);
  outcomes = SendOne(Options(helo_only), {"a@example.org"});
  EXPECT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
  ASSERT_TRUE(helo_only.WaitForEndedSessions(1));
  EXPECT_EQ(CountCommands(helo_only.sessions()[0], "HELO client.example.com"), 1u);
}

TEST_F(SessionTest, ResultPerRecipient) {
  SmtpServerScript script;
  script.on_rcpt["unknown@example.org"] = SmtpAction::Reply("550 5.1.1 No such user here");
  script.on_rcpt["full@example.org"] = SmtpAction::Reply("452 4.2.2 Mailbox full");
  ScriptedSmtpServer server(script);
  std::vector<Outcome> outcomes =
      SendOne(Options(server), {"ok@example.org", "unknown@example.org", "full@example.org", "ok2@example.org"});
  ASSERT_EQ(outcomes.size(), 4u);
  EXPECT_TRUE(outcomes[0].delivered());
  EXPECT_EQ(outcomes[1].disposition, Disposition::kPermanent);
  EXPECT_EQ(outcomes[1].scope, Scope::kRecipient);
  EXPECT_EQ(outcomes[1].stage, Stage::kRcptTo);
  EXPECT_EQ(outcomes[1].reply_code, 550);
  EXPECT_EQ(outcomes[1].enhanced_status, "5.1.1");
  EXPECT_THAT(outcomes[1].text, HasSubstr("No such user"));
  EXPECT_EQ(outcomes[2].disposition, Disposition::kTemporary);
  EXPECT_EQ(outcomes[2].scope, Scope::kRecipient);
  EXPECT_TRUE(outcomes[3].delivered());
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_EQ(server.sessions()[0].messages[0].recipients,
            (std::vector<std::string>{"ok@example.org", "ok2@example.org"}));
}

TEST_F(SessionTest, TooManyRecipientsGoInAFurtherTransaction) {
  SmtpServerScript script;
  script.max_recipients = 2;
  ScriptedSmtpServer server(script);
  std::vector<std::string> recipients;
  for (int i = 0; i < 5; ++i) recipients.push_back("r" + std::to_string(i) + "@example.org");
  std::vector<Outcome> outcomes = SendOne(Options(server), recipients);
  for (const Outcome& outcome : outcomes) EXPECT_TRUE(outcome.delivered()) << outcome.text;
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  std::vector<SmtpSessionRecord> sessions = server.sessions();
  ASSERT_EQ(sessions[0].messages.size(), 3u);
  EXPECT_EQ(sessions[0].messages[2].recipients, std::vector<std::string>{"r4@example.org"});
}

TEST_F(SessionTest, EveryRecipientRefusedSendsNoData) {
  SmtpServerScript script;
  script.on["RCPT"] = SmtpAction::Reply("550 5.7.1 Relaying denied");
  ScriptedSmtpServer server(script);
  std::vector<Outcome> outcomes = SendOne(Options(server), {"a@example.org", "b@example.org"});
  for (const Outcome& outcome : outcomes) {
    EXPECT_EQ(outcome.disposition, Disposition::kPermanent);
    EXPECT_EQ(outcome.reply_code, 550);
  }
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  // A local copy: sessions() returns by value, and a range-for over a member of that temporary
  // would read freed memory (AddressSanitizer found it).
  const std::vector<SmtpSessionRecord> sessions = server.sessions();
  for (const SmtpReceivedMessage& message : sessions[0].messages) EXPECT_FALSE(message.accepted);
}

TEST_F(SessionTest, ARefusedTransactionLeavesTheSessionUsableAfterRset) {
  SmtpServerScript script;
  script.on_rcpt["refused@example.org"] = SmtpAction::Reply("554 5.7.1 Relay access denied");
  ScriptedSmtpServer server(script);
  std::vector<std::vector<Outcome>> all = RunAwaitable(
      [](SessionOptions options) -> asio::awaitable<std::vector<std::vector<Outcome>>> {
        OpenResult opened = co_await Session::Open(std::move(options));
        std::vector<std::vector<Outcome>> results;
        if (opened.session == nullptr) co_return results;
        std::vector<Outcome> refused = co_await opened.session->Send(RefusedEnvelope(), Message(kBody));
        results.push_back(std::move(refused));
        std::vector<Outcome> next = co_await opened.session->Send(Numbered(1), Message(kBody));
        results.push_back(std::move(next));
        co_await opened.session->Quit();
        co_return results;
      }(Options(server)));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0][0].reply_code, 554);
  EXPECT_TRUE(all[1][0].delivered()) << all[1][0].text;
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_EQ(server.connection_count(), 1) << "the same connection carries the next message";
  EXPECT_EQ(CountCommands(server.sessions()[0], "RSET"), 1u);
}

TEST_F(SessionTest, GreetingFailuresConcernTheAccount) {
  SmtpServerScript busy;
  busy.on["GREETING"] = SmtpAction::Close("421 4.3.2 Service not available");
  ScriptedSmtpServer busy_server(busy);
  std::vector<Outcome> outcomes = SendOne(Options(busy_server), {"a@example.org"});
  EXPECT_EQ(outcomes[0].disposition, Disposition::kTemporary);
  EXPECT_EQ(outcomes[0].scope, Scope::kAccount);
  EXPECT_EQ(outcomes[0].reply_code, 421);

  SmtpServerScript refused;
  refused.on["GREETING"] = SmtpAction::Close("554 5.7.1 No SMTP service here");
  ScriptedSmtpServer refused_server(refused);
  outcomes = SendOne(Options(refused_server), {"a@example.org"});
  EXPECT_EQ(outcomes[0].disposition, Disposition::kPermanent);
  EXPECT_EQ(outcomes[0].scope, Scope::kAccount);
  EXPECT_EQ(outcomes[0].stage, Stage::kGreeting);
}

TEST_F(SessionTest, ConnectionRefusedConcernsTheAccount) {
  std::uint16_t port;
  {
    ScriptedSmtpServer gone;
    port = gone.port();
  }
  SessionOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.security = Security::kNone;
  options.helo_name = "client.example.com";
  std::vector<Outcome> outcomes = SendOne(options, {"a@example.org"});
  EXPECT_EQ(outcomes[0].scope, Scope::kAccount);
  EXPECT_EQ(outcomes[0].stage, Stage::kConnect);
  EXPECT_THAT(outcomes[0].text, HasSubstr("refused"));
}

TEST_F(SessionTest, DropAfterDataIsTemporaryAndMayBeADuplicate) {
  SmtpServerScript script;
  script.on["DATA_END"] = SmtpAction::Close();
  ScriptedSmtpServer server(script);
  std::vector<Outcome> outcomes = SendOne(Options(server), {"a@example.org", "b@example.org"});
  for (const Outcome& outcome : outcomes) {
    EXPECT_EQ(outcome.disposition, Disposition::kTemporary);
    EXPECT_EQ(outcome.scope, Scope::kMessage);
    EXPECT_EQ(outcome.stage, Stage::kDataEnd);
    EXPECT_THAT(outcome.text, HasSubstr("may or may not have been accepted"));
    EXPECT_TRUE(outcome.maybe_delivered) << "the whole message went out: sending it again may duplicate it";
  }

  // A drop before the message went out: the server cannot have taken it.
  SmtpServerScript before;
  before.on["DATA"] = SmtpAction::Close();
  ScriptedSmtpServer dropping(before);
  outcomes = SendOne(Options(dropping), {"a@example.org"});
  EXPECT_EQ(outcomes[0].disposition, Disposition::kTemporary);
  EXPECT_FALSE(outcomes[0].maybe_delivered) << outcomes[0].text;
}

// What the server under test does when a reply comes that its stage cannot get.
struct UnexpectedReply {
  std::string event;  // SmtpServerScript::on key
  std::string reply;
};

const std::vector<std::string> kExtensionsWithoutPipelining = {"SIZE 10485760", "8BITMIME", "SMTPUTF8",
                                                               "ENHANCEDSTATUSCODES",
                                                               "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2"};
const std::string kUnexpectedBody = "Subject: unexpected replies\r\n\r\nthe body line\r\n";

// Every stage of the dialogue with a 2xx and a 3xx it cannot get (classify.h lists what each stage
// accepts), with and without PIPELINING: no recipient counts as delivered, the outcome is a
// temporary protocol error, and no message byte goes out unless the server answered DATA with 354.
TEST_F(SessionTest, UnexpectedRepliesAtEveryStageNeverCountAsSuccess) {
  const UnexpectedReply kCases[] = {
      {"GREETING", "250 2.0.0 not a greeting"},
      {"GREETING", "354 go ahead"},
      {"EHLO", "220 fake.test ESMTP"},
      {"EHLO", "354 go ahead"},
      {"HELO", "220 fake.test"},
      {"HELO", "334 VXNlcm5hbWU6"},
      {"STARTTLS", "250 2.0.0 Ok"},
      {"STARTTLS", "334 VXNlcm5hbWU6"},
      {"AUTH", "250 2.0.0 Ok"},
      {"AUTH", "354 go ahead"},
      {"AUTH_STEP", "250 2.0.0 Ok"},
      {"AUTH_STEP", "354 go ahead"},
      {"RSET", "220 fake.test"},
      {"RSET", "354 go ahead"},
      {"MAIL", "220 fake.test"},
      {"MAIL", "354 go ahead"},
      {"MAIL", "334 VXNlcm5hbWU6"},
      {"RCPT", "220 fake.test"},
      {"RCPT", "354 go ahead"},
      {"RCPT", "334 VXNlcm5hbWU6"},
      {"DATA", "250 2.0.0 Ok"},
      {"DATA", "220 fake.test"},
      {"DATA", "334 VXNlcm5hbWU6"},
      {"DATA_END", "354 go ahead"},
      {"DATA_END", "334 VXNlcm5hbWU6"},
  };
  for (const UnexpectedReply& c : kCases) {
    for (bool pipelining : {true, false}) {
      const std::string name = c.event + " answered \"" + c.reply + "\"" + (pipelining ? "" : ", no PIPELINING");
      SCOPED_TRACE(name);
      SmtpServerScript script = c.event == "STARTTLS" ? Tls(certificates_->localhost) : SmtpServerScript{};
      if (!pipelining) script.extensions = kExtensionsWithoutPipelining;
      script.on[c.event] = SmtpAction::Reply(c.reply);
      if (c.event == "HELO") script.on["EHLO"] = SmtpAction::Reply("502 5.5.1 EHLO not implemented");
      // RSET follows a transaction whose every recipient was refused.
      if (c.event == "RSET") script.on_rcpt["refused@example.org"] = SmtpAction::Reply("550 5.1.1 No such user");
      ScriptedSmtpServer server(script);
      SessionOptions options = Options(server, c.event == "STARTTLS" ? Security::kStartTls : Security::kNone);
      if (c.event == "AUTH" || c.event == "AUTH_STEP") {
        options.username = "u@example.com";
        options.secret = "pw";
        options.allow_plaintext_auth = true;
        if (c.event == "AUTH_STEP") options.mechanisms = {Mechanism::kLogin};  // 334 Username: first
      }
      std::vector<Envelope> envelopes;
      if (c.event == "RSET") envelopes.push_back(RefusedEnvelope());
      envelopes.push_back(EnvelopeTo({"a@example.org", "b@example.org"}));
      std::vector<std::vector<Outcome>> all = SendEach(options, envelopes, kUnexpectedBody);
      ASSERT_EQ(all.size(), envelopes.size());
      ASSERT_EQ(all.back().size(), 2u);
      for (const Outcome& outcome : all.back()) {
        EXPECT_FALSE(outcome.delivered()) << outcome.text;
        EXPECT_EQ(outcome.disposition, Disposition::kTemporary) << outcome.text;
        EXPECT_EQ(outcome.maybe_delivered, c.event == "DATA_END") << outcome.text;
      }
      // The first recipient's outcome names the cause (after a protocol error at RCPT TO, the
      // next recipient's says that the connection is gone).
      EXPECT_THAT(all.back()[0].text, HasSubstr(c.event == "RSET" ? "RSET answered" : "protocol error"));

      ASSERT_TRUE(server.WaitForEndedSessions(1));
      const std::vector<SmtpSessionRecord> sessions = server.sessions();
      ASSERT_EQ(sessions.size(), 1u) << "the session ends after a protocol error";
      for (const SmtpReceivedMessage& message : sessions[0].messages) EXPECT_FALSE(message.accepted);
      if (c.event != "DATA_END") {
        EXPECT_TRUE(sessions[0].messages.empty()) << "no message without a 354 to DATA";
        for (const std::string& command : sessions[0].commands) {
          EXPECT_THAT(command, Not(AnyOf(HasSubstr("unexpected replies"), HasSubstr("the body line"))))
              << "a message line went out";
        }
      }
    }
  }
}

// QUIT comes after the server accepted the message: whatever it answers, the message stays
// delivered (and nothing is sent after QUIT).
TEST_F(SessionTest, AnyReplyToQuitLeavesTheAcceptedMessageDelivered) {
  for (std::string reply : {"354 go ahead", "220 fake.test", "500 5.5.1 what"}) {
    SCOPED_TRACE(reply);
    SmtpServerScript script;
    script.on["QUIT"] = SmtpAction::Close(reply);
    ScriptedSmtpServer server(script);
    std::vector<Outcome> outcomes = SendOne(Options(server), {"a@example.org"});
    EXPECT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
    ASSERT_TRUE(server.WaitForEndedSessions(1));
    const std::vector<SmtpSessionRecord> sessions = server.sessions();
    ASSERT_EQ(sessions[0].messages.size(), 1u);
    EXPECT_TRUE(sessions[0].messages[0].accepted);
    EXPECT_EQ(sessions[0].commands.back(), "QUIT");
  }
}

// A refusal of this client or sender concerns the account, and one by policy is marked so that
// the engine can hand the recipient to another path; a refusal of the recipient or message is not.
TEST_F(SessionTest, RefusalsOfTheAccountAndByPolicyAreClassifiedAsSuch) {
  struct Case {
    const char* event;
    const char* reply;
    Disposition disposition;
    Scope scope;
    bool policy;
  };
  const Case kCases[] = {
      {"GREETING", "554 5.7.1 Client host 127.0.0.1 blocked using zen.spamhaus.org", Disposition::kPermanent,
       Scope::kAccount, true},
      {"GREETING", "554 No SMTP service here", Disposition::kPermanent, Scope::kAccount, true},
      {"EHLO", "550 5.7.1 Client host rejected: cannot find your hostname", Disposition::kPermanent,
       Scope::kAccount, true},
      {"MAIL", "550 5.7.1 Client host blocked", Disposition::kPermanent, Scope::kAccount, true},
      {"MAIL", "553 Sender address rejected", Disposition::kPermanent, Scope::kAccount, false},
      {"MAIL", "550 5.1.8 Sender domain does not exist", Disposition::kPermanent, Scope::kAccount, false},
      {"MAIL", "552 5.3.4 Message size exceeds fixed limit", Disposition::kPermanent, Scope::kMessage, false},
      {"MAIL", "555 5.5.4 Unsupported option: SMTPUTF8", Disposition::kPermanent, Scope::kMessage, false},
      {"RCPT", "554 5.7.1 Relay access denied", Disposition::kPermanent, Scope::kRecipient, true},
      {"RCPT", "550 5.1.1 User unknown", Disposition::kPermanent, Scope::kRecipient, false},
      {"RCPT", "552 5.2.2 Mailbox full", Disposition::kTemporary, Scope::kRecipient, false},
      {"DATA_END", "550 5.7.1 Message rejected as spam", Disposition::kPermanent, Scope::kMessage, false},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.event) + " " + c.reply);
    SmtpServerScript script;
    script.on[c.event] = SmtpAction::Reply(c.reply);
    ScriptedSmtpServer server(script);
    std::vector<Outcome> outcomes = SendOne(Options(server), {"a@example.org"});
    EXPECT_EQ(outcomes[0].disposition, c.disposition) << outcomes[0].text;
    EXPECT_EQ(outcomes[0].scope, c.scope) << outcomes[0].text;
    EXPECT_EQ(outcomes[0].policy_refusal, c.policy) << outcomes[0].text;
  }
}

// A relay account never sends credentials or mail where the connection is not what the account
// asks for: STARTTLS required but not offered, a password on a plain connection without
// allow_plaintext_auth, a certificate that does not verify. The account fails as a whole, saying why.
TEST_F(SessionTest, NothingGoesOutInClearAndTheAccountFailsSayingWhy) {
  struct Case {
    const char* name;
    Security security;
    const CertificateFiles* certificate;  // null: no TLS on the server
    bool implicit_tls;
    const char* want;
  };
  const Case kCases[] = {
      {"STARTTLS required, not offered", Security::kStartTls, nullptr, false, "does not offer STARTTLS"},
      {"password on a plain connection", Security::kNone, &certificates_->localhost, false,
       "allow_plaintext_auth"},
      {"STARTTLS, self-signed certificate", Security::kStartTls, &certificates_->self_signed, false,
       "not trusted"},
      {"STARTTLS, certificate for another host", Security::kStartTls, &certificates_->wrong_host, false,
       "mail.other.example"},
      {"implicit TLS, expired certificate", Security::kTls, &certificates_->expired, true, "expired"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    SmtpServerScript script = c.certificate != nullptr ? Tls(*c.certificate) : SmtpServerScript{};
    script.implicit_tls = c.implicit_tls;
    script.extensions = {"PIPELINING", "AUTH PLAIN LOGIN"};
    ScriptedSmtpServer server(script);
    SessionOptions options = Options(server, c.security);
    options.username = "u@example.com";
    options.secret = "s3cret";
    std::vector<Outcome> outcomes = SendOne(options, {"a@example.org"});
    EXPECT_EQ(outcomes[0].scope, Scope::kAccount) << outcomes[0].text;
    EXPECT_FALSE(outcomes[0].delivered());
    EXPECT_THAT(outcomes[0].text, HasSubstr(c.want));
    ASSERT_TRUE(server.WaitForEndedSessions(1));
    const std::vector<SmtpSessionRecord> sessions = server.sessions();
    for (const char* verb : {"AUTH", "MAIL", "RCPT", "DATA"}) {
      EXPECT_EQ(CountCommands(sessions[0], verb), 0u) << verb;
    }
    EXPECT_TRUE(sessions[0].messages.empty());
    EXPECT_TRUE(sessions[0].authenticated_user.empty());
  }
}

// A timeout names the reply that did not come and the whole wait of its state (a dripped reply:
// DeadlineFiresOnAServerThatDripsItsReplies).
TEST_F(SessionTest, TimeoutsSayWhichReplyDidNotComeWithinTheConfiguredTime) {
  SmtpServerScript stalled;
  stalled.on["RCPT"] = SmtpAction::Stall();
  ScriptedSmtpServer stalling(stalled);
  SessionOptions options = Options(stalling);
  options.timeouts.command = std::chrono::milliseconds(300);
  std::vector<Outcome> outcomes = SendOne(options, {"a@example.org"});
  EXPECT_EQ(outcomes[0].disposition, Disposition::kTemporary);
  EXPECT_EQ(outcomes[0].text, "timed out: no reply to RCPT TO from 127.0.0.1 within 300ms");
}

// The reply to QUIT changes nothing: Quit() does not wait the command timeout (minutes) for it.
TEST_F(SessionTest, QuitWaitsSecondsNotTheCommandTimeout) {
  SmtpServerScript script;
  script.on["QUIT"] = SmtpAction::Stall();
  ScriptedSmtpServer server(script);
  SessionOptions options = Options(server);
  options.timeouts.command = std::chrono::seconds(60);
  auto started = std::chrono::steady_clock::now();
  std::vector<Outcome> outcomes = SendOne(options, {"a@example.org"});
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
  EXPECT_LT(took, std::chrono::seconds(10));
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_TRUE(server.sessions()[0].quit);
}

TEST_F(SessionTest, DeadlineFiresOnAServerThatDripsItsReplies) {
  SmtpServerScript script;
  script.byte_delay = std::chrono::milliseconds(50);
  ScriptedSmtpServer server(script);
  SessionOptions options = Options(server);
  options.timeouts.greeting = std::chrono::milliseconds(300);  // the greeting takes ~2 s at this pace
  auto started = std::chrono::steady_clock::now();
  std::vector<Outcome> outcomes = SendOne(options, {"a@example.org"});
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(outcomes[0].disposition, Disposition::kTemporary);
  EXPECT_EQ(outcomes[0].stage, Stage::kGreeting);
  // The whole wait, not what was left of it at the last read.
  EXPECT_EQ(outcomes[0].text, "timed out: no greeting from 127.0.0.1 within 300ms");
  EXPECT_LT(took, std::chrono::seconds(2)) << "one deadline for the whole reply";
}

TEST_F(SessionTest, StalledServerTimesOutAtMailFrom) {
  SmtpServerScript script;
  script.on["MAIL"] = SmtpAction::Stall();
  ScriptedSmtpServer server(script);
  SessionOptions options = Options(server);
  options.timeouts.command = std::chrono::milliseconds(300);
  std::vector<Outcome> outcomes = SendOne(options, {"a@example.org", "b@example.org"});
  for (const Outcome& outcome : outcomes) {
    EXPECT_EQ(outcome.disposition, Disposition::kTemporary);
    EXPECT_EQ(outcome.scope, Scope::kMessage);
  }
}

TEST_F(SessionTest, MalformedAndOverlongRepliesEndTheSessionCleanly) {
  const std::string kReplies[] = {
      "250-first\r\n251 inconsistent codes",
      "garbage without a code",
      "250 " + std::string(5000, 'x'),
      std::string("250 nul\0inside", 14),
      "150 one hundred",
  };
  for (const std::string& reply : kReplies) {
    SmtpServerScript script;
    script.on["MAIL"] = SmtpAction::Reply(reply);
    ScriptedSmtpServer server(script);
    std::vector<Outcome> outcomes = SendOne(Options(server), {"a@example.org"});
    EXPECT_EQ(outcomes[0].disposition, Disposition::kTemporary) << reply.substr(0, 40);
    EXPECT_FALSE(outcomes[0].delivered());
  }
}

TEST_F(SessionTest, StartTlsVerifiesTheCertificateAndSaysWhatIsWrong) {
  ScriptedSmtpServer good(Tls(certificates_->localhost));
  std::vector<Outcome> outcomes = SendOne(Options(good, Security::kStartTls), {"a@example.org"});
  EXPECT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
  ASSERT_TRUE(good.WaitForEndedSessions(1));
  EXPECT_TRUE(good.sessions()[0].tls);
  EXPECT_EQ(CountCommands(good.sessions()[0], "EHLO"), 2u) << "EHLO again after STARTTLS";

  struct Case {
    const CertificateFiles* files;
    const char* want;
  };
  const Case cases[] = {
      {&certificates_->self_signed, "self-signed"},
      {&certificates_->expired, "expired"},
      {&certificates_->wrong_host, "mail.other.example"},
      {&certificates_->unknown_ca, "not trusted"},
  };
  for (const Case& c : cases) {
    ScriptedSmtpServer bad(Tls(*c.files));
    outcomes = SendOne(Options(bad, Security::kStartTls), {"a@example.org"});
    EXPECT_EQ(outcomes[0].scope, Scope::kAccount) << c.want;
    EXPECT_EQ(outcomes[0].stage, Stage::kStartTls) << c.want;
    EXPECT_THAT(outcomes[0].text, HasSubstr(c.want));
    ASSERT_TRUE(bad.WaitForEndedSessions(1));
    EXPECT_TRUE(bad.sessions()[0].messages.empty()) << "nothing sent over an untrusted connection";
  }

  ScriptedSmtpServer self_signed(Tls(certificates_->self_signed));
  SessionOptions trusting = Options(self_signed, Security::kStartTls);
  trusting.tls.verify = false;
  outcomes = SendOne(trusting, {"a@example.org"});
  EXPECT_TRUE(outcomes[0].delivered()) << "verification off by explicit setting: " << outcomes[0].text;
}

TEST_F(SessionTest, ImplicitTls) {
  SmtpServerScript script = Tls(certificates_->localhost);
  script.implicit_tls = true;
  ScriptedSmtpServer server(script);
  std::vector<Outcome> outcomes = SendOne(Options(server, Security::kTls), {"a@example.org"});
  EXPECT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_TRUE(server.sessions()[0].tls);
  EXPECT_EQ(CountCommands(server.sessions()[0], "STARTTLS"), 0u);
}

TEST_F(SessionTest, BytesInjectedAfterTheStartTls220AbortTheSession) {
  SmtpServerScript script = Tls(certificates_->localhost);
  script.on["STARTTLS"] = SmtpAction::Reply("220 2.0.0 Go ahead\r\n250 injected");
  ScriptedSmtpServer server(script);
  std::vector<Outcome> outcomes = SendOne(Options(server, Security::kStartTls), {"a@example.org"});
  EXPECT_EQ(outcomes[0].scope, Scope::kAccount);
  EXPECT_THAT(outcomes[0].text, HasSubstr("CVE-2021-38371"));
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_TRUE(server.sessions()[0].messages.empty());
}

TEST_F(SessionTest, RequiredTlsWithoutStartTlsSendsNothing) {
  SmtpServerScript script;  // no certificate: STARTTLS not offered
  ScriptedSmtpServer server(script);
  std::vector<Outcome> outcomes = SendOne(Options(server, Security::kStartTls), {"a@example.org"});
  EXPECT_EQ(outcomes[0].disposition, Disposition::kPermanent);
  EXPECT_EQ(outcomes[0].scope, Scope::kAccount);
  EXPECT_THAT(outcomes[0].text, HasSubstr("does not offer STARTTLS"));
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_EQ(CountCommands(server.sessions()[0], "MAIL"), 0u);
  EXPECT_EQ(CountCommands(server.sessions()[0], "AUTH"), 0u);
}

TEST_F(SessionTest, AuthenticatesAndKeepsSecretsOutOfTheTranscript) {
  SmtpServerScript script = Tls(certificates_->localhost);
  script.auth_user = "news@example.com";
  script.auth_password = "s3cret-Pa55";
  script.require_auth = true;
  ScriptedSmtpServer server(script);
  SessionOptions options = Options(server, Security::kStartTls);
  options.username = "news@example.com";
  options.secret = "s3cret-Pa55";
  for (Mechanism mechanism : {Mechanism::kPlain, Mechanism::kLogin, Mechanism::kCramMd5}) {
    transcript_.clear();
    SessionOptions with = options;
    with.mechanisms = {mechanism};
    std::vector<Outcome> outcomes = SendOne(with, {"a@example.org"});
    EXPECT_TRUE(outcomes[0].delivered()) << MechanismName(mechanism) << ": " << outcomes[0].text;
    std::string all;
    for (const std::string& line : transcript_) all += line + "\n";
    EXPECT_THAT(all, HasSubstr("AUTH " + std::string(MechanismName(mechanism))));
    EXPECT_THAT(all, ::testing::Not(HasSubstr("s3cret")));
    EXPECT_THAT(all, ::testing::Not(HasSubstr("AHN")));        // base64 of "\0news..." (PLAIN)
    EXPECT_THAT(all, ::testing::Not(HasSubstr("czNjcmV0")));   // base64 of "s3cret"
  }

  options.secret = "wrong";
  std::vector<Outcome> outcomes = SendOne(options, {"a@example.org"});
  EXPECT_EQ(outcomes[0].disposition, Disposition::kPermanent);
  EXPECT_EQ(outcomes[0].scope, Scope::kAccount);
  EXPECT_EQ(outcomes[0].stage, Stage::kAuth);
  EXPECT_EQ(outcomes[0].reply_code, 535);
}

TEST_F(SessionTest, CredentialsNeverCrossAPlainConnectionUnlessAllowed) {
  SmtpServerScript script;
  script.extensions = {"PIPELINING", "AUTH PLAIN LOGIN"};
  ScriptedSmtpServer server(script);
  SessionOptions options = Options(server);
  options.username = "u@example.com";
  options.secret = "pw";
  std::vector<Outcome> outcomes = SendOne(options, {"a@example.org"});
  EXPECT_EQ(outcomes[0].scope, Scope::kAccount);
  EXPECT_EQ(outcomes[0].stage, Stage::kAuth);
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_EQ(CountCommands(server.sessions()[0], "AUTH"), 0u);

  options.allow_plaintext_auth = true;
  outcomes = SendOne(options, {"a@example.org"});
  EXPECT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
}

TEST_F(SessionTest, MessageOverTheServersSizeLimitFailsBeforeItIsSent) {
  SmtpServerScript script;
  script.extensions = {"PIPELINING", "SIZE 1000"};
  ScriptedSmtpServer server(script);
  std::vector<Outcome> outcomes = SendOne(Options(server), {"a@example.org"}, std::string(2000, 'x') + "\r\n");
  EXPECT_EQ(outcomes[0].disposition, Disposition::kPermanent);
  EXPECT_EQ(outcomes[0].stage, Stage::kPrepare);
  EXPECT_THAT(outcomes[0].text, HasSubstr("limit of 1000 bytes"));
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_EQ(CountCommands(server.sessions()[0], "MAIL"), 0u);
}

TEST_F(SessionTest, SmtpUtf8IsUsedWhenNeededAndRequired) {
  ScriptedSmtpServer server;
  std::vector<Outcome> outcomes = SendOne(Options(server), {"jürgen@example.org"}, kBody, /*smtputf8=*/true);
  EXPECT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_THAT(server.sessions()[0].messages[0].mail_parameters, HasSubstr("SMTPUTF8"));

  SmtpServerScript script;
  script.extensions = {"PIPELINING", "8BITMIME"};
  ScriptedSmtpServer old(script);
  outcomes = SendOne(Options(old), {"jürgen@example.org"}, kBody, true);
  EXPECT_EQ(outcomes[0].disposition, Disposition::kPermanent);
  EXPECT_THAT(outcomes[0].text, HasSubstr("SMTPUTF8"));
}

// The wire test: whatever the message holds, what reaches the server is CRLF-only and correctly
// dot-stuffed, and the server stores the message with line ends normalised and nothing else changed.
TEST_F(SessionTest, MessageDataOnTheWireIsCrlfOnlyAndDotStuffed) {
  const std::string kBodies[] = {
      "Subject: bare LF\n\nline one\nline two\n",
      "Subject: bare CR\r\rline one\rline two\r",
      "Subject: smuggling\r\n\r\nbefore\n.\nMAIL FROM:<evil@example.com>\r\nafter\r\n",
      "Subject: cr smuggling\r\n\r\nbefore\r.\rafter\r\n",
      "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlone dot above\r\n",
      "Subject: no final newline\r\n\r\nend without CRLF",
  };
  for (const std::string& body : kBodies) {
    ScriptedSmtpServer server;
    std::vector<Outcome> outcomes = SendOne(Options(server), {"a@example.org"}, body);
    ASSERT_TRUE(outcomes[0].delivered()) << outcomes[0].text;
    ASSERT_TRUE(server.WaitForEndedSessions(1));
    std::vector<SmtpSessionRecord> sessions = server.sessions();
    ASSERT_EQ(sessions[0].messages.size(), 1u) << "exactly one message, nothing smuggled";
    const std::string& wire = sessions[0].messages[0].data;
    for (std::size_t i = 0; i < wire.size(); ++i) {
      if (wire[i] == '\n') {
        ASSERT_TRUE(i > 0 && wire[i - 1] == '\r') << "bare LF at " << i;
      }
      if (wire[i] == '\r') {
        ASSERT_TRUE(i + 1 < wire.size() && wire[i + 1] == '\n') << "bare CR at " << i;
      }
    }
    EXPECT_EQ(wire.find("\r\n.\r\n"), wire.size() - 5) << "the end marker only at the end";
    std::string normalised;
    for (std::size_t i = 0; i < body.size(); ++i) {
      if (body[i] == '\r' && i + 1 < body.size() && body[i + 1] == '\n') continue;
      if (body[i] == '\r' || body[i] == '\n') {
        normalised += "\r\n";
      } else {
        normalised += body[i];
      }
    }
    if (normalised.size() < 2 || normalised.substr(normalised.size() - 2) != "\r\n") normalised += "\r\n";
    EXPECT_EQ(UnstuffSmtpData(wire), normalised);
    EXPECT_EQ(CountCommands(sessions[0], "MAIL"), 1u);
  }
}

}  // namespace
}  // namespace herald::smtp
