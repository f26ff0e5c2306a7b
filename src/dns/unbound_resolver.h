// UnboundResolver: the Resolver on libunbound (NLnet Labs), asynchronous on the caller's Asio
// event loop: queries go to libunbound's own resolving thread, and its results are read when its
// pipe becomes readable, so a lookup never blocks the loop. It asks the DNS server set on the
// account, or the servers of the system's /etc/resolv.conf. libunbound keeps a cache of its own;
// wrap it in a CachingResolver (dns/caching_resolver.h) to count and share answers across the
// messages of a run.
//
// Threading: the coroutines of one io_context at a time use a resolver (queries from several
// coroutines may be in progress together). Destroy it only when no query is in progress.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "dns/resolver.h"

namespace herald::dns {

struct UnboundOptions {
  // The DNS server to ask: "192.0.2.53", "127.0.0.1:5353", "[2001:db8::53]:53" (port 53 when
  // none is given); empty: the name servers of /etc/resolv.conf.
  std::string server;
  // How long a query may take before its Answer is kTimeout (libunbound keeps retrying a silent
  // server for much longer).
  Duration timeout = std::chrono::seconds(15);
};

class UnboundResolver final : public Resolver {
 public:
  // Errors: kInvalidArgument for a malformed server ("expected an IP address with an optional
  // port ..."), kFailedPrecondition when libunbound cannot be set up (e.g. /etc/resolv.conf is
  // unreadable), with libunbound's reason.
  static Result<std::unique_ptr<UnboundResolver>> Create(UnboundOptions options);

  ~UnboundResolver() override;
  UnboundResolver(const UnboundResolver&) = delete;
  UnboundResolver& operator=(const UnboundResolver&) = delete;

  asio::awaitable<Answer> Query(std::string name, RecordType type) override;

  class Impl;

 private:
  explicit UnboundResolver(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// A DNS server setting ("192.0.2.53", "127.0.0.1:5353", "[::1]:53", "::1") in libunbound's
// forwarder form ("192.0.2.53", "127.0.0.1@5353", "::1@53", "::1"). Errors: kInvalidArgument.
Result<std::string> UnboundForwarder(std::string_view server);

}  // namespace herald::dns
