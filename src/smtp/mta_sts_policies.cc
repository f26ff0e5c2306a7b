#include "smtp/mta_sts_policies.h"

#include <algorithm>

#include <fmt/format.h>

#include "net/stream.h"

namespace herald {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

constexpr dns::RecordType kAddressTypes[] = {dns::RecordType::kA, dns::RecordType::kAaaa};

// Helpers that build text live outside the coroutines: g++ 12 cannot compile the array
// temporaries of fmt's format strings inside a coroutine body.

std::string PolicyHost(const std::string& domain) { return "mta-sts." + domain; }
std::string RecordName(const std::string& domain) { return "_mta-sts." + domain; }

// RFC 8461 §3.3: "/.well-known/mta-sts.txt" on the policy host.
std::string Request(const std::string& domain) {
  return fmt::format("GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {}\r\nUser-Agent: herald\r\n"
                     "Accept: text/plain\r\nConnection: close\r\n\r\n",
                     PolicyHost(domain));
}

std::string Describe(const mta_sts::Policy& policy) {
  return fmt::format("{}, mx {}, max_age {}s", mta_sts::ModeName(policy.mode), fmt::join(policy.mx, " "),
                     std::chrono::duration_cast<std::chrono::seconds>(policy.max_age).count());
}

std::string FetchedNote(const std::string& domain, const std::string& id, const mta_sts::Policy& policy) {
  return fmt::format("MTA-STS policy {} of {} fetched: {}", id, domain, Describe(policy));
}

std::string CachedNote(const std::string& domain, const std::string& id, const mta_sts::Policy& policy) {
  return fmt::format("MTA-STS policy {} of {} (cached): {}", id, domain, Describe(policy));
}

std::string StaleNote(const std::string& domain, const std::string& id, const mta_sts::Policy& policy,
                      const Status& why) {
  return fmt::format("MTA-STS policy of {} could not be fetched ({}); the cached policy {} stays in force: {}",
                     domain, why.message(), id, Describe(policy));
}

std::string NoRecordNote(const std::string& domain) {
  return fmt::format("{} announces no MTA-STS policy", domain);
}

std::string FailedNote(const std::string& domain, const Status& why) {
  return fmt::format("MTA-STS policy of {} could not be fetched ({}); delivering as without one", domain,
                     why.message());
}

Status NoAddress(const std::string& domain) {
  return Status(StatusCode::kUnavailable, fmt::format("{} has no address", PolicyHost(domain)));
}

ConnectOptions ConnectTo(const std::string& address, const MtaStsOptions& options, Duration timeout) {
  return ConnectOptions{address, options.port, options.local_address, timeout};
}

// RFC 8461 §3.3: the policy host's certificate must be valid for its name.
TlsOptions PolicyTls(const std::string& host, const MtaStsOptions& options) {
  return TlsOptions{host, true, options.ca_file};
}

Duration Remaining(SteadyTime deadline) {
  auto left = std::chrono::duration_cast<Duration>(deadline - std::chrono::steady_clock::now());
  return std::max(left, Duration(1));
}

// The end of the stream as net/stream.h reports it (a clean close, or TLS cut off without its
// close_notify): a body without a length ends there.
bool IsEndOfStream(const Status& status) { return status.message().starts_with("connection closed by the server"); }

}  // namespace

MtaStsPolicies::MtaStsPolicies(dns::Resolver& resolver, const Clock& clock, MtaStsOptions options)
    : resolver_(resolver), clock_(clock), options_(std::move(options)) {}

asio::awaitable<PolicyLookup> MtaStsPolicies::Lookup(std::string domain) {
  PolicyLookup lookup;
  dns::Answer txt = co_await resolver_.Query(RecordName(domain), dns::RecordType::kTxt);
  std::optional<std::string> id = txt.ok() ? mta_sts::AnnouncedId(txt.texts) : std::nullopt;
  auto cached = cache_.find(domain);
  if (cached != cache_.end() && cached->second.expires <= clock_.Now()) {
    cache_.erase(cached);
    cached = cache_.end();
  }
  if (cached != cache_.end() && (!id || *id == cached->second.id)) {
    lookup.note = CachedNote(domain, cached->second.id, cached->second.policy);
    lookup.policy = cached->second.policy;
    co_return lookup;
  }
  if (!id) {
    lookup.note = NoRecordNote(domain);
    co_return lookup;
  }
  Result<mta_sts::Policy> fetched = co_await Fetch(domain);
  if (!fetched.ok()) {
    auto still = cache_.find(domain);
    if (still != cache_.end()) {
      lookup.note = StaleNote(domain, still->second.id, still->second.policy, fetched.status());
      lookup.policy = still->second.policy;
    } else {
      lookup.note = FailedNote(domain, fetched.status());
    }
    co_return lookup;
  }
  Keep(domain, *fetched, *id);
  lookup.note = FetchedNote(domain, *id, *fetched);
  lookup.policy = std::move(*fetched);
  co_return lookup;
}

void MtaStsPolicies::Keep(const std::string& domain, const mta_sts::Policy& policy, const std::string& id) {
  cache_[domain] = Cached{policy, id, clock_.Now() + policy.max_age};
  while (cache_.size() > options_.max_policies) {
    auto first = std::min_element(cache_.begin(), cache_.end(),
                                  [](const auto& a, const auto& b) { return a.second.expires < b.second.expires; });
    cache_.erase(first);
  }
}

asio::awaitable<Result<mta_sts::Policy>> MtaStsPolicies::Fetch(std::string domain) {
  SteadyTime deadline = std::chrono::steady_clock::now() + options_.timeout;
  std::string host = PolicyHost(domain);
  std::vector<std::string> addresses;
  for (dns::RecordType type : kAddressTypes) {
    dns::Answer answer = co_await resolver_.Query(host, type);
    if (answer.ok()) addresses.insert(addresses.end(), answer.addresses.begin(), answer.addresses.end());
  }
  if (addresses.empty()) co_return NoAddress(domain);
  Status last;
  for (const std::string& address : addresses) {
    Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(ConnectTo(address, options_, Remaining(deadline)));
    if (!stream.ok()) {
      last = stream.status();
      continue;
    }
    Status tls = co_await (*stream)->StartTls(PolicyTls(host, options_), Remaining(deadline));
    if (!tls.ok()) co_return tls;
    std::string request = Request(domain);
    std::string_view piece(request);
    Status written = co_await (*stream)->Write(std::span<const std::string_view>(&piece, 1), Remaining(deadline));
    if (!written.ok()) co_return written;
    std::string response;
    std::vector<char> buffer(16 * 1024);
    while (true) {
      Result<std::size_t> got = co_await (*stream)->ReadSome(std::span<char>(buffer), Remaining(deadline));
      bool closed = !got.ok();
      if (closed && !IsEndOfStream(got.status())) co_return got.status();
      if (got.ok()) response.append(buffer.data(), *got);
      Result<mta_sts::HttpBody> body = mta_sts::ParsePolicyResponse(response, closed);
      if (!body.ok()) co_return body.status();
      if (body->complete) co_return mta_sts::ParsePolicy(body->body);
    }
  }
  co_return last;
}

}  // namespace herald
