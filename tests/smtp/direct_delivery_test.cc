// Direct delivery against real servers (issue 5, "Done when"): dnsmasq serves MX, A and AAAA
// records for test domains whose mail exchangers are real servers — Postfix's smtp-sink, and
// aiosmtpd for STARTTLS — on different loopback addresses (127.0.0.2, 127.0.0.3, ... and ::1)
// at one port, the account's `port`. Accounts are written as TOML and loaded as users' files are;
// the transport is made as src/main.cc makes it (UnboundResolver on the account's dns_server,
// CachingResolver, DirectTransport).
//
// Shown: preference order, random spread among equal preferences, the next MX after one that
// refuses the connection or greets with 421, the implicit MX, the null MX (no connection),
// NXDOMAIN, SERVFAIL, a DNS server that never answers, an IDN recipient domain, an MX host
// reached over IPv6, opportunistic and verified TLS, one MX lookup per domain for many messages,
// and RunTask with a direct account delivering to several domains (an excluded one through its
// secondary relay, undeliverable ones failed or deferred on their own). Needs root and Debian's packages (scripts/setup.sh test).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.h"
#include "dns/caching_resolver.h"
#include "dns/unbound_resolver.h"
#include "engine/task_runner.h"
#include "fakes/fake_clock.h"
#include "run_awaitable.h"
#include "servers/mail_servers.h"
#include "smtp/classify.h"
#include "smtp/direct_transport.h"
#include "smtp/reply.h"
#include "smtp/smtp_transport.h"
#include "store/sqlite_store.h"
#include "temp_dir.h"
#include "tls_certificates.h"

namespace herald {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using test_servers::AiosmtpdOptions;
using test_servers::AiosmtpdServer;
using test_servers::DnsmasqOptions;
using test_servers::DnsmasqServer;
using test_servers::HttpsOptions;
using test_servers::HttpsRoute;
using test_servers::HttpsServer;
using test_servers::SmtpSink;
using test_servers::SmtpSinkOptions;

constexpr char kHeloName[] = "sender.herald.example";
// How long the resolver waits for the DNS server: short, for the silent server's case.
constexpr auto kDnsTimeout = std::chrono::seconds(2);

// Built outside the coroutines: g++ 12 cannot compile such temporaries inside a coroutine body.
Envelope EnvelopeTo(std::vector<std::string> recipients) {
  return Envelope{"news@herald.example", std::move(recipients), false};
}

std::shared_ptr<const MessageData> Message() {
  auto message = std::make_shared<MessageData>();
  message->Append("From: news@herald.example\r\nSubject: direct\r\n\r\nHello from herald\r\n");
  return message;
}

// The servers of the whole suite. Mail exchangers listen on one port at several addresses; on
// 127.0.0.7 nothing listens.
struct Servers {
  TempDir dir;
  int port = 0;
  std::unique_ptr<TestCertificateAuthority> ca;
  std::unique_ptr<SmtpSink> a, b, implicit, idn, v6, relay;
  // smtp-sink -Q CONNECT: "421 4.0.0 Server closing connection" instead of a greeting (started
  // by hand: SmtpSink waits for a 220).
  test_servers::ServerProcess busy;
  std::string busy_log;
  std::unique_ptr<AiosmtpdServer> tls;
  // Slow mail exchangers that count their open sessions (per-destination connection limits).
  std::unique_ptr<AiosmtpdServer> slow_a, slow_b;
  // Mail exchangers that refuse this sending host by policy: at the greeting (127.0.0.12), and at
  // RCPT TO for some recipients (127.0.0.13, which also refuses one as an unknown user).
  std::unique_ptr<AiosmtpdServer> blocking, rcpt_blocking;
  std::unique_ptr<HttpsServer> policies;  // the MTA-STS policy hosts, on 127.0.0.9
  std::unique_ptr<DnsmasqServer> dns;

  Status StartSink(std::unique_ptr<SmtpSink>& sink, const std::string& name, const std::string& host, int sink_port,
                   std::vector<std::string> extra = {}) {
    SmtpSinkOptions options;
    options.directory = dir.Path(name);
    options.host = host;
    options.port = sink_port;
    options.hostname = name + ".herald.example";
    options.extra_arguments = std::move(extra);
    sink = std::make_unique<SmtpSink>(options);
    return sink->Start().WithContext(name);
  }

  Status StartMailExchangers() {
    Result<int> free = test_servers::PickFreePort("127.0.0.2");
    if (!free.ok()) return free.status();
    port = *free;
    HERALD_RETURN_IF_ERROR(StartSink(a, "a", "127.0.0.2", port));
    HERALD_RETURN_IF_ERROR(StartSink(b, "b", "127.0.0.3", port));
    HERALD_RETURN_IF_ERROR(StartBusy());
    HERALD_RETURN_IF_ERROR(StartSink(implicit, "implicit", "127.0.0.5", port));
    HERALD_RETURN_IF_ERROR(StartSink(idn, "idn", "127.0.0.6", port));
    HERALD_RETURN_IF_ERROR(StartSink(v6, "v6", "::1", port));
    AiosmtpdOptions options;
    options.directory = dir.Path("tls");
    options.host = "127.0.0.8";
    options.port = port;
    options.hostname = "mx.tls.example";
    CertificateFiles certificate = ca->Issue("mx-tls", {"mx.tls.example"});
    options.tls = {certificate.certificate, certificate.key};
    tls = std::make_unique<AiosmtpdServer>(options);
    HERALD_RETURN_IF_ERROR(tls->Start().WithContext("aiosmtpd"));
    HERALD_RETURN_IF_ERROR(StartSlow(slow_a, "slow-a", "127.0.0.10"));
    HERALD_RETURN_IF_ERROR(StartSlow(slow_b, "slow-b", "127.0.0.11"));
    AiosmtpdOptions refusing;
    refusing.directory = dir.Path("blocking");
    refusing.host = "127.0.0.12";
    refusing.port = port;
    refusing.hostname = "mx.blocked.example";
    refusing.greeting = "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.example";
    blocking = std::make_unique<AiosmtpdServer>(refusing);
    HERALD_RETURN_IF_ERROR(blocking->Start().WithContext("blocking aiosmtpd"));
    refusing.directory = dir.Path("rcpt-blocking");
    refusing.host = "127.0.0.13";
    refusing.hostname = "mx.rcptblock.example";
    refusing.greeting.clear();
    refusing.rcpt_replies = {{"fb-gus@rcptblock.example", "550 5.7.1 Client host [127.0.0.1] blocked"},
                             {"fb-hans@rcptblock.example", "550 5.7.1 Client host [127.0.0.1] blocked"},
                             {"fb-nobody@rcptblock.example", "550 5.1.1 <fb-nobody@rcptblock.example>: User unknown"}};
    rcpt_blocking = std::make_unique<AiosmtpdServer>(refusing);
    return rcpt_blocking->Start().WithContext("rcpt-blocking aiosmtpd");
  }

