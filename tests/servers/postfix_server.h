// PostfixServer: a real Postfix (Debian's package) as a submission server for herald's integration
// tests, with its own configuration, queue and log in a folder of the test, on free ports of
// 127.0.0.1 (or ::1). System-wide Postfix configuration is neither read nor changed.
//
// Ports (each optional):
//   submission  STARTTLS required before MAIL and AUTH; AUTH through Dovecot; relays for
//               authenticated clients;
//   smtps       implicit TLS (RFC 8314), otherwise like submission;
//   smtp        port-25 style: STARTTLS offered, AUTH after STARTTLS; relays for authenticated
//               clients.
// With POP-before-SMTP enabled, every port also relays for a client address that logged in to
// Dovecot's POP3 within pop_before_smtp_ttl: Dovecot's post-login script writes the time of the
// login to <pop_before_smtp_directory>/<address>, and a Postfix policy service consulted in the
// relay restrictions answers OK while that time is recent (postfix_pop_before_smtp_policy.sh).
// Every accepted message is delivered, one copy per recipient, into files the test reads with
// Delivered() (a pipe(8) transport to postfix_deliver.sh) — or, in relay mode (relay_host), relayed
// to another SMTP server. No mail leaves the machine. Postfix
// prepends its Received: header and turns CRLF into LF; DeliveredMessage::ClientData() undoes both.
// Needs root (Postfix's master runs as root, its daemons as postfix, the transport as nobody).
//
// Threading: one test thread uses a PostfixServer; reading deliveries is safe while Postfix runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "servers/server_credentials.h"
#include "servers/server_process.h"

namespace herald::test_servers {

struct PostfixOptions {
  std::string directory;  // its own folder (created): configuration, queue, log, delivered mail
  TlsFiles tls;           // required when there is a submission or smtps port
  std::string host = "127.0.0.1";
  int submission_port = 0;  // 0: a free port; kNoPort: none
  int smtps_port = 0;       // 0: a free port; kNoPort: none
  int smtp_port = 0;        // 0: a free port; kNoPort: none
  // Dovecot's authentication socket (DovecotServer::auth_socket()). Empty: no AUTH offered.
  std::string sasl_socket;
  int64_t message_size_limit = 10'240'000;  // bytes; SIZE in EHLO, 552 above it
  // POP-before-SMTP: when not empty, relaying is allowed for a client whose address logged in to
  // POP3 within `pop_before_smtp_ttl` (DovecotOptions::pop_before_smtp_directory, the same folder).
  std::string pop_before_smtp_directory;
  std::chrono::seconds pop_before_smtp_ttl{600};
  // Recipients every port refuses at RCPT TO, whoever the client (smtpd_recipient_restrictions =
  // check_recipient_access): {address, reply}, the reply as access(5) takes it, e.g.
  // {"nobody@example.test", "550 5.1.1 User unknown"}. Other recipients are not affected.
  std::vector<std::pair<std::string, std::string>> rejected_recipients;
  // Relay mode (benchmarks): when not empty, e.g. "[127.0.0.1]:2525", every accepted message is
  // relayed there by Postfix's own SMTP client (smtp(8), no TLS) instead of being delivered into
  // files; clients from 127.0.0.0/8 and ::1 (mynetworks) may relay without AUTH; at most
  // `relay_connections` connections are opened to it at once.
  std::string relay_host;
  int relay_connections = 20;
  std::string hostname = "mx.herald.test";  // greeting and Received: header
  std::chrono::seconds lifetime{900};       // Postfix stops by itself after this (master -e)
  milliseconds start_timeout{15000};
};

// One message as delivered to one recipient.
struct DeliveredMessage {
  std::string sender;     // MAIL FROM address ("" for the null sender)
  std::string recipient;  // RCPT TO address
  std::string data;       // as Postfix delivered it: its Received: header first, LF line ends
  std::string path;       // the file holding `data`

  // The message as the client sent it (after dot-unstuffing): `data` without the Received: header
  // Postfix prepended, with CRLF line ends.
  std::string ClientData() const;
};

class PostfixServer {
 public:
  explicit PostfixServer(PostfixOptions options);
  ~PostfixServer() { Stop(); }
  PostfixServer(const PostfixServer&) = delete;
  PostfixServer& operator=(const PostfixServer&) = delete;

  // Writes the configuration, starts Postfix's master and waits (bounded) until every port greets.
  // Errors carry the end of Postfix's log. Precondition: not running.
  Status Start();
  // Stops Postfix (SIGTERM to its process group, then SIGKILL) and waits for it. Idempotent.
  void Stop();

  int submission_port() const { return submission_port_; }
  int smtps_port() const { return smtps_port_; }
  int smtp_port() const { return smtp_port_; }
  const std::string& host() const { return options_.host; }
  // Postfix's master, the leader of the process group all Postfix processes run in (-1 before Start).
  pid_t master_pid() const { return master_.pid(); }
  // The queue directory (queue_directory in main.cf).
  const std::string& queue_directory() const { return queue_dir_; }

  // Messages delivered to `recipient` (exactly as given in RCPT TO), oldest first.
  std::vector<DeliveredMessage> Delivered(std::string_view recipient) const;
  // Every message delivered so far, to any recipient.
  std::vector<DeliveredMessage> AllDelivered() const;
  // Waits until at least `count` messages were delivered to `recipient` and returns them. Errors:
  // not within `timeout`, with the end of the log (which says why: deferred, bounced...).
  Result<std::vector<DeliveredMessage>> WaitForDelivered(std::string_view recipient, size_t count,
                                                         milliseconds timeout = milliseconds(10000)) const;

  // Postfix's log (maillog_file) and the master's own output.
  std::string Log() const;

 private:
  Status StartOnce();
  Status WriteConfiguration() const;
  std::string MailFolder(std::string_view recipient) const;

  PostfixOptions options_;
  std::string config_dir_, queue_dir_, mail_dir_, bin_dir_, log_file_, output_file_;
  int submission_port_ = kNoPort;
  int smtps_port_ = kNoPort;
  int smtp_port_ = kNoPort;
  ServerProcess master_;
};

}  // namespace herald::test_servers
