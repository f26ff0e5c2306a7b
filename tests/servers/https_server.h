// HttpsServer: an HTTPS server (https_server.py beside this file, Python's standard library, run by
// /usr/bin/python3) for herald's integration tests — the MTA-STS policy hosts of test domains. It
// answers GET requests by Host and path from a fixed table (status, headers, body), 404 otherwise,
// and counts every request.
//
// Threading: one test thread uses an HttpsServer; reading its counts is safe while it runs.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "servers/server_credentials.h"
#include "servers/server_process.h"

namespace herald::test_servers {

struct HttpsRoute {
  std::string host;  // the Host header, e.g. "mta-sts.example.com"
  std::string path;  // e.g. "/.well-known/mta-sts.txt"
  int status = 200;
  std::map<std::string, std::string> headers = {{"Content-Type", "text/plain"}};
  std::string body;
};

struct HttpsOptions {
  std::string directory;  // its own folder (created): routes, log
  std::string host = "127.0.0.1";
  int port = 0;  // 0: a free port
  TlsFiles tls;  // required: the certificate for the names it serves
  std::vector<HttpsRoute> routes;
  std::chrono::seconds lifetime{900};  // the server stops by itself after this
  milliseconds start_timeout{15000};
};

class HttpsServer {
 public:
  explicit HttpsServer(HttpsOptions options);
  ~HttpsServer() { Stop(); }
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  // Starts the server and waits (bounded) until it accepts connections.
  Status Start();
  void Stop();  // Idempotent.

  int port() const { return port_; }
  const std::string& host() const { return options_.host; }

  // Requests received so far for `host` and `path`.
  int RequestCount(std::string_view host, std::string_view path) const;

  std::string Log() const;

 private:
  Status StartOnce();

  HttpsOptions options_;
  std::string routes_file_, requests_file_, log_file_;
  int port_ = kNoPort;
  ServerProcess python_;
};

}  // namespace herald::test_servers
