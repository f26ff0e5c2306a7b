// AiosmtpdServer: an SMTP server built on Debian's python3-aiosmtpd (aiosmtpd_server.py beside
// this file, run by /usr/bin/python3, the interpreter that imports Debian's Python packages) for
// herald's integration tests. STARTTLS or implicit TLS with the test's certificate, AUTH PLAIN and
// LOGIN with the test's users, and a record of every message with its envelope, exactly as the
// client sent it.
//
// Threading: one test thread uses an AiosmtpdServer; reading messages is safe while it runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "servers/server_credentials.h"
#include "servers/server_process.h"

namespace herald::test_servers {

struct AiosmtpdOptions {
  std::string directory;  // its own folder (created): users, log, recorded messages
  std::string host = "127.0.0.1";
  int port = 0;              // 0: a free port
  TlsFiles tls;              // empty: no STARTTLS
  bool implicit_tls = false;  // TLS from the first byte (needs tls) instead of STARTTLS
  std::vector<MailUser> users;  // empty: AUTH is not offered
  bool require_starttls = false;  // commands other than EHLO/STARTTLS/QUIT need TLS first
  bool auth_require_tls = false;  // AUTH offered only after STARTTLS
  bool auth_required = false;     // MAIL needs AUTH first
  int64_t data_size_limit = 33'554'432;
  std::string hostname = "aiosmtpd.herald.test";
  milliseconds data_delay{0};  // each message takes this long at the end of data (sessions overlap)
  // Instead of its 220: a server that refuses every client, e.g. "554 5.7.1 Client host blocked"
  // (it then answers QUIT only). Empty: 220.
  std::string greeting;
  // Replies to RCPT TO for these addresses instead of 250, e.g. {"x@example.test", "550 5.7.1
  // Client host blocked"}; matched without regard to case.
  std::vector<std::pair<std::string, std::string>> rcpt_replies;
  std::chrono::seconds lifetime{900};  // the server stops by itself after this
  milliseconds start_timeout{15000};
};

// One message as aiosmtpd received it.
struct RecordedMessage {
  std::string mail_from;
  std::vector<std::string> rcpt_tos;
  std::vector<std::string> mail_options;  // ESMTP parameters of MAIL FROM, e.g. "SIZE=123"
  std::vector<std::string> rcpt_options;  // of the RCPT TO commands
  std::string helo;                       // EHLO/HELO argument
  std::string auth_user;                  // "" without AUTH
  bool tls = false;                       // STARTTLS done or implicit TLS
  std::string data;                       // the message after dot-unstuffing, CRLF line ends
  int sessions_open = 0;      // client connections open when it was accepted, its own included
  int max_sessions_open = 0;  // the most connections open at once until then
  double received_at = 0;     // when it was accepted, Unix seconds
};

class AiosmtpdServer {
 public:
  explicit AiosmtpdServer(AiosmtpdOptions options);
  ~AiosmtpdServer() { Stop(); }
  AiosmtpdServer(const AiosmtpdServer&) = delete;
  AiosmtpdServer& operator=(const AiosmtpdServer&) = delete;

  // Starts the server and waits (bounded) until it greets. Errors carry its output.
  Status Start();
  void Stop();  // Idempotent.

  int port() const { return port_; }
  const std::string& host() const { return options_.host; }

  // Every message received so far, oldest first.
  std::vector<RecordedMessage> Messages() const;
  // Waits until at least `count` messages were received and returns them all.
  Result<std::vector<RecordedMessage>> WaitForMessages(size_t count,
                                                       milliseconds timeout = milliseconds(10000)) const;

  std::string Log() const;

 private:
  Status StartOnce();

  AiosmtpdOptions options_;
  std::string messages_dir_, log_file_;
  int port_ = kNoPort;
  ServerProcess python_;
};

}  // namespace herald::test_servers
