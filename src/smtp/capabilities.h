// The SMTP service extensions a server announces in its EHLO reply (RFC 5321 §4.1.1.1), parsed
// into one struct the session consults before using any of them. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/reply.h"

namespace herald::smtp {

struct Capabilities {
  std::string server_name;   // the first word of the EHLO reply's first line (the server's domain)
  bool pipelining = false;   // RFC 2920
  bool size = false;         // RFC 1870: SIZE announced ...
  std::uint64_t max_size = 0;  // ... with this limit in octets; 0: no limit declared ("SIZE", "SIZE 0")
  bool eight_bit_mime = false;         // RFC 6152 8BITMIME
  bool smtputf8 = false;               // RFC 6531
  bool enhanced_status_codes = false;  // RFC 2034
  bool starttls = false;               // RFC 3207
  bool chunking = false;               // RFC 3030 (BDAT)
  bool dsn = false;                    // RFC 3461
  // SASL mechanisms from "AUTH ..." and the pre-standard "AUTH=..." lines (RFC 4954), uppercase,
  // each once, in the order announced.
  std::vector<std::string> auth_mechanisms;

  // True if `mechanism` (any case) was announced.
  bool OffersAuth(std::string_view mechanism) const;
};

// Reads the keywords of an EHLO reply (lines after the first; keywords in any case, RFC 5321
// §2.4). Unknown keywords are ignored, as are malformed parameters: a SIZE whose number does not
// parse counts as "SIZE" without a limit. A reply that is not 2xx yields no capabilities.
Capabilities ParseCapabilities(const Reply& ehlo_reply);

}  // namespace herald::smtp
