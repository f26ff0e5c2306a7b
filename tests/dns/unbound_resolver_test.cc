// UnboundResolver against a real DNS server (dnsmasq on a loopback port, tests/servers): MX, A,
// AAAA and TXT answers with their TTLs, NXDOMAIN, NODATA, a server that refuses, a server that
// never answers, many queries at once, successive event loops, and a server on ::1.
#include "dns/unbound_resolver.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "run_awaitable.h"
#include "servers/dnsmasq_server.h"
#include "temp_dir.h"

namespace herald::dns {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using test_servers::DnsmasqOptions;
using test_servers::DnsmasqServer;

class UnboundResolverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    temp_ = new TempDir();
    DnsmasqOptions options;
    options.directory = temp_->Path("dnsmasq");
    options.mx = {{"mail.example", "mx1.mail.example", 10}, {"mail.example", "mx2.mail.example", 20},
                  {"nullmx.example", ".", 0}};
    options.hosts = {{"mx1.mail.example", "127.0.0.2", ""},
                     {"mx2.mail.example", "127.0.0.3", "::1"},
                     {"v6only.example", "", "2001:db8::25"}};
    options.txt = {{"_mta-sts.mail.example", "v=STSv1; id=20261123"}};
    options.failing_domains = {"broken.example"};
    options.silent_domains = {"silent.example"};
    options.ttl = 300;
    dns_ = new DnsmasqServer(options);
    Status started = dns_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  static void TearDownTestSuite() {
    delete dns_;
    delete temp_;
    dns_ = nullptr;
    temp_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(dns_, nullptr);
    Result<std::unique_ptr<UnboundResolver>> resolver =
        UnboundResolver::Create(UnboundOptions{.server = dns_->Address(), .timeout = std::chrono::seconds(10)});
    ASSERT_TRUE(resolver.ok()) << resolver.status().ToString();
    resolver_ = std::move(*resolver);
  }

  Answer Query(const std::string& name, RecordType type) { return RunAwaitable(resolver_->Query(name, type)); }

  static TempDir* temp_;
  static DnsmasqServer* dns_;
  std::unique_ptr<UnboundResolver> resolver_;
};

TempDir* UnboundResolverTest::temp_ = nullptr;
DnsmasqServer* UnboundResolverTest::dns_ = nullptr;

TEST_F(UnboundResolverTest, AnswersMxWithTtl) {
  Answer answer = Query("mail.example", RecordType::kMx);
  ASSERT_TRUE(answer.ok()) << DescribeFailure("mail.example", RecordType::kMx, answer);
  EXPECT_THAT(answer.mx, UnorderedElementsAre(MxRecord{10, "mx1.mail.example"}, MxRecord{20, "mx2.mail.example"}));
  EXPECT_GT(answer.ttl, std::chrono::seconds(290));
  EXPECT_LE(answer.ttl, std::chrono::seconds(300));
}

TEST_F(UnboundResolverTest, AnswersAddresses) {
  Answer v4 = Query("mx2.mail.example", RecordType::kA);
  ASSERT_TRUE(v4.ok()) << DescribeFailure("mx2.mail.example", RecordType::kA, v4);
  EXPECT_THAT(v4.addresses, ElementsAre("127.0.0.3"));
  Answer v6 = Query("MX2.Mail.Example", RecordType::kAaaa);
  ASSERT_TRUE(v6.ok()) << DescribeFailure("MX2.Mail.Example", RecordType::kAaaa, v6);
  EXPECT_THAT(v6.addresses, ElementsAre("::1"));
}

TEST_F(UnboundResolverTest, AnswersTxt) {
  Answer answer = Query("_mta-sts.mail.example", RecordType::kTxt);
  ASSERT_TRUE(answer.ok()) << DescribeFailure("_mta-sts.mail.example", RecordType::kTxt, answer);
  EXPECT_THAT(answer.texts, ElementsAre("v=STSv1; id=20261123"));
}

TEST_F(UnboundResolverTest, AnswersTheNullMx) {
  Answer answer = Query("nullmx.example", RecordType::kMx);
  ASSERT_TRUE(answer.ok()) << DescribeFailure("nullmx.example", RecordType::kMx, answer);
  EXPECT_THAT(answer.mx, ElementsAre(MxRecord{0, "."}));
}