  Status StartSlow(std::unique_ptr<AiosmtpdServer>& server, const std::string& name, const std::string& host) {
    AiosmtpdOptions options;
    options.directory = dir.Path(name);
    options.host = host;
    options.port = port;
    options.hostname = name + ".herald.example";
    options.data_delay = std::chrono::milliseconds(100);
    server = std::make_unique<AiosmtpdServer>(options);
    return server->Start().WithContext(name);
  }

  Status StartBusy() {
    test_servers::ProcessOptions process;
    process.argv = {"/usr/sbin/smtp-sink", "-c", "-Q", "CONNECT", fmt::format("127.0.0.4:{}", port), "16"};
    if (geteuid() == 0) process.user = "nobody";  // smtp-sink refuses to run as root
    busy_log = dir.Path("busy.log");
    process.log_file = busy_log;
    HERALD_RETURN_IF_ERROR(busy.Start(process));
    Status ready = test_servers::WaitForListener("127.0.0.4", port, "421 ", std::chrono::seconds(10), &busy);
    return ready.WithContext("smtp-sink -Q CONNECT");
  }

  // Connections the 421 server has had, besides the one that checked it was up.
  int BusySessions() const {
    // smtp-sink -c prints "sess=N quit=N mesg=N" after each session.
    std::string output = test_servers::ReadTextFile(busy_log);
    std::size_t at = output.rfind("sess=");
    return at == std::string::npos ? 0 : std::atoi(output.c_str() + at + 5) - 1;
  }

  void StopMailExchangers() {
    for (auto* sink : {&a, &b, &implicit, &idn, &v6}) sink->reset();
    busy.Stop();
    tls.reset();
    slow_a.reset();
    slow_b.reset();
    blocking.reset();
    rcpt_blocking.reset();
  }

  // MTA-STS policies (RFC 8461 §3.2): tls.example and wrongcert.example enforce their own MX,
  // outside.example enforces a host that is not its MX, testing.example tests, and
  // redirect.example answers with a redirect, which is no policy.
  Status StartPolicyHosts() {
    auto policy = [](std::string_view mode, std::string_view mx) {
      return fmt::format("version: STSv1\r\nmode: {}\r\nmx: {}\r\nmax_age: 86400\r\n", mode, mx);
    };
    constexpr char kPath[] = "/.well-known/mta-sts.txt";
    std::vector<std::string> names;
    for (const char* domain : {"tls", "wrongcert", "outside", "testing", "redirect"}) {
      names.push_back(fmt::format("mta-sts.{}.example", domain));
    }
    CertificateFiles certificate = ca->Issue("mta-sts", names);
    HttpsOptions options;
    options.directory = dir.Path("policies");
    options.host = "127.0.0.9";
    options.tls = {certificate.certificate, certificate.key};
    options.routes = {
        HttpsRoute{.host = "mta-sts.tls.example", .path = kPath, .body = policy("enforce", "mx.tls.example")},
        HttpsRoute{.host = "mta-sts.wrongcert.example", .path = kPath, .body = policy("enforce", "*.wrongcert.example")},
        HttpsRoute{.host = "mta-sts.outside.example", .path = kPath, .body = policy("enforce", "mx.elsewhere.example")},
        HttpsRoute{.host = "mta-sts.testing.example", .path = kPath, .body = policy("testing", "mx.elsewhere.example")},
        HttpsRoute{.host = "mta-sts.redirect.example",
                   .path = kPath,
                   .status = 301,
                   .headers = {{"Location", "https://mta-sts.tls.example/.well-known/mta-sts.txt"}}},
    };
    policies = std::make_unique<HttpsServer>(options);
    return policies->Start();
  }

