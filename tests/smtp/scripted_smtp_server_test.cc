// The scripted fake SMTP server, driven by a plain Asio test client that reads replies with the
// ReplyParser and answers AUTH with the SaslClient — so these tests also run the protocol pieces
// against an independent server implementation over a real socket.
#include "fakes/scripted_smtp_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/write.hpp>

#include "core/text.h"
#include "smtp/auth.h"
#include "smtp/capabilities.h"
#include "smtp/classify.h"
#include "smtp/command.h"
#include "smtp/dot_stuffer.h"
#include "smtp/reply.h"
#include "temp_dir.h"
#include "tls_certificates.h"

namespace herald::smtp {
namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;

// A blocking client with timeouts: every read runs the private io_context for at most the time
// given, then cancels.
class TestClient {
 public:
  explicit TestClient(std::uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  void Send(std::string_view bytes) {
    std::error_code error;
    if (tls_) {
      asio::write(*tls_, asio::buffer(bytes.data(), bytes.size()), error);
    } else {
      asio::write(socket_, asio::buffer(bytes.data(), bytes.size()), error);
    }
    send_failed_ = send_failed_ || static_cast<bool>(error);
  }

  // Reads until the parser has a reply. nullopt on timeout, end of stream or a malformed reply
  // (then error() says which).
  std::optional<Reply> ReadReply(std::chrono::milliseconds timeout = 3s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      Result<std::optional<Reply>> next = parser_.Next();
      if (!next.ok()) {
        error_ = next.status().message();
        return std::nullopt;
      }
      if (*next) return std::move(**next);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms || !ReadSome(left)) return std::nullopt;
    }
  }

  // Reads one chunk into the parser; false on timeout or end of stream.
  bool ReadSome(std::chrono::milliseconds timeout) {
    char buffer[4096];
    std::error_code error;
    std::size_t n = 0;
    bool done = false;
    auto handler = [&](std::error_code e, std::size_t bytes) {
      error = e;
      n = bytes;
      done = true;
    };
    if (tls_) {
      tls_->async_read_some(asio::buffer(buffer), handler);
    } else {
      socket_.async_read_some(asio::buffer(buffer), handler);
    }
    io_.restart();
    io_.run_for(timeout);
    if (!done) {
      socket_.cancel();
      io_.restart();
      io_.run();
      error_ = "timed out";
      return false;
    }
    ++reads_;
    if (error) {
      error_ = error == asio::error::eof ? "closed" : error.message();
      return false;
    }
    received_.append(buffer, n);
    parser_.Feed(std::string_view(buffer, n));
    return true;
  }

  // True if the server closes the connection within `timeout` (what is read meanwhile is kept).
  bool WaitForClose(std::chrono::milliseconds timeout = 3s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!ReadSome(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()))) {
        return error_ != "timed out";
      }
    }
    return false;
  }

  bool StartTls(const std::string& ca_file) {
    tls_context_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    tls_context_->load_verify_file(ca_file);
    tls_context_->set_verify_mode(asio::ssl::verify_peer);
    tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *tls_context_);
    std::error_code error;
    bool done = false;
    tls_->async_handshake(asio::ssl::stream_base::client, [&](std::error_code e) {
      error = e;
      done = true;
    });
    io_.restart();
    io_.run_for(3s);
    if (!done) {
      socket_.cancel();
      io_.restart();
      io_.run();
      return false;
    }
    parser_.Reset();
    return !error;
  }

  void Close() {
    std::error_code ignored;
    socket_.close(ignored);
  }

  ReplyParser& parser() { return parser_; }
  const std::string& error() const { return error_; }
  const std::string& received() const { return received_; }
  int reads() const { return reads_; }

 private:
  asio::io_context io_;
  tcp::socket socket_;
  std::unique_ptr<asio::ssl::context> tls_context_;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
  ReplyParser parser_;
  std::string error_;
  std::string received_;
  bool send_failed_ = false;
  int reads_ = 0;
};

// Sends `line` and returns the reply code (0 if none came).
int Exchange(TestClient& client, std::string_view line) {
  client.Send(line);
  std::optional<Reply> reply = client.ReadReply();
  return reply ? reply->code : 0;
}

