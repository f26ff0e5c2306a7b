// The direct-delivery benchmark (issue 5): herald's full engine (RunTask, SqliteStore) with a
// direct account sending N personalised messages to recipients spread over D domains. dnsmasq
// serves the domains as an authoritative zone on a loopback port (MX records, and for every
// tenth domain none: the implicit MX); their mail exchangers are E smtp-sinks on 127.0.0.10,
// 127.0.0.11, ... at one port. Prints the rate and what the DNS cost: the lookups herald's cache
// passed on (per domain), and the queries dnsmasq received (per domain) — about three per domain
// and TTL (MX, A, AAAA) when the cache holds.
//
//   build/bench/direct_bench [--recipients 100000] [--domains 1000] [--exchangers 4]
//                            [--concurrency 64] [--connections 2] [--total 64] [--ttl 300]
//                            [--order mixed|grouped]
//
// --connections is the account's destination_max_connections (per domain), --total its
// max_connections (over all domains; idle connections of other domains are closed to make room
// for a new one); --order mixed lists
// the recipients domain after domain in turn (r0@d0, r1@d1, ...), grouped lists each domain's
// recipients together. Every run is checked: the sinks' own counters (smtp-sink -c) must add up
// to N messages and herald must report N sent. Needs dnsmasq and smtp-sink (Debian packages
// dnsmasq, postfix) and root (smtp-sink drops to nobody). Everything lives in a temporary folder,
// removed at the end.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "config/loader.h"
#include "dns/caching_resolver.h"
#include "dns/unbound_resolver.h"
#include "engine/task_runner.h"
#include "servers/dnsmasq_server.h"
#include "servers/smtp_sink.h"
#include "smtp/direct_transport.h"
#include "store/sqlite_store.h"
#include "temp_dir.h"