  Status Start() {
    ca = std::make_unique<TestCertificateAuthority>(dir.path(), "ca", "Herald Direct Delivery Test CA");
    // The port is picked free on one address and used on all: another process may hold it on
    // one of the others; then everything starts again on a new port.
    Status started = test_servers::RetryOnPortCollision([this] {
      StopMailExchangers();
      return StartMailExchangers();
    });
    HERALD_RETURN_IF_ERROR(started);
    HERALD_RETURN_IF_ERROR(StartSink(relay, "relay", "127.0.0.1", 0));
    HERALD_RETURN_IF_ERROR(StartPolicyHosts());

    DnsmasqOptions options;
    options.directory = dir.Path("dnsmasq");
    options.mx = {{"pref.example", "mx-b.pref.example", 20},   {"pref.example", "mx-a.pref.example", 10},
                  {"equal.example", "mx-a.equal.example", 10}, {"equal.example", "mx-b.equal.example", 10},
                  {"refused.example", "down.refused.example", 10}, {"refused.example", "mx.refused.example", 20},
                  {"busy.example", "busy.busy.example", 10},   {"busy.example", "mx.busy.example", 20},
                  {"nullmx.example", ".", 0},
                  {"xn--bcher-kva.example", "mx.xn--bcher-kva.example", 10},
                  {"v6.example", "mx.v6.example", 10},
                  {"tls.example", "mx.tls.example", 10},
                  {"wrongcert.example", "mx.wrongcert.example", 10},
                  {"outside.example", "mx.outside.example", 10},
                  {"testing.example", "mx.testing.example", 10},
                  {"redirect.example", "mx.redirect.example", 10},
                  {"slow-a.example", "mx.slow-a.example", 10},
                  {"slow-b.example", "mx.slow-b.example", 10},
                  {"blocked.example", "mx.blocked.example", 10},
                  {"rcptblock.example", "mx.rcptblock.example", 10},
                  {"down.example", "mx.down.example", 10}};
    options.hosts = {{"mx-a.pref.example", "127.0.0.2", ""},   {"mx-b.pref.example", "127.0.0.3", ""},
                     {"mx-a.equal.example", "127.0.0.2", ""},  {"mx-b.equal.example", "127.0.0.3", ""},
                     {"down.refused.example", "127.0.0.7", ""}, {"mx.refused.example", "127.0.0.3", ""},
                     {"busy.busy.example", "127.0.0.4", ""},   {"mx.busy.example", "127.0.0.2", ""},
                     {"implicit.example", "127.0.0.5", ""},    {"nullmx.example", "127.0.0.5", ""},
                     {"mx.xn--bcher-kva.example", "127.0.0.6", ""},
                     {"mx.v6.example", "127.0.0.7", "::1"},
                     {"mx.tls.example", "127.0.0.8", ""},      {"mx.wrongcert.example", "127.0.0.8", ""},
                     {"mx.outside.example", "127.0.0.8", ""},  {"mx.testing.example", "127.0.0.8", ""},
                     {"mx.redirect.example", "127.0.0.2", ""},
                     {"mx.slow-a.example", "127.0.0.10", ""}, {"mx.slow-b.example", "127.0.0.11", ""},
                     {"mx.blocked.example", "127.0.0.12", ""}, {"mx.rcptblock.example", "127.0.0.13", ""},
                     {"mx.down.example", "127.0.0.7", ""}};
    for (const char* domain : {"tls", "wrongcert", "outside", "testing", "redirect"}) {
      options.hosts.push_back({fmt::format("mta-sts.{}.example", domain), "127.0.0.9", ""});
      options.txt.push_back({fmt::format("_mta-sts.{}.example", domain), "v=STSv1; id=20261123;"});
    }
    options.failing_domains = {"broken.example"};
    options.silent_domains = {"silent.example"};
    dns = std::make_unique<DnsmasqServer>(options);
    return dns->Start();
  }
};

// The recipients of every transaction a sink captured whose address starts with `prefix`.
std::vector<std::string> RecipientsAt(const SmtpSink& sink, std::string_view prefix) {
  std::vector<std::string> recipients;
  for (const test_servers::SinkTransaction& transaction : sink.Transactions()) {
    for (const std::string& recipient : transaction.recipients) {
      if (recipient.starts_with(prefix)) recipients.push_back(recipient);
    }
  }
  return recipients;
}

// Waits (bounded) until `sink` holds `count` recipients starting with `prefix`; returns them.
std::vector<std::string> WaitForRecipients(const SmtpSink& sink, std::string_view prefix, std::size_t count) {
  std::vector<std::string> recipients;
  test_servers::WaitUntil(
      [&] {
        recipients = RecipientsAt(sink, prefix);
        return recipients.size() >= count;
      },
      std::chrono::seconds(5));
  return recipients;
}

// A direct account loaded from TOML as users write it, with the transport src/main.cc makes for
// it; the dialogue and the host lines of every connection are kept.
class DirectAccount {
 public:
  static std::unique_ptr<DirectAccount> Load(const TempDir& dir, const Servers& servers, std::string_view extra = "",
                                             std::uint64_t seed = 20261123, const Clock* policy_clock = nullptr) {
    static int counter = 0;
    std::string path = dir.Write(fmt::format("accounts/direct-{}.toml", ++counter), AccountsToml(servers, extra));
    Result<AccountSet> accounts = LoadAccounts(path);
    if (!accounts.ok()) {
      ADD_FAILURE() << accounts.status().ToString();
      return nullptr;
    }
    std::unique_ptr<DirectAccount> account(new DirectAccount(std::move(*accounts)));
    Result<std::unique_ptr<dns::UnboundResolver>> unbound = dns::UnboundResolver::Create(
        dns::UnboundOptions{.server = account->config().dns_server, .timeout = kDnsTimeout});
    if (!unbound.ok()) {
      ADD_FAILURE() << unbound.status().ToString();
      return nullptr;
    }
    auto cache = std::make_unique<dns::CachingResolver>(std::move(*unbound), account->clock_);
    account->cache_ = cache.get();
    DirectOptions options;
    options.transcript = [raw = account.get()](std::string_view line) { raw->transcript_.emplace_back(line); };
    options.report = [raw = account.get()](std::string_view line) { raw->reports_.emplace_back(line); };
    options.seed = seed;
    options.mta_sts_port = static_cast<std::uint16_t>(servers.policies->port());
    options.clock = policy_clock;
    Result<std::unique_ptr<DirectTransport>> transport =
        DirectTransport::Create(account->config(), std::move(cache), options);
    if (!transport.ok()) {
      ADD_FAILURE() << transport.status().ToString();
      return nullptr;
    }
    account->transport_ = std::move(*transport);
    return account;
  }

  static std::string AccountsToml(const Servers& servers, std::string_view extra) {
    return fmt::format(
        "[[account]]\n"
        "name = \"direct\"\n"
        "kind = \"direct\"\n"
        "dns_server = \"{}\"\n"
        "port = {}\n"
        "helo_name = \"{}\"\n"
        "timeout = \"5s\"\n"
        "{}\n",
        servers.dns->Address(), servers.port, kHeloName, extra);
  }

  const AccountConfig& config() const { return accounts_.accounts().front(); }
  DirectTransport& transport() { return *transport_; }
  const dns::CachingResolver& cache() const { return *cache_; }

  // One connection to `domain` carrying one message to `recipients`: their outcomes, or the
  // connect failure for each.
  std::vector<Outcome> Send(std::string domain, std::vector<std::string> recipients) {
    return RunAwaitable([](DirectTransport& transport, std::string domain,
                           std::vector<std::string> recipients) -> asio::awaitable<std::vector<Outcome>> {
      ConnectResult connected = co_await transport.Connect(std::move(domain));
      if (connected.connection == nullptr) co_return std::vector<Outcome>(recipients.size(), connected.failure);
      std::vector<Outcome> outcomes = co_await connected.connection->Send(EnvelopeTo(recipients), Message());
      co_await connected.connection->Close();
      co_return outcomes;
    }(*transport_, std::move(domain), std::move(recipients)));
  }
  Outcome SendOne(const std::string& recipient) {
    Result<Address> to = ParseAddress(recipient);
    EXPECT_TRUE(to.ok()) << recipient;
    return Send(transport_->Destination(*to), {to->ToString()}).at(0);
  }

  std::string Transcript() const {
    std::string all;
    for (const std::string& line : transcript_) all += line + "\n";
    return all;
  }
  const std::vector<std::string>& reports() const { return reports_; }
  int CountLines(std::string_view prefix) const {
    return static_cast<int>(std::count_if(transcript_.begin(), transcript_.end(),
                                          [&](const std::string& line) { return line.starts_with(prefix); }));
  }

 private:
  explicit DirectAccount(AccountSet accounts) : accounts_(std::move(accounts)) {}