int Code(const std::optional<Reply>& reply) { return reply ? reply->code : 0; }

TEST(ScriptedSmtpServerTest, DefaultServerTakesAPipelinedMessage) {
  ScriptedSmtpServer server;
  TestClient client(server.port());
  std::optional<Reply> greeting = client.ReadReply();
  ASSERT_TRUE(greeting) << client.error();
  EXPECT_EQ(greeting->code, 220);
  EXPECT_EQ(greeting->Text(), "fake.test ESMTP herald fake");

  client.Send(*EhloCommand("client.example"));
  std::optional<Reply> ehlo = client.ReadReply();
  ASSERT_TRUE(ehlo) << client.error();
  Capabilities caps = ParseCapabilities(*ehlo);
  EXPECT_EQ(caps.server_name, "fake.test");
  EXPECT_TRUE(caps.pipelining);
  EXPECT_EQ(caps.max_size, 10485760u);
  EXPECT_TRUE(caps.eight_bit_mime && caps.smtputf8 && caps.enhanced_status_codes);
  EXPECT_FALSE(caps.starttls);  // no certificate
  EXPECT_EQ(caps.auth_mechanisms, (std::vector<std::string>{"PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"}));

  MessageData message;
  message.Append("Subject: test\r\n\r\nHello\n.\nbare LF and a dot line\r\n");
  message.AppendShared(std::make_shared<const std::string>(".leading dot in a shared piece\r\n"));
  WireData wire = DotStuff(message);
  MailParameters params;
  params.size = wire.message_size();
  // RFC 2920: MAIL, RCPT and DATA in one write; the replies come back in order.
  client.Send(*MailFromCommand("anna@example.com", params) + *RcptToCommand("bob@example.org") +
              *RcptToCommand("carl@example.org") + std::string(kDataCommand));
  for (int want : {250, 250, 250, 354}) EXPECT_EQ(Code(client.ReadReply()), want) << client.error();
  client.Send(wire.ToString());
  std::optional<Reply> end = client.ReadReply();
  ASSERT_TRUE(end) << client.error();
  EXPECT_EQ(end->code, 250);
  EXPECT_EQ(end->enhanced_status, "2.0.0");
  EXPECT_TRUE(Classify(Stage::kDataEnd, *end).outcome.delivered());
  EXPECT_EQ(Exchange(client, kQuitCommand), 221);
  EXPECT_TRUE(client.WaitForClose());

  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_EQ(server.connection_count(), 1);
  std::vector<SmtpSessionRecord> sessions = server.sessions();
  ASSERT_EQ(sessions.size(), 1u);
  const SmtpSessionRecord& s = sessions[0];
  EXPECT_EQ(s.commands, (std::vector<std::string>{"EHLO client.example",
                                                  "MAIL FROM:<anna@example.com> SIZE=" + std::to_string(wire.message_size()),
                                                  "RCPT TO:<bob@example.org>", "RCPT TO:<carl@example.org>", "DATA",
                                                  "QUIT"}));
  ASSERT_EQ(s.messages.size(), 1u);
  EXPECT_EQ(s.messages[0].mail_from, "anna@example.com");
  EXPECT_EQ(s.messages[0].recipients, (std::vector<std::string>{"bob@example.org", "carl@example.org"}));
  EXPECT_EQ(s.messages[0].data, wire.ToString());  // exactly the bytes sent, still stuffed
  EXPECT_EQ(UnstuffSmtpData(s.messages[0].data),
            "Subject: test\r\n\r\nHello\r\n.\r\nbare LF and a dot line\r\n.leading dot in a shared piece\r\n");
  EXPECT_TRUE(s.messages[0].accepted);
  EXPECT_TRUE(s.quit);
  EXPECT_TRUE(s.ended);
  EXPECT_FALSE(s.tls);
  EXPECT_FALSE(s.bare_lf);
}

