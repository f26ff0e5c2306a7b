// The account's DNS server setting in libunbound's forwarder form.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dns/unbound_resolver.h"

namespace herald::dns {
namespace {

TEST(UnboundForwarderTest, AcceptsAddressesWithOptionalPorts) {
  struct Case {
    const char* setting;
    const char* want;
  };
  for (const Case& c : std::vector<Case>{{"192.0.2.53", "192.0.2.53"},
                                         {"127.0.0.1:5353", "127.0.0.1@5353"},
                                         {"[::1]:53", "::1@53"},
                                         {"[2001:db8::53]", "2001:db8::53"},
                                         {"::1", "::1"},
                                         {"2001:db8::53", "2001:db8::53"}}) {
    Result<std::string> got = UnboundForwarder(c.setting);
    ASSERT_TRUE(got.ok()) << c.setting << ": " << got.status().ToString();
    EXPECT_EQ(*got, c.want) << c.setting;
  }
}

TEST(UnboundForwarderTest, RefusesEverythingElse) {
  for (const char* setting : {"", "dns.example", "192.0.2.53:", "192.0.2.53:0", "192.0.2.53:65536", "192.0.2.53:5x",
                              "[::1", "[::1]x", "[::1]:", "[dns.example]:53", "192.0.2.053", "::1:53:x"}) {
    Result<std::string> got = UnboundForwarder(setting);
    EXPECT_FALSE(got.ok()) << "\"" << setting << "\" gave " << (got.ok() ? *got : "");
    if (!got.ok()) {
      EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace herald::dns