  AccountSet accounts_;  // the transport keeps a reference to its AccountConfig
  SystemClock clock_;
  dns::CachingResolver* cache_ = nullptr;  // owned by the transport
  std::unique_ptr<DirectTransport> transport_;
  std::vector<std::string> transcript_;
  std::vector<std::string> reports_;
};

class DirectDeliveryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    servers_ = new Servers();
    Status started = servers_->Start();
    if (!started.ok()) {
      start_error_ = new std::string(started.ToString());
      delete servers_;
      servers_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete servers_;
    delete start_error_;
    servers_ = nullptr;
    start_error_ = nullptr;
  }

  void SetUp() override { ASSERT_NE(servers_, nullptr) << *start_error_; }

  std::unique_ptr<DirectAccount> Account(std::string_view extra = "", std::uint64_t seed = 20261123,
                                         const Clock* policy_clock = nullptr) {
    return DirectAccount::Load(dir_, *servers_, extra, seed, policy_clock);
  }

  static Servers* servers_;
  static std::string* start_error_;
  TempDir dir_;
};

Servers* DirectDeliveryTest::servers_ = nullptr;
std::string* DirectDeliveryTest::start_error_ = nullptr;

TEST_F(DirectDeliveryTest, TheMostPreferredMxGetsTheMail) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  for (int i = 0; i < 10; ++i) {
    Outcome outcome = account->SendOne(fmt::format("pref{}@pref.example", i));
    EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  }
  EXPECT_EQ(WaitForRecipients(*servers_->a, "pref", 10).size(), 10u) << servers_->a->Log();
  EXPECT_THAT(RecipientsAt(*servers_->b, "pref"), IsEmpty());
  EXPECT_THAT(account->Transcript(), HasSubstr("* mail exchangers of pref.example: mx-a.pref.example (10), "
                                               "mx-b.pref.example (20)"));
  // Ten connections, one MX, one MTA-STS TXT, one A and one AAAA lookup: the rest came from the
  // cache.
  EXPECT_EQ(account->cache().stats().upstream_queries, 4u);
  EXPECT_EQ(servers_->dns->QueryCount("MX", "pref.example"), 1) << servers_->dns->Log();
}

TEST_F(DirectDeliveryTest, EqualPreferencesShareTheMail) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  constexpr int kMessages = 40;
  for (int i = 0; i < kMessages; ++i) {
    Outcome outcome = account->SendOne(fmt::format("equal{}@equal.example", i));
    EXPECT_TRUE(outcome.delivered()) << outcome.text;
  }
  test_servers::WaitUntil(
      [&] { return RecipientsAt(*servers_->a, "equal").size() + RecipientsAt(*servers_->b, "equal").size() >= 40; },
      std::chrono::seconds(5));
  std::size_t at_a = RecipientsAt(*servers_->a, "equal").size();
  std::size_t at_b = RecipientsAt(*servers_->b, "equal").size();
  EXPECT_EQ(at_a + at_b, 40u);
  // With the fixed seed the split is fixed too; a fair coin gives fewer than 10 of 40 to one side
  // once in 10,000 seeds.
  EXPECT_GE(at_a, 10u) << at_a << " at 127.0.0.2, " << at_b << " at 127.0.0.3";
  EXPECT_GE(at_b, 10u) << at_a << " at 127.0.0.2, " << at_b << " at 127.0.0.3";
}

TEST_F(DirectDeliveryTest, AnMxThatRefusesTheConnectionIsPassedOver) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("refused1@refused.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  EXPECT_THAT(WaitForRecipients(*servers_->b, "refused1@", 1), ElementsAre("refused1@refused.example"));
  EXPECT_THAT(account->Transcript(), HasSubstr("* down.refused.example [127.0.0.7]: cannot connect"));
}

TEST_F(DirectDeliveryTest, AnMxThatGreetsWith421IsPassedOver) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("busy1@busy.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  EXPECT_THAT(WaitForRecipients(*servers_->a, "busy1@", 1), ElementsAre("busy1@busy.example"));
  EXPECT_THAT(account->Transcript(), HasSubstr("S: 421 4.0.0 Server closing connection"));
  EXPECT_GE(servers_->BusySessions(), 1);
}

TEST_F(DirectDeliveryTest, ADomainWithoutMxIsItsOwnMailExchanger) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("implicit1@implicit.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  EXPECT_THAT(WaitForRecipients(*servers_->implicit, "implicit1@", 1), ElementsAre("implicit1@implicit.example"));
}

TEST_F(DirectDeliveryTest, ANullMxFailsForGoodWithoutAConnection) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("nobody@nullmx.example");
  EXPECT_EQ(outcome.disposition, Disposition::kPermanent) << outcome.text;
  EXPECT_EQ(outcome.scope, Scope::kDestination);
  EXPECT_EQ(outcome.enhanced_status, "5.1.10");
  EXPECT_THAT(outcome.text, HasSubstr("nullmx.example accepts no mail"));
  EXPECT_EQ(account->CountLines("* trying"), 0) << account->Transcript();
  // Its A record points at a live server, but nothing looked it up or went there.
  EXPECT_EQ(servers_->dns->QueryCount("A", "nullmx.example"), 0);
  EXPECT_THAT(RecipientsAt(*servers_->implicit, "nobody"), IsEmpty());
}

TEST_F(DirectDeliveryTest, ADomainThatDoesNotExistFailsForGood) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("anna@nowhere.example");
  EXPECT_EQ(outcome.disposition, Disposition::kPermanent) << outcome.text;
  EXPECT_EQ(outcome.enhanced_status, "5.1.2");
  EXPECT_THAT(outcome.text, HasSubstr("MX lookup for nowhere.example: the name does not exist (NXDOMAIN)"));
}

TEST_F(DirectDeliveryTest, AFailingDnsServerDefers) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("anna@broken.example");
  EXPECT_EQ(outcome.disposition, Disposition::kTemporary) << outcome.text;
  EXPECT_EQ(outcome.scope, Scope::kDestination);
  EXPECT_EQ(outcome.enhanced_status, "4.4.3");
  EXPECT_THAT(outcome.text, HasSubstr("MX lookup for broken.example: the DNS server failed (SERVFAIL)"));
}

