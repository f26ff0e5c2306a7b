// DirectTransport with a fake resolver and the scripted SMTP server on 127.0.0.1: the walk over
// the MX plan (a refused address, the address limit, permanent and temporary results), DNS
// failures without a connection, the TLS policies, scopes, address literals, local address
// families, and the HELO name check. The same against dnsmasq and real servers on several
// loopback addresses: tests/smtp/direct_delivery_test.cc.
#include "smtp/direct_transport.h"

#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/fake_resolver.h"
#include "fakes/scripted_smtp_server.h"
#include "run_awaitable.h"
#include "temp_dir.h"
#include "tls_certificates.h"

namespace herald {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kBody[] = "Subject: direct\r\n\r\nHello\r\n";

// Built outside the coroutines: g++ 12 cannot compile such temporaries inside a coroutine body.
Envelope EnvelopeTo(const std::string& recipient) { return Envelope{"news@herald.example", {recipient}, false}; }

std::shared_ptr<const MessageData> Message() {
  auto message = std::make_shared<MessageData>();
  message->Append(kBody);
  return message;
}

// Connects to `domain`, sends one message to `recipient`, closes; the connect failure or the
// recipient's outcome.
Outcome DeliverOne(DirectTransport& transport, std::string domain, std::string recipient) {
  return RunAwaitable([](DirectTransport& transport, std::string domain,
                         std::string recipient) -> asio::awaitable<Outcome> {
    ConnectResult connected = co_await transport.Connect(std::move(domain));
    if (connected.connection == nullptr) co_return connected.failure;
    std::vector<Outcome> outcomes = co_await connected.connection->Send(EnvelopeTo(recipient), Message());
    co_await connected.connection->Close();
    co_return outcomes.at(0);
  }(transport, std::move(domain), std::move(recipient)));
}

class DirectTransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ca_ = new TestCertificateAuthority(dir_->path(), "ca", "Herald Direct Test CA");
    mx_certificate_ = new CertificateFiles(ca_->Issue("mx", {"mx.a.example"}));
    other_certificate_ = new CertificateFiles(ca_->Issue("other", {"mx.other.example"}));
  }
  static void TearDownTestSuite() {
    delete other_certificate_;
    delete mx_certificate_;
    delete ca_;
    delete dir_;
  }

  void SetUp() override {
    account_.name = "direct";
    account_.kind = AccountKind::kDirect;
    account_.origin = "accounts.toml:1";
    account_.helo_name = "sender.herald.example";
    account_.timeout = std::chrono::seconds(5);
    account_.port = server_.port();
    account_.ca_file = ca_->certificate_file();
    resolver_.SetMx("a.example", {{10, "mx.a.example"}});
    resolver_.SetAddresses("mx.a.example", dns::RecordType::kA, {"127.0.0.1"});
  }

  // The transport for account_, with the fake resolver (moved in: Make() once per test).
  DirectTransport& Make() {
    auto resolver = std::make_unique<FakeResolver>(std::move(resolver_));
    resolver_queries_ = resolver.get();
    DirectOptions options;
    options.transcript = [this](std::string_view line) { transcript_.emplace_back(line); };
    options.seed = 1;
    Result<std::unique_ptr<DirectTransport>> transport = DirectTransport::Create(account_, std::move(resolver), options);
    EXPECT_TRUE(transport.ok()) << transport.status().ToString();
    transport_ = std::move(*transport);
    return *transport_;
  }

  static SmtpServerScript WithTls(const CertificateFiles& files) {
    SmtpServerScript script;
    script.certificate_file = files.certificate;
    script.key_file = files.key;
    return script;
  }

  int TriedAddresses() const {
    int tried = 0;
    for (const std::string& line : transcript_) tried += line.rfind("* trying ", 0) == 0 ? 1 : 0;
    return tried;
  }

  static TempDir* dir_;
  static TestCertificateAuthority* ca_;
  static CertificateFiles* mx_certificate_;
  static CertificateFiles* other_certificate_;
  ScriptedSmtpServer server_;
  AccountConfig account_;
  FakeResolver resolver_;
  FakeResolver* resolver_queries_ = nullptr;
  std::unique_ptr<DirectTransport> transport_;
  std::vector<std::string> transcript_;
};

TestCertificateAuthority* DirectTransportTest::ca_ = nullptr;
TempDir* DirectTransportTest::dir_ = nullptr;
CertificateFiles* DirectTransportTest::mx_certificate_ = nullptr;
CertificateFiles* DirectTransportTest::other_certificate_ = nullptr;