TEST_F(UnboundResolverTest, NoDataAndNxDomainAreApart) {
  Answer no_mx = Query("mx1.mail.example", RecordType::kMx);
  EXPECT_EQ(no_mx.status, AnswerStatus::kNoData) << AnswerStatusName(no_mx.status);
  Answer no_v6 = Query("mx1.mail.example", RecordType::kAaaa);
  EXPECT_EQ(no_v6.status, AnswerStatus::kNoData) << AnswerStatusName(no_v6.status);
  Answer missing = Query("nothing.example", RecordType::kMx);
  EXPECT_EQ(missing.status, AnswerStatus::kNxDomain) << AnswerStatusName(missing.status);
  // dnsmasq sends no SOA with its local answers: reused for a few seconds only, as libunbound does.
  EXPECT_EQ(missing.ttl, std::chrono::seconds(5));
  EXPECT_EQ(no_mx.ttl, std::chrono::seconds(5));
}

TEST_F(UnboundResolverTest, AServerThatRefusesIsServFail) {
  // libunbound reports its forwarder's REFUSED as SERVFAIL.
  Answer broken = Query("broken.example", RecordType::kMx);
  EXPECT_EQ(broken.status, AnswerStatus::kServFail) << AnswerStatusName(broken.status);
  EXPECT_THAT(DescribeFailure("broken.example", RecordType::kMx, broken),
              HasSubstr("MX lookup for broken.example: the DNS server failed (SERVFAIL)"));
  EXPECT_GT(dns_->QueryCount("MX", "broken.example"), 0) << dns_->Log();
}

TEST_F(UnboundResolverTest, AServerThatStaysSilentTimesOut) {
  Result<std::unique_ptr<UnboundResolver>> resolver =
      UnboundResolver::Create(UnboundOptions{.server = dns_->Address(), .timeout = std::chrono::seconds(2)});
  ASSERT_TRUE(resolver.ok()) << resolver.status().ToString();
  auto start = std::chrono::steady_clock::now();
  Answer answer = RunAwaitable((*resolver)->Query("silent.example", RecordType::kMx));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(answer.status, AnswerStatus::kTimeout) << AnswerStatusName(answer.status);
  EXPECT_THAT(answer.reason, HasSubstr("no answer within 2s"));
  EXPECT_GE(took, std::chrono::milliseconds(1900));
  EXPECT_LT(took, std::chrono::seconds(4));
  // The same resolver answers the next query at once.
  EXPECT_TRUE(RunAwaitable((*resolver)->Query("mail.example", RecordType::kMx)).ok());
}

TEST_F(UnboundResolverTest, ManyQueriesAtOnce) {
  asio::io_context io;
  std::vector<std::string> got;
  for (int i = 0; i < 20; ++i) {
    std::string name = i % 2 == 0 ? "mx1.mail.example" : "mx2.mail.example";
    asio::co_spawn(io, resolver_->Query(name, RecordType::kA), [&](std::exception_ptr error, Answer answer) {
      ASSERT_FALSE(error);
      ASSERT_TRUE(answer.ok()) << AnswerStatusName(answer.status) << " " << answer.reason;
      got.push_back(answer.addresses.at(0));
    });
  }
  io.run();
  ASSERT_EQ(got.size(), 20u);
  EXPECT_EQ(std::count(got.begin(), got.end(), "127.0.0.2"), 10);
  EXPECT_EQ(std::count(got.begin(), got.end(), "127.0.0.3"), 10);
}

TEST_F(UnboundResolverTest, OneResolverServesSuccessiveEventLoops) {
  for (int i = 0; i < 3; ++i) {
    asio::io_context io;
    std::optional<Answer> answer;
    asio::co_spawn(io, resolver_->Query("mail.example", RecordType::kMx),
                   [&](std::exception_ptr, Answer a) { answer = std::move(a); });
    io.run();
    ASSERT_TRUE(answer && answer->ok()) << "loop " << i;
  }
}

