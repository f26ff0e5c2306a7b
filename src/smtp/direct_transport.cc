#include "smtp/direct_transport.h"

#include <arpa/inet.h>

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "smtp/helo_name.h"

namespace herald {
namespace {

using dns::HostAddresses;
using dns::LookupFailure;
using dns::MxHost;
using dns::MxPlan;

// Helpers that build text live outside the coroutines: g++ 12 cannot compile the array
// temporaries of fmt's format strings inside a coroutine body.

bool IsIpv4(const std::string& text) {
  unsigned char buffer[4];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1;
}

bool IsIpv6(const std::string& text) {
  unsigned char buffer[16];
  return inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

// The IP address of an address-literal domain ("[192.0.2.1]", "[IPv6:2001:db8::1]", RFC 5321
// §4.1.3): mail for it goes to that address, without MX lookup. Nothing for a domain name.
std::optional<std::string> LiteralAddress(std::string_view domain) {
  if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']') return std::nullopt;
  std::string inside(domain.substr(1, domain.size() - 2));
  if (inside.rfind("IPv6:", 0) == 0 || inside.rfind("ipv6:", 0) == 0) {
    inside = inside.substr(5);
    return IsIpv6(inside) ? std::optional(inside) : std::nullopt;
  }
  return IsIpv4(inside) ? std::optional(inside) : std::nullopt;
}

std::string WithStar(std::string_view line) { return fmt::format("* {}", line); }

std::string HostAndAddress(const std::string& host, const std::string& address) {
  return host == address ? fmt::format("[{}]", address) : fmt::format("{} [{}]", host, address);
}

std::string PlanLine(const MxPlan& plan) {
  std::vector<std::string> hosts;
  for (const MxHost& host : plan.hosts) {
    hosts.push_back(host.implicit ? fmt::format("{} (no MX records: the domain itself)", host.name)
                                  : fmt::format("{} ({})", host.name, host.preference));
  }
  return fmt::format("* mail exchangers of {}: {}", plan.domain, fmt::join(hosts, ", "));
}

std::string TryingLine(const std::string& host, const std::string& address, std::uint16_t port) {
  return fmt::format("* trying {} port {}", HostAndAddress(host, address), port);
}

std::string FailedLine(const std::string& where, const std::string& text) {
  return fmt::format("* {}: {}", where, text);
}

std::string InClearLine(const std::string& host, const std::string& address) {
  return fmt::format("* TLS with {} failed; trying again in clear (opportunistic TLS)", HostAndAddress(host, address));
}

std::string NotInPolicy(const std::string& host, const std::string& domain, const mta_sts::Policy& policy) {
  return fmt::format("{} is not among the mail exchangers the MTA-STS policy of {} allows ({})", host, domain,
                     fmt::join(policy.mx, " "));
}

std::string SkippedLine(const std::string& text) { return fmt::format("* {}: not tried (MTA-STS enforce)", text); }

std::string TestingReport(const std::string& domain, const std::string& what) {
  return fmt::format("MTA-STS testing mode of {}: {}; enforce mode would not deliver there", domain, what);
}

// What MTA-STS enforce mode would have refused about an open session, or "" when nothing.
std::string PolicyShortfall(const smtp::Session& session, const std::string& host, const std::string& address) {
  const Stream& stream = session.stream();
  if (!stream.tls()) return fmt::format("{} took the message without TLS", HostAndAddress(host, address));
  std::optional<PeerCertificate> certificate = stream.peer_certificate();
  if (certificate && !certificate->verified) {
    return fmt::format("the certificate of {} is not valid for it: {}", HostAndAddress(host, address),
                       certificate->verify_error);
  }
  return "";
}

Outcome LookupOutcome(const LookupFailure& failure) {
  Outcome outcome;
  outcome.disposition = failure.permanent ? Disposition::kPermanent : Disposition::kTemporary;
  outcome.scope = Scope::kDestination;
  outcome.stage = Stage::kConnect;
  outcome.enhanced_status = failure.enhanced_status;
  outcome.text = failure.text;
  return outcome;
}

Outcome NoDestination() {
  Outcome outcome;
  outcome.disposition = Disposition::kPermanent;
  outcome.scope = Scope::kDestination;
  outcome.stage = Stage::kPrepare;
  outcome.text = "direct delivery needs the recipient's domain; none was given";
  return outcome;
}

// The failures of one connection attempt, host by host, and the Outcome they add up to.
class Attempts {
 public:
  explicit Attempts(std::string domain) : domain_(std::move(domain)) {}