TEST_F(DirectTransportTest, TheDestinationIsTheRecipientsDomain) {
  DirectTransport& transport = Make();
  Result<Address> to = ParseAddress("Anna@Bücher.Example");
  ASSERT_TRUE(to.ok());
  EXPECT_EQ(transport.Destination(*to), "xn--bcher-kva.example");
}

TEST_F(DirectTransportTest, DeliversToTheMailExchangerWithTheHeloName) {
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  ASSERT_TRUE(server_.WaitForEndedSessions(1));
  std::vector<SmtpSessionRecord> sessions = server_.sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].commands.at(0), "EHLO sender.herald.example");
  ASSERT_EQ(sessions[0].messages.size(), 1u);
  EXPECT_THAT(sessions[0].messages[0].recipients, ElementsAre("anna@a.example"));
  EXPECT_THAT(resolver_queries_->queries(),
              ElementsAre("MX a.example", "TXT _mta-sts.a.example", "A mx.a.example", "AAAA mx.a.example"));
  EXPECT_THAT(transcript_, Contains("* mail exchangers of a.example: mx.a.example (10)"));
  EXPECT_THAT(transcript_, Contains("* a.example announces no MTA-STS policy"));
}

TEST_F(DirectTransportTest, WithoutMtaStsNoPolicyIsLookedUp) {
  account_.mta_sts = false;
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  EXPECT_THAT(resolver_queries_->queries(), ElementsAre("MX a.example", "A mx.a.example", "AAAA mx.a.example"));
}

TEST_F(DirectTransportTest, APolicyThatCannotBeFetchedIsNoPolicy) {
  // RFC 8461 §3.3: announced, but the policy host has no address: mail goes as without MTA-STS.
  resolver_.Set("_mta-sts.a.example", dns::RecordType::kTxt,
                dns::Answer{.status = dns::AnswerStatus::kOk, .texts = {"v=STSv1; id=1;"}, .ttl = std::chrono::hours(1)});
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  EXPECT_THAT(transcript_, Contains(HasSubstr("MTA-STS policy of a.example could not be fetched (mta-sts.a.example "
                                              "has no address); delivering as without one")));
}

TEST_F(DirectTransportTest, ARefusedAddressMovesOnToTheNextHost) {
  // Nothing listens on 127.0.0.2 at the server's port: the connection is refused.
  resolver_.SetMx("a.example", {{10, "mx.a.example"}, {5, "down.a.example"}});
  resolver_.SetAddresses("down.a.example", dns::RecordType::kA, {"127.0.0.2"});
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  EXPECT_EQ(TriedAddresses(), 2);
  EXPECT_EQ(server_.connection_count(), 1);
}

TEST_F(DirectTransportTest, AHostWithoutAddressIsSkipped) {
  resolver_.SetMx("a.example", {{10, "mx.a.example"}, {5, "gone.a.example"}});
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  EXPECT_THAT(transcript_, Contains(HasSubstr("no address for gone.a.example")));
}

TEST_F(DirectTransportTest, AtMostFiveAddressesAreTried) {
  std::vector<dns::MxRecord> records;
  for (int i = 0; i < 7; ++i) {
    std::string host = "down" + std::to_string(i) + ".a.example";
    records.push_back({static_cast<std::uint16_t>(i), host});
    resolver_.SetAddresses(host, dns::RecordType::kA, {"127.0.0." + std::to_string(10 + i)});
  }
  records.push_back({100, "mx.a.example"});
  resolver_.SetMx("a.example", records);
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_FALSE(outcome.delivered());
  EXPECT_EQ(outcome.disposition, Disposition::kTemporary);
  EXPECT_EQ(outcome.scope, Scope::kDestination);
  EXPECT_EQ(outcome.stage, Stage::kConnect);
  EXPECT_EQ(outcome.enhanced_status, "4.4.1");
  EXPECT_THAT(outcome.text, HasSubstr("no mail exchanger of a.example could be used: down0.a.example [127.0.0.10]"));
  EXPECT_EQ(TriedAddresses(), DirectTransport::kMaxAddressesTried);
  EXPECT_EQ(server_.connection_count(), 0);
}

