// MTA-STS (RFC 8461): a recipient domain's published promise that its mail exchangers speak TLS
// with valid certificates — the TXT record that announces a policy, the policy text fetched over
// HTTPS, and which MX hosts a policy allows. Pure functions, thread-safe; fetching and caching
// are in smtp/mta_sts_policies.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace herald::mta_sts {

enum class Mode {
  kNone,     // the domain withdrew its policy
  kTesting,  // deliver as usual; report what enforce mode would have refused
  kEnforce,  // deliver only to MX hosts of the policy, over TLS with a valid certificate
};
std::string_view ModeName(Mode mode);

struct Policy {
  Mode mode = Mode::kNone;
  std::vector<std::string> mx;  // host names or "*.example.com" patterns, lowercase
  Duration max_age{0};          // how long the policy may be used (cached) after it was fetched
};

// The policy id of an "_mta-sts" TXT record ("v=STSv1; id=20260101T000000;", RFC 8461 §3.1), or
// nothing when the record is not a valid STSv1 record.
std::optional<std::string> RecordId(std::string_view txt);

// The policy id announced by the TXT records of "_mta-sts.<domain>": RFC 8461 §3.1 — records not
// beginning with "v=STSv1;" are ignored; anything but exactly one valid record means no policy.
std::optional<std::string> AnnouncedId(const std::vector<std::string>& records);

// Parses a policy file (RFC 8461 §3.2): "key: value" lines (LF or CRLF), version STSv1, mode,
// max_age (0 to 31557600 seconds), one "mx" line per pattern (needed unless mode is none);
// unknown keys are ignored. Errors (kInvalidArgument) name the line.
Result<Policy> ParsePolicy(std::string_view text);

// Whether `host` (an MX host name, any case, no trailing dot) is allowed by the policy's mx
// patterns (RFC 8461 §4.1): equal to a pattern, or matching "*.<rest>" with exactly one label
// in place of the "*".
bool AllowsMx(const Policy& policy, std::string_view host);

// The body of an HTTP/1.1 response to the policy request (RFC 8461 §3.3): status 200, media type
// text/plain, the body by Content-Length, chunked transfer coding, or up to the end of the
// connection. A redirect is an error (it must not be followed), and so is anything larger than
// kMaxPolicyBytes. Errors (kInvalidArgument) say what was wrong. `complete` is false while more
// bytes are needed (the connection is still open and the body not yet whole).
struct HttpBody {
  bool complete = false;
  std::string body;
};
Result<HttpBody> ParsePolicyResponse(std::string_view response, bool connection_closed);
inline constexpr std::size_t kMaxPolicyBytes = 64 * 1024;  // RFC 8461 §3.3's example limit

}  // namespace herald::mta_sts
