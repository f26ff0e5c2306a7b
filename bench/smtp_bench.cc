// The SMTP benchmark: herald's full engine (RunTask with a SqliteStore and the real SMTP
// transport) sending N personalised messages (text + HTML, 5 placeholders; ~5 KB, or ~100 KB with
// a 70 KB PDF attachment) to Postfix's smtp-sink on 127.0.0.1, side by side with the senders a
// user would pick instead, sending the same number of messages over the same number of
// connections to the same sink:
//
//   smtp-source  Postfix's load generator: one fixed message of the same size, repeated; it
//                composes and records nothing (-d: it keeps its connections, as herald does);
//   nodemailer   Node.js, pool: true, maxConnections = the connection count, maxMessages = 999
//                (herald's "reconnect every"); bench/peers/nodemailer_send.js fills the same
//                templates from the same recipient list (install: bench/peers.sh);
//   postfix      Postfix itself as a relay: a private instance on 127.0.0.1 (its own folder,
//                tests/servers/postfix_server.h) with relayhost = the sink and
//                default_destination_concurrency_limit = smtp_destination_concurrency_limit =
//                the connection count. herald injects the same messages into it over the same
//                number of connections; measured is the time from the first message injected
//                until the sink has counted the last one, and the CPU and memory of all Postfix
//                processes (the injector's CPU is shown beside it, not counted).
//
// For each message size and connection count it runs each sender several times (rotating which
// goes first) and prints every run, then a Markdown table of the medians — messages/s, CPU
// seconds per 1,000 messages, peak memory, herald ÷ each peer — and the targets.
//
//   build/bench/smtp_bench [--peers herald,smtp-source,nodemailer,postfix | all] [--sizes 5k,100k]
//                          [--messages N] [--runs R] [--connections 1,4,16,64] [--keep]
//   build/bench/smtp_bench --scale 10000,100000,1000000 [--connections 4]
//
// Defaults: herald and smtp-source, 5k, 20,000 messages, 5 runs, 1, 4 and 16 connections.
// --scale runs herald alone, once per list size, at the first connection count: the rate, CPU per
// 1,000 messages and peak RSS at each size show whether the cost per recipient stays flat as the
// task grows (a store that slows down with its size, or memory held per recipient, shows here).
//
// What is measured for whom:
//   herald      rate: RunProgress::elapsed from the final OnProgress (from the start of sending,
//               so without the import of the list, which is shown on its own); CPU: the
//               process's user + system time over the same span; a fresh process (this program
//               with --one-run) and a fresh store per run, so its peak RSS is its own.
//   smtp-source time from start to exit; CPU and peak RSS of the process (wait4).
//   nodemailer  time and CPU from the first sendMail() to the last callback, measured by the
//               script (process.cpuUsage); peak RSS of the node process.
//   postfix     as above; CPU: user + system time of every process of the instance (its
//               master's process group, including the daemons that exited), from before the
//               injection until its queue is empty; memory: the peak of the summed PSS of its
//               processes, sampled every 100 ms (RSS would count the libraries each of its
//               dozens of processes shares many times over).
// Every run is checked: the sink's own counter (smtp-sink -c) must grow by exactly N messages.
// smtp-sink's CPU per 1,000 messages is shown per run too: on 2 cores the sink shares the
// machine with the sender.
//
// Needs smtp-sink, smtp-source and Postfix (Debian package postfix), node and nodemailer
// (bench/peers.sh installs it); run as root (Postfix's master, smtp-sink drops to nobody).
// Everything lives in a temporary folder that is removed at the end (--keep keeps it: the
// task-<size>-<C>.toml and accounts-sink-<C>.toml there work with `herald send -q`; postfix-<n>/
// holds each Postfix instance's configuration and log).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "address/address.h"
#include "config/loader.h"
#include "core/clock.h"
#include "engine/prepared_task.h"
#include "engine/recipient_import.h"
#include "engine/task_runner.h"
#include "engine/transport_factory.h"
#include "servers/postfix_server.h"
#include "servers/smtp_sink.h"
#include "smtp/smtp_transport.h"
#include "store/sqlite_store.h"

namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// The message: the compose benchmark's spring newsletter (German and French, text and HTML).
const char kText[] =
    "Hallo {%firstname%} {%lastname%},\n"
    "\n"
    "der Frühling ist da – und mit ihm unsere neue Kollektion! Wir haben für Sie in {%city%} eine\n"
    "Auswahl zusammengestellt, die Ihnen gefallen wird: leichte Jacken, Blusen aus Leinen, Schuhe für\n"
    "lange Spaziergänge und Accessoires, die jeden Tag ein wenig schöner machen.\n"
    "\n"
    "Als treue Kundin, als treuer Kunde erhalten Sie bis Ende März 15 % Rabatt auf Ihren nächsten\n"
    "Einkauf. Geben Sie dazu einfach den Code FRUEHLING-{%id%} im Warenkorb ein. Der Code gilt online\n"
    "und in allen unseren Filialen, auch in der Filiale in {%city%}.\n"
    "\n"
    "Unsere Empfehlungen für Sie:\n"
    "  * Übergangsjacke „Brise“ – wasserabweisend, in fünf Farben, 129,00 €\n"
    "  * Leinenbluse „Sommerwind“ – luftig und knitterarm, 59,90 €\n"
    "  * Ledersneaker „Stadtbummel“ – handgefertigt in Portugal, 119,00 €\n"
    "  * Tuch „Morgenröte“ – 100 % Seide, 39,90 €\n"
    "\n"
    "Pour nos clients francophones : découvrez aussi notre sélection « Printemps à Paris » avec des\n"
    "pièces légères, élégantes et pensées pour les journées ensoleillées. Livraison gratuite dès 50 €.\n"
    "\n"
    "Haben Sie Fragen zu Ihrer Bestellung oder zu unseren Produkten? Unser Kundenservice ist montags\n"
    "bis freitags von 8 bis 18 Uhr für Sie da – telefonisch unter 0800 123 456 (kostenlos) oder per\n"
    "E-Mail an service@shop.example. Wir freuen uns auf Ihren Besuch!\n"
    "\n"
    "Mit frühlingshaften Grüßen\n"
    "Ihr Team vom Modehaus Müller & Söhne\n"
    "\n"
    "-- \n"
    "Modehaus Müller & Söhne GmbH, Königstraße 12, 70173 Stuttgart\n"
    "Geschäftsführer: Jürgen Müller, Amtsgericht Stuttgart HRB 123456\n"
    "Sie erhalten diese E-Mail, weil Sie sich für unseren Newsletter angemeldet haben.\n"
    "Abmelden: https://shop.example/abmelden?id={%id%}\n";