  bool exhausted() const { return addresses_tried_ >= DirectTransport::kMaxAddressesTried; }

  void AddLookup(const LookupFailure& failure) {
    permanent_ = permanent_ && failure.permanent;
    all_policy_refusals_ = false;
    last_ = LookupOutcome(failure);
    texts_.push_back(failure.text);
  }

  // A host the domain's MTA-STS policy does not allow: a policy failure, which defers (RFC 8461 §5).
  void AddPolicy(const std::string& text) {
    permanent_ = false;
    all_policy_refusals_ = false;
    last_ = Outcome{};
    last_.disposition = Disposition::kTemporary;
    last_.stage = Stage::kPrepare;
    texts_.push_back(text);
  }

  // A session that did not become ready. Permanent only with a 5xx reply (RFC 5321 §4.2.1): a
  // refused connection, a timeout or a TLS failure may be over at the next attempt.
  void AddSession(const std::string& host, const std::string& address, const Outcome& failure) {
    ++addresses_tried_;
    permanent_ = permanent_ && failure.disposition == Disposition::kPermanent && failure.reply_code >= 500;
    all_policy_refusals_ = all_policy_refusals_ && failure.policy_refusal;
    last_ = failure;
    texts_.push_back(fmt::format("{}: {}", HostAndAddress(host, address), failure.text));
  }

  Outcome Result() const {
    Outcome outcome = last_;
    outcome.scope = Scope::kDestination;
    // Every mail exchanger tried refused this host by policy: another path may get through.
    outcome.policy_refusal = all_policy_refusals_ && addresses_tried_ > 0;
    outcome.disposition = permanent_ && !texts_.empty() ? Disposition::kPermanent : Disposition::kTemporary;
    if (outcome.enhanced_status.empty() && outcome.stage == Stage::kConnect) {
      outcome.enhanced_status = outcome.disposition == Disposition::kPermanent ? "5.4.4" : "4.4.1";
    }
    outcome.text = fmt::format("no mail exchanger of {} could be used: {}", domain_, fmt::join(texts_, "; "));
    return outcome;
  }

 private:
  std::string domain_;
  int addresses_tried_ = 0;
  bool permanent_ = true;
  bool all_policy_refusals_ = true;
  Outcome last_;
  std::vector<std::string> texts_;
};

// Opportunistic TLS that did not work (STARTTLS refused, or its handshake failed): the server is
// tried again in clear.
bool RetryInClear(const Outcome& failure) { return failure.stage == Stage::kStartTls; }

const std::vector<std::string_view>& LocalOnlySuffixes() {
  static const auto* suffixes =
      new std::vector<std::string_view>{"localhost", "localdomain", "local", "lan", "internal", "home.arpa", "invalid"};
  return *suffixes;
}

std::string HeloWarning(const AccountConfig& account, const std::string& helo) {
  return fmt::format("{}: account \"{}\": the HELO name \"{}\" does not look like a fully qualified domain name; "
                     "receiving mail servers check it against the reverse DNS of this machine's address and may "
                     "refuse or junk the mail: set helo_name to the name the address resolves to",
                     account.origin, account.name, helo);
}

class DirectConnection final : public Connection {
 public:
  explicit DirectConnection(std::unique_ptr<smtp::Session> session) : session_(std::move(session)) {}

