// DNS wire format (RFC 1035 §3, §4) for what libunbound hands over: the rdata of each record of an
// answer (names in rdata uncompressed) and the whole answer packet (compressed), from which the
// negative TTL of RFC 2308 is read. Private to the dns module. Pure functions, thread-safe. The
// bytes come from the network: every length is checked, nothing is trusted.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "dns/resolver.h"

namespace herald::dns_internal {

using Bytes = std::span<const unsigned char>;

// The uncompressed domain name at the start of `bytes` in text form: lowercase, without the
// trailing dot, "." for the root. Octets other than letters, digits, '-' and '_' (and a '.'
// inside a label) are written as RFC 1035 §5.1 escapes ("\\032"), so that such a name can never
// pass for a host name. `*length` receives the octets the name took. Errors: truncated, a label
// longer than 63 octets, a name longer than 255, a compression pointer (not allowed here).
Result<std::string> ReadName(Bytes bytes, std::size_t* length);

// MX rdata: preference and exchange (RFC 1035 §3.3.9). Errors: truncated or trailing octets.
Result<dns::MxRecord> ParseMx(Bytes rdata);
// A (4 octets) or AAAA (16 octets) rdata in text form ("192.0.2.1", "2001:db8::1").
Result<std::string> ParseAddress(dns::RecordType type, Bytes rdata);
// TXT rdata: its character-strings joined without separator (RFC 7208 §3.3, RFC 8461 §3.1).
Result<std::string> ParseTxt(Bytes rdata);

// The negative-caching TTL of a NODATA or NXDOMAIN answer `packet` (RFC 2308 §5): the TTL of the
// SOA record in its authority section, or the SOA's MINIMUM field if smaller. Nothing when the
// packet has no SOA there (or cannot be read): RFC 2308 §5 says such answers should not be cached.
std::optional<Duration> NegativeTtl(Bytes packet);

}  // namespace herald::dns_internal