TEST_F(DirectTransportTest, A421GreetingIsTemporaryForTheDestination) {
  SmtpServerScript script;
  script.on["GREETING"] = SmtpAction::Close("421 4.3.2 Try again later");
  server_.SetScript(script);
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_EQ(outcome.disposition, Disposition::kTemporary);
  EXPECT_EQ(outcome.scope, Scope::kDestination);
  EXPECT_EQ(outcome.reply_code, 421);
  EXPECT_THAT(outcome.text, HasSubstr("mx.a.example [127.0.0.1]: Try again later"));
}

TEST_F(DirectTransportTest, PermanentOnlyWhenEveryHostAnswers5xx) {
  SmtpServerScript script;
  script.on["GREETING"] = SmtpAction::Close("554 5.7.1 No SMTP service for you");
  server_.SetScript(script);
  Outcome refused = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_EQ(refused.disposition, Disposition::kPermanent) << refused.text;
  EXPECT_EQ(refused.reply_code, 554);
  EXPECT_EQ(refused.scope, Scope::kDestination);

  // The same with a second host that cannot be reached: it may work later.
  resolver_ = FakeResolver();
  resolver_.SetMx("a.example", {{10, "mx.a.example"}, {20, "down.a.example"}});
  resolver_.SetAddresses("mx.a.example", dns::RecordType::kA, {"127.0.0.1"});
  resolver_.SetAddresses("down.a.example", dns::RecordType::kA, {"127.0.0.2"});
  Outcome mixed = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_EQ(mixed.disposition, Disposition::kTemporary) << mixed.text;
}

// A destination whose every mail exchanger refuses this host by policy (a blocklisted address)
// may take the mail through another path: the outcome keeps policy_refusal. One host that could
// not be asked, or a refusal of the recipient, is not that.
TEST_F(DirectTransportTest, PolicyRefusalsOfThisHostAreKeptForTheDestination) {
  SmtpServerScript blocked;
  blocked.on["GREETING"] = SmtpAction::Close("554 5.7.1 Service unavailable; client host blocked using zen");
  server_.SetScript(blocked);
  resolver_.SetMx("a.example", {{10, "mx.a.example"}, {20, "mx2.a.example"}});
  resolver_.SetAddresses("mx2.a.example", dns::RecordType::kA, {"127.0.0.1"});
  Outcome refused = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_EQ(TriedAddresses(), 2);
  EXPECT_EQ(refused.disposition, Disposition::kPermanent) << refused.text;
  EXPECT_EQ(refused.scope, Scope::kDestination);
  EXPECT_TRUE(refused.policy_refusal) << refused.text;

  // The first host cannot be reached: it may not block this host.
  resolver_ = FakeResolver();
  resolver_.SetMx("a.example", {{5, "down.a.example"}, {10, "mx.a.example"}});
  resolver_.SetAddresses("mx.a.example", dns::RecordType::kA, {"127.0.0.1"});
  resolver_.SetAddresses("down.a.example", dns::RecordType::kA, {"127.0.0.2"});
  Outcome mixed = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_FALSE(mixed.policy_refusal) << mixed.text;

  // A sender refused by policy at MAIL FROM: the destination's, still a policy refusal.
  SmtpServerScript sender_blocked;
  sender_blocked.on["MAIL"] = SmtpAction::Reply("550 5.7.1 Sender blocked by policy");
  server_.SetScript(sender_blocked);
  resolver_ = FakeResolver();
  resolver_.SetMx("a.example", {{10, "mx.a.example"}});
  resolver_.SetAddresses("mx.a.example", dns::RecordType::kA, {"127.0.0.1"});
  Outcome sender = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_EQ(sender.disposition, Disposition::kPermanent) << sender.text;
  EXPECT_EQ(sender.scope, Scope::kDestination);
  EXPECT_TRUE(sender.policy_refusal);
}

