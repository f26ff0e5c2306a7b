// DnsmasqServer: Debian's dnsmasq as the DNS server of direct-delivery tests — MX, A, AAAA and TXT
// records for test domains, answered on a loopback port and logged per query. Names in its local
// domains that no record names are NXDOMAIN; queries for its failing domains are refused at once
// (a resolver asking it reports SERVFAIL); queries for its silent domains are forwarded to a port
// where nothing listens and never answered. Nothing is ever forwarded elsewhere.
//
// Threading: one test thread uses a DnsmasqServer; reading the log is safe while it runs.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "servers/server_credentials.h"
#include "servers/server_process.h"

namespace herald::test_servers {

struct DnsMx {
  std::string domain;
  std::string host;  // "." for the null MX of RFC 7505
  int preference = 10;
};

struct DnsHost {
  std::string name;
  std::string ipv4;  // either may be empty
  std::string ipv6;
};

struct DnsTxt {
  std::string name;
  std::string text;
};

struct DnsmasqOptions {
  std::string directory;  // its own folder (created): the log
  std::string host = "127.0.0.1";
  int port = 0;  // 0: a free port
  // Domains answered from the records below alone (--local): other names in them are NXDOMAIN.
  std::vector<std::string> local_domains = {"example"};
  std::vector<DnsMx> mx;
  std::vector<DnsHost> hosts;
  std::vector<DnsTxt> txt;
  std::vector<std::string> failing_domains;  // answered REFUSED at once
  std::vector<std::string> silent_domains;   // never answered
  int ttl = 300;  // of every record
  // Serve the local domains as authoritative zones (--auth-zone): negative answers then carry
  // the zone's SOA (RFC 2308 §5) as real zones' answers do, with `ttl` as its TTL and MINIMUM.
  // Otherwise dnsmasq answers without an SOA.
  bool authoritative = false;
  milliseconds start_timeout{10000};
};

class DnsmasqServer {
 public:
  explicit DnsmasqServer(DnsmasqOptions options);
  ~DnsmasqServer() { Stop(); }
  DnsmasqServer(const DnsmasqServer&) = delete;
  DnsmasqServer& operator=(const DnsmasqServer&) = delete;

  // Starts dnsmasq and waits (bounded) until it accepts connections on its TCP port.
  Status Start();
  void Stop();  // Idempotent.

  int port() const { return port_; }
  const std::string& host() const { return options_.host; }
  // The server as a DNS server setting: "127.0.0.1:5353", "[::1]:5353".
  std::string Address() const;

  // How many queries for `name` of `type` ("MX", "A", "AAAA", "TXT") it received so far.
  int QueryCount(std::string_view type, std::string_view name) const;
  // How many queries it received so far, of any name and type.
  int QueryCount() const;

  std::string Log() const;

 private:
  Status StartOnce();

  DnsmasqOptions options_;
  std::string log_file_;
  int port_ = kNoPort;
  ServerProcess dnsmasq_;
};

}  // namespace herald::test_servers