TEST(ScriptedSmtpServerTest, GreetingFaults) {
  struct Case {
    std::string greeting;
    int want_code;
    Disposition want_disposition;
  };
  const Case cases[] = {
      {"421 4.3.2 Service not available, closing channel", 421, Disposition::kTemporary},
      {"554 5.7.1 No SMTP service here", 554, Disposition::kPermanent},
  };
  for (const Case& c : cases) {
    SmtpServerScript script;
    script.on["GREETING"] = SmtpAction::Close(c.greeting);
    ScriptedSmtpServer server(script);
    TestClient client(server.port());
    std::optional<Reply> reply = client.ReadReply();
    ASSERT_TRUE(reply) << client.error();
    EXPECT_EQ(reply->code, c.want_code);
    Classification classified = Classify(Stage::kGreeting, *reply);
    EXPECT_EQ(classified.outcome.disposition, c.want_disposition) << c.greeting;
    EXPECT_EQ(classified.outcome.scope, Scope::kAccount) << c.greeting;
    EXPECT_TRUE(client.WaitForClose()) << c.greeting;
  }
}

TEST(ScriptedSmtpServerTest, RecipientRepliesAndTooManyRecipients) {
  SmtpServerScript script;
  script.on_rcpt["Unknown@Example.org"] = SmtpAction::Reply("550 5.1.1 <unknown@example.org>: user unknown");
  script.on_rcpt["busy@example.org"] = SmtpAction::Reply("450 4.2.1 Mailbox busy");
  script.max_recipients = 3;
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  EXPECT_EQ(Exchange(client, *EhloCommand("client.example")), 250);
  EXPECT_EQ(Exchange(client, *MailFromCommand("anna@example.com")), 250);
  struct Want {
    std::string rcpt;
    int code;
    Disposition disposition;
    bool too_many;
  };
  const Want wants[] = {
      {"a@example.org", 250, Disposition::kDelivered, false},
      {"unknown@example.org", 550, Disposition::kPermanent, false},
      {"busy@example.org", 450, Disposition::kTemporary, false},
      {"b@example.org", 250, Disposition::kDelivered, false},
      {"c@example.org", 250, Disposition::kDelivered, false},
      {"d@example.org", 452, Disposition::kTemporary, true},  // the fourth accepted would be too many
      {"e@example.org", 452, Disposition::kTemporary, true},
  };
  for (const Want& w : wants) {
    client.Send(*RcptToCommand(w.rcpt));
    std::optional<Reply> reply = client.ReadReply();
    ASSERT_TRUE(reply) << client.error();
    EXPECT_EQ(reply->code, w.code) << w.rcpt;
    Classification c = Classify(Stage::kRcptTo, *reply);
    EXPECT_EQ(c.outcome.disposition, w.disposition) << w.rcpt;
    EXPECT_EQ(c.outcome.scope, Scope::kRecipient) << w.rcpt;
    EXPECT_EQ(c.too_many_recipients, w.too_many) << w.rcpt;
  }
  // A new transaction takes the rest (RFC 5321 §4.5.3.1.10).
  EXPECT_EQ(Exchange(client, kDataCommand), 354);
  client.Send("x\r\n.\r\n");
  EXPECT_EQ(Code(client.ReadReply()), 250);
  EXPECT_EQ(Exchange(client, *MailFromCommand("anna@example.com")), 250);
  EXPECT_EQ(Exchange(client, *RcptToCommand("d@example.org")), 250);
  EXPECT_EQ(Exchange(client, *RcptToCommand("e@example.org")), 250);
  client.Close();
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  ASSERT_EQ(server.sessions()[0].messages.size(), 1u);
  EXPECT_EQ(server.sessions()[0].messages[0].recipients,
            (std::vector<std::string>{"a@example.org", "b@example.org", "c@example.org"}));
}

