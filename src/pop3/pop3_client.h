// A POP3 client (RFC 1939) for what herald needs from a mailbox: POP-before-SMTP — log in, so
// that the provider's relay accepts mail from this address for a while — and, later, reading
// bounces. Security as for SMTP: implicit TLS (POP3S, port 995), STLS (RFC 2595), or none (the
// password then crosses the network readable; only when the account allows it). Secrets never
// appear in a Status message.
// Threading: the coroutine that calls it.
#pragma once

#include <cstdint>
#include <string>

#include <asio/awaitable.hpp>

#include "config/account_config.h"
#include "core/clock.h"
#include "core/status.h"
#include "net/stream.h"

namespace herald {

struct Pop3Options {
  std::string host;
  std::uint16_t port = 110;
  Security security = Security::kStartTls;  // kStartTls: STLS, required
  TlsOptions tls;
  std::string local_address;
  std::string username;
  std::string password;
  bool allow_plaintext_auth = false;
  Duration timeout = std::chrono::seconds(30);
};

// Logs in with USER/PASS and logs out with QUIT. Errors (kUnavailable for the network,
// kPermissionDenied for a refused login with the server's text, kFailedPrecondition for a missing
// STLS or a password that would cross in clear) say what happened in plain words.
asio::awaitable<Status> Pop3Login(Pop3Options options);

}  // namespace herald
