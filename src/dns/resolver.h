// dns: the DNS answers direct delivery needs — MX, A and AAAA (and TXT for MTA-STS) — behind the
// Resolver interface, so the MX plan (dns/mx_plan.h) and the direct transport are tested with a
// fake resolver and run with UnboundResolver (libunbound) wrapped in a CachingResolver.
//
// An Answer keeps the cases apart that decide what happens to a message (RFC 5321 §5.1,
// RFC 2308): the name does not exist (permanent), it exists without records of the type asked
// (no MX: use the domain's address; no address: try the next host), the server failed or did
// not answer in time (temporary).
//
// Threading: a Resolver is used by the coroutines of one io_context at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>

#include "core/clock.h"

namespace herald::dns {

// The record types asked for, with their RFC 1035 / RFC 3596 type numbers.
enum class RecordType : std::uint16_t {
  kA = 1,
  kMx = 15,
  kTxt = 16,
  kAaaa = 28,
};
std::string_view RecordTypeName(RecordType type);  // "MX"

enum class AnswerStatus {
  kOk,        // records of the type asked for
  kNoData,    // the name exists but has no records of this type (RFC 2308 §2.2, "NODATA")
  kNxDomain,  // the name does not exist (RCODE 3, RFC 2308 §2.1)
  kServFail,  // the server could not answer: SERVFAIL, REFUSED, a DNSSEC failure, a local error
  kTimeout,   // no answer within the resolver's time limit
};
std::string_view AnswerStatusName(AnswerStatus status);

// An MX record (RFC 1035 §3.3.9). The exchange is lowercase, without the trailing dot; the root
// "." is a null MX (RFC 7505).
struct MxRecord {
  std::uint16_t preference = 0;
  std::string exchange;

  friend bool operator==(const MxRecord&, const MxRecord&) = default;
};

struct Answer {
  AnswerStatus status = AnswerStatus::kServFail;
  // With kOk, the records of the type asked for (one of these is filled):
  std::vector<MxRecord> mx;
  std::vector<std::string> addresses;  // A / AAAA in text form: "192.0.2.1", "2001:db8::1"
  std::vector<std::string> texts;      // TXT: each record's character-strings joined (RFC 7208 §3.3)
  // How long the answer may be reused: the smallest TTL of the records; for kNoData/kNxDomain the
  // negative TTL of RFC 2308 §5 (the SOA's TTL or MINIMUM, whichever is smaller; a few seconds
  // when the server sent no SOA); zero when it must not be reused.
  Duration ttl{0};
  // For failures: what the server or resolver said, in plain words ("SERVFAIL from the server",
  // "DNSSEC validation failed: ..."). Empty otherwise.
  std::string reason;

  bool ok() const { return status == AnswerStatus::kOk; }
};

// "MX lookup for example.com: the name does not exist (NXDOMAIN)", for error texts.
std::string DescribeFailure(std::string_view name, RecordType type, const Answer& answer);

class Resolver {
 public:
  virtual ~Resolver() = default;

  // Looks up `name` — an ASCII domain name (IDNs as A-labels), without a trailing dot, compared
  // without regard to case. Never throws; every failure is an Answer with its status.
  virtual asio::awaitable<Answer> Query(std::string name, RecordType type) = 0;
};

}  // namespace herald::dns
