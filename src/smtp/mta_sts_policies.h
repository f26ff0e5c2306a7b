// MtaStsPolicies: the MTA-STS policy in force for each recipient domain (RFC 8461 §3, §5.1):
// announced by the domain's "_mta-sts" TXT record, fetched from
// https://mta-sts.<domain>/.well-known/mta-sts.txt (the certificate must be valid for that name;
// redirects are not followed; at most 64 KB within the timeout), and kept for its max_age.
//
//   - A cached policy is used while its max_age lasts and the TXT record announces the same id
//     (or cannot be had); a new id is fetched, and the cached policy stays in force if that fails.
//   - Without a cached policy, a domain with no valid TXT record, or whose policy cannot be
//     fetched, has no policy: mail goes as without MTA-STS (RFC 8461 §3.3, §5).
// The mta-sts host's address comes from the same resolver as the MX lookups.
//
// Threading: the io_context's thread, like the resolver it uses.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <asio/awaitable.hpp>

#include "core/clock.h"
#include "dns/resolver.h"
#include "smtp/mta_sts.h"

namespace herald {

struct MtaStsOptions {
  std::uint16_t port = 443;    // of the policy host (tests serve policies elsewhere)
  std::string ca_file;         // trusted besides the system store
  std::string local_address;   // to bind, as for the SMTP connections
  Duration timeout = std::chrono::seconds(30);  // for the whole fetch
  std::size_t max_policies = 10'000;            // kept at once; the one expiring first goes
};

struct PolicyLookup {
  std::optional<mta_sts::Policy> policy;  // in force; none: deliver as without MTA-STS
  std::string note;  // what happened, in plain words ("policy 20260101 fetched: enforce, ...")
};

class MtaStsPolicies {
 public:
  // `resolver` and `clock` must outlive this object.
  MtaStsPolicies(dns::Resolver& resolver, const Clock& clock, MtaStsOptions options);

  // The policy of `domain` (A-labels). Never throws.
  asio::awaitable<PolicyLookup> Lookup(std::string domain);

 private:
  struct Cached {
    mta_sts::Policy policy;
    std::string id;
    TimePoint expires;
  };

  asio::awaitable<Result<mta_sts::Policy>> Fetch(std::string domain);
  void Keep(const std::string& domain, const mta_sts::Policy& policy, const std::string& id);

  dns::Resolver& resolver_;
  const Clock& clock_;
  MtaStsOptions options_;
  std::map<std::string, Cached> cache_;
};

}  // namespace herald