TEST(ScriptedSmtpServerTest, DropsTheConnectionAfterTheData) {
  SmtpServerScript script;
  script.on["DATA_END"] = SmtpAction::Close();
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  client.Send("EHLO c.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
  for (int want : {250, 250, 250, 354}) EXPECT_EQ(Code(client.ReadReply()), want);
  client.Send("Subject: x\r\n\r\nbody\r\n.\r\n");
  EXPECT_FALSE(client.ReadReply());
  EXPECT_EQ(client.error(), "closed");
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  const SmtpSessionRecord s = server.sessions()[0];
  ASSERT_EQ(s.messages.size(), 1u);
  EXPECT_EQ(s.messages[0].data, "Subject: x\r\n\r\nbody\r\n.\r\n");
  EXPECT_FALSE(s.messages[0].accepted);
  // What the session reports for it: temporary, the whole message (a possible duplicate).
  Outcome outcome = TemporaryFailure(Stage::kDataEnd, "connection closed before the reply to the data");
  EXPECT_EQ(outcome.scope, Scope::kMessage);
}

TEST(ScriptedSmtpServerTest, RepliesOneByteAtATime) {
  SmtpServerScript script;
  script.byte_delay = 2ms;
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  const auto start = std::chrono::steady_clock::now();
  std::optional<Reply> greeting = client.ReadReply();
  ASSERT_TRUE(greeting) << client.error();
  EXPECT_EQ(greeting->Text(), "fake.test ESMTP herald fake");
  const std::size_t size = std::string_view("220 fake.test ESMTP herald fake\r\n").size();
  EXPECT_GE(std::chrono::steady_clock::now() - start, (size - 1) * 2ms);
  EXPECT_GE(client.reads(), 10);  // arrived in many pieces, reassembled by the parser
  client.Send("EHLO c.example\r\n");
  std::optional<Reply> ehlo = client.ReadReply(5s);
  ASSERT_TRUE(ehlo) << client.error();
  EXPECT_TRUE(ParseCapabilities(*ehlo).pipelining);
}

TEST(ScriptedSmtpServerTest, MalformedRepliesAreReportedByTheParser) {
  struct Case {
    std::string name;
    std::string reply;
    std::string want_error;
  };
  const Case cases[] = {
      {"garbage", "hello, I am not an SMTP server", "three-digit code"},
      {"overlong", "250 " + std::string(3000, 'x'), "overlong reply line"},
      {"inconsistent codes", "250-fake.test\r\n250-PIPELINING\r\n251 SIZE 1000", "inconsistent codes"},
      {"NUL", std::string("250 a\0b", 7), "NUL byte"},
      {"1xx", "150 what", "outside 200..599"},
  };
  for (const Case& c : cases) {
    SmtpServerScript script;
    script.on["EHLO"] = SmtpAction::Reply(c.reply);
    ScriptedSmtpServer server(script);
    TestClient client(server.port());
    ASSERT_EQ(Code(client.ReadReply()), 220);
    client.Send("EHLO c.example\r\n");
    EXPECT_FALSE(client.ReadReply()) << c.name;
    EXPECT_NE(client.error().find(c.want_error), std::string::npos) << c.name << ": " << client.error();
  }
}

TEST(ScriptedSmtpServerTest, StalledServerDoesNotAnswerAndStillStops) {
  SmtpServerScript script;
  script.on["MAIL"] = SmtpAction::Stall();
  auto start = std::chrono::steady_clock::now();
  {
    ScriptedSmtpServer server(script);
    TestClient client(server.port());
    ASSERT_EQ(Code(client.ReadReply()), 220);
    EXPECT_EQ(Exchange(client, "EHLO c.example\r\n"), 250);
    client.Send("MAIL FROM:<a@example.com>\r\n");
    EXPECT_FALSE(client.ReadReply(300ms));
    EXPECT_EQ(client.error(), "timed out");
    client.Send("NOOP\r\n");  // read and ignored
    EXPECT_FALSE(client.ReadReply(100ms));
    start = std::chrono::steady_clock::now();
  }  // the destructor closes the stalled connection and joins
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(ScriptedSmtpServerTest, StallAtGreeting) {
  SmtpServerScript script;
  script.on["GREETING"] = SmtpAction::Stall();
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  EXPECT_FALSE(client.ReadReply(200ms));
  EXPECT_EQ(client.error(), "timed out");
}

TEST(ScriptedSmtpServerTest, AuthRejected) {
  SmtpServerScript script;
  script.on["AUTH"] = SmtpAction::Reply("535 5.7.8 Authentication credentials invalid");
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  EXPECT_EQ(Exchange(client, "EHLO c.example\r\n"), 250);
  Result<SaslClient> sasl = SaslClient::Create(Mechanism::kPlain, "anna", "secret");
  ASSERT_TRUE(sasl.ok());
  client.Send(*sasl->InitialCommand());
  std::optional<Reply> reply = client.ReadReply();
  ASSERT_TRUE(reply);
  Classification c = Classify(Stage::kAuth, *reply);
  EXPECT_EQ(c.outcome.disposition, Disposition::kPermanent);
  EXPECT_EQ(c.outcome.scope, Scope::kAccount);
  EXPECT_EQ(c.outcome.enhanced_status, "5.7.8");
}

TEST(ScriptedSmtpServerTest, RequireAuthRefusesMailWith530) {
  SmtpServerScript script;
  script.require_auth = true;
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  EXPECT_EQ(Exchange(client, "EHLO c.example\r\n"), 250);
  client.Send("MAIL FROM:<a@example.com>\r\n");
  std::optional<Reply> reply = client.ReadReply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->code, 530);
  EXPECT_EQ(Classify(Stage::kMailFrom, *reply).outcome.scope, Scope::kAccount);
}

// Runs one AUTH exchange with the SaslClient; returns the final reply code.
int Authenticate(TestClient& client, Mechanism mechanism, const std::string& user, const std::string& secret,
                 std::string* server_error = nullptr) {
  Result<SaslClient> sasl = SaslClient::Create(mechanism, user, secret);
  if (!sasl.ok()) return -1;
  client.Send(*sasl->InitialCommand());
  for (int round = 0; round < 4; ++round) {
    std::optional<Reply> reply = client.ReadReply();
    if (!reply) return 0;
    if (reply->code != 334) {
      if (server_error != nullptr) *server_error = sasl->server_error();
      return reply->code;
    }
    Result<std::string> answer = sasl->Answer(reply->Text());
    if (!answer.ok()) {
      client.Send(kAuthCancelLine);
      return -2;
    }
    client.Send(*answer);
  }
  return -3;
}

TEST(ScriptedSmtpServerTest, EveryMechanismAgainstTheServersOwnCheck) {
  SmtpServerScript script;
  script.auth_user = "anna@example.com";
  script.auth_password = "correct horse battery staple";
  script.require_auth = true;
  ScriptedSmtpServer server(script);
  struct Case {
    Mechanism mechanism;
    std::string secret;
    int want;
  };
  const Case cases[] = {
      {Mechanism::kPlain, "correct horse battery staple", 235},
      {Mechanism::kPlain, "wrong", 535},
      {Mechanism::kLogin, "correct horse battery staple", 235},
      {Mechanism::kLogin, "wrong", 535},
      {Mechanism::kCramMd5, "correct horse battery staple", 235},
      {Mechanism::kCramMd5, "wrong", 535},
      {Mechanism::kXoauth2, "correct horse battery staple", 235},
      {Mechanism::kXoauth2, "expired-token", 535},
  };
  int connections = 0;
  for (const Case& c : cases) {
    TestClient client(server.port());
    ++connections;
    ASSERT_EQ(Code(client.ReadReply()), 220);
    EXPECT_EQ(Exchange(client, "EHLO c.example\r\n"), 250);
    std::string server_error;
    EXPECT_EQ(Authenticate(client, c.mechanism, "anna@example.com", c.secret, &server_error), c.want)
        << MechanismName(c.mechanism) << " with " << c.secret;
    if (c.mechanism == Mechanism::kXoauth2 && c.want == 535) {
      EXPECT_EQ(server_error, "status 401, schemes bearer mac, scope https://mail.google.com/");
    }
    EXPECT_EQ(Exchange(client, "MAIL FROM:<anna@example.com>\r\n"), c.want == 235 ? 250 : 530);
    client.Close();
  }
  ASSERT_TRUE(server.WaitForEndedSessions(connections));
  std::vector<SmtpSessionRecord> sessions = server.sessions();
  EXPECT_EQ(sessions[0].authenticated_user, "anna@example.com");
  EXPECT_EQ(sessions[0].auth_mechanism, "PLAIN");
  EXPECT_EQ(sessions[4].auth_mechanism, "CRAM-MD5");
  EXPECT_EQ(sessions[1].authenticated_user, "");
}

class ScriptedSmtpServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override { certificates_ = MakeTestCertificates(dir_.path()); }
  SmtpServerScript TlsScript() const {
    SmtpServerScript script;
    script.certificate_file = certificates_.localhost.certificate;
    script.key_file = certificates_.localhost.key;
    return script;
  }
  TempDir dir_;
  TestCertificates certificates_;
};