  asio::awaitable<std::vector<Outcome>> Send(Envelope envelope, std::shared_ptr<const MessageData> message) override {
    std::vector<Outcome> outcomes = co_await session_->Send(std::move(envelope), std::move(message));
    for (Outcome& outcome : outcomes) {
      if (outcome.scope == Scope::kAccount) outcome.scope = Scope::kDestination;
    }
    co_return outcomes;
  }
  bool reusable() const override { return session_->usable(); }
  asio::awaitable<void> Close() override { co_await session_->Quit(); }

 private:
  std::unique_ptr<smtp::Session> session_;
};

}  // namespace

bool LooksLikeFullyQualified(std::string_view name) {
  if (name.empty() || name.back() == '.' || name.find('.') == std::string_view::npos) return false;
  std::size_t start = 0;
  std::string_view last;
  while (start <= name.size()) {
    std::size_t end = std::min(name.find('.', start), name.size());
    std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (!letter && !(c >= '0' && c <= '9') && c != '-') return false;
    }
    last = label;
    start = end + 1;
  }
  if (last.find_first_not_of("0123456789") == std::string_view::npos) return false;  // an IPv4 address
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; });
  for (std::string_view suffix : LocalOnlySuffixes()) {
    if (lower == suffix) return false;
    if (lower.size() > suffix.size() && lower.compare(lower.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        lower[lower.size() - suffix.size() - 1] == '.') {
      return false;
    }
  }
  return true;
}

Result<std::unique_ptr<DirectTransport>> DirectTransport::Create(const AccountConfig& account,
                                                                 std::unique_ptr<dns::Resolver> resolver,
                                                                 DirectOptions options) {
  if (account.kind != AccountKind::kDirect) {
    return InvalidArgument(fmt::format("{}: account \"{}\" is a {} account, not a direct one", account.origin,
                                       account.name, AccountKindName(account.kind)));
  }
  smtp::SessionOptions base;
  base.port = account.port;
  base.helo_name = account.helo_name.empty() ? LocalHostName() : account.helo_name;
  base.local_address = account.local_address;
  base.timeouts = smtp::Timeouts::FromAccount(account.timeout);
  base.transcript = std::move(options.transcript);
  auto transport = std::unique_ptr<DirectTransport>(
      new DirectTransport(account, std::move(resolver), std::move(base), std::move(options)));
  if (!LooksLikeFullyQualified(transport->base_.helo_name)) {
    transport->warnings_.push_back(HeloWarning(account, transport->base_.helo_name));
  }
  return transport;
}

DirectTransport::DirectTransport(const AccountConfig& account, std::unique_ptr<dns::Resolver> resolver,
                                 smtp::SessionOptions base, DirectOptions options)
    : account_(account),
      resolver_(std::move(resolver)),
      planner_(*resolver_, options.seed),
      base_(std::move(base)),
      families_(IsIpv4(account.local_address)   ? dns::AddressFamilies::kIpv4
                : IsIpv6(account.local_address) ? dns::AddressFamilies::kIpv6
                                                : dns::AddressFamilies::kAll),
      report_(std::move(options.report)) {
  if (account.mta_sts) {
    MtaStsOptions sts;
    sts.port = options.mta_sts_port;
    sts.ca_file = account.ca_file;
    sts.local_address = account.local_address;
    mta_sts_ = std::make_unique<MtaStsPolicies>(*resolver_, options.clock ? *options.clock : system_clock_, sts);
  }
}

TlsPolicy DirectTransport::PolicyFor(std::string_view domain) const {
  const DestinationRule* rule = account_.DestinationRuleFor(domain);
  return rule != nullptr && rule->tls_policy ? *rule->tls_policy : account_.tls_policy;
}

smtp::SessionOptions DirectTransport::SessionFor(const std::string& host, const std::string& address,
                                                 TlsPolicy policy) const {
  smtp::SessionOptions options = base_;
  options.host = address;
  options.tls.server_name = host;
  // Also without verification: the certificate is checked all the same, and what the check would
  // have said is there to report (MTA-STS testing mode).
  options.tls.ca_file = account_.ca_file;
  switch (policy) {
    case TlsPolicy::kOpportunistic:
      options.security = Security::kNone;
      options.opportunistic_tls = true;
      options.tls.verify = false;
      break;
    case TlsPolicy::kRequired:
      options.security = Security::kStartTls;
      options.tls.verify = false;
      break;
    case TlsPolicy::kVerify:
      options.security = Security::kStartTls;
      options.tls.verify = true;
      break;
  }
  return options;
}

