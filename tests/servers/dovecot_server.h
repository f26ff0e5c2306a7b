// DovecotServer: a real Dovecot (Debian's dovecot-core and dovecot-pop3d) for herald's integration
// tests: POP3 (with STLS) and POP3S on free ports, users from a passwd-file the test gives, and the
// authentication socket Postfix uses for SMTP AUTH (smtpd_sasl_type = dovecot). Its configuration,
// runtime folder, state, log and mailboxes live in a folder of the test; /etc/dovecot is not read.
//
// Wrong passwords are answered at once: no auth_failure_delay and no auth penalty (Dovecot's
// growing delay for an address after failed logins), so tests can fail logins on purpose.
// Mailboxes are Maildirs owned by `nobody`; AddMessage() puts a message into one for POP3 to serve.
// With pop_before_smtp_directory set, each successful POP3 login records the client's address there
// (a post-login script), which PostfixServer's POP-before-SMTP policy reads.
//
// Needs root (Dovecot's master runs as root, its services as dovecot, dovenull and nobody).
//
// Threading: one test thread uses a DovecotServer.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "servers/server_credentials.h"
#include "servers/server_process.h"

namespace herald::test_servers {

struct DovecotOptions {
  std::string directory;  // its own folder (created)
  std::vector<MailUser> users;
  TlsFiles tls;  // empty: no POP3S and no STLS
  std::string host = "127.0.0.1";
  int pop3_port = 0;   // 0: a free port; kNoPort: none
  int pop3s_port = 0;  // 0: a free port; kNoPort: none (always none without tls)
  // Where POP3 logins are recorded for POP-before-SMTP (PostfixOptions has the same folder).
  std::string pop_before_smtp_directory;
  milliseconds start_timeout{15000};
};

class DovecotServer {
 public:
  explicit DovecotServer(DovecotOptions options);
  ~DovecotServer() { Stop(); }
  DovecotServer(const DovecotServer&) = delete;
  DovecotServer& operator=(const DovecotServer&) = delete;

  // Writes the configuration, starts Dovecot in the foreground and waits (bounded) until its ports
  // greet and its auth socket exists. Errors carry the end of Dovecot's log.
  Status Start();
  // Stops Dovecot (SIGTERM to its process group, then SIGKILL). Idempotent.
  void Stop();

  int pop3_port() const { return pop3_port_; }
  int pop3s_port() const { return pop3s_port_; }
  const std::string& host() const { return options_.host; }
  // The authentication socket for Postfix: PostfixOptions::sasl_socket.
  std::string auth_socket() const { return options_.directory + "/auth"; }

  // Puts `message` (RFC 5322 text) into `user`'s Maildir as a new message.
  Status AddMessage(std::string_view user, std::string_view message);

  std::string Log() const;

 private:
  Status StartOnce();

  DovecotOptions options_;
  std::string config_file_, log_file_, output_file_, mail_dir_;
  int pop3_port_ = kNoPort;
  int pop3s_port_ = kNoPort;
  ServerProcess dovecot_;
};

}  // namespace herald::test_servers