TEST_F(ScriptedSmtpServerTlsTest, StartTlsThenEhloAgainAndAuth) {
  SmtpServerScript script = TlsScript();
  script.require_tls = true;
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  client.Send("EHLO c.example\r\n");
  std::optional<Reply> ehlo = client.ReadReply();
  ASSERT_TRUE(ehlo);
  EXPECT_TRUE(ParseCapabilities(*ehlo).starttls);
  EXPECT_EQ(Exchange(client, "MAIL FROM:<a@example.com>\r\n"), 530);  // not before TLS
  client.Send(kStartTlsCommand);
  std::optional<Reply> ready = client.ReadReply();
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->code, 220);
  EXPECT_FALSE(client.parser().HasPendingInput());
  ASSERT_TRUE(client.StartTls(certificates_.ca_file)) << "handshake failed";
  client.Send("EHLO c.example\r\n");
  ehlo = client.ReadReply();
  ASSERT_TRUE(ehlo);
  EXPECT_FALSE(ParseCapabilities(*ehlo).starttls);  // not offered twice
  EXPECT_EQ(Exchange(client, kStartTlsCommand), 503);
  EXPECT_EQ(Authenticate(client, Mechanism::kPlain, "anna", "pw"), 235);
  EXPECT_EQ(Exchange(client, "MAIL FROM:<a@example.com>\r\n"), 250);
  EXPECT_EQ(Exchange(client, kQuitCommand), 221);
  client.Close();
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  const SmtpSessionRecord s = server.sessions()[0];
  EXPECT_TRUE(s.tls);
  EXPECT_EQ(s.tls_error, "");
  EXPECT_EQ(s.plaintext_after_starttls, 0u);
  EXPECT_EQ(s.authenticated_user, "anna");
}

