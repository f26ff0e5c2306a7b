// DirectTransport: the `direct` account kind — herald as its own mail server, handing each
// message to the mail exchangers of the recipient's domain (RFC 5321 §5.1), without a relay.
//
//   Destination(to)  the recipient's domain: the engine groups recipients by it, and one
//                    connection carries the messages of one domain.
//   Connect(domain)  walks the MX plan (dns/mx_plan.h): hosts in preference order, random among
//                    equal preferences, each host's IPv4 then IPv6 addresses, at most
//                    kMaxAddressesTried of them (Postfix's smtp_mx_address_limit). An address
//                    that refuses, times out, or fails before the session is ready (4xx or 5xx
//                    greeting, EHLO refused, TLS that the policy needs but does not work) moves on
//                    to the next one. A null MX, a domain that does not exist, or every host
//                    answering 5xx fails for good; anything else is temporary. Failures have
//                    scope kDestination: the account and its other destinations are fine.
//                    When every address tried refused this host by policy (a 5xx x.7.x or bare
//                    554 greeting, EHLO refusal: Outcome::policy_refusal), the outcome says so.
//   Send()           the session's outcomes per recipient (a 5xx to RCPT TO is final for that
//                    recipient); what concerns a whole relay account (421, a refused EHLO, a
//                    sender refused at MAIL FROM) concerns only this destination here, and says
//                    so (kDestination), keeping policy_refusal.
//
// TLS (the account's tls_policy, or its [[account.destination]] rule for the domain):
//   opportunistic  STARTTLS whenever offered, certificate not checked (RFC 7435: encryption
//                  without authentication beats clear text); a server whose STARTTLS or TLS
//                  handshake fails is tried again in clear, as Postfix's "may" level does;
//   required       never in clear; any certificate;
//   verify         never in clear; the certificate must be valid for the MX host's name (trusted
//                  by the system store or the account's ca_file).
// MTA-STS (RFC 8461; the account's mta_sts, on by default): the domain's policy
// (smtp/mta_sts_policies.h) in enforce mode allows only the MX hosts it names, each with verified
// TLS; when none of them can be used the mail waits (a policy failure defers, RFC 8461 §5). In
// testing mode mail goes as without it, and what enforce mode would have refused is reported.
// The port is the account's `port` (25 unless set: another port is for tests against local
// servers). The HELO name is the account's helo_name or this machine's fully qualified name;
// warnings() says when it does not look like one. local_address binds the connections, and only
// addresses of its family are tried.
//
// Threading: the io_context's thread (like the resolver it owns).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "config/account_config.h"
#include "dns/mx_plan.h"
#include "dns/resolver.h"
#include "smtp/mta_sts_policies.h"
#include "smtp/session.h"
#include "transport/transport.h"

namespace herald {

struct DirectOptions {
  // Receives the dialogue of every session and a line for each host tried (herald test-account).
  std::function<void(std::string_view)> transcript;
  // Receives what MTA-STS testing mode would have refused (RFC 8461 §5 asks senders to report it).
  std::function<void(std::string_view)> report;
  // Orders MX hosts of equal preference (tests give a fixed one).
  std::uint64_t seed = std::random_device{}();
  // For how long MTA-STS policies are kept; null: the system clock.
  const Clock* clock = nullptr;
  // Where MTA-STS policies are fetched (tests serve them on another port than HTTPS's 443).
  std::uint16_t mta_sts_port = 443;
};

class DirectTransport final : public Transport {
 public:
  // Addresses tried per connection attempt, over all hosts (Postfix: smtp_mx_address_limit = 5).
  static constexpr int kMaxAddressesTried = 5;

  // `resolver` answers the MX, address and TXT lookups (main.cc: an UnboundResolver on the
  // account's dns_server in a CachingResolver). Errors: the account is not a direct one
  // (kInvalidArgument).
  static Result<std::unique_ptr<DirectTransport>> Create(const AccountConfig& account,
                                                         std::unique_ptr<dns::Resolver> resolver,
                                                         DirectOptions options = {});

  std::string Destination(const Address& recipient) const override { return recipient.domain; }
  asio::awaitable<ConnectResult> Connect(std::string destination) override;

  const std::string& helo_name() const { return base_.helo_name; }
  // What the user should know about the account's settings, in plain words (a HELO name that
  // does not look like a fully qualified domain name).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  DirectTransport(const AccountConfig& account, std::unique_ptr<dns::Resolver> resolver, smtp::SessionOptions base,
                  DirectOptions options);
  TlsPolicy PolicyFor(std::string_view domain) const;
  smtp::SessionOptions SessionFor(const std::string& host, const std::string& address, TlsPolicy policy) const;
  void Note(std::string_view line) const;
  void Report(std::string_view line) const;

  const AccountConfig& account_;
  std::unique_ptr<dns::Resolver> resolver_;
  dns::MxPlanner planner_;
  smtp::SessionOptions base_;
  dns::AddressFamilies families_;
  std::function<void(std::string_view)> report_;
  SystemClock system_clock_;
  std::unique_ptr<MtaStsPolicies> mta_sts_;  // null when the account turns MTA-STS off
  std::vector<std::string> warnings_;
};

// Whether `name` looks like a fully qualified domain name that receivers can check against
// reverse DNS: at least two labels of letters, digits and hyphens, not all-numeric at the end,
// not an IP address, and not a name only a local network knows ("localhost", "*.localdomain",
// "*.local", "*.lan", "*.internal", "*.home.arpa").
bool LooksLikeFullyQualified(std::string_view name);

}  // namespace herald