TEST_F(DirectDeliveryTest, ADnsServerThatNeverAnswersDefers) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  auto start = std::chrono::steady_clock::now();
  Outcome outcome = account->SendOne("anna@silent.example");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(outcome.disposition, Disposition::kTemporary) << outcome.text;
  EXPECT_EQ(outcome.enhanced_status, "4.4.3");
  EXPECT_THAT(outcome.text, HasSubstr("MX lookup for silent.example: no answer from the DNS server in time"));
  EXPECT_LT(took, kDnsTimeout + std::chrono::seconds(2));
  // The failure is kept for a while: the next recipient there does not wait again.
  start = std::chrono::steady_clock::now();
  EXPECT_EQ(account->SendOne("bert@silent.example").disposition, Disposition::kTemporary);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST_F(DirectDeliveryTest, AnInternationalDomainIsLookedUpAndAddressedAsALabels) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("idn1@Bücher.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  EXPECT_THAT(WaitForRecipients(*servers_->idn, "idn1@", 1), ElementsAre("idn1@xn--bcher-kva.example"));
  EXPECT_EQ(servers_->dns->QueryCount("MX", "xn--bcher-kva.example"), 1);
}

TEST_F(DirectDeliveryTest, AnMxHostIsReachedOverIpv6WhenIpv4Fails) {
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("v6one@v6.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  EXPECT_THAT(WaitForRecipients(*servers_->v6, "v6one@", 1), ElementsAre("v6one@v6.example"));
  EXPECT_THAT(account->Transcript(), HasSubstr("* trying mx.v6.example [127.0.0.7]"));
  EXPECT_THAT(account->Transcript(), HasSubstr("* trying mx.v6.example [::1]"));
}

TEST_F(DirectDeliveryTest, OpportunisticTlsEncryptsWhenOffered) {
  // Without MTA-STS: tls.example's policy would ask for a verified certificate.
  std::unique_ptr<DirectAccount> account = Account("mta_sts = false");
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("tls1@tls.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  Result<std::vector<test_servers::RecordedMessage>> messages = servers_->tls->WaitForMessages(1);
  ASSERT_TRUE(messages.ok()) << messages.status().ToString();
  bool found = false;
  for (const auto& message : *messages) {
    if (message.rcpt_tos == std::vector<std::string>{"tls1@tls.example"}) {
      found = true;
      EXPECT_TRUE(message.tls);
      EXPECT_EQ(message.helo, kHeloName);
    }
  }
  EXPECT_TRUE(found) << servers_->tls->Log();
  // smtp-sink offers no STARTTLS: delivered in clear.
  EXPECT_TRUE(account->SendOne("clear1@pref.example").delivered());
}

TEST_F(DirectDeliveryTest, VerifiedTlsNeedsTheMxHostsCertificate) {
  std::unique_ptr<DirectAccount> account = Account(
      fmt::format("tls_policy = \"verify\"\nca_file = \"{}\"", servers_->ca->certificate_file()));
  ASSERT_NE(account, nullptr);
  Outcome verified = account->SendOne("tls2@tls.example");
  EXPECT_TRUE(verified.delivered()) << verified.text << "\n" << account->Transcript();

  // The same server as the MX of another name: its certificate does not match.
  Outcome mismatch = account->SendOne("tls3@wrongcert.example");
  EXPECT_EQ(mismatch.disposition, Disposition::kTemporary) << mismatch.text;
  EXPECT_THAT(mismatch.text, HasSubstr("certificate of mx.wrongcert.example not trusted"));
  // And a server without STARTTLS gets nothing.
  Outcome clear = account->SendOne("tls4@pref.example");
  EXPECT_EQ(clear.disposition, Disposition::kTemporary) << clear.text;
  EXPECT_THAT(clear.text, HasSubstr("does not offer STARTTLS"));
  for (const auto& message : servers_->tls->Messages()) {
    EXPECT_THAT(message.rcpt_tos, Not(Contains("tls3@wrongcert.example")));
  }
  EXPECT_THAT(RecipientsAt(*servers_->a, "tls4"), IsEmpty());
}

// --- MTA-STS (RFC 8461)

std::string TrustTheTestCa(const Servers& servers) {
  return fmt::format("ca_file = \"{}\"", servers.ca->certificate_file());
}

TEST_F(DirectDeliveryTest, MtaStsEnforceDeliversOverVerifiedTlsAndKeepsThePolicy) {
  std::unique_ptr<DirectAccount> account = Account(TrustTheTestCa(*servers_));
  ASSERT_NE(account, nullptr);
  int fetched_before = servers_->policies->RequestCount("mta-sts.tls.example", "/.well-known/mta-sts.txt");
  for (const char* recipient : {"sts1@tls.example", "sts2@tls.example"}) {
    Outcome outcome = account->SendOne(recipient);
    EXPECT_TRUE(outcome.delivered()) << recipient << ": " << outcome.text << "\n" << account->Transcript();
  }
  EXPECT_THAT(account->Transcript(),
              HasSubstr("* MTA-STS policy 20261123 of tls.example fetched: enforce, mx mx.tls.example, max_age 86400s"));
  EXPECT_THAT(account->Transcript(), HasSubstr("* MTA-STS policy 20261123 of tls.example (cached)"));
  EXPECT_EQ(servers_->policies->RequestCount("mta-sts.tls.example", "/.well-known/mta-sts.txt"), fetched_before + 1)
      << servers_->policies->Log();
  Result<std::vector<test_servers::RecordedMessage>> messages = servers_->tls->WaitForMessages(2);
  ASSERT_TRUE(messages.ok()) << messages.status().ToString();
  int found = 0;
  for (const auto& message : *messages) {
    if (message.rcpt_tos.size() == 1 && message.rcpt_tos[0].starts_with("sts")) {
      ++found;
      EXPECT_TRUE(message.tls);
    }
  }
  EXPECT_EQ(found, 2);
}

TEST_F(DirectDeliveryTest, MtaStsPoliciesAreFetchedAgainAfterTheirMaxAge) {
  FakeClock clock;
  std::unique_ptr<DirectAccount> account = Account(TrustTheTestCa(*servers_), 20261123, &clock);
  ASSERT_NE(account, nullptr);
  auto fetches = [&] { return servers_->policies->RequestCount("mta-sts.tls.example", "/.well-known/mta-sts.txt"); };
  int before = fetches();
  EXPECT_TRUE(account->SendOne("age1@tls.example").delivered()) << account->Transcript();
  clock.Advance(std::chrono::seconds(86399));
  EXPECT_TRUE(account->SendOne("age2@tls.example").delivered()) << account->Transcript();
  EXPECT_EQ(fetches(), before + 1) << "within max_age (86400 s) the policy is kept";
  clock.Advance(std::chrono::seconds(1));
  EXPECT_TRUE(account->SendOne("age3@tls.example").delivered()) << account->Transcript();
  EXPECT_EQ(fetches(), before + 2) << "after max_age it is fetched again";
}

TEST_F(DirectDeliveryTest, APolicyFromAnUntrustedPolicyHostIsNoPolicy) {
  // Without the test CA the policy host's certificate cannot be verified (RFC 8461 §3.3): the
  // policy is not used, and the mail goes as without MTA-STS.
  std::unique_ptr<DirectAccount> account = Account();
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("sts3@tls.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  EXPECT_THAT(account->Transcript(), HasSubstr("* MTA-STS policy of tls.example could not be fetched (certificate of "
                                               "mta-sts.tls.example not trusted"));
}

TEST_F(DirectDeliveryTest, MtaStsEnforceRefusesACertificateForAnotherName) {
  std::unique_ptr<DirectAccount> account = Account(TrustTheTestCa(*servers_));
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("sts4@wrongcert.example");
  EXPECT_EQ(outcome.disposition, Disposition::kTemporary) << outcome.text;
  EXPECT_THAT(outcome.text, HasSubstr("certificate of mx.wrongcert.example not trusted"));
  for (const auto& message : servers_->tls->Messages()) {
    EXPECT_THAT(message.rcpt_tos, Not(Contains("sts4@wrongcert.example")));
  }
}

TEST_F(DirectDeliveryTest, MtaStsEnforceRefusesAnMxOutsideThePolicy) {
  std::unique_ptr<DirectAccount> account = Account(TrustTheTestCa(*servers_));
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("sts5@outside.example");
  EXPECT_EQ(outcome.disposition, Disposition::kTemporary) << outcome.text;
  EXPECT_EQ(outcome.scope, Scope::kDestination);
  EXPECT_THAT(outcome.text, HasSubstr("mx.outside.example is not among the mail exchangers the MTA-STS policy of "
                                      "outside.example allows (mx.elsewhere.example)"));
  EXPECT_EQ(account->CountLines("* trying"), 0) << account->Transcript();
}

TEST_F(DirectDeliveryTest, MtaStsTestingDeliversAndReportsWhatEnforceWouldRefuse) {
  std::unique_ptr<DirectAccount> account = Account(TrustTheTestCa(*servers_));
  ASSERT_NE(account, nullptr);
  Outcome outcome = account->SendOne("sts6@testing.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  EXPECT_THAT(account->reports(),
              ElementsAre(HasSubstr("MTA-STS testing mode of testing.example: mx.testing.example is not among the "
                                    "mail exchangers"),
                          HasSubstr("MTA-STS testing mode of testing.example: the certificate of mx.testing.example "
                                    "[127.0.0.8] is not valid for it")));
}

TEST_F(DirectDeliveryTest, APolicyBehindARedirectIsNoPolicy) {
  std::unique_ptr<DirectAccount> account = Account(TrustTheTestCa(*servers_));
  ASSERT_NE(account, nullptr);
  constexpr char kPath[] = "/.well-known/mta-sts.txt";
  int redirected_before = servers_->policies->RequestCount("mta-sts.redirect.example", kPath);
  int target_before = servers_->policies->RequestCount("mta-sts.tls.example", kPath);
  Outcome outcome = account->SendOne("sts7@redirect.example");
  EXPECT_TRUE(outcome.delivered()) << outcome.text << "\n" << account->Transcript();
  EXPECT_THAT(account->Transcript(), HasSubstr("a redirect (301), which must not be followed"));
  EXPECT_THAT(WaitForRecipients(*servers_->a, "sts7@", 1), ElementsAre("sts7@redirect.example"));
  EXPECT_EQ(servers_->policies->RequestCount("mta-sts.redirect.example", kPath), redirected_before + 1);
  EXPECT_EQ(servers_->policies->RequestCount("mta-sts.tls.example", kPath), target_before) << "not followed";
}

// --- RunTask with a direct account

// The transports src/main.cc makes: direct accounts as above, smtp accounts as relays.
class Transports final : public TransportFactory {
 public:
  Result<std::unique_ptr<Transport>> Create(const AccountConfig& account, Transcript) override {
    std::vector<std::string>* lines = &transcripts[account.name];
    auto keep = [lines](std::string_view line) { lines->emplace_back(line); };
    if (account.kind == AccountKind::kDirect) {
      Result<std::unique_ptr<dns::UnboundResolver>> unbound =
          dns::UnboundResolver::Create(dns::UnboundOptions{.server = account.dns_server, .timeout = kDnsTimeout});
      if (!unbound.ok()) return unbound.status();
      Result<std::unique_ptr<DirectTransport>> transport = DirectTransport::Create(
          account, std::make_unique<dns::CachingResolver>(std::move(*unbound), clock_), DirectOptions{.transcript = keep});
      if (!transport.ok()) return transport.status();
      return std::unique_ptr<Transport>(std::move(*transport));
    }
    Result<std::unique_ptr<SmtpTransport>> transport = SmtpTransport::Create(account, keep);
    if (!transport.ok()) return transport.status();
    return std::unique_ptr<Transport>(std::move(*transport));
  }

  std::map<std::string, std::vector<std::string>> transcripts;

 private:
  SystemClock clock_;
};

class Results final : public RunObserver {
 public:
  void OnResult(const RecipientEvent& event) override {
    accounts[event.recipient.address] = std::string(event.account);
    statuses[event.recipient.address] = std::string(RecipientStatusName(event.result.status));
    errors[event.recipient.address] = event.result.error.text;
  }
  void OnWarning(std::string_view warning) override { warnings.emplace_back(warning); }

  std::map<std::string, std::string> accounts, statuses, errors;
  std::vector<std::string> warnings;
};

// Loads the task file and its accounts as herald does and runs the task on a store beside it.
Result<RunReport> RunTaskFile(const std::string& task_file, Transports& transports, Results& results) {
  Result<TaskConfig> task = LoadTask(task_file);
  if (!task.ok()) return task.status();
  Result<AccountSet> accounts = LoadAccounts(task->accounts_file);
  if (!accounts.ok()) return accounts.status();
  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(task->store_file);
  if (!store.ok()) return store.status();
  SystemClock clock;
  return RunTask(*task, *accounts, **store, clock, transports, results);
}

TEST_F(DirectDeliveryTest, RunTaskDeliversDirectlyToSeveralDomainsAndExcludedOnesThroughTheRelay) {
  std::string accounts = DirectAccount::AccountsToml(*servers_,
                                                     "max_connections = 2\n"
                                                     "secondary = \"relay\"\n"
                                                     "excluded_domains = [\"excluded.example\"]") +
                         fmt::format(
                             "[[account]]\n"
                             "name = \"relay\"\n"
                             "kind = \"smtp\"\n"
                             "host = \"127.0.0.1\"\n"
                             "port = {}\n"
                             "security = \"none\"\n"
                             "helo_name = \"{}\"\n",
                             servers_->relay->port(), kHeloName);
  dir_.Write("accounts.toml", accounts);
  const std::vector<std::string> direct = {
      "run-anna@pref.example",      "run-bert@pref.example",     "run-cora@pref.example",
      "run-dora@implicit.example",  "run-emil@implicit.example", "run-fred@xn--bcher-kva.example",
      "run-gina@refused.example",   "run-hans@busy.example",     "run-ida@v6.example"};
  const std::vector<std::string> relayed = {"run-jan@excluded.example", "run-kim@excluded.example"};
  // Domains that cannot be delivered to fail on their own; the account goes on. One whose DNS
  // fails for now goes through the secondary relay (which resolves it itself).
  const std::vector<std::string> failed = {"run-lena@nullmx.example", "run-max@nowhere.example"};
  const std::string unresolved = "run-nina@broken.example";
  std::string csv = "email\n";
  for (const std::string& address : failed) csv += address + "\n";
  csv += unresolved + "\n";
  for (const std::string& address : direct) csv += address + "\n";
  for (const std::string& address : relayed) csv += address + "\n";
  dir_.Write("recipients.csv", csv);
  std::string task_file = dir_.Write("task.toml",
                                     "id = \"direct-run\"\n"
                                     "title = \"Direct delivery\"\n"
                                     "[message]\n"
                                     "from = \"News <news@herald.example>\"\n"
                                     "subject = \"Hello {%recipient%}\"\n"
                                     "text = \"This is for {%recipient%}.\\n\"\n"
                                     "[recipients]\n"
                                     "file = \"recipients.csv\"\n"
                                     "[sending]\n"
                                     "accounts = [\"direct\"]\n"
                                     "concurrency = 4\n");
  Transports transports;
  Results results;
  Result<RunReport> report = RunTaskFile(task_file, transports, results);
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  auto transcript = [&] {
    std::string all;
    for (const auto& [account, lines] : transports.transcripts) {
      for (const std::string& line : lines) all += account + ": " + line + "\n";
    }
    return all;
  };
  EXPECT_EQ(report->sent, direct.size() + relayed.size() + 1) << transcript();
  EXPECT_EQ(report->failed, failed.size());
  EXPECT_EQ(report->deferred, 0u);
  EXPECT_THAT(results.warnings, IsEmpty()) << "no account failed";
  EXPECT_EQ(results.statuses["run-lena@nullmx.example"], "failed");
  EXPECT_THAT(results.errors["run-lena@nullmx.example"], HasSubstr("nullmx.example accepts no mail"));
  EXPECT_EQ(results.statuses["run-max@nowhere.example"], "failed");
  EXPECT_THAT(results.errors["run-max@nowhere.example"], HasSubstr("NXDOMAIN"));
  EXPECT_EQ(results.statuses[unresolved], "sent");
  EXPECT_EQ(results.accounts[unresolved], "relay");
  for (const std::string& address : direct) {
    EXPECT_EQ(results.statuses[address], "sent") << address << ": " << results.errors[address];
    EXPECT_EQ(results.accounts[address], "direct") << address;
  }
  for (const std::string& address : relayed) {
    EXPECT_EQ(results.statuses[address], "sent") << address << ": " << results.errors[address];
    EXPECT_EQ(results.accounts[address], "relay") << address;
  }
  // Each mail exchanger got its domain's recipients, once each; the relay the excluded ones.
  auto sorted = [](std::vector<std::string> list) {
    std::sort(list.begin(), list.end());
    return list;
  };
  EXPECT_EQ(sorted(WaitForRecipients(*servers_->a, "run-", 4)),
            sorted({"run-anna@pref.example", "run-bert@pref.example", "run-cora@pref.example",
                    "run-hans@busy.example"}));
  EXPECT_EQ(sorted(WaitForRecipients(*servers_->b, "run-", 1)), sorted({"run-gina@refused.example"}));
  EXPECT_EQ(sorted(WaitForRecipients(*servers_->implicit, "run-", 2)),
            sorted({"run-dora@implicit.example", "run-emil@implicit.example"}));
  EXPECT_EQ(WaitForRecipients(*servers_->idn, "run-", 1), std::vector<std::string>{"run-fred@xn--bcher-kva.example"});
  EXPECT_EQ(WaitForRecipients(*servers_->v6, "run-", 1), std::vector<std::string>{"run-ida@v6.example"});
  std::vector<std::string> through_relay = relayed;
  through_relay.push_back(unresolved);
  EXPECT_EQ(sorted(WaitForRecipients(*servers_->relay, "run-", 3)), sorted(through_relay));
  EXPECT_THAT(RecipientsAt(*servers_->relay, "run-"), Not(Contains(HasSubstr("pref.example"))));
}

// A task of a direct account with the relay as its secondary, recipients `addresses`.
std::string WriteFallbackTask(const TempDir& dir, const Servers& servers, std::string_view id,
                              const std::vector<std::string>& addresses, int concurrency) {
  dir.Write("accounts.toml", DirectAccount::AccountsToml(servers, "secondary = \"relay\"") +
                                 fmt::format("[[account]]\n"
                                             "name = \"relay\"\n"
                                             "kind = \"smtp\"\n"
                                             "host = \"127.0.0.1\"\n"
                                             "port = {}\n"
                                             "security = \"none\"\n"
                                             "helo_name = \"{}\"\n",
                                             servers.relay->port(), kHeloName));
  std::string csv = "email\n";
  for (const std::string& address : addresses) csv += address + "\n";
  dir.Write(fmt::format("{}.csv", id), csv);
  return dir.Write(fmt::format("{}.toml", id), fmt::format("id = \"{0}\"\n"
                                                            "[message]\n"
                                                            "from = \"News <news@herald.example>\"\n"
                                                            "subject = \"Hello\"\n"
                                                            "text = \"This is for {{%recipient%}}.\\n\"\n"
                                                            "[recipients]\n"
                                                            "file = \"{0}.csv\"\n"
                                                            "[sending]\n"
                                                            "accounts = [\"direct\"]\n"
                                                            "concurrency = {1}\n",
                                                            id, concurrency));
}

// The products herald replaces: "in case a recipient's server does not accept mail sent directly
// from your computer, the program uses the secondary server".
TEST_F(DirectDeliveryTest, AnUnreachableDomainsRecipientsGoThroughTheSecondaryRelay) {
  const std::vector<std::string> unreachable = {"down-anna@down.example", "down-bert@down.example",
                                                "down-cora@down.example"};
  std::vector<std::string> all = unreachable;
  all.push_back("fb-nobody@rcptblock.example");  // refused as a recipient: fails, not relayed
  all.push_back("fb-null@nullmx.example");       // no relay could deliver there either
  Transports transports;
  Results results;
  Result<RunReport> report =
      RunTaskFile(WriteFallbackTask(dir_, *servers_, "fallback-down", all, 2), transports, results);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->sent, unreachable.size());
  EXPECT_EQ(report->failed, 2u);
  for (const std::string& address : unreachable) {
    EXPECT_EQ(results.statuses[address], "sent") << address << ": " << results.errors[address];
    EXPECT_EQ(results.accounts[address], "relay") << address;
  }
  EXPECT_EQ(results.statuses["fb-nobody@rcptblock.example"], "failed");
  EXPECT_THAT(results.errors["fb-nobody@rcptblock.example"], HasSubstr("User unknown"));
  EXPECT_EQ(results.statuses["fb-null@nullmx.example"], "failed");
  std::vector<std::string> relayed = WaitForRecipients(*servers_->relay, "down-", 3);
  std::sort(relayed.begin(), relayed.end());
  EXPECT_EQ(relayed, unreachable);
  int connects = 0;
  for (const std::string& line : transports.transcripts["direct"]) {
    if (line.starts_with("* trying mx.down.example")) ++connects;
  }
  EXPECT_EQ(connects, 1) << "the unreachable domain is tried once; its other recipients go straight to the relay";
}

TEST_F(DirectDeliveryTest, MailExchangersThatRefuseThisHostByPolicyAreGotPastThroughTheSecondaryRelay) {
  // Which refusals are of the sending host is the SMTP classification's call (Outcome::policy_refusal).
  smtp::Reply blocked{550, "5.7.1", {"Client host [127.0.0.1] blocked"}};
  if (!smtp::Classify(Stage::kRcptTo, blocked).outcome.policy_refusal) {
    GTEST_SKIP() << "this build's SMTP classification does not tell policy refusals yet";
  }
  const std::vector<std::string> refused = {"fb-fritz@blocked.example", "fb-gus@rcptblock.example",
                                            "fb-hans@rcptblock.example", "fb-ida@blocked.example"};
  // One after the other: the unknown user is refused as such before its mail exchanger refuses
  // this host (after which the domain's recipients go straight to the relay).
  std::vector<std::string> all = {"fb-nobody@rcptblock.example"};
  all.insert(all.end(), refused.begin(), refused.end());
  Transports transports;
  Results results;
  Result<RunReport> report =
      RunTaskFile(WriteFallbackTask(dir_, *servers_, "fallback-policy", all, 1), transports, results);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->sent, refused.size());
  EXPECT_EQ(report->failed, 1u);
  for (const std::string& address : refused) {
    EXPECT_EQ(results.statuses[address], "sent") << address << ": " << results.errors[address];
    EXPECT_EQ(results.accounts[address], "relay") << address;
  }
  EXPECT_EQ(results.statuses["fb-nobody@rcptblock.example"], "failed") << "an unknown user is refused as such";
  std::vector<std::string> relayed;
  for (const std::string& address : WaitForRecipients(*servers_->relay, "fb-", 4)) {
    if (address.find("blocked.example") != std::string::npos || address.find("rcptblock") != std::string::npos) {
      relayed.push_back(address);
    }
  }
  std::sort(relayed.begin(), relayed.end());
  std::vector<std::string> want = refused;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(relayed, want);
  EXPECT_TRUE(servers_->rcpt_blocking->Messages().empty());
}