TEST_F(ScriptedSmtpServerTlsTest, InjectedBytesAfterStartTlsAreVisibleToTheClient) {
  // CVE-2021-38371 / CVE-2011-0411 class: plaintext after the 220 must never be taken as if it
  // came through TLS; the client sees it pending in its parser and must abort.
  SmtpServerScript script = TlsScript();
  script.on["STARTTLS"] = SmtpAction::Reply("220 2.0.0 Go ahead\r\n250-injected\r\n250 AUTH PLAIN");
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  EXPECT_EQ(Exchange(client, "EHLO c.example\r\n"), 250);
  client.Send(kStartTlsCommand);
  std::optional<Reply> ready = client.ReadReply();
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->code, 220);
  // One write from the server: the injected lines came with the 220 (or arrive right after).
  if (!client.parser().HasPendingInput()) client.ReadSome(500ms);
  EXPECT_TRUE(client.parser().HasPendingInput());
  client.Close();  // what the session must do
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_NE(server.sessions()[0].tls_error, "");
}

TEST_F(ScriptedSmtpServerTlsTest, StartTlsNotOffered) {
  SmtpServerScript script = TlsScript();
  script.offer_starttls = false;
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  client.Send("EHLO c.example\r\n");
  std::optional<Reply> ehlo = client.ReadReply();
  ASSERT_TRUE(ehlo);
  EXPECT_FALSE(ParseCapabilities(*ehlo).starttls);
  EXPECT_EQ(Exchange(client, kStartTlsCommand), 502);
}