namespace {

using herald::Status;
using herald::test_servers::DnsmasqOptions;
using herald::test_servers::DnsmasqServer;
using herald::test_servers::SmtpSink;
using herald::test_servers::SmtpSinkOptions;

struct Options {
  int recipients = 100'000;
  int domains = 1'000;
  int exchangers = 4;
  int concurrency = 64;
  int connections = 2;
  int total = 64;
  int ttl = 300;
  bool grouped = false;
};

[[noreturn]] void Usage(const char* problem) {
  std::fprintf(stderr,
               "direct_bench: %s\nusage: direct_bench [--recipients N] [--domains D] [--exchangers E] "
               "[--concurrency C] [--connections K] [--total T] [--ttl S] [--order mixed|grouped]\n",
               problem);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto number = [&](int minimum, int maximum) {
      if (i + 1 >= argc) Usage("a number is missing");
      char* end = nullptr;
      long value = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || value < minimum || value > maximum) Usage(fmt::format("{} out of range", arg).c_str());
      return static_cast<int>(value);
    };
    if (arg == "--recipients") options.recipients = number(1, 10'000'000);
    else if (arg == "--domains") options.domains = number(1, 100'000);
    else if (arg == "--exchangers") options.exchangers = number(1, 200);
    else if (arg == "--concurrency") options.concurrency = number(1, 256);
    else if (arg == "--connections") options.connections = number(1, 256);
    else if (arg == "--total") options.total = number(1, 256);
    else if (arg == "--ttl") options.ttl = number(1, 86'400);
    else if (arg == "--order" && i + 1 < argc) {
      std::string order = argv[++i];
      if (order != "mixed" && order != "grouped") Usage("--order is mixed or grouped");
      options.grouped = order == "grouped";
    } else {
      Usage(fmt::format("unknown argument {}", arg).c_str());
    }
  }
  return options;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

long PeakRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

std::string Domain(int i) { return fmt::format("d{}.example", i); }
std::string Exchanger(int i) { return fmt::format("127.0.0.{}", 10 + i); }
// Every tenth domain has no MX records: its own address is its mail exchanger (RFC 5321 §5.1).
bool Implicit(int domain) { return domain % 10 == 9; }

// Hands a transport a resolver it does not own: the cache outlives the run (the engine destroys
// its transports at the end), so its figures can be read afterwards.
class Borrowed final : public herald::dns::Resolver {
 public:
  explicit Borrowed(herald::dns::Resolver& resolver) : resolver_(resolver) {}
  asio::awaitable<herald::dns::Answer> Query(std::string name, herald::dns::RecordType type) override {
    co_return co_await resolver_.Query(std::move(name), type);
  }

 private:
  herald::dns::Resolver& resolver_;
};

// The transports herald's command line makes for a direct account (src/main.cc): libunbound on
// the account's DNS server behind a cache.
class DirectFactory final : public herald::TransportFactory {
 public:
  herald::Result<std::unique_ptr<herald::Transport>> Create(const herald::AccountConfig& account,
                                                            Transcript) override {
    herald::Result<std::unique_ptr<herald::dns::UnboundResolver>> unbound =
        herald::dns::UnboundResolver::Create(herald::dns::UnboundOptions{.server = account.dns_server});
    if (!unbound.ok()) return unbound.status();
    caches.push_back(std::make_unique<herald::dns::CachingResolver>(std::move(*unbound), clock_));
    herald::Result<std::unique_ptr<herald::DirectTransport>> transport =
        herald::DirectTransport::Create(account, std::make_unique<Borrowed>(*caches.back()));
    if (!transport.ok()) return transport.status();
    return std::unique_ptr<herald::Transport>(std::move(*transport));
  }

  std::vector<std::unique_ptr<herald::dns::CachingResolver>> caches;

 private:
  herald::SystemClock clock_;
};

class Observer final : public herald::RunObserver {
 public:
  void OnProgress(const herald::RunProgress& progress) override {
    double cpu = CpuSeconds();
    if (!started) {
      started = true;
      cpu_at_start = cpu;
    }
    cpu_at_end = cpu;
    last = progress;
  }
  void OnResult(const herald::RecipientEvent& event) override {
    if (event.result.status == herald::RecipientStatus::kSent || ++problems > 5) return;
    std::fprintf(stderr, "herald: %s: %s %s\n", event.recipient.address.c_str(),
                 std::string(herald::RecipientStatusName(event.result.status)).c_str(),
                 event.result.error.text.c_str());
  }
  void OnWarning(std::string_view warning) override {
    std::fprintf(stderr, "herald: warning: %.*s\n", static_cast<int>(warning.size()), warning.data());
  }

  bool started = false;
  double cpu_at_start = 0;
  double cpu_at_end = 0;
  std::size_t problems = 0;
  herald::RunProgress last;
};

// The mail exchangers at one port on 127.0.0.10 and up (picked free on the first address).
Status StartExchangers(const herald::TempDir& dir, const Options& options,
                       std::vector<std::unique_ptr<SmtpSink>>& sinks, int& port) {
  return herald::test_servers::RetryOnPortCollision([&]() -> Status {
    sinks.clear();
    herald::Result<int> free = herald::test_servers::PickFreePort(Exchanger(0));
    if (!free.ok()) return free.status();
    port = *free;
    for (int i = 0; i < options.exchangers; ++i) {
      SmtpSinkOptions sink;
      sink.directory = dir.Path(fmt::format("mx{}", i));
      sink.host = Exchanger(i);
      sink.port = port;
      sink.capture = false;
      sink.hostname = fmt::format("mx{}.bench.example", i);
      // Every destination may keep its connections open: room for all of them.
      sink.max_connections = 4096;
      sink.backlog = 4096;
      sinks.push_back(std::make_unique<SmtpSink>(sink));
      HERALD_RETURN_IF_ERROR(sinks.back()->Start());
    }
    return Status::Ok();
  });
}

int Run(const Options& options) {
  auto fail = [](const Status& status) {
    std::fprintf(stderr, "direct_bench: %s\n", status.ToString().c_str());
    return 1;
  };
  herald::TempDir dir;
  std::vector<std::unique_ptr<SmtpSink>> sinks;
  int port = 0;
  if (Status started = StartExchangers(dir, options, sinks, port); !started.ok()) return fail(started);

  DnsmasqOptions dns_options;
  dns_options.directory = dir.Path("dnsmasq");
  dns_options.authoritative = true;
  dns_options.ttl = options.ttl;
  for (int i = 0; i < options.domains; ++i) {
    std::string address = Exchanger(i % options.exchangers);
    if (Implicit(i)) {
      dns_options.hosts.push_back({Domain(i), address, ""});
    } else {
      dns_options.mx.push_back({Domain(i), "mx." + Domain(i), 10});
      dns_options.hosts.push_back({"mx." + Domain(i), address, ""});
    }
  }
  DnsmasqServer dns(dns_options);
  if (Status started = dns.Start(); !started.ok()) return fail(started);

  std::string csv = "email,number\n";
  csv.reserve(static_cast<std::size_t>(options.recipients) * 32);
  int per_domain = (options.recipients + options.domains - 1) / options.domains;
  for (int j = 0; j < options.recipients; ++j) {
    int domain = options.grouped ? j / per_domain : j % options.domains;
    csv += fmt::format("r{}@{},{}\n", j, Domain(domain), j);
  }
  dir.Write("recipients.csv", csv);
  dir.Write("accounts.toml", fmt::format("[[account]]\n"
                                         "name = \"direct\"\n"
                                         "kind = \"direct\"\n"
                                         "dns_server = \"{}\"\n"
                                         "port = {}\n"
                                         "helo_name = \"sender.bench.example\"\n"
                                         "max_connections = {}\n"
                                         "destination_max_connections = {}\n"
                                         "timeout = \"30s\"\n",
                                         dns.Address(), port, options.total, options.connections));
  std::string task_file = dir.Write("task.toml", fmt::format("id = \"direct-bench\"\n"
                                                             "title = \"Direct delivery benchmark\"\n"
                                                             "[message]\n"
                                                             "from = \"News <news@bench.example>\"\n"
                                                             "subject = \"Number {{%number%}} for you\"\n"
                                                             "text = \"Hello {{%recipient%}},\\nyour number is "
                                                             "{{%number%}}.\\n\"\n"
                                                             "[recipients]\n"
                                                             "file = \"recipients.csv\"\n"
                                                             "[sending]\n"
                                                             "concurrency = {}\n"
                                                             "retries = 0\n",
                                                             options.concurrency));

  herald::Result<herald::TaskConfig> task = herald::LoadTask(task_file);
  if (!task.ok()) return fail(task.status());
  herald::Result<herald::AccountSet> accounts = herald::LoadAccounts(task->accounts_file);
  if (!accounts.ok()) return fail(accounts.status());
  herald::Result<std::unique_ptr<herald::SqliteStore>> store = herald::SqliteStore::Open(task->store_file);
  if (!store.ok()) return fail(store.status());
  herald::SystemClock clock;
  DirectFactory transports;
  Observer observer;
  herald::Result<herald::RunReport> report = herald::RunTask(*task, *accounts, **store, clock, transports, observer);
  if (!report.ok()) return fail(report.status());
  if (!report->stopped_by.ok()) return fail(report->stopped_by);

  std::int64_t received = 0;
  for (const auto& sink : sinks) received += sink->MessageCount();
  double seconds = std::chrono::duration<double>(observer.last.elapsed).count();
  double cpu = observer.cpu_at_end - observer.cpu_at_start;
  herald::dns::CacheStats cache;
  for (const auto& resolver : transports.caches) {
    herald::dns::CacheStats stats = resolver->stats();
    cache.queries += stats.queries;
    cache.upstream_queries += stats.upstream_queries;
    cache.hits += stats.hits;
    cache.shared += stats.shared;
  }
  int dns_queries = dns.QueryCount();
  double domains = options.domains;
  std::printf(
      "direct: %d recipients, %d domains (%d without MX), %d mail exchangers, concurrency %d, "
      "%d connections per domain, %d in all, %s order, TTL %d s\n",
      options.recipients, options.domains, options.domains / 10, options.exchangers, options.concurrency,
      options.connections, options.total, options.grouped ? "grouped" : "mixed", options.ttl);
  std::printf("  sent %llu, failed %llu, deferred %llu; the sinks counted %lld\n",
              static_cast<unsigned long long>(report->sent), static_cast<unsigned long long>(report->failed),
              static_cast<unsigned long long>(report->deferred), static_cast<long long>(received));
  std::printf("  %.0f messages/s (%.2f s), CPU %.3f s per 1,000 messages, peak RSS %.1f MB\n",
              seconds > 0 ? report->sent / seconds : 0.0, seconds, report->sent > 0 ? cpu * 1000 / report->sent : 0.0,
              PeakRssKb() / 1024.0);
  std::printf("  DNS: %llu lookups asked of the cache, %llu answered from it, %llu shared with one in progress, "
              "%llu passed on = %.2f per domain; dnsmasq received %d queries = %.2f per domain\n",
              static_cast<unsigned long long>(cache.queries), static_cast<unsigned long long>(cache.hits),
              static_cast<unsigned long long>(cache.shared), static_cast<unsigned long long>(cache.upstream_queries),
              cache.upstream_queries / domains, dns_queries, dns_queries / domains);
  bool complete = report->sent == static_cast<std::uint64_t>(options.recipients) && received == options.recipients;
  if (!complete) std::fprintf(stderr, "direct_bench: not every message arrived\n");
  return complete ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return Run(ParseOptions(argc, argv)); }