TEST_F(DirectDeliveryTest, EachDestinationGetsAtMostItsConnectionsAndDestinationsAreServedInParallel) {
  // Two slow mail exchangers (100 ms per message) count their own sessions. The list is sorted by
  // domain; 8 sends at once, 2 connections per domain by default, 1 for slow-b.example.
  std::string accounts = DirectAccount::AccountsToml(*servers_,
                                                     "max_connections = 8\n"
                                                     "destination_max_connections = 2\n"
                                                     "[[account.destination]]\n"
                                                     "domain = \"slow-b.example\"\n"
                                                     "max_connections = 1\n");
  dir_.Write("accounts.toml", accounts);
  constexpr int kEach = 16;
  std::string csv = "email\n";
  for (const char* domain : {"slow-a.example", "slow-b.example"}) {
    for (int i = 0; i < kEach; ++i) csv += fmt::format("limit{}@{}\n", i, domain);
  }
  dir_.Write("recipients.csv", csv);
  std::string task_file = dir_.Write("task.toml",
                                     "id = \"direct-limits\"\n"
                                     "[message]\n"
                                     "from = \"News <news@herald.example>\"\n"
                                     "subject = \"Hello\"\n"
                                     "text = \"This is for {%recipient%}.\\n\"\n"
                                     "[recipients]\n"
                                     "file = \"recipients.csv\"\n"
                                     "[sending]\n"
                                     "concurrency = 8\n");
  Transports transports;
  Results results;
  Result<RunReport> report = RunTaskFile(task_file, transports, results);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->sent, 2u * kEach);

  Result<std::vector<test_servers::RecordedMessage>> a = servers_->slow_a->WaitForMessages(kEach);
  Result<std::vector<test_servers::RecordedMessage>> b = servers_->slow_b->WaitForMessages(kEach);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto most_open = [](const std::vector<test_servers::RecordedMessage>& messages) {
    int most = 0;
    for (const auto& message : messages) most = std::max(most, message.max_sessions_open);
    return most;
  };
  // Counted by the servers: the limits held, and were used.
  EXPECT_EQ(most_open(*a), 2) << "slow-a.example: the account's destination_max_connections";
  EXPECT_EQ(most_open(*b), 1) << "slow-b.example: its own max_connections";
  // The destinations were served at the same time, not one after the other: slow-b.example got
  // mail before slow-a.example's last message although the list names all of slow-a.example first.
  auto first = [](const std::vector<test_servers::RecordedMessage>& messages) {
    double at = messages.front().received_at;
    for (const auto& message : messages) at = std::min(at, message.received_at);
    return at;
  };
  auto last = [](const std::vector<test_servers::RecordedMessage>& messages) {
    double at = 0;
    for (const auto& message : messages) at = std::max(at, message.received_at);
    return at;
  };
  EXPECT_LT(first(*b), last(*a));
}

}  // namespace
}  // namespace herald
