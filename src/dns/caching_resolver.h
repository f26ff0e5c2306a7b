// CachingResolver: keeps the answers of another Resolver for their TTL, so that the thousands of
// recipients of one domain cost one MX lookup (and one address lookup per mail exchanger) per
// TTL, not one per message.
//
//   - Positive answers are kept for their TTL, at most max_ttl.
//   - NXDOMAIN and NODATA are kept for their negative TTL (RFC 2308 §5: from the SOA the server
//     sent), at most max_negative_ttl.
//   - An answer whose TTL is zero is not kept.
//   - SERVFAIL and timeouts are kept for failure_ttl (RFC 2308 §7: a server failure may be
//     cached, for at most five minutes), so a broken domain is not asked again for each of its
//     recipients.
//   - At most max_entries answers; the least recently used goes first.
//   - Concurrent queries for the same name and type wait for one upstream query.
// A cached answer is returned with its TTL reduced by the time it has been kept. Time comes from
// the injected Clock.
//
// Threading: the coroutines of one io_context at a time (like the upstream resolver).
#pragma once

#include <cstdint>
#include <memory>

#include "core/clock.h"
#include "dns/resolver.h"

namespace herald::dns {

struct CacheOptions {
  std::size_t max_entries = 10'000;
  Duration max_ttl = std::chrono::hours(24);          // as unbound's cache-max-ttl
  Duration max_negative_ttl = std::chrono::hours(1);  // as unbound's cache-max-negative-ttl
  Duration failure_ttl = std::chrono::seconds(30);
};

struct CacheStats {
  std::uint64_t queries = 0;           // Query() calls
  std::uint64_t upstream_queries = 0;  // passed on to the upstream resolver
  std::uint64_t hits = 0;              // answered from the cache
  std::uint64_t shared = 0;            // answered by another caller's query in progress
  std::uint64_t evictions = 0;         // answers dropped to stay within max_entries
};

class CachingResolver final : public Resolver {
 public:
  CachingResolver(std::unique_ptr<Resolver> upstream, const Clock& clock, CacheOptions options = {});
  ~CachingResolver() override;
  CachingResolver(const CachingResolver&) = delete;
  CachingResolver& operator=(const CachingResolver&) = delete;

  asio::awaitable<Answer> Query(std::string name, RecordType type) override;

  CacheStats stats() const;
  std::size_t size() const;  // answers held

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace herald::dns