TEST_F(ScriptedSmtpServerTlsTest, PlaintextPipelinedAfterStartTlsIsRecordedAndDiscarded) {
  ScriptedSmtpServer server(TlsScript());
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  EXPECT_EQ(Exchange(client, "EHLO c.example\r\n"), 250);
  client.Send("STARTTLS\r\nMAIL FROM:<a@example.com>\r\n");  // a client bug (RFC 3207 §4.2)
  ASSERT_EQ(Code(client.ReadReply()), 220);
  ASSERT_TRUE(client.StartTls(certificates_.ca_file));
  EXPECT_EQ(Exchange(client, "RCPT TO:<b@example.org>\r\n"), 503);  // the MAIL was not executed
  client.Close();
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_EQ(server.sessions()[0].plaintext_after_starttls, std::string_view("MAIL FROM:<a@example.com>\r\n").size());
}

TEST_F(ScriptedSmtpServerTlsTest, ImplicitTls) {
  SmtpServerScript script = TlsScript();
  script.implicit_tls = true;
  ScriptedSmtpServer server(script);
  TestClient client(server.port());
  ASSERT_TRUE(client.StartTls(certificates_.ca_file));
  ASSERT_EQ(Code(client.ReadReply()), 220);
  client.Send("EHLO c.example\r\n");
  std::optional<Reply> ehlo = client.ReadReply();
  ASSERT_TRUE(ehlo);
  EXPECT_FALSE(ParseCapabilities(*ehlo).starttls);
  client.Close();
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_TRUE(server.sessions()[0].tls);
}

TEST(ScriptedSmtpServerTest, RefusesOverlongCommandsAndRecordsBareLf) {
  ScriptedSmtpServer server;
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  EXPECT_EQ(Exchange(client, "NOOP " + std::string(507, 'x') + "\r\n"), 500);  // 514 octets
  EXPECT_EQ(Exchange(client, "NOOP " + std::string(505, 'x') + "\r\n"), 250);  // 512 octets
  EXPECT_EQ(Exchange(client, "NOOP\n"), 250);
  client.Close();
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  EXPECT_TRUE(server.sessions()[0].bare_lf);
}

TEST(ScriptedSmtpServerTest, LargeMessageIsRecordedExactly) {
  ScriptedSmtpServer server;
  TestClient client(server.port());
  ASSERT_EQ(Code(client.ReadReply()), 220);
  std::string body;
  while (body.size() < 10'000'000) body += "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n";
  MessageData message;
  message.Append("Subject: big\r\n\r\n");
  message.AppendShared(std::make_shared<const std::string>(body));
  WireData wire = DotStuff(message);
  client.Send("EHLO c.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
  for (int want : {250, 250, 250, 354}) EXPECT_EQ(Code(client.ReadReply()), want);
  wire.ForEachSegment([&](std::string_view segment) { client.Send(segment); });
  EXPECT_EQ(Code(client.ReadReply(10s)), 250);
  client.Close();
  ASSERT_TRUE(server.WaitForEndedSessions(1));
  const SmtpSessionRecord s = server.sessions()[0];
  ASSERT_EQ(s.messages.size(), 1u);
  EXPECT_EQ(s.messages[0].data.size(), wire.size());
  EXPECT_TRUE(s.messages[0].data == wire.ToString());
}

TEST(ScriptedSmtpServerTest, NewScriptAppliesToLaterConnections) {
  ScriptedSmtpServer server;
  TestClient first(server.port());
  ASSERT_EQ(Code(first.ReadReply()), 220);
  SmtpServerScript busy;
  busy.on["GREETING"] = SmtpAction::Close("421 4.7.0 Try again later");
  server.SetScript(busy);
  TestClient second(server.port());
  EXPECT_EQ(Code(second.ReadReply()), 421);
  EXPECT_EQ(Exchange(first, "NOOP\r\n"), 250);  // the first keeps its script
  EXPECT_EQ(server.connection_count(), 2);
}

TEST(UnstuffSmtpDataTest, Table) {
  const std::pair<std::string, std::string> cases[] = {
      {".\r\n", ""},
      {"a\r\n.\r\n", "a\r\n"},
      {"..\r\n.\r\n", ".\r\n"},
      {"a\r\n..b\r\n.\r\n", "a\r\n.b\r\n"},
  };
  for (const auto& [data, want] : cases) EXPECT_EQ(UnstuffSmtpData(data), want) << Printable(data);
}

}  // namespace
}  // namespace herald::smtp
