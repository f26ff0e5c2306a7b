// MxPlanner: where mail for a domain goes (RFC 5321 §5.1) — the hosts to try, best first, and the
// addresses of each host.
//
//   Plan():       the domain's MX records in preference order, in random order among equal
//                 preferences (spreading the load as RFC 5321 §5.1 asks); no MX records → the
//                 domain itself as an implicit MX of preference 0; a null MX (RFC 7505: one MX
//                 "0 .") → permanent failure, no host; NXDOMAIN → permanent; SERVFAIL or timeout
//                 → temporary.
//   Addresses():  a host's IPv4 addresses, then its IPv6 addresses (IPv4 first: receivers judge a
//                 bulk sender by the reverse DNS and reputation of its address, which senders
//                 rarely have set up for IPv6; the IPv6 addresses are still tried when IPv4 fails).
//
// Domains may be given as U-labels or A-labels; they are looked up as A-labels (IDNA2008).
// Threading: like the Resolver it uses.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "dns/resolver.h"

namespace herald::dns {

struct MxHost {
  std::string name;  // A-label host name, lowercase; the domain itself for an implicit MX
  std::uint16_t preference = 0;
  bool implicit = false;  // no MX records: the domain's own address (RFC 5321 §5.1)

  friend bool operator==(const MxHost&, const MxHost&) = default;
};

// Why mail for a domain, or to a host, cannot be delivered: for good or for now.
struct LookupFailure {
  bool permanent = false;
  // RFC 3463: 5.1.2 the domain does not exist, 5.1.10 null MX (RFC 7505 §4.2), 5.4.4 no address
  // to deliver to, 4.4.3 the DNS failed.
  std::string enhanced_status;
  std::string text;  // names the domain or host and what the DNS said
};

struct MxPlan {
  std::string domain;         // as looked up (A-labels)
  std::vector<MxHost> hosts;  // in the order to try; empty when `failure` is set
  std::optional<LookupFailure> failure;
};

struct HostAddresses {
  std::vector<std::string> addresses;    // IP addresses in text form, in the order to try
  std::optional<LookupFailure> failure;  // set when `addresses` is empty
};

enum class AddressFamilies {
  kAll,
  kIpv4,  // e.g. the account binds an IPv4 local address
  kIpv6,
};

class MxPlanner {
 public:
  // `seed` sets the order among hosts of equal preference (tests give a fixed one).
  MxPlanner(Resolver& resolver, std::uint64_t seed);

  asio::awaitable<MxPlan> Plan(std::string domain);
  asio::awaitable<HostAddresses> Addresses(std::string host, AddressFamilies families);

 private:
  Resolver& resolver_;
  std::mt19937_64 random_;
};

}  // namespace herald::dns
