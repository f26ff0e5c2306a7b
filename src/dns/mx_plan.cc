#include "dns/mx_plan.h"

#include <algorithm>

#include <fmt/format.h>

#include "address/address.h"

namespace herald::dns {
namespace {

// Text is built in these helpers, outside the coroutines: g++ 12 cannot compile the array
// temporaries of fmt's format strings inside a coroutine body.

LookupFailure Permanent(std::string enhanced_status, std::string text) {
  return LookupFailure{true, std::move(enhanced_status), std::move(text)};
}

LookupFailure Temporary(std::string text) { return LookupFailure{false, "4.4.3", std::move(text)}; }

LookupFailure InvalidDomain(const std::string& domain, const Status& why) {
  return Permanent("5.1.2", fmt::format("\"{}\" is not a domain that mail can be delivered to: {}", domain,
                                        why.message()));
}

LookupFailure NullMx(const std::string& domain) {
  return Permanent("5.1.10", fmt::format("{} accepts no mail: its MX record is the null MX \"0 .\" (RFC 7505)", domain));
}

LookupFailure NoSuchDomain(const std::string& domain, const Answer& answer) {
  return Permanent("5.1.2", fmt::format("the domain does not exist: {}", DescribeFailure(domain, RecordType::kMx, answer)));
}

LookupFailure DnsFailed(const std::string& name, RecordType type, const Answer& answer) {
  return Temporary(DescribeFailure(name, type, answer));
}

LookupFailure NoUsableMx(const std::string& domain) {
  return Temporary(fmt::format("the MX records of {} name no usable host", domain));
}

LookupFailure NoAddress(const std::string& host, bool permanent, const std::vector<std::string>& why) {
  std::string text = fmt::format("no address for {}: {}", host, fmt::join(why, "; "));
  return permanent ? Permanent("5.4.4", std::move(text)) : Temporary(std::move(text));
}

std::string Describe(const std::string& name, RecordType type, const Answer& answer) {
  return DescribeFailure(name, type, answer);
}

// A host name an MX record may point to: letters, digits and hyphens in labels of 1 to 63
// octets (RFC 1123 §2.1). Names read from the wire carry escapes for anything else.
bool IsHostName(std::string_view name) {
  if (name.empty() || name.size() > 253 || name == ".") return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    start = end + 1;
  }
  return true;
}

// The usable hosts of an MX answer in preference order, equal preferences shuffled. A null MX
// among other records is left out: RFC 7505 §3 forbids the mix, and the other hosts still work.
std::vector<MxHost> Order(const std::vector<MxRecord>& records, std::mt19937_64& random) {
  std::vector<MxHost> hosts;
  for (const MxRecord& record : records) {
    if (!IsHostName(record.exchange)) continue;
    bool duplicate = std::any_of(hosts.begin(), hosts.end(), [&](const MxHost& h) { return h.name == record.exchange; });
    if (!duplicate) hosts.push_back(MxHost{record.exchange, record.preference, false});
  }
  std::shuffle(hosts.begin(), hosts.end(), random);
  std::stable_sort(hosts.begin(), hosts.end(),
                   [](const MxHost& a, const MxHost& b) { return a.preference < b.preference; });
  return hosts;
}

bool IsNullMx(const std::vector<MxRecord>& records) {
  return records.size() == 1 && records.front().exchange == ".";
}

bool IsNegative(const Answer& answer) {
  return answer.status == AnswerStatus::kNxDomain || answer.status == AnswerStatus::kNoData;
}

}  // namespace

MxPlanner::MxPlanner(Resolver& resolver, std::uint64_t seed) : resolver_(resolver), random_(seed) {}

asio::awaitable<MxPlan> MxPlanner::Plan(std::string domain) {
  MxPlan plan;
  Result<std::string> name = ParseServerHost(domain);
  if (!name.ok() || name->find(':') != std::string::npos || name->find_first_not_of("0123456789.") == std::string::npos) {
    plan.domain = domain;
    plan.failure = InvalidDomain(domain, name.ok() ? InvalidArgument("an IP address, not a domain") : name.status());
    co_return plan;
  }
  plan.domain = *name;
  Answer answer = co_await resolver_.Query(plan.domain, RecordType::kMx);
  switch (answer.status) {
    case AnswerStatus::kOk:
      if (IsNullMx(answer.mx)) {
        plan.failure = NullMx(plan.domain);
      } else {
        plan.hosts = Order(answer.mx, random_);
        if (plan.hosts.empty()) plan.failure = NoUsableMx(plan.domain);
      }
      break;
    case AnswerStatus::kNoData:
      // RFC 5321 §5.1: no MX records — the domain itself is the implicit MX, preference 0.
      plan.hosts.push_back(MxHost{plan.domain, 0, true});
      break;
    case AnswerStatus::kNxDomain:
      plan.failure = NoSuchDomain(plan.domain, answer);
      break;
    case AnswerStatus::kServFail:
    case AnswerStatus::kTimeout:
      plan.failure = DnsFailed(plan.domain, RecordType::kMx, answer);
      break;
  }
  co_return plan;
}

asio::awaitable<HostAddresses> MxPlanner::Addresses(std::string host, AddressFamilies families) {
  HostAddresses result;
  std::vector<std::string> failures;
  bool all_negative = true;
  for (RecordType type : {RecordType::kA, RecordType::kAaaa}) {
    if (type == RecordType::kA && families == AddressFamilies::kIpv6) continue;
    if (type == RecordType::kAaaa && families == AddressFamilies::kIpv4) continue;
    Answer answer = co_await resolver_.Query(host, type);
    if (answer.ok()) {
      result.addresses.insert(result.addresses.end(), answer.addresses.begin(), answer.addresses.end());
      continue;
    }
    all_negative = all_negative && IsNegative(answer);
    failures.push_back(Describe(host, type, answer));
  }
  if (result.addresses.empty()) result.failure = NoAddress(host, all_negative, failures);
  co_return result;
}

}  // namespace herald::dns