TEST_F(DirectTransportTest, DnsFailuresNeedNoConnection) {
  resolver_.SetMx("nomail.example", {{0, "."}});
  resolver_.SetAddresses("nomail.example", dns::RecordType::kA, {"127.0.0.1"});
  resolver_.SetStatus("broken.example", dns::RecordType::kMx, dns::AnswerStatus::kServFail);
  resolver_.SetStatus("silent.example", dns::RecordType::kMx, dns::AnswerStatus::kTimeout);
  DirectTransport& transport = Make();
  struct Case {
    const char* domain;
    Disposition disposition;
    const char* enhanced_status;
    const char* text;
  };
  for (const Case& c : std::vector<Case>{
           {"nomail.example", Disposition::kPermanent, "5.1.10", "nomail.example accepts no mail"},
           {"nx.example", Disposition::kPermanent, "5.1.2", "the domain does not exist"},
           {"broken.example", Disposition::kTemporary, "4.4.3", "MX lookup for broken.example: the DNS server failed"},
           {"silent.example", Disposition::kTemporary, "4.4.3", "MX lookup for silent.example: no answer"}}) {
    Outcome outcome = DeliverOne(transport, c.domain, std::string("anna@") + c.domain);
    EXPECT_EQ(outcome.disposition, c.disposition) << c.domain;
    EXPECT_EQ(outcome.scope, Scope::kDestination) << c.domain;
    EXPECT_EQ(outcome.stage, Stage::kConnect) << c.domain;
    EXPECT_EQ(outcome.enhanced_status, c.enhanced_status) << c.domain;
    EXPECT_THAT(outcome.text, HasSubstr(c.text)) << c.domain;
  }
  EXPECT_EQ(server_.connection_count(), 0);
  EXPECT_EQ(TriedAddresses(), 0);
}

