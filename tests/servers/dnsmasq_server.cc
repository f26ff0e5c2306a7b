#include "servers/dnsmasq_server.h"

#include <filesystem>

namespace herald::test_servers {
namespace {

namespace fs = std::filesystem;

constexpr char kDnsmasqProgram[] = "/usr/sbin/dnsmasq";

int CountOccurrences(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

}  // namespace

DnsmasqServer::DnsmasqServer(DnsmasqOptions options) : options_(std::move(options)) {
  log_file_ = options_.directory + "/dnsmasq.log";
}

Status DnsmasqServer::Start() {
  if (options_.directory.empty()) return InvalidArgument("DnsmasqOptions.directory is empty");
  if (!fs::exists(kDnsmasqProgram)) {
    return Status(StatusCode::kFailedPrecondition,
                  std::string(kDnsmasqProgram) + " is missing: install dnsmasq (scripts/setup.sh test)");
  }
  HERALD_RETURN_IF_ERROR(MakeDirectory(options_.directory, 0755));
  // A port given by the test is not replaced by another one.
  return RetryOnPortCollision([this] { return StartOnce(); }, options_.port == 0 ? 3 : 1);
}

Status DnsmasqServer::StartOnce() {
  const DnsmasqOptions& o = options_;
  auto port = o.port != 0 ? Result<int>(o.port) : PickFreePort(o.host);
  if (!port.ok()) return port.status();
  port_ = *port;

  ProcessOptions process;
  // In the foreground with the test's user (-d does not change user), logging every query to
  // stderr; no system configuration, no /etc/hosts, no upstream servers from /etc/resolv.conf.
  process.argv = {kDnsmasqProgram,
                  "--no-daemon",
                  "--log-facility=-",
                  "--log-queries",
                  "--conf-file=/dev/null",
                  "--no-resolv",
                  "--no-hosts",
                  "--no-poll",
                  "--bind-interfaces",
                  "--listen-address=" + o.host,
                  "--port=" + std::to_string(port_),
                  "--local-ttl=" + std::to_string(o.ttl)};
  for (const std::string& domain : o.local_domains) process.argv.push_back("--local=/" + domain + "/");
  if (o.authoritative && !o.local_domains.empty()) {
    // Authoritative answers to queries arriving at the listening address.
    process.argv.push_back("--auth-server=ns." + o.local_domains.front() + "," + o.host);
    for (const std::string& domain : o.local_domains) process.argv.push_back("--auth-zone=" + domain);
    // The SOA's TTL and MINIMUM are both the --auth-ttl.
    process.argv.push_back("--auth-ttl=" + std::to_string(o.ttl));
    process.argv.push_back("--auth-soa=1,hostmaster." + o.local_domains.front());
  }
  for (const DnsMx& mx : o.mx) {
    process.argv.push_back("--mx-host=" + mx.domain + "," + mx.host + "," + std::to_string(mx.preference));
  }
  for (const DnsHost& host : o.hosts) {
    std::string record = "--host-record=" + host.name;
    if (!host.ipv4.empty()) record += "," + host.ipv4;
    if (!host.ipv6.empty()) record += "," + host.ipv6;
    process.argv.push_back(record);
  }
  for (const DnsTxt& txt : o.txt) process.argv.push_back("--txt-record=" + txt.name + "," + txt.text);
  // "#": the default upstream servers, of which there are none: dnsmasq refuses the query.
  for (const std::string& domain : o.failing_domains) process.argv.push_back("--server=/" + domain + "/#");
  if (!o.silent_domains.empty()) {
    // A port nothing listens on: the forwarded query is lost, and dnsmasq stays silent.
    auto dead = PickFreePort("127.0.0.1");
    if (!dead.ok()) return dead.status();
    for (const std::string& domain : o.silent_domains) {
      process.argv.push_back("--server=/" + domain + "/127.0.0.1#" + std::to_string(*dead));
    }
  }
  process.log_file = log_file_;
  HERALD_RETURN_IF_ERROR(dnsmasq_.Start(process));

  Status ready = WaitForListener(o.host, port_, "", o.start_timeout, &dnsmasq_);
  if (!ready.ok()) {
    Stop();
    // dnsmasq reports a port taken by another process as "Address already in use".
    return Status(ready.code(), "dnsmasq did not start: " + ready.message() + "\n" + Log());
  }
  return Status::Ok();
}

void DnsmasqServer::Stop() { dnsmasq_.Stop(); }

std::string DnsmasqServer::Address() const {
  std::string host = options_.host.find(':') != std::string::npos ? "[" + options_.host + "]" : options_.host;
  return host + ":" + std::to_string(port_);
}

int DnsmasqServer::QueryCount(std::string_view type, std::string_view name) const {
  // "dnsmasq: query[MX] a.example from 127.0.0.1", or "auth[MX] ..." when authoritative.
  std::string log = ReadTextFile(log_file_);
  std::string what = "[" + std::string(type) + "] " + std::string(name) + " from ";
  return CountOccurrences(log, ": query" + what) + CountOccurrences(log, ": auth" + what);
}

int DnsmasqServer::QueryCount() const {
  std::string log = ReadTextFile(log_file_);
  return CountOccurrences(log, ": query[") + CountOccurrences(log, ": auth[");
}

std::string DnsmasqServer::Log() const { return "--- dnsmasq log (" + log_file_ + ") ---\n" + LogTail(log_file_); }

}  // namespace herald::test_servers
