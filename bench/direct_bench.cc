// The direct-delivery benchmark: herald's full engine (RunTask, SqliteStore) with a direct account
// sending N personalised messages to recipients spread over D domains. dnsmasq serves the domains
// as an authoritative zone on a loopback port (MX records, and for every tenth domain none: the
// implicit MX); their mail exchangers are E smtp-sinks on 127.0.0.10, 127.0.0.11, ... at one port.
// Prints the rate, the CPU per 1,000 messages, the peak RSS and what the DNS cost: the lookups
// herald's cache passed on and the queries dnsmasq received (per domain) — about four per domain
// and TTL (MX, MTA-STS TXT, A, AAAA) when the cache holds.
//
//   build/bench/direct_bench [--recipients 100000] [--domains 1000] [--exchangers 4]
//                            [--concurrency 64] [--connections 2] [--total 64] [--ttl 300]
//                            [--skew uniform|zipf] [--orders sorted,shuffled,turns] [--runs 1]
//
// --connections is the account's destination_max_connections (per domain), --total its
// max_connections (over all domains; idle connections of other domains are closed to make room
// for a new one). --skew: every domain gets the same share of the list (uniform), or a Zipf-like
// share — one recipient for every domain, the rest by weight 1/rank^s with s chosen so that the
// biggest domain holds about a quarter of the list: a long tail of one-recipient domains, as in
// a real mailing list. --orders: the list orders to run, each with a fresh store and DNS cache:
// sorted (each domain's recipients together, biggest domain first), shuffled (a fixed random
// permutation) and turns (domain after domain in turn, r0@d0, r1@d1, ..., while each has
// recipients left); "grouped" and "mixed" are older names of sorted and turns. --runs repeats
// the orders in rotation and prints the medians, and each order's rate as a ratio to sorted's.
// Every run is a child process (its own CPU time and peak RSS) and is checked: the sinks' own
// counters (smtp-sink -c) must grow by N messages and herald must report N sent. Needs dnsmasq
// and smtp-sink (Debian packages dnsmasq, postfix) and root (smtp-sink drops to nobody).
// Everything lives in a temporary folder, removed at the end.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
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
  bool zipf = false;
  std::vector<std::string> orders = {"turns"};
  int runs = 1;
};

