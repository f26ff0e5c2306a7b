// The DNS wire format readers behind UnboundResolver: record data and the negative TTL of
// RFC 2308, from well-formed and hostile bytes.
#include "dns/internal/wire.h"

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace herald::dns_internal {
namespace {

using Octets = std::vector<unsigned char>;

// A name in uncompressed wire form: "mx1.example" → 3 'mx1' 7 'example' 0.
Octets Name(const std::string& dotted) {
  Octets out;
  std::size_t start = 0;
  while (start < dotted.size()) {
    std::size_t end = dotted.find('.', start);
    if (end == std::string::npos) end = dotted.size();
    out.push_back(static_cast<unsigned char>(end - start));
    out.insert(out.end(), dotted.begin() + static_cast<long>(start), dotted.begin() + static_cast<long>(end));
    start = end + 1;
  }
  out.push_back(0);
  return out;
}

void Put16(Octets& out, std::uint16_t value) {
  out.push_back(static_cast<unsigned char>(value >> 8));
  out.push_back(static_cast<unsigned char>(value));
}

void Put32(Octets& out, std::uint32_t value) {
  Put16(out, static_cast<std::uint16_t>(value >> 16));
  Put16(out, static_cast<std::uint16_t>(value));
}

Octets Cat(Octets a, const Octets& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(WireTest, ReadsNamesLowercaseWithoutTrailingDot) {
  std::size_t length = 0;
  Octets name = Name("MX1.Example.COM");
  Result<std::string> read = ReadName(name, &length);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, "mx1.example.com");
  EXPECT_EQ(length, name.size());
}

TEST(WireTest, TheRootIsADot) {
  std::size_t length = 0;
  Result<std::string> read = ReadName(Octets{0}, &length);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, ".");
  EXPECT_EQ(length, 1u);
}

TEST(WireTest, OddOctetsAreEscapedSoTheNameIsNoHostName) {
  std::size_t length = 0;
  Octets name = {5, 'a', '.', 'b', ' ', 0xC3, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0};
  Result<std::string> read = ReadName(name, &length);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "a\\046b\\032\\195.example");
}

TEST(WireTest, RefusesBrokenNames) {
  std::size_t length = 0;
  struct Case {
    const char* what;
    Octets bytes;
  };
  Octets long_label = {64};
  long_label.insert(long_label.end(), 64, 'a');
  long_label.push_back(0);
  Octets long_name;
  for (int i = 0; i < 5; ++i) {
    long_name.push_back(60);
    long_name.insert(long_name.end(), 60, 'a');
  }
  long_name.push_back(0);
  std::vector<Case> cases = {
      {"empty", {}},
      {"no end", {3, 'a', 'b', 'c'}},
      {"label past the end", {5, 'a', 'b'}},
      {"compression pointer", {0xC0, 0x0C}},
      {"reserved label type", {0x40, 0}},
      {"label of 64", long_label},
      {"name of 306 octets", long_name},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(ReadName(c.bytes, &length).ok()) << c.what;
  }
}

TEST(WireTest, ParsesMx) {
  Octets rdata;
  Put16(rdata, 10);
  rdata = Cat(rdata, Name("mx.example.com"));
  Result<dns::MxRecord> mx = ParseMx(rdata);
  ASSERT_TRUE(mx.ok()) << mx.status().ToString();
  EXPECT_EQ(mx->preference, 10);
  EXPECT_EQ(mx->exchange, "mx.example.com");
}

TEST(WireTest, ParsesTheNullMx) {
  Result<dns::MxRecord> mx = ParseMx(Octets{0, 0, 0});
  ASSERT_TRUE(mx.ok());
  EXPECT_EQ(mx->preference, 0);
  EXPECT_EQ(mx->exchange, ".");
}

TEST(WireTest, RefusesMxWithMissingOrTrailingOctets) {
  EXPECT_FALSE(ParseMx(Octets{0, 10}).ok());
  Octets trailing;
  Put16(trailing, 10);
  trailing = Cat(trailing, Name("mx.example"));
  trailing.push_back('x');
  EXPECT_FALSE(ParseMx(trailing).ok());
}

