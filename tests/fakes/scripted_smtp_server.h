// ScriptedSmtpServer: a fake SMTP server on 127.0.0.1 for client tests. By default it is a correct
// ESMTP server (PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, AUTH PLAIN LOGIN
// CRAM-MD5 XOAUTH2, and STARTTLS when given a certificate); a script replaces any reply, closes or
// stalls at any point, and injects the faults real servers and attackers produce: 421/554
// greetings, per-recipient refusals, too many recipients, a drop after DATA, replies dripped one
// byte at a time, malformed replies, plaintext injected after the STARTTLS 220, AUTH refused.
// It records every connection: the command lines, each message's DATA bytes exactly as received
// (still dot-stuffed), and whether TLS was used.
//
// Threading: the server runs on its own thread with its own asio::io_context; every public method
// is thread-safe. The destructor closes all connections and joins the thread.
//
// Linked as the static library herald_scripted_smtp_server (tests/CMakeLists.txt), so the Asio and
// OpenSSL code is compiled once for all tests that use it (smtp, transport).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace herald {

// What the server does at one point of the exchange.
struct SmtpAction {
  // Bytes sent as they are; CRLF is appended unless they end with '\n'. May hold several lines, or
  // anything malformed. Empty: nothing is sent.
  std::string reply;
  bool close = false;  // close the connection after the reply
  bool stall = false;  // after the reply, read and ignore everything until the client closes

  static SmtpAction Reply(std::string text) { return SmtpAction{std::move(text), false, false}; }
  static SmtpAction Close(std::string text = {}) { return SmtpAction{std::move(text), true, false}; }
  static SmtpAction Stall(std::string text = {}) { return SmtpAction{std::move(text), false, true}; }
};

struct SmtpServerScript {
  std::string host_name = "fake.test";

  // What the server does instead of its default, by event: "GREETING", "EHLO", "HELO",
  // "STARTTLS", "AUTH" (the reply that ends an AUTH exchange; sent at once after the AUTH line),
  // "AUTH_STEP" (the reply to the client's first answer to a 334 challenge; ends the exchange),
  // "MAIL", "RCPT", "DATA", "DATA_END" (the reply to the end of data), "RSET", "NOOP", "QUIT".
  // Transaction state follows the reply sent: a 2xx to MAIL opens a transaction, a 2xx to RCPT
  // adds the recipient, a 3xx to DATA starts the data. A scripted "220..." to STARTTLS still
  // starts the handshake, so extra lines after it are plaintext injected before TLS.
  //   greeting 421:          on["GREETING"] = SmtpAction::Close("421 4.3.2 Service not available")
  //   drop after the data:   on["DATA_END"] = SmtpAction::Close()
  //   stall at MAIL:         on["MAIL"] = SmtpAction::Stall()
  //   AUTH refused:          on["AUTH"] = SmtpAction::Reply("535 5.7.8 Authentication failed")
  //   STARTTLS injection:    on["STARTTLS"] = SmtpAction::Reply("220 2.0.0 Go ahead\r\n250 injected")
  std::map<std::string, SmtpAction> on;
  // Replies to RCPT TO by address (compared ignoring ASCII case), before any other RCPT rule.
  std::map<std::string, SmtpAction> on_rcpt;
  // > 0: recipients after this many accepted in one transaction get "452 4.5.3 Too many
  // recipients" (RFC 5321 §4.5.3.1.10).
  int max_recipients = 0;

  // The EHLO keywords after the greeting line. STARTTLS is added when TLS is possible (a
  // certificate is set), offer_starttls is true and the session is not yet under TLS.
  std::vector<std::string> extensions = {"PIPELINING", "SIZE 10485760", "8BITMIME", "SMTPUTF8",
                                         "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2"};
  bool offer_starttls = true;
  // PEM files of the server's certificate (chain) and key; empty: no TLS.
  std::string certificate_file;
  std::string key_file;
  bool implicit_tls = false;  // TLS from the first byte (port 465)

  // AUTH: the accepted user name and password (for XOAUTH2: the access token). An empty user
  // accepts any credentials. Wrong credentials get "535 5.7.8"; for XOAUTH2 first the error
  // challenge of Google's documentation, then 535 after the client's empty line.
  std::string auth_user;
  std::string auth_password;
  bool require_auth = false;  // MAIL before a successful AUTH gets "530 5.7.0 Authentication required"
  bool require_tls = false;   // MAIL and AUTH before TLS get "530 5.7.0 Must issue a STARTTLS command first"

  // > 0: every reply is written one byte at a time with this pause between bytes.
  std::chrono::milliseconds byte_delay{0};
};

// One message the server received.
struct SmtpReceivedMessage {
  std::string mail_from;                // the reverse-path between '<' and '>'
  std::string mail_parameters;          // what followed the path ("SIZE=123 BODY=8BITMIME")
  std::vector<std::string> recipients;  // the recipients accepted (2xx)
  // The bytes after the 354 reply up to and including the end marker's ".\r\n", exactly as
  // received: dot-stuffed, with whatever line ends the client sent.
  std::string data;
  bool accepted = false;  // the reply to the end of data was 2xx
};

// What happened on one connection.
struct SmtpSessionRecord {
  std::vector<std::string> commands;  // every line the client sent outside DATA, without CRLF
  std::vector<SmtpReceivedMessage> messages;  // every completed DATA, accepted or not
  bool tls = false;                   // the session switched to TLS (or began with it)
  std::string tls_error;              // why a TLS handshake failed; empty if none did
  std::size_t plaintext_after_starttls = 0;  // octets the client pipelined after STARTTLS
  bool bare_lf = false;               // a command line ended with LF alone
  std::string authenticated_user;     // after a successful AUTH
  std::string auth_mechanism;         // of the successful AUTH
  bool quit = false;                  // the client sent QUIT
  bool ended = false;                 // the connection is over
};

// Removes dot-stuffing and the end marker from SmtpReceivedMessage::data (RFC 5321 §4.5.2), as a
// server stores the message.
std::string UnstuffSmtpData(std::string_view data);

class ScriptedSmtpServer {
 public:
  // Listens on 127.0.0.1 with a port chosen by the system. Throws std::runtime_error when it
  // cannot listen or load the certificate.
  explicit ScriptedSmtpServer(SmtpServerScript script = {});
  ~ScriptedSmtpServer();
  ScriptedSmtpServer(const ScriptedSmtpServer&) = delete;
  ScriptedSmtpServer& operator=(const ScriptedSmtpServer&) = delete;

  std::string host() const { return "127.0.0.1"; }
  std::uint16_t port() const { return port_; }

  // Replaces the script for connections accepted from now on.
  void SetScript(SmtpServerScript script);

  int connection_count() const;
  // A copy of every connection's record so far, in the order they were accepted.
  std::vector<SmtpSessionRecord> sessions() const;
  // Waits until `count` connections have ended; false after `timeout`.
  bool WaitForEndedSessions(int count, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
};

}  // namespace herald