[[noreturn]] void Usage(const char* problem) {
  std::fprintf(stderr,
               "direct_bench: %s\nusage: direct_bench [--recipients N] [--domains D] [--exchangers E] "
               "[--concurrency C] [--connections K] [--total T] [--ttl S] [--skew uniform|zipf] "
               "[--orders sorted,shuffled,turns] [--runs R]\n",
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
    else if (arg == "--runs") options.runs = number(1, 100);
    else if (arg == "--skew" && i + 1 < argc) {
      std::string skew = argv[++i];
      if (skew != "uniform" && skew != "zipf") Usage("--skew is uniform or zipf");
      options.zipf = skew == "zipf";
    } else if ((arg == "--orders" || arg == "--order") && i + 1 < argc) {
      options.orders.clear();
      std::string list = argv[++i];
      for (std::size_t start = 0; start <= list.size();) {
        std::size_t comma = std::min(list.find(',', start), list.size());
        std::string order = list.substr(start, comma - start);
        if (order == "grouped") order = "sorted";
        if (order == "mixed") order = "turns";
        if (order != "sorted" && order != "shuffled" && order != "turns") {
          Usage("--orders lists sorted, shuffled and turns");
        }
        options.orders.push_back(order);
        start = comma + 1;
      }
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

// How many recipients each domain gets, biggest first.
std::vector<int> DomainSizes(const Options& options) {
  const int n = options.recipients;
  const int d = std::min(options.domains, n);
  std::vector<int> sizes(static_cast<std::size_t>(d), n / d);
  for (int i = 0; i < n % d; ++i) ++sizes[static_cast<std::size_t>(i)];
  if (!options.zipf || d == 1) return sizes;
  // One recipient each, the rest by weight 1/rank^s; s by bisection so that the biggest domain
  // gets about a quarter of the list (or as close as one recipient per domain allows).
  const int rest = n - d;
  auto shares = [&](double s) {
    std::vector<double> weights(sizes.size());
    double total = 0;
    for (std::size_t i = 0; i < weights.size(); ++i) total += weights[i] = std::pow(static_cast<double>(i + 1), -s);
    for (double& weight : weights) weight /= total;
    return weights;
  };
  double low = 0, high = 4;
  for (int step = 0; step < 60; ++step) {
    double mid = (low + high) / 2;
    (shares(mid)[0] * rest + 1 < n / 4.0 ? low : high) = mid;
  }
  std::vector<double> weights = shares(high);
  int given = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    sizes[i] = 1 + static_cast<int>(std::floor(weights[i] * rest));
    given += sizes[i];
  }
  for (std::size_t i = 0; given < n; i = (i + 1) % sizes.size(), ++given) ++sizes[i];
  return sizes;
}

// The recipient list in `order`: (recipient number, domain) pairs, numbered in list order.
std::string RecipientList(const std::vector<int>& sizes, const std::string& order) {
  std::vector<int> domains;  // the domain of each row
  if (order == "turns") {
    std::vector<int> left = sizes;
    for (bool any = true; any;) {
      any = false;
      for (std::size_t i = 0; i < left.size(); ++i) {
        if (left[i] == 0) continue;
        --left[i];
        domains.push_back(static_cast<int>(i));
        any = true;
      }
    }
  } else {
    for (std::size_t i = 0; i < sizes.size(); ++i) domains.insert(domains.end(), sizes[i], static_cast<int>(i));
    if (order == "shuffled") std::shuffle(domains.begin(), domains.end(), std::mt19937(20261206));
  }
  std::string csv = "email,number\n";
  csv.reserve(domains.size() * 32);
  for (std::size_t j = 0; j < domains.size(); ++j) csv += fmt::format("r{}@{},{}\n", j, Domain(domains[j]), j);
  return csv;
}

// What one run measured; a child process writes it to its parent through a pipe.
struct RunResult {
  std::uint64_t sent = 0, failed = 0, deferred = 0;
  double seconds = 0;      // from the start of sending to the end
  double cpu = 0;          // herald's CPU time over the same span
  double peak_rss_mb = 0;  // of the whole child process
  std::uint64_t upstream_queries = 0;
  bool ok = false;
};

// Runs the task in `folder` (list, accounts, task file written) in this process.
RunResult SendTask(const std::string& task_file) {
  RunResult result;
  auto fail = [](const Status& status) {
    std::fprintf(stderr, "direct_bench: %s\n", status.ToString().c_str());
    return RunResult{};
  };
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
  result.sent = report->sent;
  result.failed = report->failed;
  result.deferred = report->deferred;
  result.seconds = std::chrono::duration<double>(observer.last.elapsed).count();
  result.cpu = observer.cpu_at_end - observer.cpu_at_start;
  for (const auto& resolver : transports.caches) result.upstream_queries += resolver->stats().upstream_queries;
  result.ok = true;
  return result;
}

// SendTask in a child process, so that each run has its own CPU time and peak RSS.
RunResult SendTaskInChild(const std::string& task_file) {
  int pipe_ends[2];
  if (pipe(pipe_ends) != 0) return {};
  std::fflush(nullptr);
  pid_t child = fork();
  if (child < 0) return {};
  if (child == 0) {
    close(pipe_ends[0]);
    RunResult result = SendTask(task_file);
    ssize_t written = write(pipe_ends[1], &result, sizeof result);
    _exit(written == static_cast<ssize_t>(sizeof result) ? 0 : 1);
  }
  close(pipe_ends[1]);
  RunResult result;
  ssize_t got = read(pipe_ends[0], &result, sizeof result);
  close(pipe_ends[0]);
  int status = 0;
  rusage usage{};
  wait4(child, &status, 0, &usage);
  if (got != static_cast<ssize_t>(sizeof result) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
  result.peak_rss_mb = usage.ru_maxrss / 1024.0;
  return result;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
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

  std::vector<int> sizes = DomainSizes(options);
  const int domain_count = static_cast<int>(sizes.size());
  DnsmasqOptions dns_options;
  dns_options.directory = dir.Path("dnsmasq");
  dns_options.authoritative = true;
  dns_options.ttl = options.ttl;
  for (int i = 0; i < domain_count; ++i) {
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

  int one_recipient = static_cast<int>(std::count(sizes.begin(), sizes.end(), 1));
  std::printf("direct: %d recipients, %d domains (%d without MX; biggest %d recipients = %.1f%%, %d with one), "
              "%d mail exchangers, concurrency %d, %d connections per domain, %d in all, TTL %d s\n",
              options.recipients, domain_count, domain_count / 10, sizes.front(),
              100.0 * sizes.front() / options.recipients, one_recipient, options.exchangers, options.concurrency,
              options.connections, options.total, options.ttl);

  std::map<std::string, std::vector<RunResult>> results;
  int run_number = 0;
  for (int round = 0; round < options.runs; ++round) {
    for (std::size_t k = 0; k < options.orders.size(); ++k) {
      const std::string& order = options.orders[(k + static_cast<std::size_t>(round)) % options.orders.size()];
      std::string folder = fmt::format("run{}", ++run_number);
      dir.Write(folder + "/recipients.csv", RecipientList(sizes, order));
      dir.Write(folder + "/accounts.toml",
                                 fmt::format("[[account]]\n"
                                             "name = \"direct\"\n"
                                             "kind = \"direct\"\n"
                                             "dns_server = \"{}\"\n"
                                             "port = {}\n"
                                             "helo_name = \"sender.bench.example\"\n"
                                             "max_connections = {}\n"
                                             "destination_max_connections = {}\n"
                                             "timeout = \"30s\"\n",
                                             dns.Address(), port, options.total, options.connections));
      std::string task_file = dir.Write(folder + "/task.toml", fmt::format("id = \"direct-bench\"\n"
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
      std::int64_t before = 0;
      for (const auto& sink : sinks) before += sink->MessageCount();
      int queries_before = dns.QueryCount();
      RunResult result = SendTaskInChild(task_file);
      std::int64_t received = -before;
      for (const auto& sink : sinks) received += sink->MessageCount();
      const double domains = domain_count;
      std::printf("  %-8s sent %llu, failed %llu, deferred %llu, the sinks counted %lld: %.0f messages/s (%.2f s), "
                  "CPU %.3f s per 1,000 messages, peak RSS %.1f MB; DNS %.2f lookups passed on per domain, "
                  "dnsmasq received %.2f per domain\n",
                  order.c_str(), static_cast<unsigned long long>(result.sent),
                  static_cast<unsigned long long>(result.failed), static_cast<unsigned long long>(result.deferred),
                  static_cast<long long>(received), result.seconds > 0 ? result.sent / result.seconds : 0.0,
                  result.seconds, result.sent > 0 ? result.cpu * 1000 / result.sent : 0.0, result.peak_rss_mb,
                  result.upstream_queries / domains, (dns.QueryCount() - queries_before) / domains);
      std::fflush(stdout);
      bool complete = result.ok && result.sent == static_cast<std::uint64_t>(options.recipients) &&
                      received == options.recipients;
      if (!complete) {
        std::fprintf(stderr, "direct_bench: %s order: not every message arrived\n", order.c_str());
        return 1;
      }
      results[order].push_back(result);
    }
  }

  std::vector<double> sorted_rates;
  for (const RunResult& r : results["sorted"]) sorted_rates.push_back(r.sent / r.seconds);
  const double sorted_rate = sorted_rates.empty() ? 0 : Median(sorted_rates);
  std::printf("medians of %d run(s):\n", options.runs);
  for (const std::string& order : options.orders) {
    if (results.count(order) == 0) continue;
    std::vector<double> rates, cpu, rss;
    for (const RunResult& r : results[order]) {
      rates.push_back(r.sent / r.seconds);
      cpu.push_back(r.cpu * 1000 / r.sent);
      rss.push_back(r.peak_rss_mb);
    }
    double rate = Median(rates);
    std::printf("  %-8s %.0f messages/s, CPU %.3f s per 1,000 messages, peak RSS %.1f MB", order.c_str(), rate,
                Median(cpu), Median(rss));
    if (sorted_rate > 0) std::printf(", %.2f of sorted's rate", rate / sorted_rate);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(ParseOptions(argc, argv)); }