TEST(WireTest, ParsesAddresses) {
  Result<std::string> v4 = ParseAddress(dns::RecordType::kA, Octets{192, 0, 2, 25});
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(*v4, "192.0.2.25");
  Octets v6_bytes(16, 0);
  v6_bytes[0] = 0x20;
  v6_bytes[1] = 0x01;
  v6_bytes[2] = 0x0d;
  v6_bytes[3] = 0xb8;
  v6_bytes[15] = 0x25;
  Result<std::string> v6 = ParseAddress(dns::RecordType::kAaaa, v6_bytes);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(*v6, "2001:db8::25");
  EXPECT_FALSE(ParseAddress(dns::RecordType::kA, Octets{1, 2, 3}).ok());
  EXPECT_FALSE(ParseAddress(dns::RecordType::kAaaa, Octets{192, 0, 2, 25}).ok());
  EXPECT_FALSE(ParseAddress(dns::RecordType::kMx, Octets{192, 0, 2, 25}).ok());
}

TEST(WireTest, JoinsTheStringsOfATxtRecord) {
  Octets rdata = {8, 'v', '=', 'S', 'T', 'S', 'v', '1', ';', 5, ' ', 'i', 'd', '=', '1', 0};
  Result<std::string> text = ParseTxt(rdata);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "v=STSv1; id=1");
  EXPECT_FALSE(ParseTxt(Octets{9, 'a', 'b'}).ok());
}

// A NXDOMAIN/NODATA answer to "MX nx.example" with one answer-section CNAME (to be skipped) and,
// if wanted, an SOA in the authority section whose names are compressed.
Octets NegativeAnswer(bool with_soa, std::uint32_t soa_ttl, std::uint32_t minimum) {
  Octets packet;
  Put16(packet, 0x1234);  // id
  Put16(packet, 0x8183);  // response, NXDOMAIN
  Put16(packet, 1);       // questions
  Put16(packet, 1);       // answers
  Put16(packet, with_soa ? 1 : 0);
  Put16(packet, 0);
  packet = Cat(packet, Name("nx.example"));  // at offset 12
  Put16(packet, 15);
  Put16(packet, 1);
  // Answer: nx.example CNAME other.example, owner compressed to offset 12.
  Put16(packet, 0xC00C);
  Put16(packet, 5);
  Put16(packet, 1);
  Put32(packet, 600);
  Octets target = Name("other.example");
  Put16(packet, static_cast<std::uint16_t>(target.size()));
  packet = Cat(packet, target);
  if (with_soa) {
    Put16(packet, 0xC00F);  // "example", inside the question name
    Put16(packet, 6);
    Put16(packet, 1);
    Put32(packet, soa_ttl);
    Octets rdata;
    rdata.push_back(2);
    rdata.push_back('n');
    rdata.push_back('s');
    Put16(rdata, 0xC00F);  // ns.example
    Put16(rdata, 0xC00F);  // rname: example
    Put32(rdata, 2026010101);
    Put32(rdata, 3600);
    Put32(rdata, 600);
    Put32(rdata, 86400);
    Put32(rdata, minimum);
    Put16(packet, static_cast<std::uint16_t>(rdata.size()));
    packet = Cat(packet, rdata);
  }
  return packet;
}

TEST(WireTest, NegativeTtlIsTheSmallerOfSoaTtlAndMinimum) {
  EXPECT_EQ(NegativeTtl(NegativeAnswer(true, 3600, 300)), std::chrono::seconds(300));
  EXPECT_EQ(NegativeTtl(NegativeAnswer(true, 60, 300)), std::chrono::seconds(60));
}

TEST(WireTest, NoNegativeTtlWithoutSoa) { EXPECT_EQ(NegativeTtl(NegativeAnswer(false, 0, 0)), std::nullopt); }

TEST(WireTest, ATtlWithTheHighBitSetCountsAsZero) {
  // RFC 2181 §8.
  EXPECT_EQ(NegativeTtl(NegativeAnswer(true, 0x8000'0001U, 300)), Duration(0));
}

TEST(WireTest, TruncatedPacketsHaveNoNegativeTtl) {
  Octets packet = NegativeAnswer(true, 3600, 300);
  for (std::size_t size = 0; size < packet.size(); ++size) {
    Octets cut(packet.begin(), packet.begin() + static_cast<long>(size));
    EXPECT_EQ(NegativeTtl(cut), std::nullopt) << "cut to " << size << " octets";
  }
}

}  // namespace
}  // namespace herald::dns_internal
