// The MX plan of RFC 5321 §5.1 against a fake resolver: preference order, random order among equal
// preferences, the implicit MX, the null MX of RFC 7505, NXDOMAIN, DNS failures, IDN domains, and
// the addresses of each host.
#include "dns/mx_plan.h"

#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/fake_resolver.h"
#include "run_awaitable.h"

namespace herald::dns {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Names(const MxPlan& plan) {
  std::vector<std::string> names;
  for (const MxHost& host : plan.hosts) names.push_back(host.name);
  return names;
}

class MxPlanTest : public ::testing::Test {
 protected:
  MxPlan Plan(const std::string& domain) { return RunAwaitable(planner_.Plan(domain)); }
  HostAddresses Addresses(const std::string& host, AddressFamilies families = AddressFamilies::kAll) {
    return RunAwaitable(planner_.Addresses(host, families));
  }

  FakeResolver resolver_;
  MxPlanner planner_{resolver_, 20261123};
};

TEST_F(MxPlanTest, HostsInPreferenceOrder) {
  resolver_.SetMx("example.com", {{20, "b.example.com"}, {10, "a.example.com"}, {30, "c.example.net"}});
  MxPlan plan = Plan("example.com");
  ASSERT_FALSE(plan.failure) << plan.failure->text;
  EXPECT_EQ(plan.domain, "example.com");
  EXPECT_THAT(plan.hosts, ElementsAre(MxHost{"a.example.com", 10, false}, MxHost{"b.example.com", 20, false},
                                      MxHost{"c.example.net", 30, false}));
  EXPECT_THAT(resolver_.queries(), ElementsAre("MX example.com"));
}

TEST_F(MxPlanTest, RandomOrderAmongEqualPreferences) {
  resolver_.SetMx("example.com", {{10, "a.example.com"}, {10, "b.example.com"}, {10, "c.example.com"},
                                  {5, "first.example.com"}, {20, "last.example.com"}});
  std::map<std::string, int> second;  // how often each equal host came right after the best one
  constexpr int kPlans = 300;
  for (int i = 0; i < kPlans; ++i) {
    MxPlan plan = Plan("example.com");
    ASSERT_EQ(plan.hosts.size(), 5u);
    EXPECT_EQ(plan.hosts.front().name, "first.example.com");
    EXPECT_EQ(plan.hosts.back().name, "last.example.com");
    ++second[plan.hosts[1].name];
  }
  ASSERT_EQ(second.size(), 3u);
  for (const auto& [host, count] : second) {
    // Each of three hosts comes second about 100 times; below 60 would mean a skewed shuffle.
    EXPECT_GT(count, 60) << host;
  }
}

TEST_F(MxPlanTest, TheSeedDecidesTheOrder) {
  resolver_.SetMx("example.com", {{10, "a.example.com"}, {10, "b.example.com"}, {10, "c.example.com"},
                                  {10, "d.example.com"}});
  MxPlanner same_a(resolver_, 7);
  MxPlanner same_b(resolver_, 7);
  std::vector<std::vector<std::string>> orders_a, orders_b;
  for (int i = 0; i < 5; ++i) {
    orders_a.push_back(Names(RunAwaitable(same_a.Plan("example.com"))));
    orders_b.push_back(Names(RunAwaitable(same_b.Plan("example.com"))));
  }
  EXPECT_EQ(orders_a, orders_b);
}

TEST_F(MxPlanTest, NoMxRecordsMeansTheDomainIsItsOwnMx) {
  resolver_.SetAddresses("example.org", RecordType::kA, {"192.0.2.7"});
  MxPlan plan = Plan("example.org");
  ASSERT_FALSE(plan.failure) << plan.failure->text;
  EXPECT_THAT(plan.hosts, ElementsAre(MxHost{"example.org", 0, true}));
}

TEST_F(MxPlanTest, NullMxFailsForGoodWithoutLookingUpAddresses) {
  resolver_.SetMx("nomail.example", {{0, "."}});
  resolver_.SetAddresses("nomail.example", RecordType::kA, {"192.0.2.7"});
  MxPlan plan = Plan("nomail.example");
  ASSERT_TRUE(plan.failure);
  EXPECT_TRUE(plan.failure->permanent);
  EXPECT_EQ(plan.failure->enhanced_status, "5.1.10");
  EXPECT_THAT(plan.failure->text, HasSubstr("nomail.example accepts no mail"));
  EXPECT_TRUE(plan.hosts.empty());
  EXPECT_THAT(resolver_.queries(), ElementsAre("MX nomail.example"));
}

TEST_F(MxPlanTest, ANullMxBesideOtherRecordsIsLeftOut) {
  resolver_.SetMx("mixed.example", {{0, "."}, {10, "mx.mixed.example"}});
  MxPlan plan = Plan("mixed.example");
  ASSERT_FALSE(plan.failure) << plan.failure->text;
  EXPECT_EQ(Names(plan), std::vector<std::string>{"mx.mixed.example"});
}

TEST_F(MxPlanTest, NxDomainFailsForGood) {
  MxPlan plan = Plan("nx.example");
  ASSERT_TRUE(plan.failure);
  EXPECT_TRUE(plan.failure->permanent);
  EXPECT_EQ(plan.failure->enhanced_status, "5.1.2");
  EXPECT_THAT(plan.failure->text, HasSubstr("MX lookup for nx.example: the name does not exist (NXDOMAIN)"));
}

TEST_F(MxPlanTest, DnsFailuresAreTemporary) {
  resolver_.SetStatus("broken.example", RecordType::kMx, AnswerStatus::kServFail);
  resolver_.SetStatus("silent.example", RecordType::kMx, AnswerStatus::kTimeout);
  for (const char* domain : {"broken.example", "silent.example"}) {
    MxPlan plan = Plan(domain);
    ASSERT_TRUE(plan.failure) << domain;
    EXPECT_FALSE(plan.failure->permanent) << domain;
    EXPECT_EQ(plan.failure->enhanced_status, "4.4.3");
    EXPECT_THAT(plan.failure->text, HasSubstr(domain));
    EXPECT_TRUE(plan.hosts.empty());
  }
}

TEST_F(MxPlanTest, UnusableAndRepeatedExchangesAreLeftOut) {
  resolver_.SetMx("odd.example", {{10, "mx\\032.odd.example"}, {20, "-bad.odd.example"}, {30, "good.odd.example"},
                                  {40, "good.odd.example"}});
  MxPlan plan = Plan("odd.example");
  ASSERT_FALSE(plan.failure) << plan.failure->text;
  EXPECT_EQ(Names(plan), std::vector<std::string>{"good.odd.example"});

  resolver_.SetMx("bad.example", {{10, "mx\\032.bad.example"}});
  plan = Plan("bad.example");
  ASSERT_TRUE(plan.failure);
  EXPECT_FALSE(plan.failure->permanent);
  EXPECT_THAT(plan.failure->text, HasSubstr("no usable host"));
}

TEST_F(MxPlanTest, InternationalDomainsAreLookedUpAsALabels) {
  resolver_.SetMx("xn--bcher-kva.example", {{10, "mx.xn--bcher-kva.example"}});
  MxPlan plan = Plan("Bücher.example");
  ASSERT_FALSE(plan.failure) << plan.failure->text;
  EXPECT_EQ(plan.domain, "xn--bcher-kva.example");
  EXPECT_EQ(Names(plan), std::vector<std::string>{"mx.xn--bcher-kva.example"});
  EXPECT_THAT(resolver_.queries(), ElementsAre("MX xn--bcher-kva.example"));
}

TEST_F(MxPlanTest, WhatIsNoDomainFailsWithoutAQuery) {
  for (const char* text : {"exa mple.com", "192.0.2.1", "[2001:db8::1]", ""}) {
    MxPlan plan = Plan(text);
    ASSERT_TRUE(plan.failure) << text;
    EXPECT_TRUE(plan.failure->permanent) << text;
  }
  EXPECT_TRUE(resolver_.queries().empty());
}

TEST_F(MxPlanTest, AddressesIpv4FirstThenIpv6) {
  resolver_.SetAddresses("mx.example", RecordType::kAaaa, {"2001:db8::25", "2001:db8::26"});
  resolver_.SetAddresses("mx.example", RecordType::kA, {"192.0.2.25"});
  HostAddresses all = Addresses("mx.example");
  ASSERT_FALSE(all.failure);
  EXPECT_THAT(all.addresses, ElementsAre("192.0.2.25", "2001:db8::25", "2001:db8::26"));
  EXPECT_THAT(Addresses("mx.example", AddressFamilies::kIpv4).addresses, ElementsAre("192.0.2.25"));
  EXPECT_THAT(Addresses("mx.example", AddressFamilies::kIpv6).addresses, ElementsAre("2001:db8::25", "2001:db8::26"));
}

TEST_F(MxPlanTest, OneFamilyIsEnough) {
  resolver_.SetAddresses("v6only.example", RecordType::kAaaa, {"2001:db8::25"});
  resolver_.SetStatus("v4broken.example", RecordType::kA, AnswerStatus::kServFail);
  resolver_.SetAddresses("v4broken.example", RecordType::kAaaa, {"2001:db8::26"});
  EXPECT_THAT(Addresses("v6only.example").addresses, ElementsAre("2001:db8::25"));
  HostAddresses v4broken = Addresses("v4broken.example");
  EXPECT_FALSE(v4broken.failure);
  EXPECT_THAT(v4broken.addresses, ElementsAre("2001:db8::26"));
}

TEST_F(MxPlanTest, AHostWithoutAddressFailsForGoodOnlyWhenTheDnsSaysSo) {
  resolver_.SetMx("nohost.example", {{10, "mx.nohost.example"}});  // the host has no records at all
  HostAddresses missing = Addresses("mx.nohost.example");
  ASSERT_TRUE(missing.failure);
  EXPECT_TRUE(missing.failure->permanent);
  EXPECT_EQ(missing.failure->enhanced_status, "5.4.4");
  EXPECT_THAT(missing.failure->text, HasSubstr("no address for mx.nohost.example"));

  resolver_.SetStatus("flaky.example", RecordType::kA, AnswerStatus::kTimeout);
  resolver_.SetStatus("flaky.example", RecordType::kAaaa, AnswerStatus::kNoData);
  HostAddresses flaky = Addresses("flaky.example");
  ASSERT_TRUE(flaky.failure);
  EXPECT_FALSE(flaky.failure->permanent);
  EXPECT_EQ(flaky.failure->enhanced_status, "4.4.3");
  EXPECT_THAT(flaky.failure->text, HasSubstr("A lookup for flaky.example: no answer"));
  EXPECT_THAT(flaky.failure->text, HasSubstr("AAAA lookup for flaky.example: the name has no AAAA records"));
}

}  // namespace
}  // namespace herald::dns