TEST_F(DirectTransportTest, NoMxMeansTheDomainsOwnAddress) {
  resolver_.SetAddresses("implicit.example", dns::RecordType::kA, {"127.0.0.1"});
  Outcome outcome = DeliverOne(Make(), "implicit.example", "anna@implicit.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  EXPECT_THAT(transcript_, Contains(HasSubstr("implicit.example (no MX records: the domain itself)")));
}

TEST_F(DirectTransportTest, AnAddressLiteralNeedsNoDns) {
  Outcome outcome = DeliverOne(Make(), "[127.0.0.1]", "anna@[127.0.0.1]");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  EXPECT_THAT(resolver_queries_->queries(), IsEmpty());
}

TEST_F(DirectTransportTest, AnIpv4LocalAddressLooksUpOnlyIpv4) {
  account_.local_address = "127.0.0.1";
  resolver_.SetAddresses("mx.a.example", dns::RecordType::kAaaa, {"::1"});
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  EXPECT_THAT(resolver_queries_->queries(), ElementsAre("MX a.example", "TXT _mta-sts.a.example", "A mx.a.example"));
}

TEST_F(DirectTransportTest, OpportunisticTlsEncryptsWithoutCheckingTheCertificate) {
  server_.SetScript(WithTls(*other_certificate_));  // for another name: not checked
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  ASSERT_TRUE(server_.WaitForEndedSessions(1));
  EXPECT_TRUE(server_.sessions().at(0).tls);
}

TEST_F(DirectTransportTest, OpportunisticTlsGoesOnInClearWithoutStartTls) {
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  ASSERT_TRUE(server_.WaitForEndedSessions(1));
  EXPECT_FALSE(server_.sessions().at(0).tls);
}

TEST_F(DirectTransportTest, OpportunisticTlsThatFailsIsTriedAgainInClear) {
  SmtpServerScript script = WithTls(*mx_certificate_);
  script.on["STARTTLS"] = SmtpAction::Reply("454 4.7.0 TLS not available due to temporary reason");
  server_.SetScript(script);
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;
  ASSERT_TRUE(server_.WaitForEndedSessions(2));
  std::vector<SmtpSessionRecord> sessions = server_.sessions();
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_THAT(sessions[0].commands, Contains("STARTTLS"));
  EXPECT_THAT(sessions[1].commands, Not(Contains("STARTTLS")));
  EXPECT_EQ(sessions[1].messages.size(), 1u);
  EXPECT_THAT(transcript_, Contains(HasSubstr("trying again in clear")));
}

TEST_F(DirectTransportTest, RequiredTlsNeverSendsInClear) {
  account_.tls_policy = TlsPolicy::kRequired;
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_EQ(outcome.disposition, Disposition::kTemporary) << outcome.text;
  EXPECT_EQ(outcome.scope, Scope::kDestination);
  EXPECT_THAT(outcome.text, HasSubstr("does not offer STARTTLS"));
  ASSERT_TRUE(server_.WaitForEndedSessions(1));
  EXPECT_THAT(server_.sessions().at(0).messages, IsEmpty());

  // With STARTTLS any certificate will do.
  server_.SetScript(WithTls(*other_certificate_));
  resolver_.SetMx("a.example", {{10, "mx.a.example"}});
  resolver_.SetAddresses("mx.a.example", dns::RecordType::kA, {"127.0.0.1"});
  Outcome encrypted = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(encrypted.delivered()) << encrypted.text;
}

TEST_F(DirectTransportTest, VerifiedTlsNeedsACertificateForTheMxHost) {
  account_.tls_policy = TlsPolicy::kVerify;
  server_.SetScript(WithTls(*mx_certificate_));
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text;

  server_.SetScript(WithTls(*other_certificate_));
  resolver_.SetMx("a.example", {{10, "mx.a.example"}});
  resolver_.SetAddresses("mx.a.example", dns::RecordType::kA, {"127.0.0.1"});
  Outcome mismatch = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_EQ(mismatch.disposition, Disposition::kTemporary) << mismatch.text;
  EXPECT_EQ(mismatch.scope, Scope::kDestination);
  EXPECT_THAT(mismatch.text, HasSubstr("certificate of mx.a.example not trusted"));
}

TEST_F(DirectTransportTest, ADestinationRuleSetsTheTlsPolicyOfItsDomain) {
  account_.destinations.push_back(DestinationRule{.domain = "a.example", .tls_policy = TlsPolicy::kRequired});
  Outcome outcome = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_EQ(outcome.disposition, Disposition::kTemporary) << outcome.text;
  EXPECT_THAT(outcome.text, HasSubstr("does not offer STARTTLS"));
}

TEST_F(DirectTransportTest, RecipientRefusalsAreFinalAndA421ConcernsTheDestination) {
  SmtpServerScript script;
  script.on_rcpt["gone@a.example"] = SmtpAction::Reply("550 5.1.1 No such user");
  server_.SetScript(script);
  Outcome gone = DeliverOne(Make(), "a.example", "gone@a.example");
  EXPECT_EQ(gone.disposition, Disposition::kPermanent);
  EXPECT_EQ(gone.scope, Scope::kRecipient);
  EXPECT_EQ(gone.reply_code, 550);

  script.on["MAIL"] = SmtpAction::Close("421 4.7.0 Too many messages, slow down");
  server_.SetScript(script);
  resolver_.SetMx("a.example", {{10, "mx.a.example"}});
  resolver_.SetAddresses("mx.a.example", dns::RecordType::kA, {"127.0.0.1"});
  Outcome slow_down = DeliverOne(Make(), "a.example", "anna@a.example");
  EXPECT_EQ(slow_down.disposition, Disposition::kTemporary);
  EXPECT_EQ(slow_down.scope, Scope::kDestination) << "a relay's 421 fails the account; an MX's only its domain";
  EXPECT_EQ(slow_down.reply_code, 421);
}

TEST_F(DirectTransportTest, NoDestinationNoDelivery) {
  Outcome outcome = DeliverOne(Make(), "", "anna@a.example");
  EXPECT_EQ(outcome.disposition, Disposition::kPermanent);
  EXPECT_EQ(outcome.stage, Stage::kPrepare);
}

TEST_F(DirectTransportTest, WarnsAboutAHeloNameThatIsNotFullyQualified) {
  account_.helo_name = "localhost";
  DirectTransport& transport = Make();
  ASSERT_EQ(transport.warnings().size(), 1u);
  EXPECT_THAT(transport.warnings()[0], HasSubstr("accounts.toml:1: account \"direct\": the HELO name \"localhost\""));
  account_.helo_name = "sender.herald.example";
  EXPECT_THAT(Make().warnings(), IsEmpty());
}

TEST_F(DirectTransportTest, OnlyDirectAccounts) {
  account_.kind = AccountKind::kSmtp;
  Result<std::unique_ptr<DirectTransport>> transport =
      DirectTransport::Create(account_, std::make_unique<FakeResolver>());
  ASSERT_FALSE(transport.ok());
  EXPECT_THAT(transport.status().message(), HasSubstr("is a smtp account, not a direct one"));
}

TEST(LooksLikeFullyQualifiedTest, Names) {
  for (const char* name : {"mail.example.com", "MX-1.Example.org", "a.b", "xn--bcher-kva.example"}) {
    EXPECT_TRUE(LooksLikeFullyQualified(name)) << name;
  }
  for (const char* name : {"", "localhost", "mailhost", "mail.example.com.", "192.0.2.1", "::1", "host.localdomain",
                           "box.local", "pc.lan", "db.internal", "nas.home.arpa", "bad_name.example.com",
                           "-x.example.com", "a..b", "mail.123"}) {
    EXPECT_FALSE(LooksLikeFullyQualified(name)) << name;
  }
}

}  // namespace
}  // namespace herald