const char kHtml[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"de\"><head><meta charset=\"utf-8\"><title>Frühling bei Müller & Söhne</title></head>\n"
    "<body style=\"font-family: Helvetica, Arial, sans-serif; color: #222; max-width: 600px\">\n"
    "<h1 style=\"font-size: 22px\">Hallo {%firstname%} {%lastname%},</h1>\n"
    "<p>der Frühling ist da &ndash; und mit ihm unsere neue Kollektion! Wir haben für Sie in\n"
    "<strong>{%city%}</strong> eine Auswahl zusammengestellt, die Ihnen gefallen wird: leichte Jacken,\n"
    "Blusen aus Leinen, Schuhe für lange Spaziergänge und Accessoires.</p>\n"
    "<p>Als treue Kundin, als treuer Kunde erhalten Sie bis Ende März <b>15&nbsp;% Rabatt</b> auf Ihren\n"
    "nächsten Einkauf. Ihr Code: <code style=\"background: #eee\">FRUEHLING-{%id%}</code></p>\n"
    "<table cellpadding=\"6\" style=\"border-collapse: collapse; width: 100%\">\n"
    "<tr><td>Übergangsjacke „Brise“</td><td>wasserabweisend, fünf Farben</td><td>129,00&nbsp;€</td></tr>\n"
    "<tr><td>Leinenbluse „Sommerwind“</td><td>luftig und knitterarm</td><td>59,90&nbsp;€</td></tr>\n"
    "<tr><td>Ledersneaker „Stadtbummel“</td><td>handgefertigt in Portugal</td><td>119,00&nbsp;€</td></tr>\n"
    "<tr><td>Tuch „Morgenröte“</td><td>100&nbsp;% Seide</td><td>39,90&nbsp;€</td></tr>\n"
    "</table>\n"
    "<p lang=\"fr\">Pour nos clients francophones&nbsp;: découvrez aussi notre sélection «&nbsp;Printemps à\n"
    "Paris&nbsp;» avec des pièces légères et élégantes. Livraison gratuite dès 50&nbsp;€.</p>\n"
    "<p>Fragen? Unser Kundenservice ist montags bis freitags von 8 bis 18 Uhr für Sie da: 0800 123 456\n"
    "oder <a href=\"mailto:service@shop.example\">service@shop.example</a>.</p>\n"
    "<p>Mit frühlingshaften Grüßen<br>Ihr Team vom Modehaus Müller &amp; Söhne</p>\n"
    "<p style=\"font-size: 11px; color: #777\">Modehaus Müller &amp; Söhne GmbH, Königstraße 12, 70173\n"
    "Stuttgart &middot; <a href=\"https://shop.example/abmelden?id={%id%}\">Abmelden</a></p>\n"
    "</body></html>\n";


// The rest of the message, shared by herald's task file and nodemailer's job.
const char kFrom[] = "Modehaus Müller & Söhne <newsletter@shop.example>";
const char kToName[] = "{%firstname%} {%lastname%}";
const char kSubject[] = "{%firstname%}, Ihr Frühlingsrabatt für {%city%} wartet";
const std::pair<const char*, const char*> kHeaders[] = {
    {"List-Unsubscribe", "<https://shop.example/abmelden?id={%id%}>"},
    {"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"},
};
const char kHeloName[] = "bench.herald.test";
constexpr int kReconnectEvery = 999;  // herald's default "reconnect every"

// The message sizes: the newsletter alone, or with a PDF attachment (base64 makes 70 KB ~95 KB).
struct Variant {
  const char* name;        // as --sizes takes it
  const char* label;       // in the tables
  std::size_t attachment;  // bytes of the attached file; 0: none
};
constexpr Variant kVariants[] = {{"5k", "5 KB", 0}, {"100k", "100 KB", 70'000}};
const char kAttachmentName[] = "katalog.pdf";

// The senders compared with herald.
enum class Peer { kHerald, kSmtpSource, kNodemailer, kPostfix };
struct PeerInfo {
  Peer peer;
  const char* name;   // as --peers takes it
  const char* label;  // in the tables
};
constexpr PeerInfo kPeers[] = {
    {Peer::kHerald, "herald", "herald"},
    {Peer::kSmtpSource, "smtp-source", "Postfix smtp-source"},
    {Peer::kNodemailer, "nodemailer", "nodemailer (pool)"},
    {Peer::kPostfix, "postfix", "Postfix relay"},
};

const PeerInfo& Info(Peer peer) {
  return *std::find_if(std::begin(kPeers), std::end(kPeers), [&](const PeerInfo& i) { return i.peer == peer; });
}

std::string TomlString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string TaskFileName(const Variant& variant, int connections) {
  return fmt::format("task-{}-{}.toml", variant.name, connections);
}

// herald's task: the files beside it in the benchmark's folder.
std::string TaskToml(const Variant& variant, int connections) {
  std::string headers;
  for (const auto& [name, value] : kHeaders) {
    if (!headers.empty()) headers += ", ";
    headers += TomlString(name) + " = " + TomlString(value);
  }
  std::string attachments =
      variant.attachment == 0 ? "" : fmt::format("attachments = [{}]\n", TomlString(kAttachmentName));
  return fmt::format(
      "id = \"smtp-bench\"\n"
      "title = \"Frühlingsnewsletter\"\n"
      "accounts = \"accounts-sink-{}.toml\"\n"
      "store = \"store.db\"\n"
      "\n"
      "[message]\n"
      "from = {}\n"
      "to_name = {}\n"
      "subject = {}\n"
      "text_file = \"body.txt\"\n"
      "html_file = \"body.html\"\n"
      "{}"
      "headers = {{ {} }}\n"
      "\n"
      "[recipients]\n"
      "file = \"recipients.csv\"\n"
      "address_column = \"email\"\n"
      "\n"
      "[sending]\n"
      "concurrency = {}\n",
      connections, TomlString(kFrom), TomlString(kToName), TomlString(kSubject), attachments, headers, connections);
}

std::string AccountsToml(const std::string& name, int port, int connections) {
  return fmt::format(
      "[[account]]\n"
      "name = {}\n"
      "kind = \"smtp\"\n"
      "host = \"127.0.0.1\"\n"
      "port = {}\n"
      "security = \"none\"\n"
      "helo_name = {}\n"
      "max_connections = {}\n",
      TomlString(name), port, TomlString(kHeloName), connections);
}

// nodemailer's job (bench/peers/nodemailer_send.js): the same message and list as herald's task.
std::string NodemailerJson(const fs::path& dir, const Variant& variant, int port, int connections) {
  nlohmann::json headers = nlohmann::json::object();
  for (const auto& [name, value] : kHeaders) headers[name] = value;
  nlohmann::json attachments = nlohmann::json::array();
  if (variant.attachment != 0) {
    attachments.push_back({{"path", (dir / kAttachmentName).string()},
                           {"name", kAttachmentName},
                           {"content_type", "application/pdf"}});
  }
  nlohmann::json job = {
      {"host", "127.0.0.1"},
      {"port", port},
      {"connections", connections},
      {"messages_per_connection", kReconnectEvery},
      {"helo_name", kHeloName},
      {"recipients", (dir / "recipients.csv").string()},
      {"address_column", "email"},
      {"from", kFrom},
      {"to_name", kToName},
      {"subject", kSubject},
      {"text_file", (dir / "body.txt").string()},
      {"html_file", (dir / "body.html").string()},
      {"headers", headers},
      {"attachments", attachments},
  };
  return job.dump(2) + "\n";
}

// ---------------------------------------------------------------- one herald run (--one-run)

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

class SmtpOnlyFactory final : public herald::TransportFactory {
 public:
  herald::Result<std::unique_ptr<herald::Transport>> Create(const herald::AccountConfig& account,
                                                            Transcript transcript) override {
    auto transport = herald::SmtpTransport::Create(account, std::move(transcript));
    if (!transport.ok()) return transport.status();
    return std::unique_ptr<herald::Transport>(std::move(*transport));
  }
};

class BenchObserver final : public herald::RunObserver {
 public:
  explicit BenchObserver(SteadyClock::time_point start) : start_(start) {}

  // Printed at once: the driver takes its arrival as the start of sending when it times Postfix.
  void OnImport(const herald::ImportReport& report) override {
    import_seconds = std::chrono::duration<double>(SteadyClock::now() - start_).count();
    imported = report.imported;
    std::printf("imported=%zu import_s=%.3f\n", imported, import_seconds);
    std::fflush(stdout);
  }
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

  SteadyClock::time_point start_;
  double import_seconds = 0;
  std::size_t imported = 0;
  bool started = false;
  double cpu_at_start = 0;
  double cpu_at_end = 0;
  std::size_t problems = 0;
  herald::RunProgress last;
};

// Sends the task through the full engine into a fresh store; prints one line of key=value.
int OneRun(const std::string& task_file, const std::string& accounts_file, const std::string& store_file) {
  auto fail = [](const herald::Status& status) {
    std::fprintf(stderr, "herald: %s\n", status.ToString().c_str());
    return 1;
  };
  herald::Result<herald::TaskConfig> task = herald::LoadTask(task_file);
  if (!task.ok()) return fail(task.status());
  herald::Result<herald::AccountSet> accounts = herald::LoadAccounts(accounts_file);
  if (!accounts.ok()) return fail(accounts.status());
  herald::Result<std::unique_ptr<herald::SqliteStore>> store = herald::SqliteStore::Open(store_file);
  if (!store.ok()) return fail(store.status());
  herald::SystemClock clock;
  SmtpOnlyFactory transports;
  BenchObserver observer(SteadyClock::now());
  herald::Result<herald::RunReport> report =
      herald::RunTask(*task, *accounts, **store, clock, transports, observer, herald::RunOptions{});
  if (!report.ok()) return fail(report.status());
  if (!report->stopped_by.ok()) return fail(report->stopped_by);
  const double seconds = std::chrono::duration<double>(observer.last.elapsed).count();
  std::printf("sent=%llu failed=%llu deferred=%llu send_s=%.4f cpu_s=%.4f rss_kb=%ld\n",
              static_cast<unsigned long long>(report->sent), static_cast<unsigned long long>(report->failed),
              static_cast<unsigned long long>(report->deferred), seconds,
              observer.cpu_at_end - observer.cpu_at_start, PeakRssKb());
  return 0;
}

// ---------------------------------------------------------------- processes

// A failure (or an interruption) of the benchmark: thrown, so that the servers and the temporary
// folder are cleaned up by their destructors on the way out.
struct BenchError {
  std::string text;
  int exit_code = 1;
};

[[noreturn]] void Die(const std::string& text) { throw BenchError{text}; }

volatile sig_atomic_t g_stop = 0;
volatile pid_t g_child = 0;

void OnSignal(int) {
  g_stop = 1;
  if (g_child > 0) kill(g_child, SIGTERM);
}

void CheckStop() {
  if (g_stop) throw BenchError{"interrupted", 130};
}

std::string FindTool(const std::string& name, const std::string& package) {
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
    }
  }
  for (const char* dir : {"/usr/sbin", "/usr/local/sbin", "/sbin"}) {
    std::string candidate = std::string(dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  Die(name + " not found (" + package + ")");
}

// Starts `argv` with stdin from /dev/null, stdout to `out_file`, stderr appended to `err_file`;
// it gets SIGTERM should this program die first. Returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, const fs::path& out_file, const fs::path& err_file) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) Die(fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(126);
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0 || err < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  g_child = pid;
  return pid;
}

// Waits for `pid`; returns its exit status (-1 when it did not exit normally) and its rusage.
int Wait(pid_t pid, rusage* usage) {
  int status = 0;
  while (wait4(pid, &status, 0, usage) < 0) {
    if (errno != EINTR) return -1;
  }
  if (g_child == pid) g_child = 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string Tail(const fs::path& file) {
  std::string text = ReadFile(file);
  if (text.size() > 2000) text = "..." + text.substr(text.size() - 2000);
  return text;
}

void WriteFile(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) Die("cannot write " + path.string());
}

std::map<std::string, std::string> ParseFields(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::istringstream in(text);
  std::string item;
  while (in >> item) {
    std::size_t eq = item.find('=');
    if (eq != std::string::npos) fields[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return fields;
}

double Seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; }

// A file of /proc/<pid>/, "" when the process is gone — also while it is being read: then read()
// fails with ESRCH, which std::filebuf would throw as an exception.
std::string ReadProcFile(pid_t pid, const char* name) {
  std::string text;
  int fd = open(fmt::format("/proc/{}/{}", pid, name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buffer[4096];
  ssize_t got;
  while ((got = read(fd, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<std::size_t>(got));
  close(fd);
  return got < 0 ? std::string() : text;
}

// From /proc/<pid>/stat: the process group, the CPU time (user + system) of the process, and
// that of its children it has waited for.
struct ProcStat {
  pid_t group = 0;
  double cpu = 0;
  double children_cpu = 0;
};

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::string stat = ReadProcFile(pid, "stat");
  std::size_t paren = stat.rfind(')');  // "pid (comm) state ppid pgrp ...": comm may hold anything
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  ProcStat result;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (int i = 3; i <= 17 && fields >> field; ++i) {
    if (i == 5) result.group = static_cast<pid_t>(std::stol(field));
    if (i == 14 || i == 15) result.cpu += std::stod(field) / tick;
    if (i == 16 || i == 17) result.children_cpu += std::stod(field) / tick;
  }
  return result;
}

double ProcessCpuSeconds(pid_t pid) {
  std::optional<ProcStat> stat = ReadProcStat(pid);
  return stat ? stat->cpu : 0;
}

// The members of a process group and their stats.
std::vector<std::pair<pid_t, ProcStat>> GroupMembers(pid_t group) {
  std::vector<std::pair<pid_t, ProcStat>> members;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return members;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid <= 0) continue;
    std::optional<ProcStat> stat = ReadProcStat(static_cast<pid_t>(pid));
    if (stat && stat->group == group) members.emplace_back(static_cast<pid_t>(pid), *stat);
  }
  closedir(proc);
  return members;
}

// CPU seconds of a process group so far: each live member's own, plus what the members waited
// for (Postfix's master reaps its daemons when they exit, so their time is in its children's).
double GroupCpuSeconds(pid_t group) {
  double total = 0;
  for (const auto& [pid, stat] : GroupMembers(group)) total += stat.cpu + stat.children_cpu;
  return total;
}

// The summed proportional set size (PSS) of a process group's members, in KB.
long GroupPssKb(pid_t group) {
  long total = 0;
  for (const auto& [pid, stat] : GroupMembers(group)) {
    std::istringstream rollup(ReadProcFile(pid, "smaps_rollup"));
    std::string line;
    while (std::getline(rollup, line)) {
      if (line.rfind("Pss:", 0) == 0) {
        total += std::stol(line.substr(4));
        break;
      }
    }
  }
  return total;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string Group(double value) {
  std::string digits = fmt::format("{:.0f}", value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

// ---------------------------------------------------------------- options and files

struct Options {
  std::vector<Peer> peers = {Peer::kHerald, Peer::kSmtpSource};  // herald first, always
  std::vector<const Variant*> sizes = {&kVariants[0]};
  long messages = 20'000;
  int runs = 5;
  std::vector<int> connections = {1, 4, 16};
  std::vector<long> scale;  // --scale: herald alone at these list sizes
  bool keep = false;
};

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream list(text);
  std::string item;
  while (std::getline(list, item, ',')) items.push_back(item);
  return items;
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--messages") {
      options.messages = std::stol(value());
    } else if (arg == "--runs") {
      options.runs = std::stoi(value());
    } else if (arg == "--connections") {
      options.connections.clear();
      for (const std::string& item : SplitList(value())) options.connections.push_back(std::stoi(item));
    } else if (arg == "--peers") {
      options.peers = {Peer::kHerald};
      std::string list = value();
      if (list == "all") list = "smtp-source,nodemailer,postfix";
      for (const std::string& item : SplitList(list)) {
        auto found = std::find_if(std::begin(kPeers), std::end(kPeers), [&](const PeerInfo& p) { return item == p.name; });
        if (found == std::end(kPeers)) Die("--peers: unknown peer '" + item + "' (smtp-source, nodemailer, postfix, all)");
        if (std::find(options.peers.begin(), options.peers.end(), found->peer) == options.peers.end()) {
          options.peers.push_back(found->peer);
        }
      }
    } else if (arg == "--sizes") {
      options.sizes.clear();
      for (const std::string& item : SplitList(value())) {
        auto found = std::find_if(std::begin(kVariants), std::end(kVariants), [&](const Variant& v) { return item == v.name; });
        if (found == std::end(kVariants)) Die("--sizes: unknown size '" + item + "' (5k, 100k)");
        options.sizes.push_back(&*found);
      }
    } else if (arg == "--scale") {
      for (const std::string& item : SplitList(value())) options.scale.push_back(std::stol(item));
    } else if (arg == "--keep") {
      options.keep = true;
    } else {
      Die("usage: smtp_bench [--peers smtp-source,nodemailer,postfix|all] [--sizes 5k,100k] [--messages N]\n"
          "                  [--runs R] [--connections 1,4,16,64] [--keep]\n"
          "       smtp_bench --scale N1,N2,... [--connections C]");
    }
  }
  for (long n : options.scale) {
    if (n < 1) Die("--scale sizes must be positive");
  }
  if (options.messages < 1 || options.runs < 1 || options.connections.empty() || options.sizes.empty()) {
    Die("nothing to measure");
  }
  for (int c : options.connections) {
    if (c < 1 || c > 256) Die("connections must be 1..256");
  }
  return options;
}

void WriteRecipients(const fs::path& path, long count) {
  static const char* kFirst[] = {"Anna", "Jürgen", "Zoë", "François", "Łukasz", "Siobhán", "Mehmet", "Ines"};
  static const char* kLast[] = {"Schmidt", "Müller", "Dubois", "Kowalski", "Groß", "O'Brien", "Yılmaz", "Weiß"};
  static const char* kCity[] = {"Zürich", "Lyon", "Kraków", "Graz", "Frankfurt am Main", "Köln", "Wien", "Bern"};
  std::string text = "email,firstname,lastname,city,id\n";
  for (long i = 0; i < count; ++i) {
    fmt::format_to(std::back_inserter(text), "reader{:07d}@example.com,{},{},{},{:08x}\n", i, kFirst[i % 8],
                   kLast[(i / 8) % 8], kCity[(i / 3) % 8], static_cast<std::uint32_t>(i * 2654435761u));
  }
  WriteFile(path, text);
}

// A stand-in PDF: a header, then bytes that do not compress (as a real PDF's streams would not).
void WriteAttachment(const fs::path& path, std::size_t size) {
  std::string bytes = "%PDF-1.7\n";
  std::uint64_t state = 0x9E3779B97F4A7C15u;
  while (bytes.size() < size) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    bytes += static_cast<char>(state & 0xff);
  }
  WriteFile(path, bytes);
}

// The mean size of herald's messages for the first recipients (composed as the engine does).
std::size_t MessageSize(const fs::path& task_file) {
  herald::Result<herald::TaskConfig> task = herald::LoadTask(task_file.string());
  if (!task.ok()) Die(task.status().ToString());
  herald::Result<std::vector<std::string>> columns = herald::ReadRecipientColumns(task->recipients);
  if (!columns.ok()) Die(columns.status().ToString());
  herald::Result<herald::PreparedTask> prepared = herald::PrepareTask(*task, *columns);
  if (!prepared.ok()) Die(prepared.status().ToString());
  std::ifstream csv(task->recipients.file);
  std::string line;
  std::getline(csv, line);
  std::size_t total = 0;
  std::size_t count = 0;
  herald::MessageData message;
  while (count < 1000 && std::getline(csv, line)) {
    std::vector<std::string> values = SplitList(line);
    std::vector<std::string_view> views(values.begin(), values.end());
    herald::Result<herald::Address> to = herald::ParseAddress(values[0]);
    if (!to.ok()) Die(to.status().ToString());
    std::string id = fmt::format("0123456789abcdef.{}@shop.example", count + 1);
    herald::RecipientParts parts{views, &*to, id, herald::SystemClock().Now(), nullptr};
    if (herald::Status composed = prepared->composer->Compose(parts, message); !composed.ok()) {
      Die(composed.ToString());
    }
    total += message.size();
    ++count;
  }
  return count == 0 ? 0 : total / count;
}

// ---------------------------------------------------------------- the runs

// One run of one sender.
struct Measure {
  double rate = 0;        // messages/s
  double seconds = 0;
  double cpu_per_1k = 0;  // CPU seconds per 1,000 messages
  double memory_mb = 0;   // peak RSS (Postfix: peak summed PSS)
  double sink_cpu_per_1k = 0;
  double import_seconds = 0;  // herald: the import of the list, before sending
  std::string note;           // more about this run, for its line
};

// The benchmark's folder, the sink and the tools, for every run.
struct Bench {
  fs::path dir;
  herald::test_servers::SmtpSink* sink = nullptr;
  std::string source_tool;
  std::string node_tool;
  std::string nodemailer_script;
  long messages = 0;
  int postfix_instances = 0;
  bool keep = false;  // --keep: Postfix's folders (configuration, log) stay too
};

// Counts what the sink received during one run and checks it is exactly the run's messages.
class SinkWatch {
 public:
  explicit SinkWatch(const Bench& bench)
      : bench_(bench), before_(bench.sink->MessageCount()), cpu_before_(ProcessCpuSeconds(bench.sink->pid())) {}

  std::int64_t target() const { return before_ + bench_.messages; }

  // The sink's CPU seconds per 1,000 messages since the start; fails unless it counted exactly
  // the run's messages.
  double Finish(const std::string& who) const {
    herald::Status counted = bench_.sink->WaitForMessageCount(target(), std::chrono::milliseconds(10000));
    std::int64_t got = bench_.sink->MessageCount() - before_;
    if (!counted.ok() || got != bench_.messages) {
      Die(fmt::format("{}: the sink counted {} messages, not {}\n{}", who, got, bench_.messages,
                      counted.ok() ? "" : counted.message()));
    }
    return (ProcessCpuSeconds(bench_.sink->pid()) - cpu_before_) / (static_cast<double>(bench_.messages) / 1000);
  }

 private:
  const Bench& bench_;
  std::int64_t before_;
  double cpu_before_;
};

pid_t StartHerald(const Bench& bench, const fs::path& task, const fs::path& accounts) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(bench.dir / (std::string("store.db") + suffix));
  return Spawn({"/proc/self/exe", "--one-run", task.string(), accounts.string(), (bench.dir / "store.db").string()},
               bench.dir / "herald.out", bench.dir / "herald.log");
}

// herald's report line, checked: it exited cleanly and sent every message.
std::map<std::string, std::string> HeraldReport(const Bench& bench, int status, const std::string& what) {
  CheckStop();
  std::string output = ReadFile(bench.dir / "herald.out");
  std::map<std::string, std::string> fields = ParseFields(output);
  if (status != 0 || fields["sent"] != std::to_string(bench.messages)) {
    Die(fmt::format("herald {} failed (exit {}): {}\n{}", what, status, output, Tail(bench.dir / "herald.log")));
  }
  return fields;
}

Measure RunHerald(const Bench& bench, const Variant& variant, int connections) {
  SinkWatch watch(bench);
  pid_t pid = StartHerald(bench, bench.dir / TaskFileName(variant, connections),
                          bench.dir / fmt::format("accounts-sink-{}.toml", connections));
  std::map<std::string, std::string> fields =
      HeraldReport(bench, Wait(pid, nullptr), fmt::format("with {} connection(s)", connections));
  Measure m;
  m.seconds = std::stod(fields["send_s"]);
  m.rate = static_cast<double>(bench.messages) / m.seconds;
  m.cpu_per_1k = std::stod(fields["cpu_s"]) / (static_cast<double>(bench.messages) / 1000);
  m.memory_mb = std::stod(fields["rss_kb"]) / 1024;
  m.import_seconds = std::stod(fields["import_s"]);
  m.note = fmt::format("import of the list {:.2f} s", m.import_seconds);
  m.sink_cpu_per_1k = watch.Finish("herald");
  return m;
}

Measure RunSmtpSource(const Bench& bench, int connections, std::size_t size) {
  SinkWatch watch(bench);
  auto start = SteadyClock::now();
  pid_t pid = Spawn({bench.source_tool, "-d", "-s", std::to_string(connections), "-m", std::to_string(bench.messages),
                     "-l", std::to_string(size), "-M", kHeloName, "-f", "newsletter@shop.example", "-t",
                     "reader@example.com", fmt::format("127.0.0.1:{}", bench.sink->port())},
                    bench.dir / "smtp-source.out", bench.dir / "smtp-source.log");
  rusage usage{};
  int status = Wait(pid, &usage);
  Measure m;
  m.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  CheckStop();
  if (status != 0) {
    Die(fmt::format("smtp-source with {} session(s) failed (exit {}):\n{}", connections, status,
                    Tail(bench.dir / "smtp-source.log")));
  }
  m.rate = static_cast<double>(bench.messages) / m.seconds;
  m.cpu_per_1k = (Seconds(usage.ru_utime) + Seconds(usage.ru_stime)) / (static_cast<double>(bench.messages) / 1000);
  m.memory_mb = static_cast<double>(usage.ru_maxrss) / 1024;
  m.sink_cpu_per_1k = watch.Finish("smtp-source");
  return m;
}

Measure RunNodemailer(const Bench& bench, const Variant& variant, int connections) {
  SinkWatch watch(bench);
  fs::path job = bench.dir / fmt::format("nodemailer-{}-{}.json", variant.name, connections);
  pid_t pid = Spawn({bench.node_tool, bench.nodemailer_script, job.string()}, bench.dir / "nodemailer.out",
                    bench.dir / "nodemailer.log");
  int status = Wait(pid, nullptr);
  CheckStop();
  std::string output = ReadFile(bench.dir / "nodemailer.out");
  std::map<std::string, std::string> fields = ParseFields(output);
  if (status != 0 || fields["sent"] != std::to_string(bench.messages)) {
    Die(fmt::format("nodemailer with {} connection(s) failed (exit {}): {}\n{}", connections, status, output,
                    Tail(bench.dir / "nodemailer.log")));
  }
  Measure m;
  m.seconds = std::stod(fields["send_s"]);
  m.rate = static_cast<double>(bench.messages) / m.seconds;
  m.cpu_per_1k = std::stod(fields["cpu_s"]) / (static_cast<double>(bench.messages) / 1000);
  m.memory_mb = std::stod(fields["rss_kb"]) / 1024;
  m.sink_cpu_per_1k = watch.Finish("nodemailer");
  return m;
}

// Files waiting in Postfix's incoming and active queues.
std::size_t QueuedFiles(const std::string& queue_directory) {
  std::size_t count = 0;
  for (const char* name : {"incoming", "active"}) {
    std::error_code error;
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(queue_directory) / name, error)) {
      if (entry.is_regular_file(error)) ++count;
    }
  }
  return count;
}

