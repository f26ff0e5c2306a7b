// SmtpSink: Postfix's smtp-sink(1) test server (Debian's postfix package) for herald's integration
// tests and benchmarks: accepts everything fast and counts it. Optionally captures each mail
// transaction to a file (smtp-sink -d), from which per-recipient counts and contents are read.
// smtp-sink speaks SMTP/ESMTP without TLS; use PostfixServer or AiosmtpdServer for TLS and AUTH.
//
// Threading: one test thread uses an SmtpSink; the readers are safe while it runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "servers/server_credentials.h"
#include "servers/server_process.h"

namespace herald::test_servers {

struct SmtpSinkOptions {
  std::string directory;  // its own folder (created): output, captured transactions
  std::string host = "127.0.0.1";
  int port = 0;          // 0: a free port
  bool capture = true;   // -d: one file per transaction (slower: a file write per message)
  bool announce_auth = false;  // smtp-sink answers any AUTH with 250, which real clients reject
  int backlog = 256;
  int max_connections = 256;  // -m
  std::string hostname = "sink.herald.test";
  // More smtp-sink(1) options, e.g. {"-r", "RCPT"} (4xx to RCPT) or {"-w", "2"} (slow DATA).
  std::vector<std::string> extra_arguments;
  milliseconds start_timeout{10000};
};

// One mail transaction as smtp-sink captured it.
struct SinkTransaction {
  std::string client_address;
  std::string helo;
  std::string mail_args;                // MAIL FROM argument, e.g. "<a@example.test> SIZE=12"
  std::vector<std::string> rcpt_args;   // RCPT TO arguments, in order
  std::vector<std::string> recipients;  // the addresses of rcpt_args, without <>
  std::string data;                     // the message, dot-unstuffed, LF line ends
};

class SmtpSink {
 public:
  explicit SmtpSink(SmtpSinkOptions options);
  ~SmtpSink() { Stop(); }
  SmtpSink(const SmtpSink&) = delete;
  SmtpSink& operator=(const SmtpSink&) = delete;

  // Starts smtp-sink (as nobody) and waits (bounded) until it greets.
  Status Start();
  void Stop();  // Idempotent.

  int port() const { return port_; }
  pid_t pid() const { return sink_.pid(); }  // -1 before Start
  const std::string& host() const { return options_.host; }

  // Messages completed so far (the "mesg=" counter smtp-sink -c prints after each "."), also
  // without capture.
  int64_t MessageCount() const;
  // Waits until MessageCount() >= count.
  Status WaitForMessageCount(int64_t count, milliseconds timeout = milliseconds(10000)) const;

  // With capture: every completed transaction. A transaction still in progress may show up
  // partially; read after the client finished (or after WaitForMessageCount).
  std::vector<SinkTransaction> Transactions() const;
  // With capture: how many messages each recipient address received.
  std::map<std::string, int> CountByRecipient() const;

  std::string Log() const;

 private:
  Status StartOnce();

  SmtpSinkOptions options_;
  std::string capture_dir_, output_file_;
  int port_ = kNoPort;
  ServerProcess sink_;
};

}  // namespace herald::test_servers