void DirectTransport::Note(std::string_view line) const {
  if (base_.transcript) base_.transcript(line);
}

void DirectTransport::Report(std::string_view line) const {
  Note(WithStar(line));
  if (report_) report_(line);
}

asio::awaitable<ConnectResult> DirectTransport::Connect(std::string destination) {
  if (destination.empty()) co_return ConnectResult{nullptr, NoDestination()};
  MxPlan plan;
  std::optional<std::string> literal = LiteralAddress(destination);
  if (literal) {
    plan.domain = destination;
    plan.hosts.push_back(MxHost{*literal, 0, true});
  } else {
    plan = co_await planner_.Plan(destination);
    if (plan.failure) {
      Note(FailedLine(plan.domain, plan.failure->text));
      co_return ConnectResult{nullptr, LookupOutcome(*plan.failure)};
    }
    Note(PlanLine(plan));
  }
  TlsPolicy policy = PolicyFor(plan.domain);
  std::optional<mta_sts::Policy> sts;
  if (mta_sts_ != nullptr && !literal) {
    PolicyLookup lookup = co_await mta_sts_->Lookup(plan.domain);
    Note(WithStar(lookup.note));
    if (lookup.policy && lookup.policy->mode != mta_sts::Mode::kNone) sts = std::move(lookup.policy);
  }
  bool enforce = sts && sts->mode == mta_sts::Mode::kEnforce;
  bool testing = sts && sts->mode == mta_sts::Mode::kTesting;
  Attempts attempts(plan.domain);
  for (const MxHost& host : plan.hosts) {
    if (attempts.exhausted()) break;
    if (sts && !mta_sts::AllowsMx(*sts, host.name)) {
      std::string refused = NotInPolicy(host.name, plan.domain, *sts);
      if (enforce) {
        Note(SkippedLine(refused));
        attempts.AddPolicy(refused);
        continue;
      }
      Report(TestingReport(plan.domain, refused));
    }
    // RFC 8461 §4.2: the hosts of an enforced policy are used with a valid certificate only.
    TlsPolicy host_policy = enforce ? TlsPolicy::kVerify : policy;
    HostAddresses found;
    if (literal) {
      found.addresses.push_back(*literal);
    } else {
      found = co_await planner_.Addresses(host.name, families_);
    }
    if (found.failure) {
      Note(FailedLine(host.name, found.failure->text));
      attempts.AddLookup(*found.failure);
      continue;
    }
    for (const std::string& address : found.addresses) {
      if (attempts.exhausted()) break;
      Note(TryingLine(host.name, address, base_.port));
      smtp::SessionOptions options = SessionFor(host.name, address, host_policy);
      smtp::OpenResult opened = co_await smtp::Session::Open(options);
      if (opened.session == nullptr && host_policy == TlsPolicy::kOpportunistic && RetryInClear(opened.failure)) {
        Note(InClearLine(host.name, address));
        options.opportunistic_tls = false;
        opened = co_await smtp::Session::Open(options);
      }
      if (opened.session != nullptr) {
        if (testing) {
          std::string shortfall = PolicyShortfall(*opened.session, host.name, address);
          if (!shortfall.empty()) Report(TestingReport(plan.domain, shortfall));
        }
        co_return ConnectResult{std::make_unique<DirectConnection>(std::move(opened.session)), {}};
      }
      Note(FailedLine(HostAndAddress(host.name, address), opened.failure.text));
      attempts.AddSession(host.name, address, opened.failure);
    }
  }
  co_return ConnectResult{nullptr, attempts.Result()};
}

}  // namespace herald