// A fresh Postfix relaying to the sink; herald injects the messages into it.
Measure RunPostfix(Bench& bench, const Variant& variant, int connections) {
  using herald::test_servers::PostfixServer;
  const fs::path folder = bench.dir / fmt::format("postfix-{}", ++bench.postfix_instances);
  herald::test_servers::PostfixOptions options;
  options.directory = folder.string();
  options.submission_port = herald::test_servers::kNoPort;
  options.smtps_port = herald::test_servers::kNoPort;
  options.relay_host = fmt::format("[127.0.0.1]:{}", bench.sink->port());
  options.relay_connections = connections;
  options.hostname = "relay.herald.test";
  options.lifetime = std::chrono::seconds(3600);
  std::optional<PostfixServer> postfix(std::in_place, options);
  if (herald::Status started = postfix->Start(); !started.ok()) Die(started.ToString());
  const pid_t group = postfix->master_pid();
  const fs::path accounts = bench.dir / fmt::format("accounts-postfix-{}.toml", connections);
  WriteFile(accounts, AccountsToml("postfix-relay", postfix->smtp_port(), connections));

  SinkWatch watch(bench);
  const double cpu_before = GroupCpuSeconds(group);
  const auto spawned = SteadyClock::now();
  pid_t pid = StartHerald(bench, bench.dir / TaskFileName(variant, connections), accounts);
  std::optional<SteadyClock::time_point> injecting, delivered;
  std::optional<int> injector_status;
  rusage injector_usage{};
  long peak_pss_kb = 0;
  auto next_sample = spawned;
  std::int64_t last_count = -1;
  auto last_progress = spawned;
  while (!delivered || !injector_status) {
    CheckStop();
    auto now = SteadyClock::now();
    if (!injector_status) {
      int status = 0;
      pid_t done = wait4(pid, &status, WNOHANG, &injector_usage);
      if (done == pid) {
        g_child = 0;
        injector_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (*injector_status != 0) HeraldReport(bench, *injector_status, "injecting into Postfix");
      }
    }
    if (!injecting && ReadFile(bench.dir / "herald.out").find("imported=") != std::string::npos) injecting = now;
    std::int64_t count = bench.sink->MessageCount();
    if (!delivered && count >= watch.target()) delivered = now;
    if (count != last_count) {
      last_count = count;
      last_progress = now;
    } else if (!delivered && now - last_progress > std::chrono::seconds(60)) {
      Die(fmt::format("Postfix relayed nothing to the sink for 60 s ({} of {} counted)\n{}",
                      count - (watch.target() - bench.messages), bench.messages, postfix->Log()));
    }
    if (!delivered && now >= next_sample) {
      peak_pss_kb = std::max(peak_pss_kb, GroupPssKb(group));
      next_sample = now + std::chrono::milliseconds(100);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Its work for these messages ends when their queue files are gone (qmgr removes each after the
  // sink's 250): until then it is counted.
  for (int i = 0; i < 500 && QueuedFiles(postfix->queue_directory()) > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double cpu = GroupCpuSeconds(group) - cpu_before;
  std::map<std::string, std::string> fields = HeraldReport(bench, *injector_status, "injecting into Postfix");
  Measure m;
  m.seconds = std::chrono::duration<double>(*delivered - injecting.value_or(spawned)).count();
  m.rate = static_cast<double>(bench.messages) / m.seconds;
  const double k = static_cast<double>(bench.messages) / 1000;
  m.cpu_per_1k = cpu / k;
  m.memory_mb = static_cast<double>(peak_pss_kb) / 1024;
  m.note = fmt::format("injector (herald) {} msg/s, CPU {:.3f} s/1k",
                       Group(static_cast<double>(bench.messages) / std::stod(fields["send_s"])),
                       (Seconds(injector_usage.ru_utime) + Seconds(injector_usage.ru_stime)) / k);
  m.sink_cpu_per_1k = watch.Finish("Postfix");
  postfix.reset();  // stops every Postfix process
  if (!bench.keep) {
    std::error_code ignored;
    fs::remove_all(folder, ignored);
  }
  return m;
}

// ---------------------------------------------------------------- the driver

// The benchmark's temporary folder: removed at the end unless kept.
class TempFolder {
 public:
  explicit TempFolder(bool keep) : keep_(keep) {
    std::string tmp = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
    std::string pattern = tmp + "/herald-smtp-bench.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) Die(fmt::format("mkdtemp: {}", std::strerror(errno)));
    path_ = pattern;
  }
  ~TempFolder() {
    if (keep_ && !g_stop) {
      std::printf("kept %s\n", path_.c_str());
      return;
    }
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  bool keep_;
  fs::path path_;
};

// herald alone at growing list sizes (--scale).
void Scale(Bench& bench, const Options& options) {
  const int c = options.connections.front();
  std::printf("scale: herald alone, %d connection(s), one run per size\n", c);
  std::printf("\n| recipients | herald msg/s | CPU s per 1k msg | peak RSS | import of the list | smtp-sink CPU s per 1k "
              "|\n| ---: | ---: | ---: | ---: | ---: | ---: |\n");
  std::fflush(stdout);
  for (long n : options.scale) {
    WriteRecipients(bench.dir / "recipients.csv", n);
    bench.messages = n;
    Measure h = RunHerald(bench, kVariants[0], c);
    std::printf("| %s | %s | %.3f | %.1f MB | %.2f s | %.3f |\n", Group(static_cast<double>(n)).c_str(),
                Group(h.rate).c_str(), h.cpu_per_1k, h.memory_mb, h.import_seconds, h.sink_cpu_per_1k);
    std::fflush(stdout);
  }
}

Measure RunPeer(Bench& bench, Peer peer, const Variant& variant, int connections, std::size_t size) {
  switch (peer) {
    case Peer::kHerald: return RunHerald(bench, variant, connections);
    case Peer::kSmtpSource: return RunSmtpSource(bench, connections, size);
    case Peer::kNodemailer: return RunNodemailer(bench, variant, connections);
    case Peer::kPostfix: return RunPostfix(bench, variant, connections);
  }
  Die("unknown peer");
}

// The medians of one sender at one size and connection count.
struct Row {
  const Variant* variant;
  int connections;
  Peer peer;
  double rate, cpu_per_1k, memory_mb;
};

std::string Ratio(double value, double target) {
  return fmt::format("{:.2f} ({})", value, value >= target ? "met" : "**missed**");
}

void PrintTables(const std::vector<Row>& rows, const Options& options) {
  auto find = [&](const Variant* v, int c, Peer p) -> const Row* {
    for (const Row& row : rows) {
      if (row.variant == v && row.connections == c && row.peer == p) return &row;
    }
    return nullptr;
  };
  std::printf("\n| message | connections | sender | msg/s | CPU s per 1k msg | peak memory | herald ÷ sender |\n"
              "| --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
  for (const Row& row : rows) {
    const Row* herald = find(row.variant, row.connections, Peer::kHerald);
    std::string ratio = row.peer == Peer::kHerald ? "" : fmt::format("{:.2f}", herald->rate / row.rate);
    std::printf("| %s | %d | %s | %s | %.3f | %.1f MB | %s |\n", row.variant->label, row.connections,
                Info(row.peer).label, Group(row.rate).c_str(), row.cpu_per_1k, row.memory_mb, ratio.c_str());
  }
  // The targets (issue 6, "The peer table").
  struct Target {
    Peer peer;
    double ratio;
  };
  std::vector<Target> targets;
  for (Target t : {Target{Peer::kSmtpSource, 1}, Target{Peer::kNodemailer, 5}, Target{Peer::kPostfix, 3}}) {
    if (std::find(options.peers.begin(), options.peers.end(), t.peer) != options.peers.end()) targets.push_back(t);
  }
  std::printf("\nTargets: herald ≥ smtp-source's rate, ≥ 5× nodemailer's, ≥ 3× Postfix relaying; at 100 KB ≥ 750 msg/s.\n"
              "\n| message | connections | herald msg/s |");
  for (const Target& t : targets) std::printf(" herald ÷ %s (≥ %g) |", Info(t.peer).label, t.ratio);
  std::printf("\n| --- | ---: | ---: |");
  for (std::size_t i = 0; i < targets.size(); ++i) std::printf(" ---: |");
  std::printf("\n");
  for (const Variant* v : options.sizes) {
    for (int c : options.connections) {
      const Row* herald = find(v, c, Peer::kHerald);
      if (herald == nullptr) continue;
      std::string rate = Group(herald->rate);
      if (v->attachment != 0) rate = fmt::format("{} ({})", rate, herald->rate >= 750 ? "met" : "**missed**");
      std::printf("| %s | %d | %s |", v->label, c, rate.c_str());
      for (const Target& t : targets) {
        const Row* peer = find(v, c, t.peer);
        std::printf(" %s |", peer == nullptr ? "" : Ratio(herald->rate / peer->rate, t.ratio).c_str());
      }
      std::printf("\n");
    }
  }
}

void Compare(Bench& bench, const Options& options) {
  std::vector<Row> rows;
  for (const Variant* variant : options.sizes) {
    const std::size_t size = MessageSize(bench.dir / TaskFileName(*variant, options.connections.front()));
    std::printf("\n%s: herald's messages are %s bytes on average%s\n", variant->label,
                Group(static_cast<double>(size)).c_str(),
                variant->attachment == 0 ? "" : " (with the attached PDF)");
    for (int c : options.connections) {
      std::map<Peer, std::vector<Measure>> runs;
      for (int run = 0; run < options.runs; ++run) {
        for (std::size_t k = 0; k < options.peers.size(); ++k) {
          Peer peer = options.peers[(run + k) % options.peers.size()];
          Measure m = RunPeer(bench, peer, *variant, c, size);
          std::printf("  %s, %2d connection(s), run %d, %-19s %7s msg/s (%.2f s, CPU %.3f s/1k, peak %s %.1f MB%s%s; "
                      "sink CPU %.3f s/1k)\n",
                      variant->label, c, run + 1, Info(peer).label, Group(m.rate).c_str(), m.seconds, m.cpu_per_1k,
                      peer == Peer::kPostfix ? "PSS" : "RSS", m.memory_mb, m.note.empty() ? "" : "; ", m.note.c_str(),
                      m.sink_cpu_per_1k);
          std::fflush(stdout);
          runs[peer].push_back(m);
        }
      }
      for (Peer peer : options.peers) {
        std::vector<double> rates, cpus, memories;
        for (const Measure& m : runs[peer]) {
          rates.push_back(m.rate);
          cpus.push_back(m.cpu_per_1k);
          memories.push_back(m.memory_mb);
        }
        rows.push_back({variant, c, peer, Median(rates), Median(cpus), Median(memories)});
      }
    }
  }
  PrintTables(rows, options);
}

int Drive(const Options& options) {
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGHUP, OnSignal);
  signal(SIGPIPE, SIG_IGN);
  auto uses = [&](Peer peer) {
    return std::find(options.peers.begin(), options.peers.end(), peer) != options.peers.end();
  };
  Bench bench;
  if (uses(Peer::kSmtpSource)) bench.source_tool = FindTool("smtp-source", "Debian package postfix");
  if (uses(Peer::kNodemailer)) {
    bench.node_tool = FindTool("node", "Node.js 20 or newer");
    bench.nodemailer_script = std::string(HERALD_BENCH_PEERS_DIR) + "/nodemailer_send.js";
    if (!fs::exists(std::string(HERALD_BENCH_PEERS_DIR) + "/node_modules/nodemailer")) {
      Die("nodemailer is not installed in " HERALD_BENCH_PEERS_DIR " (bench/peers.sh installs it: npm ci)");
    }
  }
  TempFolder temp(options.keep);
  bench.dir = temp.path();
  bench.keep = options.keep;
  herald::test_servers::SmtpSinkOptions sink_options;
  sink_options.directory = (bench.dir / "sink").string();
  sink_options.capture = false;
  sink_options.backlog = 1024;
  herald::test_servers::SmtpSink sink(sink_options);
  if (herald::Status started = sink.Start(); !started.ok()) Die(started.ToString());
  bench.sink = &sink;

  bench.messages = options.scale.empty() ? options.messages : options.scale.front();
  WriteFile(bench.dir / "body.txt", kText);
  WriteFile(bench.dir / "body.html", kHtml);
  WriteRecipients(bench.dir / "recipients.csv", bench.messages);
  for (const Variant* variant : options.sizes) {
    if (variant->attachment != 0) WriteAttachment(bench.dir / kAttachmentName, variant->attachment);
    for (int c : options.connections) {
      WriteFile(bench.dir / TaskFileName(*variant, c), TaskToml(*variant, c));
      if (uses(Peer::kNodemailer)) {
        WriteFile(bench.dir / fmt::format("nodemailer-{}-{}.json", variant->name, c),
                  NodemailerJson(bench.dir, *variant, sink.port(), c));
      }
    }
  }
  for (int c : options.connections) {
    WriteFile(bench.dir / fmt::format("accounts-sink-{}.toml", c), AccountsToml("sink", sink.port(), c));
  }
  std::string peers;
  for (Peer peer : options.peers) peers += std::string(peers.empty() ? "" : ", ") + Info(peer).label;
  std::printf("SMTP benchmark on 127.0.0.1: %s personalised messages (text + HTML, 5 placeholders) per run to "
              "smtp-sink (port %d); senders: %s; %d run(s) each, medians. herald = the full engine (SQLite "
              "store, SMTP transport), rate from the start of sending; smtp-source = one fixed message of the same "
              "size; nodemailer = pool: true, maxConnections = connections; Postfix relay = injected by herald, "
              "timed from the first message injected until the sink counted the last, CPU and memory (PSS) of all "
              "its processes.\n",
              Group(static_cast<double>(bench.messages)).c_str(), sink.port(), peers.c_str(), options.runs);
  std::fflush(stdout);
  try {
    if (options.scale.empty()) {
      Compare(bench, options);
    } else {
      Scale(bench, options);
    }
  } catch (...) {
    if (g_child > 0) {  // the sender of the failed run, before its folder goes
      kill(g_child, SIGTERM);
      Wait(g_child, nullptr);
    }
    throw;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--one-run") return OneRun(argv[2], argv[3], argv[4]);
  try {
    return Drive(ParseOptions(argc, argv));
  } catch (const BenchError& error) {
    std::fprintf(stderr, "smtp_bench: %s\n", error.text.c_str());
    return error.exit_code;
  } catch (const std::exception& error) {  // a bug here: still unwind, so that servers and files go
    std::fprintf(stderr, "smtp_bench: %s\n", error.what());
    return 1;
  }
}