TEST_F(UnboundResolverTest, AServerOnIpv6Loopback) {
  DnsmasqOptions options;
  options.directory = temp_->Path("dnsmasq-v6");
  options.host = "::1";
  options.mx = {{"v6.example", "mx.v6.example", 5}};
  DnsmasqServer v6(options);
  Status started = v6.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  ASSERT_EQ(v6.Address().front(), '[');
  Result<std::unique_ptr<UnboundResolver>> resolver = UnboundResolver::Create(UnboundOptions{.server = v6.Address()});
  ASSERT_TRUE(resolver.ok()) << resolver.status().ToString();
  Answer answer = RunAwaitable((*resolver)->Query("v6.example", RecordType::kMx));
  ASSERT_TRUE(answer.ok()) << AnswerStatusName(answer.status) << " " << answer.reason << "\n" << v6.Log();
  EXPECT_THAT(answer.mx, ElementsAre(MxRecord{5, "mx.v6.example"}));
  EXPECT_EQ(v6.QueryCount("MX", "v6.example"), 1);
}

TEST_F(UnboundResolverTest, NegativeAnswersOfAnAuthoritativeZoneCarryTheirTtl) {
  // RFC 2308 §5: the negative TTL comes from the SOA in the answer's authority section.
  DnsmasqOptions options;
  options.directory = temp_->Path("dnsmasq-auth");
  options.authoritative = true;
  options.ttl = 600;
  options.mx = {{"zone.example", "mx.zone.example", 10}};
  options.hosts = {{"mx.zone.example", "127.0.0.2", ""}};
  DnsmasqServer zone(options);
  Status started = zone.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  Result<std::unique_ptr<UnboundResolver>> resolver = UnboundResolver::Create(UnboundOptions{.server = zone.Address()});
  ASSERT_TRUE(resolver.ok()) << resolver.status().ToString();
  Answer mx = RunAwaitable((*resolver)->Query("zone.example", RecordType::kMx));
  ASSERT_TRUE(mx.ok()) << AnswerStatusName(mx.status) << " " << mx.reason << "\n" << zone.Log();
  EXPECT_EQ(mx.ttl, std::chrono::seconds(600));
  Answer missing = RunAwaitable((*resolver)->Query("nothing.zone.example", RecordType::kMx));
  EXPECT_EQ(missing.status, AnswerStatus::kNxDomain) << AnswerStatusName(missing.status);
  EXPECT_EQ(missing.ttl, std::chrono::seconds(600)) << "the SOA's, not the 5 s of an answer without one";
  Answer no_data = RunAwaitable((*resolver)->Query("mx.zone.example", RecordType::kAaaa));
  EXPECT_EQ(no_data.status, AnswerStatus::kNoData) << AnswerStatusName(no_data.status);
  EXPECT_EQ(no_data.ttl, std::chrono::seconds(600));
  EXPECT_EQ(zone.QueryCount("MX", "zone.example"), 1) << zone.Log();
}

// A UDP socket on 127.0.0.1 that receives queries and never answers.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("cannot bind a UDP socket on 127.0.0.1");
    }
    port_ = ntohs(address.sin_port);
  }
  ~SilentServer() { close(fd_); }
  std::string Address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(UnboundResolverTimeoutTest, AServerThatNeverAnswersTimesOut) {
  SilentServer silent;
  Result<std::unique_ptr<UnboundResolver>> resolver =
      UnboundResolver::Create(UnboundOptions{.server = silent.Address(), .timeout = std::chrono::seconds(1)});
  ASSERT_TRUE(resolver.ok()) << resolver.status().ToString();
  auto start = std::chrono::steady_clock::now();
  Answer answer = RunAwaitable((*resolver)->Query("mail.example", RecordType::kMx));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(answer.status, AnswerStatus::kTimeout) << AnswerStatusName(answer.status);
  EXPECT_THAT(answer.reason, HasSubstr("no answer within 1s"));
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(UnboundResolverCreateTest, TheSystemConfigurationOrAServer) {
  EXPECT_TRUE(UnboundResolver::Create(UnboundOptions{}).ok());
  Result<std::unique_ptr<UnboundResolver>> bad = UnboundResolver::Create(UnboundOptions{.server = "dns.example"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("\"dns.example\""));
}

}  // namespace
}  // namespace herald::dns
